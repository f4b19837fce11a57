"""``ticket verify`` and ``ticket inspect`` as printed by the command line, without torch.

Shared by the fast console entry point (:mod:`transfer_bench.entry`) and the typer app
(:mod:`transfer_bench.cli`); the checks themselves are numpy-only (:mod:`.verify`). rich is
imported inside the functions so that importing this module stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from transfer_bench.errors import TransferBenchError
from transfer_bench.tickets.verify import describe, read_ticket_arrays


def verify_files(paths: Sequence[Path]) -> int:
    """Verify each ticket file; print ``OK``/``FAILED`` lines; return 1 if any failed, else 0."""
    # lazy: rich costs ~0.1 s and is not needed to import this module
    from rich.console import Console

    out, err = Console(), Console(stderr=True)
    failed = 0
    for path in paths:
        try:
            t = read_ticket_arrays(path)
        except TransferBenchError as e:
            err.print(f"FAILED: {e}", markup=False, highlight=False, soft_wrap=True)
            failed += 1
            continue
        out.print(
            f"OK: {path} (density {100 * t.density:.2f}%, level {t.meta.get('level')}, "
            f"format version {t.version})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if len(paths) > 1:
        out.print(f"{len(paths) - failed} of {len(paths)} tickets verified", highlight=False)
    return 1 if failed else 0


def inspect_file(path: Path) -> None:
    """Print a verified ticket's layers, shapes, densities and provenance."""
    # lazy: rich costs ~0.1 s and is not needed to import this module
    from rich.console import Console
    from rich.table import Table

    t = read_ticket_arrays(path)
    table = Table(
        title=f"{path.name}: density {100 * t.density:.2f}% (level {t.meta.get('level')}, "
        f"format version {t.version})"
    )
    for col in ("layer", "shape", "kept", "total", "density", "head"):
        table.add_column(col)
    for row in describe(t.masks, t.meta["head_names"]):
        table.add_row(
            row["layer"],
            "x".join(map(str, row["shape"])),
            str(row["kept"]),
            str(row["total"]),
            f"{100 * row['density']:.2f}%",
            "yes" if row["is_head"] else "",
        )
    console = Console()
    console.print(table)
    skip = {"param_shapes", "layer_density", "mask_lengths"}
    console.print_json(json.dumps({k: v for k, v in t.meta.items() if k not in skip}, default=str))

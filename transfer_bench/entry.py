"""Console entry point: ``ticket verify`` and ``ticket inspect`` run here without typer or torch.

Checking tickets should be instant: a folder of shared tickets is verified in a loop, and the
checks are numpy-only (:mod:`transfer_bench.tickets.verify`). Two imports would dominate such a
command: torch (never needed to check a file) and typer, whose parameter parsing imports pydantic
(~0.2 s here). So a plain ``transfer-bench ticket verify FILE...`` or ``ticket inspect FILE``
(no options) is dispatched here directly; anything else, ``--help`` included, goes to the typer
app in :mod:`transfer_bench.cli`, whose ``ticket verify``/``inspect`` call the same functions.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from transfer_bench.errors import TransferBenchError


def verify_files(paths: Sequence[Path]) -> int:
    """Verify each ticket file; print ``OK``/``FAILED`` lines; return 1 if any failed, else 0."""
    from rich.console import Console

    from transfer_bench.tickets.verify import read_ticket_arrays

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
    from rich.console import Console
    from rich.table import Table

    from transfer_bench.tickets.verify import describe, read_ticket_arrays

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


def _fast_command(argv: Sequence[str]) -> Callable[[], int] | None:
    """The direct call for ``ticket verify FILE...`` / ``ticket inspect FILE``, else None."""
    if len(argv) < 3 or argv[0] != "ticket" or any(a.startswith("-") for a in argv[1:]):
        return None
    files = [Path(a) for a in argv[2:]]
    if argv[1] == "verify":
        return lambda: verify_files(files)
    if argv[1] == "inspect" and len(files) == 1:
        return lambda: inspect_file(files[0]) or 0
    return None


def main() -> None:
    """Console-script entry point (``transfer-bench``)."""
    command = _fast_command(sys.argv[1:])
    if command is None:
        from transfer_bench.cli import main as cli_main

        cli_main()
        return
    try:
        code = command()
    except TransferBenchError as e:
        from rich.console import Console

        Console(stderr=True).print(f"error: {e}", highlight=False, markup=False, soft_wrap=True)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()

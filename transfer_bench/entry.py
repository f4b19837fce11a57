"""Console entry point: ``ticket verify`` and ``ticket inspect`` run here without typer or torch.

Checking tickets should be instant: a folder of shared tickets is verified in a loop, and the
checks are numpy-only (:mod:`transfer_bench.tickets.verify`). Two imports would dominate such a
command: torch (never needed to check a file) and typer, whose parameter parsing imports pydantic
(~0.2 s here). So a plain ``transfer-bench ticket verify FILE...`` or ``ticket inspect FILE``
(no options) is dispatched here directly; anything else, ``--help`` included, goes to the typer
app in :mod:`transfer_bench.cli`, whose ``ticket verify``/``inspect`` call the same functions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from transfer_bench.errors import TransferBenchError
from transfer_bench.tickets.commands import inspect_file, verify_files


def _fast_command(argv: Sequence[str]) -> Callable[[], int] | None:
    """The direct call for ``ticket verify FILE...`` / ``ticket inspect FILE`` (and
    ``--version``), else None."""
    if list(argv) == ["--version"]:
        from transfer_bench import __version__  # lazy: only this command needs it

        return lambda: print(f"transfer-bench {__version__}") or 0
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
        # lazy: typer, pydantic and torch, which the fast path never needs
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

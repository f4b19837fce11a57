"""Command line: ``transfer-bench run|plan|report|ticket ...``.

Errors caused by input (suite, ticket file, dataset, flags) are printed as one line and exit with
status 2; an interrupted run prints how to resume and exits with 130. ``app`` assembles the
commands of ``suite_commands`` (plan, run, report, compare, power, plot) and ``ticket_commands``.
"""

from __future__ import annotations

import sys

from transfer_bench.cli import suite_commands, ticket_commands  # noqa: F401 (register commands)
from transfer_bench.cli.app import app, err_console
from transfer_bench.errors import TransferBenchError

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point: one-line errors and warnings, no tracebacks for user mistakes."""
    import warnings

    def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
        err_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

    warnings.showwarning = one_line_warning
    try:
        app()
    except TransferBenchError as e:
        err_console.print(f"error: {e}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)

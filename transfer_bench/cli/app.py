"""The typer app, its ``ticket`` sub-app, the consoles and the options shared by commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from transfer_bench import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Find lottery tickets, save them as portable files, transfer them, and compare.",
)
ticket_app = typer.Typer(no_args_is_help=True, help="Inspect, verify and export ticket files.")
app.add_typer(ticket_app, name="ticket")
console = Console()
err_console = Console(stderr=True)


def version_line() -> str:
    """``transfer-bench 0.2.0``: the package's one version (``transfer_bench.__version__``)."""
    return f"transfer-bench {__version__}"


def _print_version(value: bool) -> None:
    if value:
        print(version_line())
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Find lottery tickets, save them as portable files, transfer them, and compare."""


ScaleOpt = Annotated[
    str | None, typer.Option(help="Run the suite at one of its `scales` (e.g. smoke).")
]
ResultsOpt = Annotated[Path, typer.Option("--results", help="Root folder of results.")]
SuiteArg = Annotated[Path, typer.Argument(help="Suite YAML file.")]


def markdown_lines(columns, rows) -> list[str]:
    """A Markdown table (header, rule, one line per row of cells) as lines for the console."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]

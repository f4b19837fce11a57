"""Ticket commands: ``ticket inspect|verify|upgrade|diff|export|import|zoo``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from transfer_bench.cli.app import console, markdown_lines, ticket_app
from transfer_bench.errors import TransferBenchError

# lazy imports: each command imports only what it uses (torch, pandas and matplotlib cost seconds
# of start-up; `ticket verify` needs none of them)


@ticket_app.command("inspect")
def ticket_inspect(path: Path) -> None:
    """Show a ticket's layers, shapes, densities and provenance (verified; no torch needed)."""
    from transfer_bench.tickets.commands import inspect_file

    inspect_file(path)


@ticket_app.command("verify")
def ticket_verify(
    paths: Annotated[list[Path], typer.Argument(help="One or more .ticket files.")],
) -> None:
    """Check ticket files' integrity (hash, shapes, masks); exit status 1 if any fails."""
    from transfer_bench.tickets.commands import verify_files

    code = verify_files(paths)
    if code:
        raise typer.Exit(code)


@ticket_app.command("upgrade")
def ticket_upgrade(src: Path, out: Path) -> None:
    """Verify a ticket of any supported format version and write it in the current one."""
    from transfer_bench.tickets import FORMAT_VERSION
    from transfer_bench.tickets.format import upgrade_ticket

    path = upgrade_ticket(src, out)
    console.print(
        f"upgraded {src} ({src.stat().st_size:,} bytes) -> {path} "
        f"({path.stat().st_size:,} bytes, format version {FORMAT_VERSION})"
    )


@ticket_app.command("diff")
def ticket_diff(a: Path, b: Path) -> None:
    """Compare two tickets: per-layer densities, mask overlap (Jaccard) and shared init."""
    from transfer_bench.tickets import load_ticket
    from transfer_bench.tickets.diff import diff_tickets, same_init_verdict

    rows = diff_tickets(load_ticket(a), load_ticket(b))
    cols = ("layer", "weights", "density A", "density B", "Jaccard", "random masks", "same init")
    cells = [
        (
            r["layer"],
            f"{r['total']:,}",
            f"{100 * r['density_a']:.2f}%",
            f"{100 * r['density_b']:.2f}%",
            f"{r['jaccard']:.3f}",
            f"{r['jaccard_random']:.3f}",
            "–" if r["shared"] == 0 else f"{100 * r['same_init']:.1f}%",
        )
        for r in rows
    ]
    lines = markdown_lines(cols, cells)
    overall = rows[-1]
    lines += [
        "",
        f"A = {a}, B = {b}. Jaccard of the kept weights {overall['jaccard']:.3f} (two random masks "
        f"of these densities: {overall['jaccard_random']:.3f} on average). Same initialization: "
        f"{same_init_verdict(overall)}.",
    ]
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


EXPORT_FORMATS = ("ticket", "torch-prune", "openlth")


@ticket_app.command("export")
def ticket_export(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="RUN_DIR LEVEL OUT (a search run folder .../search-<hash>/seed_<s> and a level) "
            "or TICKET OUT (a .ticket file)."
        ),
    ],
    to: Annotated[
        str, typer.Option("--to", help="ticket (a verified copy), torch-prune or openlth.")
    ] = "ticket",
) -> None:
    """Export a verified ticket: as a .ticket file, a torch-prune state dict or an OpenLTH level."""
    from transfer_bench.runs.store import RunDir
    from transfer_bench.tickets import load_ticket

    if to not in EXPORT_FORMATS:
        raise TransferBenchError(f"--to {to!r}: use one of {', '.join(EXPORT_FORMATS)}")
    if len(paths) == 3:
        run_dir, level, out = paths
        if not str(level).isdigit():
            raise TransferBenchError(f"level {level}: give a whole number, e.g. 2")
        src = RunDir(run_dir).ticket_path(int(str(level)))
        if not src.exists():
            levels = sorted(p.parent.name for p in run_dir.glob("level_*/ticket.ticket"))
            raise TransferBenchError(
                f"{run_dir}: no ticket for level {level} (found: {', '.join(levels) or 'none'}); "
                "pass a search run folder such as results/<suite>/search-<hash>/seed_0"
            )
    elif len(paths) == 2:
        src, out = paths
    else:
        raise TransferBenchError(
            "ticket export: pass RUN_DIR LEVEL OUT or TICKET OUT (and --to FORMAT)"
        )
    ticket = load_ticket(src)  # verifies
    out.parent.mkdir(parents=True, exist_ok=True)
    if to == "ticket":
        shutil.copyfile(src, out)
    elif to == "torch-prune":
        from transfer_bench.tickets.interop import export_torch_prune

        export_torch_prune(ticket, out)
    else:
        from transfer_bench.tickets.interop import export_openlth

        export_openlth(ticket, out)
    console.print(f"exported {src} -> {out} ({to})")


@ticket_app.command("import")
def ticket_import(
    src: Annotated[
        Path, typer.Argument(help="A torch-prune .pth file or an OpenLTH level folder.")
    ],
    out: Annotated[Path, typer.Argument(help="The .ticket file to write.")],
    source_format: Annotated[
        str, typer.Option("--from", help="torch-prune or openlth.")
    ] = "torch-prune",
    model: Annotated[
        str, typer.Option(help="Model name of the registry, e.g. lenet_300_100.")
    ] = "",
    num_classes: Annotated[int, typer.Option(help="Classes of the output layer.")] = 10,
    in_channels: Annotated[int, typer.Option(help="Input channels.")] = 3,
    image_size: Annotated[int, typer.Option(help="Input height and width.")] = 32,
    options: Annotated[
        str, typer.Option(help="Model options as JSON, e.g. '{\"width\": 8}'.")
    ] = "{}",
) -> None:
    """Import a torch-prune state dict or an OpenLTH level as a verified .ticket file."""
    from transfer_bench.tickets import save_ticket
    from transfer_bench.tickets.interop import import_openlth, import_torch_prune

    if source_format not in ("torch-prune", "openlth"):
        raise TransferBenchError(f"--from {source_format!r}: use torch-prune or openlth")
    if not model:
        raise TransferBenchError("ticket import: name the architecture with --model NAME")
    try:
        opts = json.loads(options)
    except ValueError:
        raise TransferBenchError(
            f"--options {options!r} is not JSON; e.g. '{{\"width\": 8}}'"
        ) from None
    if not isinstance(opts, dict):
        raise TransferBenchError(f"--options {options!r}: give a JSON object")
    reader = import_torch_prune if source_format == "torch-prune" else import_openlth
    ticket = reader(
        src,
        model,
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        options=opts,
    )
    path = save_ticket(ticket, out)
    console.print(
        f"imported {src} ({source_format}) -> {path} (density {100 * ticket.density:.2f}%)"
    )


@ticket_app.command("zoo")
def ticket_zoo(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Zoo tickets or groups to show (default: all)."),
    ] = None,
    verify: Annotated[
        bool, typer.Option(help="Check every file against its catalogue sha256 and verify it.")
    ] = True,
) -> None:
    """List the ticket zoo (verified tickets of the project's suites; `zoo:NAME` in a suite's
    `tickets:`): model, data, density, accuracy on its source, suite, seed and sha256."""
    from transfer_bench.tickets.zoo import (
        SIZE_BUDGET_BYTES,
        lookup,
        read_catalogue,
        verify_entry,
        zoo_bytes,
        zoo_dir,
    )

    entries = [e for n in names for e in lookup(n)] if names else read_catalogue()
    cols = ("name", "model", "data", "density", "source acc.", "suite", "seed", "sha256", "check")
    failed = []
    cells = []
    for e in entries:
        problem = verify_entry(e) if verify else None
        if problem:
            failed.append(problem)
        scale = f" ({e.scale})" if e.scale else ""
        model = e.model["name"] + "".join(f" {k}={v}" for k, v in e.model["options"].items())
        cells.append(
            (
                e.name,
                model,
                f"{e.data['name']} (`{e.data['source']}`)",
                f"{100 * e.density:.2f}%",
                f"{100 * e.source_accuracy:.2f}%",
                f"{e.suite}{scale}",
                str(e.seed),
                e.sha256[:16],
                "FAILED" if problem else ("OK" if verify else "-"),
            )
        )
    lines = markdown_lines(cols, cells)
    lines += [
        "",
        f"{len(entries)} ticket(s) in {zoo_dir()} ({zoo_bytes():,} bytes in all, budget "
        f"{SIZE_BUDGET_BYTES:,}); use one in a suite as `tickets: {{NAME: zoo:<name or group>}}`.",
    ]
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
    for problem in failed:
        console.print(f"FAILED: {problem}", markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)

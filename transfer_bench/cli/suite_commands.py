"""Suite commands: ``plan``, ``run``, ``report``, ``compare``, ``power`` and ``plot``."""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from transfer_bench.api import SUITE_COPY, default_cache_dir
from transfer_bench.cli.app import (
    ResultsOpt,
    ScaleOpt,
    SuiteArg,
    app,
    console,
    err_console,
    markdown_lines,
)
from transfer_bench.errors import Terminated, TransferBenchError
from transfer_bench.fileio import suite_folder_lock

# lazy imports: each command imports only what it uses (torch, pandas and matplotlib cost seconds
# of start-up; `ticket verify` needs none of them)


def _context(
    suite_path: Path,
    results: Path,
    device: str | None,
    cache_dir: Path | None,
    scale: str | None = None,
):
    from transfer_bench.api import prepare

    p = prepare(suite_path, results, device=device, cache_dir=cache_dir, scale=scale)
    return p.suite, p.ctx, p.runs


@app.command()
def plan(
    suite_path: SuiteArg,
    results: ResultsOpt = Path("results"),
    scale: ScaleOpt = None,
    estimate: Annotated[
        bool, typer.Option(help="Estimate FLOPs and GPU-/CPU-hours (loads datasets).")
    ] = True,
    gpu_tflops: Annotated[float, typer.Option(help="Sustained GPU throughput assumed.")] = 25.0,
    cpu_gflops: Annotated[float, typer.Option(help="Sustained CPU throughput assumed.")] = 100.0,
    executor: Annotated[
        str,
        typer.Option(help="Executor the wall-time estimate assumes: auto, sequential, local, ray."),
    ] = "auto",
    workers: Annotated[
        int | None,
        typer.Option(help="local/ray: parallel runs assumed (default: CPU cores, or GPU slots)."),
    ] = None,
    runs_per_gpu: Annotated[int, typer.Option(help="local on GPUs: workers per GPU assumed.")] = 1,
    device: Annotated[
        str | None, typer.Option(help="Device to time steps on (default: the suite's).")
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            help="Time a few training steps of each model here for the wall-time estimate "
            "(cached per machine)."
        ),
    ] = True,
    calibration_budget: Annotated[
        float,
        typer.Option(
            help="Seconds of step timing at most; what is left is scaled by FLOPs from what "
            "was timed (and timed by the next plan)."
        ),
    ] = 15.0,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Also exit with status 2 when a catalogue dataset is known but cannot be "
            "loaded on this machine, or when the suite has fewer than 3 seeds (to check a "
            "suite before queuing it here).",
        ),
    ] = False,
    until_mde: Annotated[
        float | None,
        typer.Option(
            "--until-mde",
            help="Also print the seeds and training time `run --until-mde` would need to bring "
            "every primary MDE to this many points (from the spread of existing results).",
        ),
    ] = None,
    max_seeds: Annotated[
        int | None, typer.Option(help="--until-mde: at most this many seeds (default: 20).")
    ] = None,
) -> None:
    """Print every run of a suite, its output folder and the compute budget, without training.

    Exits with status 2 when the suite cannot run: a dataset that cannot be loaded (and is not a
    catalogue dataset sized from the catalogue), a model that cannot take the input, a rewind
    point past the end of training, a bad worker count. ``--strict`` adds stricter checks."""
    from transfer_bench.runner.execute import is_complete
    from transfer_bench.runs.preflight import check_counts

    if executor not in ("auto", "sequential", "local", "ray"):
        raise TransferBenchError(f"--executor {executor!r}: use auto, sequential, local or ray")
    check_counts(workers=workers, runs_per_gpu=runs_per_gpu)
    device, absent = _plan_device(suite_path, scale, device)
    suite, ctx, runs = _planned(suite_path, results, device, scale)
    rows = []
    for i, r in enumerate(runs):
        status = "done" if is_complete(r, ctx.suite_dir) else "todo"
        levels = f"{min(r.levels)}..{max(r.levels)}" if len(r.levels) > 1 else str(r.levels[0])
        folder = str(r.folder(ctx.suite_dir))
        rows.append((str(i + 1), r.kind, r.label(), str(r.seed), levels, folder, status))
    _print_table(
        f"{suite.name}: {len(runs)} runs",
        ("#", "kind", "run", "seed", "levels", "folder", "status"),
        rows,
        full=("folder",),
    )
    ctx.cache_dir = default_cache_dir()
    problems, sizes = _check_plan(ctx, suite, strict)
    if estimate:
        from transfer_bench.runner.calibrate import ModelWork
        from transfer_bench.runner.estimate import (
            device_notes,
            estimate_runs,
            summarize,
            wall_estimate,
        )

        model_work = ModelWork()  # each model built once for the budget and the timings
        estimates = estimate_runs(ctx, runs, sizes, model_work)
        console.print("budget: " + summarize(estimates, gpu_tflops, cpu_gflops))
        wall = None
        if calibrate:
            wall = wall_estimate(
                ctx,
                runs,
                executor,
                workers,
                runs_per_gpu=runs_per_gpu,
                sizes=sizes,
                model_work=model_work,
                budget_s=calibration_budget,
                on_progress=lambda line: err_console.print(
                    line, markup=False, highlight=False, soft_wrap=True
                ),
            )
            for line in wall.describe():
                console.print(line, markup=False, highlight=False, soft_wrap=True)
        for line in device_notes(absent, wall, estimates, gpu_tflops):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if ctx.suite_dir.is_dir() and any(is_complete(r, ctx.suite_dir) for r in runs):
        console.print(
            f"results exist: `transfer-bench power {ctx.suite_dir}` tells how many seeds each "
            "comparison needs to detect its effect, and what they would cost",
            markup=False,
            highlight=False,
        )
    if until_mde is not None:
        _plan_until_mde(ctx.suite_dir, suite, until_mde, max_seeds)
    if problems:
        more = f" (and {len(problems) - 1} more, listed above)" if len(problems) > 1 else ""
        raise TransferBenchError(problems[0] + more)


def _planned(suite_path: Path, results: Path, device: str | None, scale: str | None):
    """``_context`` for ``plan``: every problem with the suite's tickets found elsewhere is one
    line (the first is the error), and each ticket's files are listed with their digests."""
    from transfer_bench.runs.external import TicketProblems, describe, resolve

    try:
        suite, ctx, runs = _context(suite_path, results, device, None, scale)
    except TicketProblems as e:
        for line in e.problems[1:]:
            err_console.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
        raise
    for line in describe(resolve(suite) if suite.tickets else {}):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return suite, ctx, runs


def _plan_device(suite_path: Path, scale: str | None, device: str | None):
    """(device to plan with, the device the suite is meant for when this machine lacks it): a
    CUDA or MPS suite planned where there is none is planned on the CPU, and ``plan`` says so;
    a name that is no device stays an error."""
    import torch

    from transfer_bench.api import load
    from transfer_bench.devices import check_device

    wanted = device or load(suite_path, scale).device
    try:
        check_device(wanted)
    except TransferBenchError:
        base = wanted.partition(":")[0]
        mps = getattr(torch.backends, "mps", None)
        none_here = (base == "cuda" and torch.cuda.device_count() == 0) or (
            base == "mps" and not (mps and mps.is_available())
        )
        if none_here:
            return "cpu", wanted
        raise
    return device, None


def _print_table(title: str, columns, rows, full=()) -> None:
    """A rich table on a terminal; elsewhere (a pipe, a log) Markdown lines, so no cell (a run's
    folder) is cut to the console's width."""
    if console.is_terminal:
        table = Table(title=title)
        for col in columns:
            table.add_column(col, overflow="fold" if col in full else "ellipsis")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    lines = [title, *markdown_lines(columns, rows)]
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)


def _check_plan(ctx, suite, strict: bool) -> tuple[list[str], dict]:
    """``plan``'s checks, each problem printed as one line (the first becomes the error): every
    dataset the suite uses loads here or (a catalogue dataset) is sized from the catalogue; the
    model runs on each dataset's classes; rewind points lie inside training. ``strict``: every
    dataset loads here, the suite has at least 3 seeds and its default baseline is trained. Returns the problems and every
    dataset's sizes (found once: each try of an unreachable hub costs seconds)."""
    from transfer_bench.runs.preflight import (
        advisories,
        check_model,
        check_rewinds,
        ticket_problems,
        used_datasets,
    )

    sizes = {d.name: d for d in _print_datasets(ctx, download=strict)}
    used = used_datasets(suite)
    problems = []
    for name in used:
        d = sizes[name]
        if d.known == "unknown":
            problems.append(f"datasets.{name}: {d.reason}")
        elif d.known == "catalogue" and strict:
            problems.append(
                f"--strict: datasets.{name} ({d.source}) cannot be loaded on this machine; "
                "fix it as said above, or drop --strict to plan with the catalogue's sizes"
            )
    known = [sizes[n] for n in used if sizes[n].train is not None and sizes[n].classes]
    for check in (
        lambda: check_model(suite, (d.classes for d in known)),
        lambda: check_rewinds(suite, {d.name: d.train for d in known}),
    ):
        try:
            check()
        except TransferBenchError as e:
            problems.append(str(e))
    problems += ticket_problems(suite, ctx.cache_dir, {d.name: d.classes for d in known})
    for advice in advisories(suite):
        problems += [f"--strict: {advice}"] if strict else []
        if not strict:
            err_console.print(f"warning: {advice}", markup=False, highlight=False, soft_wrap=True)
    for line in problems[1:]:
        err_console.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
    return problems, sizes


def _plan_until_mde(suite_dir: Path, suite, target: float, max_seeds: int | None) -> None:
    """``plan --until-mde``: the seeds and training time the rounds would take, from the spread
    of the results so far (the suite's measured cost per seed, as ``power`` uses)."""
    from transfer_bench.analysis.frame import load_results
    from transfer_bench.analysis.rounds import (
        DEFAULT_MAX_SEEDS,
        PILOT_SEEDS,
        measure_primaries,
        plan_lines,
    )
    from transfer_bench.analysis.seed_advice import seconds_per_seed

    if not target > 0:
        raise TransferBenchError(f"--until-mde {target}: give a positive effect in points, e.g. 1")
    cap = max_seeds if max_seeds is not None else max(DEFAULT_MAX_SEEDS, len(suite.seeds))
    found, skipped, seeds = ([], [], 0)
    if suite_dir.is_dir():
        found, skipped, seeds = measure_primaries(suite_dir, suite)
    if not found:
        first = min(max(len(suite.seeds), PILOT_SEEDS), cap)
        lines = [
            f"until-mde {target:g} points: no measured primary comparison yet; the first round "
            f"trains {first} seeds (the suite's {len(suite.seeds)}, at least {PILOT_SEEDS} "
            "before looking), then adds seeds by the spread they show, up to "
            f"{cap} seeds: at most {cap / len(suite.seeds):.1f}x the suite's budget above"
        ]
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_seed = seconds_per_seed(load_results(suite_dir))
        lines = plan_lines(found, seeds, target, max_seeds=cap, per_seed_s=per_seed)
        lines += [f"  (left out: {s})" for s in skipped]
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _print_datasets(ctx, download: bool = False) -> list:
    """Print the suite's datasets with their sizes and classes (loaded here, or from the
    catalogue) and, for each that cannot be loaded, the loader's one-line reason and fix.
    A hub dataset not on this machine is sized from the catalogue, not downloaded, unless
    ``download``. Returns every dataset's ``DatasetSize``."""
    from transfer_bench.runner.estimate import dataset_size

    found = [dataset_size(ctx, name, download) for name in ctx.suite.datasets]
    show = lambda v: "?" if v is None else f"{v:,}"  # noqa: E731
    rows = [
        (d.name, d.source, show(d.classes), show(d.train), show(d.test), d.known) for d in found
    ]
    _print_table(
        "datasets",
        ("dataset", "source", "classes", "train", "test", "sizes from"),
        rows,
        ("source",),
    )
    for d in found:
        if d.reason:
            line = f"{d.name}: not available here: {d.reason}"
            err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    return found


@app.command()
def run(
    suite_path: SuiteArg,
    results: ResultsOpt = Path("results"),
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, mps or auto (default: the suite's).")
    ] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="Dataset cache folder.")] = None,
    report: Annotated[bool, typer.Option(help="Write report.md at the end.")] = True,
    scale: ScaleOpt = None,
    executor: Annotated[
        str,
        typer.Option(
            help="auto (local on a multi-core CPU, else sequential), sequential, local "
            "(process pool) or ray.",
            envvar="TRANSFER_BENCH_EXECUTOR",
        ),
    ] = "auto",
    workers: Annotated[
        int | None, typer.Option(help="local: worker processes (default: cores).")
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="ray: auto or HOST:PORT (default: a local Ray).")
    ] = None,
    cpus_per_run: Annotated[float, typer.Option(help="ray: CPUs (= torch threads) per run.")] = 1,
    gpus_per_run: Annotated[
        float,
        typer.Option(help="ray: GPUs per run (0.5 shares one; 0 = 1 when the cluster has GPUs)."),
    ] = 0,
    runs_per_gpu: Annotated[
        int, typer.Option(help="local on GPUs: workers per GPU (each pinned to one GPU).")
    ] = 1,
    check_determinism: Annotated[
        bool,
        typer.Option(
            "--check-determinism",
            help="Afterwards retrain the cheapest finished level and compare it bit for bit.",
        ),
    ] = False,
    track: Annotated[
        list[str] | None,
        typer.Option(
            help="Log every training to tensorboard, mlflow or wandb (repeat or comma-separate; "
            "added to the suite's track:).",
        ),
    ] = None,
    progress: Annotated[
        str,
        typer.Option(
            help="auto (rich on a terminal, plain lines in a log), plain, rich or none.",
        ),
    ] = "auto",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only the final summary and errors.")
    ] = False,
    until_mde: Annotated[
        float | None,
        typer.Option(
            "--until-mde",
            help="Add seeds in rounds until every primary comparison's minimal detectable effect "
            "is at most this many points (rounds sized from the spread only: an internal pilot).",
        ),
    ] = None,
    max_seeds: Annotated[
        int | None,
        typer.Option(help="--until-mde: stop at this many seeds (default: 20, or the suite's)."),
    ] = None,
) -> None:
    """Run a suite: search tickets, transfer them, write the report. Finished runs are skipped."""
    from transfer_bench.api import prepare, run_prepared, warm_up_pool

    warm_up_pool(executor, device)  # first: the imports below take seconds (torch)
    from transfer_bench.progress import make_progress
    from transfer_bench.runner.executors import check_executor
    from transfer_bench.runs.preflight import check_counts
    from transfer_bench.tracking import parse_trackers

    check_executor(executor)
    check_counts(workers=workers, runs_per_gpu=runs_per_gpu)
    display = make_progress("none" if quiet else progress, console, err_console)
    trackers = parse_trackers(track or ())
    p = prepare(suite_path, results, device=device, cache_dir=cache_dir, scale=scale)
    run_kw = dict(
        executor=executor,
        workers=workers,
        track=trackers,
        progress=display,
        report=False,
        address=address,
        cpus_per_run=cpus_per_run,
        gpus_per_run=gpus_per_run,
        runs_per_gpu=runs_per_gpu,
    )
    previous = _stop_on_sigterm()
    try:
        if until_mde is None:
            summary = run_prepared(p, **run_kw)
        else:
            again = lambda: make_progress("none" if quiet else progress, console, err_console)  # noqa: E731
            p, summary = _run_until_mde(p, until_mde, max_seeds, run_kw, again, device, cache_dir)
    except KeyboardInterrupt as stop:
        what = "terminated" if isinstance(stop, Terminated) else "interrupted"
        err_console.print(
            f"{what}: finished work is saved under {p.ctx.suite_dir}; resume with: "
            f"transfer-bench {shlex.join(sys.argv[1:])}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(143 if isinstance(stop, Terminated) else 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print(str(summary), markup=False, highlight=False, soft_wrap=True)
    for name, t in summary.tracked.items():
        per = t["seconds"] / t["trainings"] if t["trainings"] else 0.0
        console.print(
            f"{name}: {t['trainings']} trainings logged ({per:.2f} s each); {t['where']}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if report:
        path = _write_report(p.ctx.suite_dir, p.suite)
        console.print(f"report: {path}")
    if check_determinism:
        _check_determinism(p.ctx, p.runs)


def _run_until_mde(p, target, max_seeds, run_kw, new_progress, device, cache_dir):
    """``run --until-mde``: rounds of seeds (``analysis.rounds``) until every primary MDE is at
    most ``target`` points; returns the last round's prepared suite and run summary."""
    from transfer_bench.analysis.rounds import (
        DEFAULT_MAX_SEEDS,
        measure_primaries,
        run_rounds,
        write_rounds,
    )
    from transfer_bench.api import prepare, run_prepared

    if not target > 0:
        raise TransferBenchError(f"--until-mde {target}: give a positive effect in points, e.g. 1")
    cap = max_seeds if max_seeds is not None else max(DEFAULT_MAX_SEEDS, len(p.suite.seeds))
    if cap < 2:
        raise TransferBenchError(f"--max-seeds {cap}: give at least 2 seeds (e.g. 20)")
    root = p.ctx.suite_dir.parents[len(p.suite.results_subdir.parts) - 1]
    data = p.suite.model_dump(mode="json", exclude_unset=True)
    state = {"p": p, "summary": None}

    def run_round(seeds) -> None:
        state["p"] = prepare({**data, "seeds": list(seeds)}, root, device=device,
                             cache_dir=cache_dir)  # fmt: skip
        # later rounds add seeds only: the data, model and ticket checks passed in the first
        later = {} if state["summary"] is None else {"progress": new_progress(), "checks": False}
        state["summary"] = run_prepared(state["p"], **{**run_kw, **later})
        done = f"until-mde: {len(seeds)} seeds: {state['summary']}"
        console.print(done, markup=False, highlight=False, soft_wrap=True)

    if not p.suite.analysis.primary and p.suite.claim is None:
        console.print(
            "until-mde: no analysis.primary declared: every cell of the per-level table counts "
            "as primary, so every cell must reach the target",
            markup=False,
            highlight=False,
        )

    def measure():
        found, skipped, _ = measure_primaries(p.ctx.suite_dir, state["p"].suite)
        for line in skipped:
            console.print(f"until-mde: left out {line}", markup=False, highlight=False)
        if len(found) == 1:
            console.print(
                "until-mde: with one primary comparison, seeds added by its spread can raise its "
                "false-positive rate to about 0.075 (simulated; see README, Power)",
                markup=False,
                highlight=False,
            )
        return found

    def on_round(r) -> None:
        console.print(f"until-mde: {r.describe(target)}", markup=False, highlight=False)

    rounds = run_rounds(p.suite.seeds, run_round, measure, target, max_seeds=cap,
                        on_round=on_round)  # fmt: skip
    write_rounds(p.ctx.suite_dir, p.suite.seeds, target, cap, rounds)
    return state["p"], state["summary"]


def _check_determinism(ctx, runs) -> None:
    from transfer_bench.runner.determinism import check_determinism

    console.print("determinism: retraining the cheapest finished level in a scratch folder ...")
    c = check_determinism(ctx, runs)
    what = f"{c.label} level {c.level} ({c.iterations} iterations, {c.threads} thread(s))"
    if c.ok:
        parts = "metrics, history, trained weights and ticket"
        if not c.label.startswith("search"):
            parts = "metrics and history"
        console.print(f"determinism: OK: {what} reproduced bit for bit ({parts})")
        return
    console.print(f"determinism: FAILED: {what} differs from the stored results:")
    for d in c.differences[:10]:
        console.print(f"  {d}", markup=False, highlight=False)
    console.print(
        "  (results depend on torch version, hardware and thread count; a difference on the "
        "same machine and settings means a nondeterministic operation)"
    )
    raise typer.Exit(1)


def _stop_on_sigterm():
    """From now on SIGTERM raises ``Terminated`` in the main thread (the Ctrl-C path: workers
    stopped, finished work kept, exit 143); returns the previous handler to restore."""

    def handler(signum, frame) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough while cleaning up
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)


def _suite_of_results(path: Path):
    """A results folder (with its suite copy) or a suite file -> (suite, results folder)."""
    from transfer_bench.config import load_suite

    if path.is_dir():
        copy = path / SUITE_COPY
        if not copy.exists():
            raise TransferBenchError(
                f"{path}: not a results folder of a suite (no {SUITE_COPY}); pass "
                "results/<suite name> as written by `transfer-bench run`"
            )
        return load_suite(copy), path
    suite = load_suite(path)
    return suite, Path("results") / suite.results_subdir


def _write_report(suite_dir: Path, suite) -> Path:
    """The suite's report; for a claim suite in a group, also the group's summary of claims."""
    from transfer_bench.api import write_suite_report

    path, claims = write_suite_report(suite_dir, suite)
    if claims is not None:
        console.print(f"claims summary: {claims}")
    return path


@app.command()
def report(
    results_dir: Annotated[
        Path, typer.Argument(help="A suite's results folder (results/<suite>) or its suite file.")
    ],
) -> None:
    """(Re)write report.md/report.html, tables and figures from a suite's finished runs."""
    suite, suite_dir = _suite_of_results(results_dir)
    console.print(f"report: {_write_report(suite_dir, suite)}")


#: ``compare``'s default output folder below a suite's results (the report owns ``tables/``)
COMPARE_DIR = "compare"

ResultsDirArg = Annotated[
    Path, typer.Argument(help="A suite's results folder (results/<suite>) or its suite file.")
]


@app.command()
def compare(
    results_dir: ResultsDirArg,
    baseline: Annotated[
        str | None, typer.Option(help="Control to compare with (default: the suite's).")
    ] = None,
    test: Annotated[
        str | None, typer.Option(help="welch, mannwhitney, paired_t or wilcoxon.")
    ] = None,
    correction: Annotated[str | None, typer.Option(help="holm, bh or none.")] = None,
    resamples: Annotated[int | None, typer.Option(help="Bootstrap resamples (0 = no CIs).")] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            help="Another results folder of the same suite (e.g. from another machine): show "
            "both folders' effects side by side, and warn when their torch builds differ."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for the tables (default: <results>/compare). The report's own tables/ "
            "is refused: `report` and `run` rewrite it with the suite's settings.",
        ),
    ] = None,
) -> None:
    """Statistics of every arm vs a baseline: tables as CSV, Markdown and LaTeX in --out."""
    from transfer_bench.analysis.report import TABLES_DIR, analyse, parse_analysis
    from transfer_bench.analysis.tables import caption_text, to_markdown, write_tables

    suite, suite_dir = _suite_of_results(results_dir)
    out_dir = out if out is not None else suite_dir / COMPARE_DIR
    if out_dir.resolve() == (suite_dir / TABLES_DIR).resolve():
        raise TransferBenchError(
            f"--out {out_dir}: that folder is the report's, rewritten by every `run` and "
            "`report` with the suite's analysis settings; choose another folder (default: "
            f"{suite_dir / COMPARE_DIR})"
        )
    overrides = {
        "baseline": baseline,
        "test": test,
        "correction": correction,
        "n_resamples": resamples,
    }
    spec = parse_analysis(
        {**suite.analysis.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    )
    a = analyse(suite_dir, spec, has_claim=suite.claim is not None)
    if against is not None:
        _compare_folders(suite_dir, a, against, spec, suite)
        return
    if a.comparison.empty:
        raise TransferBenchError(
            f"{suite_dir}: nothing to compare with {spec.baseline}; run the suite first "
            "(transfer-bench run SUITE) or choose another --baseline"
        )
    for stem, table in (("comparison", a.comparison), ("auc", a.auc), ("sources", a.sources_auc)):
        if table.empty:
            continue
        with suite_folder_lock(suite_dir):
            paths = write_tables(table, out_dir, stem, {"title": f"{suite.name}: {stem}"})
        console.print(caption_text(table, {"title": f"{suite.name}: {stem}"}))
        console.print(to_markdown(table), markup=False, highlight=False, soft_wrap=True)
        console.print("written: " + ", ".join(str(p) for p in paths) + "\n")


def _compare_folders(suite_dir: Path, a, other_dir: Path, spec, suite) -> None:
    """``compare A --against B``: the same cells from two result folders, side by side."""
    import warnings

    from transfer_bench.analysis.provenance import machines
    from transfer_bench.analysis.replication import side_by_side
    from transfer_bench.analysis.report import analyse
    from transfer_bench.machine import describe, differences

    _, other_dir = _suite_of_results(other_dir)
    b = analyse(other_dir, spec, has_claim=suite.claim is not None)
    found = {name: machines(x.results) for name, x in (("A", a), ("B", b))}
    varying = differences(r for rows in found.values() for r, _ in rows)
    for name, folder in (("A", suite_dir), ("B", other_dir)):
        said = (
            "; ".join(describe(r) + f" ({n} trainings)" for r, n in found[name]) or "not recorded"
        )
        console.print(f"{name} = {folder}: {said}", markup=False, highlight=False, soft_wrap=True)
    if varying:
        warnings.warn(
            f"{suite_dir} and {other_dir} were trained on different set-ups (they differ in "
            f"{', '.join(varying)}): expect float-level differences in every result; compare the "
            "effects and their CIs, not the decimals",
            stacklevel=2,
        )
    table = side_by_side(a.comparison, b.comparison)
    if table.empty:
        raise TransferBenchError(
            f"{suite_dir} and {other_dir} share no comparison with {spec.baseline}"
        )
    lines = markdown_lines(table.columns, table.itertuples(index=False))
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
    agree = int((table["same verdict"] == "yes").sum())
    console.print(f"same verdict in {agree} of {len(table)} cells")


@app.command()
def power(
    results_dir: ResultsDirArg,
    effect: Annotated[
        float | None,
        typer.Option(
            help="Effect to detect, in points (claim checks: in their unit); default: each "
            "comparison's observed effect."
        ),
    ] = None,
    power: Annotated[float, typer.Option("--power", help="Wanted power, in (0, 1).")] = 0.8,
    baseline: Annotated[
        str | None, typer.Option(help="Control to compare with (default: the suite's).")
    ] = None,
) -> None:
    """Seeds each comparison needs to detect an effect, and the training time they would cost."""
    from transfer_bench.analysis.claims import CLAIM_FILE
    from transfer_bench.analysis.report import analyse, parse_analysis
    from transfer_bench.analysis.seed_advice import claim_advice, seconds_per_seed, table_advice

    if not 0 < power < 1:
        raise TransferBenchError(f"--power {power}: give a probability between 0 and 1, e.g. 0.8")
    suite, suite_dir = _suite_of_results(results_dir)
    overrides = {"baseline": baseline} if baseline else {}
    spec = parse_analysis({**suite.analysis.model_dump(), **overrides})
    a = analyse(suite_dir, spec, has_claim=suite.claim is not None)
    claim_path = suite_dir / CLAIM_FILE
    has_claim = suite.claim is not None and claim_path.exists()
    if a.results.empty and not has_claim:
        raise TransferBenchError(f"{suite_dir}: no finished runs; run the suite first")
    per_seed = seconds_per_seed(a.results)
    metric_effect = None if effect is None else effect / 100.0
    seeds = a.results["seed"].nunique() if not a.results.empty else 0
    cost = f"{per_seed / 60:.1f} min" if per_seed == per_seed else "an unknown time"
    console.print(
        f"{suite.name}: {seeds} seeds of trainings so far; one more seed of the whole suite costs "
        f"{cost} of training (measured). Power {power:g}; levels are alpha / m of each "
        "correction family (a table's primary or secondary cells; Holm's first step).",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    shown = 0
    for title, table in (("each arm vs " + spec.baseline, a.comparison), ("integrated", a.auc)):
        advice = table_advice(table, effect=metric_effect, power=power, per_seed=per_seed)
        shown += _print_advice(f"{suite.name}: {title}", advice, "effect")
    if has_claim:
        record = json.loads(claim_path.read_text())
        advice = claim_advice(record, suite.claim, effect=effect, power=power, per_seed=per_seed)
        shown += _print_advice(
            f"claim: {suite.claim.title}", advice, "distance from the tested value"
        )
    if not shown:
        raise TransferBenchError(
            f"{suite_dir}: nothing was tested (fewer than 2 seeds per arm?); nothing to plan"
        )


def _print_advice(title: str, advice, effect_name: str) -> int:
    """Print one advice table as Markdown (points; minutes); returns how many rows it had."""
    if advice.empty:
        return 0

    def pts(v: float, scale: float, sign: str = "+") -> str:
        if v != v:
            return "–"
        return "n.e." if abs(v) == float("inf") else f"{scale * v:{sign}.2f}"

    cols = ("comparison", "n", "observed", "MDE now", effect_name, "power now", "seeds needed")
    cols = (*cols, "extra training")
    units = ", ".join(dict.fromkeys(str(u) for u in advice["unit"]))
    rows = []
    for r in advice.itertuples():
        known = r.seeds_needed is not None and r.seeds_needed == r.seeds_needed
        if known and int(r.seeds_needed) <= r.n:
            extra = "enough now"
        elif known and r.extra_seconds == r.extra_seconds:
            extra = f"{r.extra_seconds / 60:.1f} min"
        else:
            extra = r.note or "–"
        now = "–" if r.power_now != r.power_now else f"{r.power_now:.2f}"
        k = float(r.scale)
        cells = (r.what, str(r.n), pts(r.observed, k), pts(r.mde, k, ""), pts(r.effect, k, ""), now)
        needed = str(int(r.seeds_needed)) if known else "–"
        rows.append((*cells, needed, extra))
    lines = [f"\n{title} ({units})", *markdown_lines(cols, rows)]
    if any("n.e." in row[3] for row in rows):
        lines.append(
            "n.e.: not estimable with these seeds: no difference the metric allows would be "
            "detected with this power (or a rank test cannot reach the level)"
        )
    console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
    return len(advice)


@app.command("plot")
def plot_cmd(
    results_dir: ResultsDirArg,
    kind: Annotated[
        str,
        typer.Option(
            help="sparsity_curve, transfer_matrix, optimizer_transfer, mask_overlap, layer_density or training_curves."
        ),
    ] = "sparsity_curve",
    formats: Annotated[
        str, typer.Option("--format", help="Comma-separated: png,pdf,svg.")
    ] = "png,pdf,svg",
    width: Annotated[str | None, typer.Option(help="single or double (column width).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output path without suffix (default: figures/<kind>).")
    ] = None,
) -> None:
    """Draw one figure from a suite's results, with the suite's analysis settings (metric,
    baseline, test), as the report draws it."""
    import warnings

    from transfer_bench.analysis.plots import FIGURE_KINDS, plot
    from transfer_bench.analysis.report import analyse, figure_data, figure_options

    if kind not in FIGURE_KINDS:
        raise TransferBenchError(
            f"--kind {kind!r} is unknown; choose one of {', '.join(FIGURE_KINDS)}"
        )
    suite, suite_dir = _suite_of_results(results_dir)
    if width not in (None, "single", "double"):
        raise TransferBenchError(f"--width {width!r}: use single or double")
    with warnings.catch_warnings():  # the statistics' caveats are the report's to list
        warnings.simplefilter("ignore")
        a = analyse(suite_dir, suite.analysis, has_claim=suite.claim is not None)
    with suite_folder_lock(suite_dir):
        paths = plot(
            kind,
            figure_data(a, suite_dir),
            out or suite_dir / "figures" / kind,
            formats=[f.strip() for f in formats.split(",") if f.strip()],
            width=width or suite.analysis.width,
            **figure_options(kind, suite.analysis),
        )
    console.print("written: " + ", ".join(str(p) for p in paths))


@app.command()
def selftest(
    device: Annotated[
        str,
        typer.Option(help="Device to test: auto (a GPU if there is one), cpu, cuda, cuda:N, mps."),
    ] = "auto",
    out: Annotated[
        Path,
        typer.Option("--out", help="Where to write the JSON record (attach it to a bug report)."),
    ] = Path("selftest.json"),
) -> None:
    """Does the toolkit work on this device, and how fast? A tiny suite (about a minute on 2 CPU
    cores), determinism, agreement with the CPU, and a step of each model family."""
    from transfer_bench.devices import check_device
    from transfer_bench.runner.selftest import run_selftest

    check_device(device)
    say = lambda line: err_console.print(line, markup=False, highlight=False)  # noqa: E731
    result = run_selftest(device, say=say)
    rows = [(c.name, c.status, c.detail) for c in result.checks]
    rows += [(s["check"], "skipped", s["reason"]) for s in result.skipped]
    _print_table("checks", ("check", "result", "detail"), rows, full=("detail",))
    rows = [
        (t["family"], t["model"], str(t["batch"]), t["input"], f"{t['ms_per_step']:,.1f}",
         f"{t['images_per_s']:,.0f}", t["how"])
        if "error" not in t
        else (t["family"], t["model"], "", "", "", "", t["error"])
        for t in result.timings
    ]  # fmt: skip
    _print_table(
        f"one training step on {result.device} ({result.precision}, "
        f"{result.settings['torch_threads']} thread(s))",
        ("family", "model", "batch", "input", "ms per step", "images/s", "how"),
        rows,
        full=("how",),
    )
    path = result.write(out)
    console.print(result.line, markup=False, highlight=False, soft_wrap=True)
    console.print(f"record: {path}", markup=False, highlight=False, soft_wrap=True)
    if result.verdict != "pass":
        raise typer.Exit(1)

"""Running a suite, shared by the command line (``transfer-bench run``) and Python (``run_suite``).

``prepare`` loads the suite and plans it; ``run_prepared`` checks it before anything is written
(``runs.preflight``: datasets, model, rewind points, worker counts), writes the suite copy and plan, opens
the trackers, dispatches the runs to an executor (``dispatch``: one function, so a new executor
is one branch), turns run events into per-training progress and tracking (``progress.py``,
``tracking.py``), and writes the report. Interrupts propagate (``KeyboardInterrupt`` or
``errors.Terminated``) with finished work saved; the CLI turns them into its exit codes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from transfer_bench.errors import TransferBenchError

# lazy imports: `transfer_bench.run_suite` and the CLI import this module for a few names; the
# functions import torch, the executors and matplotlib only when they run

SUITE_COPY = "suite.yaml"


def default_cache_dir() -> Path:
    """``$TRANSFER_BENCH_CACHE``, else ``$XDG_CACHE_HOME/transfer-bench`` (``~/.cache/...``)."""
    env = os.environ.get("TRANSFER_BENCH_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "transfer-bench"


@dataclass
class Prepared:
    """A loaded suite with its execution context and plan (nothing written yet)."""

    suite: Any  # config.Suite
    ctx: Any  # runner.context.Context
    runs: list[Any]  # [runner.plan.Run]
    device: str  # as asked for ("auto", "cpu", ...), for worker processes


@dataclass(frozen=True)
class SuiteRunSummary:
    """What ``run_suite`` did.

    ``trained``/``skipped``: run keys (``<run id>/seed_<s>``) computed now / complete before;
    ``trainings``: trainings (levels) finished by this call; ``seconds``: wall time of the runs;
    ``report``: the report written (None with ``report=False``); ``tracked``: per tracker, where
    its logs are and the seconds spent logging.
    """

    suite: str
    suite_dir: Path
    trained: tuple[str, ...]
    skipped: tuple[str, ...]
    trainings: int
    seconds: float
    report: Path | None = None
    tracked: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{len(self.trained)} runs trained, {len(self.skipped)} already complete, "
            f"{self.seconds:.1f} s; results in {self.suite_dir}"
        )


def load(suite: str | Path | Mapping[str, Any] | Any, scale: str | None = None):
    """A ``Suite`` from a YAML path, a mapping or a ``Suite`` (at ``scale`` if given)."""
    from transfer_bench.config import Suite, apply_scale, load_suite, parse_suite

    if isinstance(suite, str | Path):
        return load_suite(suite, scale)
    if isinstance(suite, Suite):
        data = suite.model_dump(mode="json", exclude_unset=True)
    elif isinstance(suite, Mapping):
        data = dict(suite)
    else:
        raise TransferBenchError(
            f"run_suite: got a {type(suite).__name__}; pass a suite YAML path, a Suite "
            "(transfer_bench.load_suite) or a mapping"
        )
    if scale is not None:
        data = apply_scale(data, scale, "suite")
    return parse_suite(data)


def warm_up_pool(executor: str, device: str | None) -> None:
    """Start the local pool's fork server before planning when the pool will probably run, so that
    it imports torch on another core meanwhile (``runner.processes``; saves ~2-4 s per run)."""
    from transfer_bench.runner.processes import likely_pool, warm_up

    if likely_pool(executor, device, os.cpu_count() or 1):
        warm_up()


def prepare(
    suite: str | Path | Mapping[str, Any] | Any,
    results: str | Path = "results",
    *,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    scale: str | None = None,
) -> Prepared:
    """Load and plan a suite: its context (results folder, device, cache) and its runs."""
    from transfer_bench.runs.context import Context, resolve_device
    from transfer_bench.runs.plan import plan, suite_hash

    s = load(suite, scale)
    ctx = Context(
        suite=s,
        suite_dir=Path(results) / s.results_subdir,
        device=resolve_device(device or s.device),
        cache_dir=Path(cache_dir) if cache_dir is not None else default_cache_dir(),
        suite_hash=suite_hash(s),
    )
    return Prepared(suite=s, ctx=ctx, runs=plan(s), device=device or s.device)


def _cannot_write(suite_dir: Path, e: OSError) -> TransferBenchError:
    return TransferBenchError(
        f"{suite_dir}: cannot write results ({e.strerror}); choose a writable --results folder"
    )


def save_suite_copy(suite_dir: Path, suite) -> None:
    """Keep the effective suite (scale applied) next to its results, so reports can be rebuilt
    from the folder alone."""
    from transfer_bench.fileio import atomic_write_bytes, suite_folder_lock

    text = yaml.safe_dump(suite.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
    try:
        with suite_folder_lock(suite_dir):
            atomic_write_bytes(suite_dir / SUITE_COPY, text.encode())
    except OSError as e:
        raise _cannot_write(suite_dir, e) from None


def save_plan(suite_dir: Path, runs) -> None:
    """Record the run folders the suite plans now, so analysis leaves out folders of older plans."""
    from transfer_bench.fileio import atomic_write_json, suite_folder_lock
    from transfer_bench.runs.plan import PLAN_FILE

    ids = sorted({r.run_id for r in runs})
    try:
        with suite_folder_lock(suite_dir):
            atomic_write_json(suite_dir / PLAN_FILE, {"run_ids": ids})
    except OSError as e:
        raise _cannot_write(suite_dir, e) from None


def write_suite_report(suite_dir: Path, suite) -> tuple[Path, Path | None]:
    """Write the suite's report; returns it and, for a claim suite in a group, the group's
    summary of claims (else None)."""
    import warnings

    from transfer_bench.analysis.report import write_report
    from transfer_bench.errors import TicketError
    from transfer_bench.runs.external import resolve
    from transfer_bench.runs.plan import plan as plan_runs
    from transfer_bench.runs.plan import seeding_of

    if suite_dir.is_dir():  # a folder made under an earlier seeding rule keeps its runs
        try:
            tickets = resolve(suite) if suite.tickets else {}
        except TicketError as e:  # a ticket file not here (a report rebuilt elsewhere)
            warnings.warn(f"kept {suite_dir}/plan.json as it was: {e}", stacklevel=2)
        else:
            seeding = seeding_of(suite_dir, suite, tickets=tickets)
            save_plan(suite_dir, plan_runs(suite, seeding=seeding, tickets=tickets))
    path = write_report(
        suite_dir,
        suite_name=suite.name,
        analysis=suite.analysis.model_dump(),
        config_summary=yaml.safe_dump(
            suite.model_dump(mode="json", exclude_defaults=True), sort_keys=False
        ),
        claim=suite.claim,
    )
    summary = None
    if suite.claim is not None and suite.group is not None:
        from transfer_bench.analysis.claims import write_summary

        summary = write_summary(suite_dir.parent)
    return path, summary


def dispatch(
    p: Prepared,
    executor: str,
    on_event: Callable[[Any], None],
    *,
    workers: int | None = None,
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    runs_per_gpu: int = 1,
):
    """Run the plan with ``executor`` (auto, sequential, local or ray), reporting ``RunEvent``s."""
    # lazy: the executors import torch and every stage; `import transfer_bench.api` stays light
    from transfer_bench.runner.executors import run_plan

    return run_plan(
        p.suite,
        p.ctx,
        p.runs,
        executor,
        on_event,
        device=p.device,
        workers=workers,
        address=address,
        cpus_per_run=cpus_per_run,
        gpus_per_run=gpus_per_run,
        runs_per_gpu=runs_per_gpu,
    )


def run_prepared(
    p: Prepared,
    *,
    executor: str | None = None,
    workers: int | None = None,
    track: str | Iterable[str] | None = None,
    progress: str | Any = "none",
    report: bool = True,
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    runs_per_gpu: int = 1,
    checks: bool = True,
) -> SuiteRunSummary:
    """Execute a prepared suite; see ``run_suite``. ``progress`` is a mode name or a display
    object from ``progress.make_progress``. Trackers: the suite's ``track:`` plus ``track``.
    ``checks=False`` skips the data, model and ticket checks (``runs.preflight``), for a caller
    that ran them on the same suite with other seeds (they do not depend on seeds)."""
    # lazy: progress and the executors import torch
    from transfer_bench.progress import TrainingWatcher, make_progress
    from transfer_bench.runner.execute import is_complete
    from transfer_bench.runner.executors import check_executor
    from transfer_bench.runs.preflight import check_counts, preflight
    from transfer_bench.tracking import open_trackers, parse_trackers

    check_executor(executor)
    # every dataset, the model, rewind points and worker counts, before anything is written; a
    # suite whose runs are all complete only re-analyses them, which needs none of its data
    if checks and any(not is_complete(r, p.ctx.suite_dir) for r in p.runs):
        preflight(p.suite, p.ctx.cache_dir, workers=workers, runs_per_gpu=runs_per_gpu)
    else:
        check_counts(workers=workers, runs_per_gpu=runs_per_gpu)
    names = parse_trackers([*p.suite.track, *parse_trackers(track)])
    display = make_progress(progress) if isinstance(progress, str) else progress
    suite_dir = p.ctx.suite_dir
    save_suite_copy(suite_dir, p.suite)
    save_plan(suite_dir, p.runs)
    trackers = open_trackers(names, p.suite.name, suite_dir)
    watcher = TrainingWatcher(suite_dir, p.runs, [display, *trackers])
    try:
        with display:
            display.start(p.suite.name, watcher.counts)
            done = dispatch(
                p,
                executor,
                watcher.on_event,
                workers=workers,
                address=address,
                cpus_per_run=cpus_per_run,
                gpus_per_run=gpus_per_run,
                runs_per_gpu=runs_per_gpu,
            )
    finally:
        for t in trackers:
            t.close()
    path = write_suite_report(suite_dir, p.suite)[0] if report else None
    return SuiteRunSummary(
        suite=p.suite.name,
        suite_dir=suite_dir,
        trained=tuple(done.trained),
        skipped=tuple(done.skipped),
        trainings=watcher.counts.trainings_done,
        seconds=done.seconds,
        report=path,
        tracked={
            t.name: {"where": t.where(), "trainings": t.trainings, "seconds": round(t.seconds, 3)}
            for t in trackers
        },
    )


def run_suite(
    suite: str | Path | Mapping[str, Any] | Any,
    results: str | Path = "results",
    *,
    executor: str | None = None,
    workers: int | None = None,
    scale: str | None = None,
    device: str | None = None,
    cache_dir: str | Path | None = None,
    track: str | Iterable[str] | None = None,
    progress: str = "none",
    report: bool = True,
) -> SuiteRunSummary:
    """Run a suite from Python, as ``transfer-bench run`` does: search, transfer, report.

    ``suite``: a YAML path, a ``Suite`` or a mapping; ``results``: root folder (the suite writes to
    ``results/<suite name>``); ``executor``: ``auto`` (default, or ``$TRANSFER_BENCH_EXECUTOR``:
    the pool on a multi-core CPU, else sequential), ``sequential``, ``local`` (``workers``
    processes) or ``ray``; ``track``: ``tensorboard``, ``mlflow`` and/or ``wandb`` (added to the suite's
    ``track:``); ``progress``: ``none`` (default), ``plain``, ``rich`` or ``auto``. Finished runs
    are skipped, so calling it again only re-analyses.
    """
    if executor is None:
        executor = os.environ.get("TRANSFER_BENCH_EXECUTOR") or "auto"
    warm_up_pool(executor, device)
    p = prepare(suite, results, device=device, cache_dir=cache_dir, scale=scale)
    return run_prepared(
        p, executor=executor, workers=workers, track=track, progress=progress, report=report
    )

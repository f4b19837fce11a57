"""Run a plan: skip finished runs, resume interrupted ones, show progress.

The sequential executor runs searches before the transfers that depend on them (``plan`` orders
them so). Each run holds its file lock while working, so two processes on the same results
directory never compute one run twice: the second waits, then finds it done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from transfer_bench.runner.context import Context
from transfer_bench.runner.plan import Run
from transfer_bench.runner.store import RunDir

RunFn = Callable[[Context, Run, RunDir, Callable[[str], None]], list[int]]


def search_method(run: Run) -> str:
    """The search method of a run's config (``imp`` for runs without a search section)."""
    return run.config.get("search", {}).get("method", "imp")


def runner_for(run: Run) -> RunFn:
    """The function that executes ``run`` (by its kind and search method)."""
    kind, method = run.kind, search_method(run)
    if kind == "transfer":
        from transfer_bench.transfer import run_transfer

        return run_transfer
    if kind == "stability":
        from transfer_bench.search.stability_run import run_stability

        return run_stability
    if method == "imp":
        from transfer_bench.search.imp import run_imp

        return run_imp
    if method == "early_bird":
        from transfer_bench.search.early_bird_run import run_early_bird

        return run_early_bird
    from transfer_bench.search.at_init_run import run_at_init

    return run_at_init


@dataclass
class ExecutionSummary:
    """What an invocation did: run keys trained, skipped as complete, and seconds spent."""

    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def is_complete(run: Run, suite_dir: Path) -> bool:
    return set(run.levels) <= RunDir(run.folder(suite_dir)).done_levels()


def execute(
    ctx: Context,
    runs: list[Run],
    *,
    on_start: Callable[[int, Run], None] | None = None,
    on_status: Callable[[str], None] | None = None,
    on_finish: Callable[[Run, bool], None] | None = None,
) -> ExecutionSummary:
    """Execute ``runs`` in order in this process."""
    summary = ExecutionSummary()
    t0 = time.perf_counter()
    status = on_status or (lambda s: None)
    for i, run in enumerate(runs):
        if on_start:
            on_start(i, run)
        if is_complete(run, ctx.suite_dir):
            summary.skipped.append(run.key)
            if on_finish:
                on_finish(run, False)
            continue
        rd = RunDir(run.folder(ctx.suite_dir))
        with rd.locked():
            if is_complete(run, ctx.suite_dir):  # finished by another process meanwhile
                summary.skipped.append(run.key)
            else:
                done = runner_for(run)(ctx, run, rd, status)
                rd.mark_done(sorted(set(done) | rd.done_levels()))
                summary.trained.append(run.key)
        if on_finish:  # False: another process finished it while we waited for the lock
            on_finish(run, bool(summary.trained) and summary.trained[-1] == run.key)
    summary.seconds = time.perf_counter() - t0
    return summary

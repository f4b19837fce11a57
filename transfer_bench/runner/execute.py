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

from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import Run
from transfer_bench.runs.store import RunDir
from transfer_bench.stages import stage_for


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
                done = stage_for(run)(ctx, run, rd, status)
                rd.mark_done(sorted(set(done) | rd.done_levels()))
                summary.trained.append(run.key)
        if on_finish:  # False: another process finished it while we waited for the lock
            on_finish(run, bool(summary.trained) and summary.trained[-1] == run.key)
    summary.seconds = time.perf_counter() - t0
    return summary

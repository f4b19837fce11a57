"""Run events and what the parent does with each run's outcome, for the multi-process executors.

The process pool and Ray hand results back differently (futures, object refs), but what the parent
does with them is one thing: skip runs complete on disk, report a run's start once, record a
finished run as trained or skipped, and keep the first failure (raised with its run key once the
runs in flight have ended).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from transfer_bench.errors import TransferBenchError
from transfer_bench.runner.execute import ExecutionSummary, is_complete
from transfer_bench.runs.plan import Run

EventKind = Literal["skip", "queued", "start", "status", "finish", "error", "warning", "info"]


@dataclass(frozen=True)
class RunEvent:
    """Progress of one run, as seen by the parent process.

    ``skip``: complete before this invocation; ``queued``: handed to a scheduler (Ray);
    ``start``: a worker began it (``time`` is when; Ray reports it together with ``finish``);
    ``status``: a progress line from the worker (pool only); ``finish``: it ended (``trained``
    says whether it computed anything); ``error``: it failed or was not run (``message``);
    ``warning``: about the whole invocation (``key`` is empty).
    """

    kind: EventKind
    key: str
    label: str = ""
    message: str = ""
    trained: bool | None = None
    time: float = field(default_factory=time.time)


OnEvent = Callable[[RunEvent], None]


def one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def run_failure(run: Run, err: BaseException) -> Exception:
    """The parent-side error for a failed run: same class for TransferBenchError, key in message.

    A worker process that died (killed, or crashed in native code) is not a bug in the run's
    Python: it is reported as one line with what to do, not as a traceback."""
    if isinstance(err, BrokenProcessPool):
        return TransferBenchError(
            f"run {run.key} ({run.label()}): its worker process died (killed, e.g. for memory, or "
            "crashed in native code); finished runs are kept: run the same command again to "
            "resume, or with --executor sequential to see the crash in the foreground"
        )
    if isinstance(err, TransferBenchError):
        msg = f"run {run.key} ({run.label()}): {one_line(err)}"
        try:
            return type(err)(msg)
        except Exception:
            return TransferBenchError(msg)
    return RuntimeError(f"run {run.key} ({run.label()}) failed: {type(err).__name__}: {err}")


@dataclass
class Outcomes:
    """The parent's record of one invocation: events out, summary and first failure kept."""

    emit: OnEvent
    summary: ExecutionSummary = field(default_factory=ExecutionSummary)
    done: set[str] = field(default_factory=set)
    started: set[str] = field(default_factory=set)
    failure: Exception | None = None

    def to_compute(self, runs: list[Run], suite_dir: Path) -> list[Run]:
        """The runs not complete on disk; the others are recorded and reported as skipped."""
        todo = []
        for r in runs:
            if is_complete(r, suite_dir):
                self.done.add(r.key)
                self.summary.skipped.append(r.key)
                self.emit(RunEvent("skip", r.key, r.label(), trained=False))
            else:
                todo.append(r)
        return todo

    def start(self, r: Run, at: float) -> None:
        """Report that ``r`` started at ``at`` (once per run)."""
        if r.key not in self.started:
            self.started.add(r.key)
            self.emit(RunEvent("start", r.key, r.label(), time=at))

    def finish(self, r: Run, trained: bool, started_at: float) -> None:
        """Record ``r`` as finished (trained, or found complete by its worker)."""
        self.start(r, started_at)
        self.done.add(r.key)
        (self.summary.trained if trained else self.summary.skipped).append(r.key)
        self.emit(RunEvent("finish", r.key, r.label(), trained=trained))

    def fail(self, r: Run, err: BaseException, wrapper: BaseException | None = None) -> None:
        """Report ``r``'s error; the first one is kept to raise (chained to ``wrapper`` or err)."""
        self.emit(RunEvent("error", r.key, r.label(), message=one_line(err)))
        if self.failure is None:
            self.failure = run_failure(r, err)
            self.failure.__cause__ = wrapper or err

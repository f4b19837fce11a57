"""What a suite run reports while it works: finished trainings, finished runs, time left.

Executors report runs (``RunEvent``: start, status, finish, skip, ...); a run holds several
trainings (one per level, or per level and rewind point for stability runs). ``TrainingWatcher``
turns run events into one ``Training`` per ``result.json`` that appears while this invocation
works, read from disk in the parent process, so it works unchanged for the sequential, pool and
Ray executors (Ray reports a run's trainings when the run finishes). Displays (plain lines for
logs, rich bars for a terminal, nothing) and trackers (``tracking.py``) listen to the watcher.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from transfer_bench.errors import TransferBenchError
from transfer_bench.runner.outcomes import RunEvent
from transfer_bench.runs.plan import Run

PROGRESS_MODES: tuple[str, ...] = ("auto", "plain", "rich", "none")


@dataclass(frozen=True)
class Training:
    """One finished training: its run, its place in the run folder and its ``result.json``."""

    run: Run
    name: str  # relative to the run folder: "level_2" or "level_2/rewind_0"
    record: dict[str, Any]

    @property
    def level(self) -> int:
        return int(self.record.get("level", -1))

    @property
    def seed(self) -> int:
        return int(self.record.get("seed", self.run.seed))

    def describe(self) -> str:
        """``search src seed 0 level 2`` (with the rewind point for stability trainings)."""
        extra = self.name.split("/", 1)[1].replace("_", " ") if "/" in self.name else ""
        return f"{self.run.label()} seed {self.seed} level {self.level}" + (
            f" {extra}" if extra else ""
        )


@dataclass
class Counts:
    """Totals of this invocation, for progress lines: trainings and runs done out of how many."""

    runs_total: int
    runs_done: int
    trainings_total: int  # trainings this invocation expects to compute
    trainings_done: int = 0
    started: float = field(default_factory=time.perf_counter)

    def seconds_left(self) -> float | None:
        """Wall time per finished training so far times the trainings left (None before the
        first); wall time, so parallel executors are accounted for."""
        if self.trainings_done == 0:
            return None
        left = max(0, self.trainings_total - self.trainings_done)
        return (time.perf_counter() - self.started) / self.trainings_done * left


class Listener(Protocol):
    """Something told about finished trainings and run events (a display or a tracker)."""

    def training(self, t: Training, counts: Counts) -> None: ...

    def event(self, e: RunEvent, counts: Counts) -> None: ...


def _expected(run: Run) -> int:
    points = run.config.get("stability", {}).get("rewind_points") if run.kind == "stability" else 0
    return len(run.levels) * (len(points) if points else 1)


def _result_names(folder: Path) -> set[str]:
    """The trainings with a result in a run folder, as paths relative to it without the file."""
    found = set()
    for pattern in ("level_*/result.json", "level_*/*/result.json"):
        found |= {p.parent.relative_to(folder).as_posix() for p in folder.glob(pattern)}
    return found


def _level_key(name: str) -> tuple[int, str]:
    head = name.split("/", 1)[0]
    try:
        return int(head.removeprefix("level_")), name
    except ValueError:
        return 1 << 30, name


class TrainingWatcher:
    """Turns run events into ``Training`` notifications for ``listeners``.

    Results present before this invocation started are not reported (they were trained, and
    tracked, by an earlier one); neither are results of a run another process computed while
    this one waited for its lock (its ``finish`` says ``trained=False``).
    """

    def __init__(self, suite_dir: Path, runs: Sequence[Run], listeners: Sequence[Listener]):
        self.suite_dir = Path(suite_dir)
        self.listeners = list(listeners)
        self._runs = {r.key: r for r in runs}
        self._seen = {r.key: _result_names(r.folder(self.suite_dir)) for r in runs}
        todo = sum(max(0, _expected(r) - len(self._seen[r.key])) for r in runs)
        self._complete = {r.key for r in runs if _expected(r) <= len(self._seen[r.key])}
        self.counts = Counts(
            runs_total=len(runs), runs_done=len(self._complete), trainings_total=todo
        )

    def on_event(self, e: RunEvent) -> None:
        run = self._runs.get(e.key)
        if run is not None and e.kind in ("status", "finish"):
            report = e.kind == "status" or bool(e.trained)
            for t in self._new(run):
                if report:
                    self.counts.trainings_done += 1
                    for listener in self.listeners:
                        listener.training(t, self.counts)
        if run is not None and e.kind in ("finish", "skip") and e.key not in self._complete:
            self._complete.add(e.key)
            self.counts.runs_done += 1
        for listener in self.listeners:
            listener.event(e, self.counts)

    def _new(self, run: Run) -> list[Training]:
        folder = run.folder(self.suite_dir)
        names = _result_names(folder) - self._seen[run.key]
        out = []
        for name in sorted(names, key=_level_key):
            try:
                record = json.loads((folder / name / "result.json").read_text())
            except (OSError, ValueError):
                continue  # being replaced right now: picked up at the next event
            if not isinstance(record, dict):
                continue
            self._seen[run.key].add(name)
            out.append(Training(run, name, record))
        return out


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _percent(value: Any) -> str:
    try:
        return f"{100 * float(value):.2f}%"
    except (TypeError, ValueError):
        return "-"


class PlainProgress:
    """One line per finished training and per finished run, flushed at once: for log files."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self._write = write or (lambda line: print(line, flush=True))
        self._run_trainings: dict[str, int] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _line(self, text: str) -> None:
        self._write(f"[{datetime.now():%H:%M:%S}] {text}")

    def start(self, suite: str, counts: Counts) -> None:
        self._line(
            f"{suite}: {counts.runs_total} runs ({counts.runs_done} already complete), "
            f"{counts.trainings_total} trainings to do"
        )

    def training(self, t: Training, counts: Counts) -> None:
        r = t.record
        self._run_trainings[t.run.key] = self._run_trainings.get(t.run.key, 0) + 1
        secs = r.get("seconds")
        took = f"{float(secs):.1f} s" if isinstance(secs, int | float) else "? s"
        self._line(
            f"trained {t.describe()} (density {_percent(r.get('density'))}): test accuracy "
            f"{_percent(r.get('test_accuracy'))}, {took} | trainings "
            f"{counts.trainings_done}/{counts.trainings_total}, runs "
            f"{counts.runs_done}/{counts.runs_total}, time left ~{_duration(counts.seconds_left())}"
        )

    def event(self, e: RunEvent, counts: Counts) -> None:
        if e.kind == "finish":
            n = self._run_trainings.pop(e.key, 0)
            what = f"{n} training(s)" if e.trained else "done by another process"
            self._line(
                f"finished {e.label} {e.key.split('/')[-1].replace('_', ' ')}: {what} | runs "
                f"{counts.runs_done}/{counts.runs_total}, time left "
                f"~{_duration(counts.seconds_left())}"
            )
        elif e.kind in ("warning", "error", "info"):
            print(_event_line(e), file=sys.stderr, flush=True)


def _event_line(e: RunEvent) -> str:
    """``warning: <run key> <message>`` (no run key for suite-wide lines)."""
    return " ".join(part for part in (f"{e.kind}:", e.key, e.message) if part)


class RichProgress:
    """The terminal display: a bar over runs with the current run, level and epoch."""

    def __init__(self, console: Any = None, err_console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._err = err_console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console or Console(),
            transient=False,
        )
        self._task: Any = None

    def __enter__(self) -> RichProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def start(self, suite: str, counts: Counts) -> None:
        self._task = self._progress.add_task(
            suite, total=counts.runs_total, completed=counts.runs_done, status=""
        )

    def training(self, t: Training, counts: Counts) -> None:
        return None

    def event(self, e: RunEvent, counts: Counts) -> None:
        p, task = self._progress, self._task
        if e.kind == "start":
            p.update(task, description=f"{e.label} {e.key.split('/')[-1]}", status="")
        elif e.kind == "status":
            p.update(task, status=e.message)
        elif e.kind in ("finish", "skip"):
            p.update(task, completed=counts.runs_done)
        elif e.kind in ("warning", "error", "info"):
            self._err.print(_event_line(e), markup=False)


class QuietProgress:
    """No progress; warnings and errors still go to stderr."""

    def __enter__(self) -> QuietProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def start(self, suite: str, counts: Counts) -> None:
        return None

    def training(self, t: Training, counts: Counts) -> None:
        return None

    def event(self, e: RunEvent, counts: Counts) -> None:
        if e.kind in ("warning", "error"):
            print(_event_line(e), file=sys.stderr, flush=True)


def is_terminal() -> bool:
    """Both stdout and stderr are terminals (a redirect of either means a log is being kept)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def make_progress(mode: str, console: Any = None, err_console: Any = None):
    """The display for ``mode``: ``auto`` (rich on a terminal, plain lines otherwise), ``plain``,
    ``rich`` or ``none``."""
    if mode not in PROGRESS_MODES:
        raise TransferBenchError(f"progress {mode!r}: use one of {', '.join(PROGRESS_MODES)}")
    if mode == "auto":
        mode = "rich" if is_terminal() else "plain"
    if mode == "rich":
        return RichProgress(console, err_console)
    if mode == "plain":
        return PlainProgress()
    return QuietProgress()

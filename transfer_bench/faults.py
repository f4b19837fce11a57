"""Fail points: deterministic fault injection for the reliability tests.

Set ``TRANSFER_BENCH_FAILPOINT`` and the process signals itself at that point:

- ``step:<n>``: when a training reaches iteration ``n`` (training in progress);
- ``write:<path suffix>``: inside the atomic write of a file whose path ends with the suffix (for
  example ``level_2/ticket.ticket``, ``result.json``, ``report.md``), after the temporary file is
  complete and before it is renamed into place.

Append ``@interrupt`` for SIGINT (what Ctrl-C sends) instead of the default SIGKILL (no cleanup
at all, like a power cut or the OOM killer). Unset, a check costs one environment lookup per
training or file write.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

ENV = "TRANSFER_BENCH_FAILPOINT"
_SIGNALS = {"kill": signal.SIGKILL, "interrupt": signal.SIGINT}


@dataclass(frozen=True)
class FailPoint:
    kind: str  # "step" or "write"
    arg: str
    action: str = "kill"

    def fire(self) -> None:
        os.kill(os.getpid(), _SIGNALS[self.action])


def parse(value: str | None) -> FailPoint | None:
    """``"step:30@interrupt"`` -> FailPoint; None when unset or malformed (faults are opt-in)."""
    if not value or ":" not in value:
        return None
    spec, _, action = value.partition("@")
    kind, _, arg = spec.partition(":")
    action = action or "kill"
    if kind not in ("step", "write") or not arg or action not in _SIGNALS:
        return None
    if kind == "step" and not arg.isdigit():
        return None
    return FailPoint(kind, arg, action)


def step_limit() -> FailPoint | None:
    """The ``step`` fail point, if one is set (read once per training)."""
    fp = parse(os.environ.get(ENV))
    return fp if fp is not None and fp.kind == "step" else None


def on_write(path: Path) -> None:
    """Fire if the ``write`` fail point names this file."""
    fp = parse(os.environ.get(ENV))
    if fp is not None and fp.kind == "write" and path.as_posix().endswith(fp.arg):
        fp.fire()

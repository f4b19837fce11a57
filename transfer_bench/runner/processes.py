"""How the local pool starts its processes: on Linux, forked from a fork server that has imported
the worker modules once (elsewhere spawned, see ``start_method``).

Spawned workers each imported torch and the stages again: 3-5 s per process on a 2-core machine,
with the event-queue helper doing the same at the same time. The fork server imports them once
and never runs a torch operation, so forking it is safe; workers take the parent's environment and
working directory in their initializer (``pool._init_worker``), as a spawned process would. This
module stays light (no torch), so that ``warm_up`` can start the server at the very beginning of a
``run``, to import on the second core while the first plans the runs.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transfer_bench.errors import TransferBenchError

#: What every worker imports; the fork server imports it once, before forking any worker.
WORKER_MODULES = ("transfer_bench.runner.pool", "transfer_bench.stages")


#: Overrides the start method (``spawn`` or ``forkserver``), e.g. to compare them.
START_METHOD_ENV = "TRANSFER_BENCH_START_METHOD"


def start_method() -> str:
    """``forkserver`` on Linux, else ``spawn``, unless ``$TRANSFER_BENCH_START_METHOD`` names one of
    the two. Not on macOS: forking a process that has loaded Apple's frameworks (torch loads
    Accelerate) can crash the child, which is why Python starts with ``spawn`` there."""
    available = mp.get_all_start_methods()
    asked = os.environ.get(START_METHOD_ENV)
    if asked:
        if asked not in ("spawn", "forkserver") or asked not in available:
            choices = [m for m in ("spawn", "forkserver") if m in available]
            raise TransferBenchError(
                f"${START_METHOD_ENV}={asked!r}: use {' or '.join(choices)}, or unset it"
            )
        return asked
    return (
        "forkserver" if sys.platform.startswith("linux") and "forkserver" in available else "spawn"
    )


def process_context() -> Any:
    """The multiprocessing context of the pool's processes."""
    ctx = mp.get_context(start_method())
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(list(WORKER_MODULES))
    return ctx


def warm_up() -> None:
    """Start the fork server now (it imports the worker modules in the background); the pool would
    start it anyway when it starts its first process. A no-op where there is no fork server."""
    if start_method() != "forkserver":
        return
    process_context()
    from multiprocessing import forkserver  # lazy: POSIX only

    with sigint_blocked():
        forkserver.ensure_running()


@contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT while starting child processes. The mask survives exec, so a Ctrl-C during a
    worker's start-up neither kills it with a traceback nor gets lost: the parent receives it (at
    the latest when the mask is restored) and stops the workers itself."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def likely_pool(executor: str, device: str | None, cores: int) -> bool:
    """Whether ``executor`` will probably run the local pool: ``local``, or ``auto`` on a
    multi-core machine without a GPU in sight (``resolve_executor`` decides for real, later)."""
    if executor == "local":
        return True
    if executor != "auto" or cores < 2 or device not in (None, "auto", "cpu"):
        return False
    return device == "cpu" or not os.path.exists("/dev/nvidiactl")

"""Choosing and calling an executor: one function runs a plan sequentially, in the local process
pool or on Ray, reporting :class:`~transfer_bench.runner.outcomes.RunEvent`s (a new executor is one
branch here)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from transfer_bench.config import Suite
from transfer_bench.devices import visible_gpus
from transfer_bench.errors import TransferBenchError
from transfer_bench.runner.execute import ExecutionSummary, execute, is_complete
from transfer_bench.runner.outcomes import RunEvent
from transfer_bench.runner.pool import execute_pool
from transfer_bench.runner.ray_executor import execute_ray
from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import Run

EXECUTORS: tuple[str, ...] = ("auto", "sequential", "local", "ray")


def check_executor(executor: str | None) -> str:
    """``executor`` if it names one of :data:`EXECUTORS`, else a one-line error naming them."""
    if executor not in EXECUTORS:
        choices = f"{', '.join(EXECUTORS[:-1])} or {EXECUTORS[-1]}"
        raise TransferBenchError(f"--executor {executor!r}: use {choices}")
    return executor


def resolve_executor(
    executor: str, device: str, todo: int, cores: int | None = None, gpus: int = 0
) -> str:
    """``auto``: the process pool on a CPU with >= 2 cores (one 1-thread worker per core) or on
    >= 2 GPUs (one worker per GPU) when >= 2 runs are to do, else sequential. Two 1-thread
    processes train LeNet-size models ~1.6x faster than one 2-thread process and conv nets no
    slower (perf lab, section 6); one GPU gets one process. Results depend on threads per run
    (recorded in every result), not on the executor."""
    if executor != "auto":
        return executor
    cores = cores or os.cpu_count() or 1
    if device == "cuda":
        return "local" if gpus >= 2 and todo >= 2 else "sequential"
    return "local" if device == "cpu" and cores >= 2 and todo >= 2 else "sequential"


def run_plan(
    suite: Suite,
    ctx: Context,
    runs: list[Run],
    executor: str,
    on_event: Callable[[RunEvent], None],
    *,
    device: str,
    workers: int | None = None,
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    runs_per_gpu: int = 1,
) -> ExecutionSummary:
    """Run ``runs`` with ``executor``; ``device`` is as asked for (``auto``, ``cpu``, ...), for
    worker processes to resolve themselves."""
    check_executor(executor)
    if executor == "auto":
        todo = sum(1 for r in runs if not is_complete(r, ctx.suite_dir))
        gpus = len(visible_gpus()) if ctx.device.type == "cuda" else 0
        executor = resolve_executor(executor, ctx.device.type, todo, gpus=gpus)
    common: dict[str, Any] = dict(device=device, cache_dir=ctx.cache_dir, on_event=on_event)
    if executor == "local":
        return execute_pool(
            suite, ctx.suite_dir, runs, workers=workers, runs_per_gpu=runs_per_gpu, **common
        )
    if executor == "ray":
        return execute_ray(
            suite,
            ctx.suite_dir,
            runs,
            address=address,
            num_cpus_per_run=cpus_per_run,
            num_gpus_per_run=gpus_per_run,
            **common,
        )
    current: list[Run] = []

    def on_start(i: int, r: Run) -> None:
        current[:] = [r]
        on_event(RunEvent("start", r.key, r.label()))

    def on_status(s: str) -> None:
        r = current[0]
        on_event(RunEvent("status", r.key, r.label(), message=s))

    def on_finish(r: Run, trained: bool) -> None:
        on_event(RunEvent("finish" if trained else "skip", r.key, r.label(), trained=trained))

    return execute(ctx, runs, on_start=on_start, on_status=on_status, on_finish=on_finish)

"""Wall-time estimate of a plan from training steps timed on this machine (``plan``'s budget).

A fixed GFLOP/s figure misjudges small and narrow models by 3x and more (memory-bound convolutions,
per-step overhead at batch 60). So ``plan`` times a few training steps and one evaluation of every
distinct (model, classes, input, batch size, optimizer) the suite trains, with the device and
threads per run the executor will use, and with as many processes timing at once as the pool runs
(two 1-thread workers slow each other down through shared caches and memory bandwidth). Results
are cached per machine, torch version and setting in ``<cache>/calibration.json``.

The estimate adds up each training (steps x step time + evaluations x test images x time per
image) and schedules the runs as the executor does: in plan order, each after its dependencies, on
``workers`` slots, plus the measured start-up of a worker process.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.devices import resolve_device
from transfer_bench.fileio import atomic_write_json
from transfer_bench.machine import fingerprint
from transfer_bench.models import build_model
from transfer_bench.runner.pool import set_torch_threads
from transfer_bench.training import TrainData, train
from transfer_bench.training.loop import evaluate

CALIBRATION_FILE = "calibration.json"


@dataclass(frozen=True)
class Workload:
    """What a training step costs depends on: the model, its output size, input, batch, optimizer."""

    model: str
    options: tuple[tuple[str, Any], ...]
    num_classes: int
    channels: int
    size: int
    batch_size: int
    optimizer: tuple[tuple[str, Any], ...]  # OptimizerSpec fields, sorted
    augment: str = "none"
    padding: int = 0
    precision: str = "auto"  # train.precision and train.channels_last, as the suite says
    channels_last: str = "auto"

    def label(self) -> str:
        opts = "".join(f" {k}={v}" for k, v in self.options)
        settings = "".join(
            f", {name} {value}"
            for name, value in (
                ("precision", self.precision),
                ("channels_last", self.channels_last),
            )
            if value != "auto"
        )
        return (
            f"{self.model}{opts} ({self.num_classes} classes, batch {self.batch_size}, "
            f"{dict(self.optimizer)['name']}{settings})"
        )


@dataclass(frozen=True)
class StepCost:
    """Measured: seconds per training step, per evaluated test image and per training besides its
    steps (building the model, optimizer and masks), and a worker process's start-up."""

    step_s: float
    eval_s_per_image: float
    startup_s: float
    fixed_s: float = 0.0


def _key(w: Workload, device: str, threads: int, concurrent: int) -> str:
    """Cache key: the workload (with its precision and layout), the device by model (``cuda
    (NVIDIA H200)``, so GPUs of two models never share timings), threads, concurrency, torch and
    the CPU."""
    fp = fingerprint(device)
    machine = {k: fp.get(k) for k in ("cpu", "cores", "device", "blas") if k in fp}
    return json.dumps(
        [asdict(w), device, threads, concurrent, torch.__version__, machine],
        sort_keys=True,
        default=str,
    )


def _measure(w: Workload, device: str, threads: int, t_start: float) -> StepCost:
    """Time ``train()`` for 4 and for 16 steps (the difference is per-step cost without set-up)
    and one evaluation of 256 images, with 20%-density masks, on uint8 images normalized per
    batch as in a run."""
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    g = torch.Generator().manual_seed(0)
    n = 16 * w.batch_size
    shape = (n, w.channels, w.size, w.size)
    x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g).to(dev)
    y = torch.randint(0, w.num_classes, (n,), generator=g).to(dev)
    stats = (0.5,) * w.channels, (0.25,) * w.channels
    data = TrainData(x, y, x[:256], y[:256], mean=stats[0], std=stats[1])
    opt = OptimizerSpec(**dict(w.optimizer))

    def model():
        m = build_model(
            w.model,
            num_classes=w.num_classes,
            in_channels=w.channels,
            image_size=w.size,
            seed=0,
            options=dict(w.options),
        ).to(dev)
        params = dict(m.named_parameters())
        masks = {k: torch.rand(params[k].shape, generator=g) < 0.2 for k in m.prunable_names}
        return m, masks

    def timed(steps: int) -> float:
        m, masks = model()
        spec = TrainSpec(
            batch_size=w.batch_size,
            iterations=steps,
            eval_every=10**6,
            augment=w.augment,
            padding=w.padding,
            precision=w.precision,
            channels_last=w.channels_last,
        )
        t = time.perf_counter()
        train(m, data, spec, opt, masks, order_seed=0)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    startup = time.time() - t_start
    timed(4)  # warm-up (first-call kernels, allocator)
    short = [timed(4) for _ in range(2)]
    long_ = [timed(16) for _ in range(2)]
    step = max(1e-6, (statistics.median(long_) - statistics.median(short)) / 12)
    fixed = max(0.0, statistics.median(short) - 4 * step)
    m, _ = model()
    evaluate(m, data.x_test, data.y_test, 256, data.prepare)
    t = time.perf_counter()
    evaluate(m, data.x_test, data.y_test, 256, data.prepare)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return StepCost(step, (time.perf_counter() - t) / 256, startup, fixed)


def _measure_in_worker(args: tuple) -> StepCost:
    w, device, threads, t_start = args
    set_torch_threads(threads)
    return _measure(w, device, threads, t_start)


def measure(w: Workload, device: str, threads: int, concurrent: int) -> StepCost:
    """Step cost of ``w`` with ``concurrent`` processes timing at once (1: in this process, whose
    thread count is restored afterwards)."""
    if concurrent <= 1:
        import torch

        before = torch.get_num_threads()
        try:
            return _measure(w, device, threads, time.time())
        finally:
            torch.set_num_threads(before)
    with ProcessPoolExecutor(concurrent) as pool:
        t0 = time.time()
        costs = list(pool.map(_measure_in_worker, [(w, device, threads, t0)] * concurrent))
    return StepCost(
        statistics.mean(c.step_s for c in costs),
        statistics.mean(c.eval_s_per_image for c in costs),
        max(c.startup_s for c in costs),
        statistics.mean(c.fixed_s for c in costs),
    )


def calibrated(
    workloads: Iterable[Workload],
    device: str,
    threads: int,
    concurrent: int,
    cache_dir: Path | None,
) -> dict[Workload, StepCost]:
    """The step cost of each workload: from the cache, or measured now (and cached)."""
    path = cache_dir / CALIBRATION_FILE if cache_dir else None
    cache: dict[str, Any] = {}
    if path and path.exists():
        try:
            cache = json.loads(path.read_text())
        except (OSError, ValueError):
            cache = {}  # a damaged cache is measured again
    out: dict[Workload, StepCost] = {}
    changed = False
    for w in dict.fromkeys(workloads):
        key = _key(w, device, threads, concurrent)
        if key in cache:
            try:
                out[w] = StepCost(**cache[key])
                continue
            except TypeError:
                pass
        out[w] = measure(w, device, threads, concurrent)
        cache[key] = asdict(out[w])
        changed = True
    if changed and path is not None:
        try:
            atomic_write_json(path, cache)
        except Exception:  # the estimate stands without its cache
            pass
    return out


@dataclass(frozen=True)
class Job:
    """One run as the scheduler sees it: its key, dependencies and estimated seconds."""

    key: str
    depends_on: tuple[str, ...]
    seconds: float


def schedule(jobs: list[Job], workers: int) -> float:
    """Wall seconds for ``jobs`` (in plan order, dependencies first) on ``workers`` slots: each job
    takes the first free slot and starts once its dependencies are done, like the pool."""
    free = [0.0] * max(1, workers)
    done: dict[str, float] = {}
    for job in jobs:
        slot = min(range(len(free)), key=free.__getitem__)
        ready = max([free[slot], *(done.get(d, 0.0) for d in job.depends_on)])
        done[job.key] = free[slot] = ready + job.seconds
    return max(done.values(), default=0.0)


def training_seconds(cost: StepCost, steps: int, evals: int, n_test: int) -> float:
    """One training: its steps and its evaluations of the test set."""
    return cost.fixed_s + steps * cost.step_s + evals * n_test * cost.eval_s_per_image


def evaluations(total_iterations: int, steps_per_epoch: int, eval_every: int) -> int:
    epochs = math.ceil(total_iterations / max(1, steps_per_epoch))
    return max(1, epochs // max(1, eval_every))

"""Wall-time estimate of a plan from training steps timed on this machine (``plan``'s budget).

A fixed GFLOP/s figure misjudges small and narrow models by 3x and more (memory-bound convolutions,
per-step overhead at batch 60). So ``plan`` times training steps and an evaluation of every
distinct (model, classes, input, batch size, optimizer) the suite trains, with the device and
threads per run the executor will use, and with as many processes timing at once as the pool runs
(two 1-thread workers slow each other down through shared caches and memory bandwidth). Results
are cached per machine, torch version and setting in ``<cache>/calibration.json``.

``plan`` must answer in seconds, even for a suite sized for GPUs planned on a laptop (one step of
full-width VGG19 at batch 512 takes about 8 s on one CPU core), so the timing adapts:

- a warm step of ``SMALL_BATCH`` images predicts the step; one predicted slower than
  ``SLOW_STEP_S`` is timed once on a sub-batch of ``PROBE_BATCH`` images (``SMALL_BATCH`` for the
  slowest models) and scaled to the batch (per-image cost is flat from about 32 images up on a
  CPU: full-width VGG19 16.7 ms at 32, 16.3 ms at 128, 29 ms at 8, one thread);
- class counts of one model share a timing when the output layer is a negligible share of a
  step's work (below ``HEAD_SHARE``), scaled by FLOPs;
- the whole calibration stops starting new timings after ``CALIBRATION_BUDGET_S``; what is left is
  scaled by FLOPs from the measured rate of the nearest timed workload, and not cached, so the next
  ``plan`` times it.

Every figure that is not a plain timing says how it was obtained (``StepCost.how``).

The estimate adds up each training (steps x step time + evaluations x test images x time per
image) and schedules the runs as the executor does: in plan order, each after its dependencies, on
``workers`` slots, plus the measured start-up of a worker process.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.devices import resolve_device
from transfer_bench.fileio import atomic_write_json
from transfer_bench.machine import fingerprint
from transfer_bench.models import build_model, count_flops
from transfer_bench.runner.pool import set_torch_threads
from transfer_bench.training import TrainData, train
from transfer_bench.training.loop import evaluate

CALIBRATION_FILE = "calibration.json"
#: seconds of timing ``plan`` spends at most before it scales the rest by FLOPs (a timing already
#: started finishes)
CALIBRATION_BUDGET_S = 15.0
#: a training step predicted slower than this is timed once, on a sub-batch, and scaled
SLOW_STEP_S = 1.0
#: images of the step that predicts a step's time (and times the slowest models)
SMALL_BATCH = 8
#: images of the step that times a slow model (per-image cost is flat from about 32 images up on
#: a CPU; at 8 it is up to 2x higher)
PROBE_BATCH = 32
#: class counts share one timing when the head is less than this share of FLOPs and weights
HEAD_SHARE = 0.05
#: seconds a fast workload's step timing aims at
_FAST_TARGET_S = 0.3


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
    steps (building the model, optimizer and masks), and a worker process's start-up. ``how``
    says how a figure that is not a plain timing was obtained ("" for a plain timing)."""

    step_s: float
    eval_s_per_image: float
    startup_s: float
    fixed_s: float = 0.0
    how: str = ""
    load: float | None = None  # the machine's 1-minute load average when this was timed

    @property
    def extrapolated(self) -> bool:
        return bool(self.how)

    def timed_busy(self, cores: int) -> bool:
        """Timed while other work kept at least half the cores busy (the figure is too slow)."""
        return self.load is not None and self.load >= BUSY_LOAD_PER_CORE * cores


#: a 1-minute load average per core at or above which a timing is taken as made on a busy machine
BUSY_LOAD_PER_CORE = 0.5


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def retime(cost: StepCost, load_now: float | None, cores: int) -> bool:
    """A cached figure is timed again when it was timed on a busy machine and this one is quieter
    by at least one busy core: one `plan` run next to a training suite would otherwise slow every
    later estimate (a LeNet step cached at 3.1 ms put the quickstart at 109 s; it ran in 55 s)."""
    return cost.timed_busy(cores) and load_now is not None and load_now <= cost.load - 1.0


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


def _measure(
    w: Workload,
    device: str,
    threads: int,
    t_start: float,
    slow_s: float,
    deadline: float = math.inf,
) -> StepCost:
    """Time ``w``. One cold and one warm step of ``SMALL_BATCH`` images predict the step.

    Predicted slower than ``slow_s``: the step is scaled from one warm step of ``PROBE_BATCH``
    images (of ``SMALL_BATCH`` when even that would take over ``slow_s``, or when ``deadline``, a
    ``time.time()``, has passed: then from the cold step), and one evaluation of those images.
    Otherwise ``train()`` runs k and 4k steps at the full batch (the difference is the per-step
    cost without set-up; k fitted to about ``_FAST_TARGET_S``), and 256 images are evaluated.
    Masks at 20% density, uint8 images normalized per batch, as in a run."""
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    g = torch.Generator().manual_seed(0)
    stats = (0.5,) * w.channels, (0.25,) * w.channels
    opt = OptimizerSpec(**dict(w.optimizer))

    def data(n: int, n_test: int) -> TrainData:
        x = torch.randint(0, 256, (n, w.channels, w.size, w.size), dtype=torch.uint8, generator=g)
        y = torch.randint(0, w.num_classes, (n,), generator=g)
        x, y = x.to(dev), y.to(dev)
        return TrainData(x, y, x[:n_test], y[:n_test], mean=stats[0], std=stats[1])

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

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def timed(steps: int, batch: int, d: TrainData, built=None) -> float:
        m, masks = built or model()  # a slow model is built once (VGG19: 0.4 s per build)
        spec = TrainSpec(
            batch_size=batch,
            iterations=steps,
            eval_every=10**6,
            augment=w.augment,
            padding=w.padding,
            precision=w.precision,
            channels_last=w.channels_last,
        )
        sync()
        t = time.perf_counter()
        train(m, d, spec, opt, masks, order_seed=0)
        sync()
        return time.perf_counter() - t

    def eval_per_image(d: TrainData, warm: bool = True, built=None) -> float:
        m = (built or model())[0]
        n = len(d.y_test)
        if warm:
            evaluate(m, d.x_test, d.y_test, n, d.prepare)
        sync()
        t = time.perf_counter()
        evaluate(m, d.x_test, d.y_test, n, d.prepare)
        sync()
        return (time.perf_counter() - t) / n

    startup = time.time() - t_start
    small = min(w.batch_size, SMALL_BATCH)
    built = model()
    tiny = data(small, small)
    warm = timed(1, small, tiny, built)  # cold: first-call kernels, allocator, lazy CUDA start
    spent = time.time() >= deadline
    if not spent:
        warm = timed(1, small, tiny, built)
    images = probe_images(warm, w.batch_size, slow_s, spent or time.time() >= deadline)
    if images is None:
        return _fast(w, timed, eval_per_image, data, startup)
    how = _scaled_from(images, w) + (" (a cold step: budget spent)" if spent else "")
    if images == small:
        step = warm * w.batch_size / small
        return StepCost(step, eval_per_image(tiny, False, built), startup, 0.0, how)
    d = data(images, images)
    step = timed(1, images, d, built) * w.batch_size / images
    return StepCost(step, eval_per_image(d, False, built), startup, 0.0, how)


def probe_images(small_s: float, batch: int, slow_s: float, spent: bool) -> int | None:
    """How to time a workload whose warm step of ``min(batch, SMALL_BATCH)`` images took
    ``small_s``: None for the full timing at the full batch (a step predicted faster than
    ``slow_s``), else the images of the one step to scale from: ``PROBE_BATCH`` when that step
    takes at most twice ``slow_s``, else the small step itself (also when the budget is
    ``spent``)."""
    small = min(batch, SMALL_BATCH)
    if not spent and small_s * batch / small < slow_s:
        return None
    probe = min(batch, PROBE_BATCH)
    if not spent and probe > small and small_s * probe / small <= 2 * slow_s:
        return probe
    return small


def _scaled_from(images: int, w: Workload) -> str:
    if images < w.batch_size:
        return f"scaled from one step of {images} images"
    return "from one step, timed once"


def _fast(w: Workload, timed, eval_per_image, data, startup: float) -> StepCost:
    """A step faster than ``SLOW_STEP_S``: k and 4k steps at the full batch (fresh models, as a
    run builds them), their difference per step, the rest fixed cost."""
    full = data(4 * w.batch_size, 256)
    first = timed(1, w.batch_size, full)  # warm-up at the full batch
    k = max(1, min(4, int(_FAST_TARGET_S / max(first, 1e-6))))
    reps = 2 if 10 * k * first < 2.0 else 1
    short = statistics.median(timed(k, w.batch_size, full) for _ in range(reps))
    long_ = statistics.median(timed(4 * k, w.batch_size, full) for _ in range(reps))
    step = max(1e-6, (long_ - short) / (3 * k))
    fixed = max(0.0, short - k * step)
    return StepCost(step, eval_per_image(full), startup, fixed)


def _measure_in_worker(args: tuple) -> StepCost:
    w, device, threads, t_start, slow_s, deadline = args
    set_torch_threads(threads)
    return _measure(w, device, threads, t_start, slow_s, deadline)


def _measure_with(
    pool: Executor | None,
    w: Workload,
    device: str,
    threads: int,
    concurrent: int,
    slow_s: float,
    deadline: float = math.inf,
) -> StepCost:
    """``concurrent`` timings of ``w`` at once in ``pool`` (their mean), or one in this process
    (whose thread count is restored afterwards)."""
    if pool is None or concurrent <= 1:
        before = torch.get_num_threads()
        try:
            return _measure(w, device, threads, time.time(), slow_s, deadline)
        finally:
            torch.set_num_threads(before)
    t0 = time.time()
    args = [(w, device, threads, t0, slow_s, deadline)] * concurrent
    costs = list(pool.map(_measure_in_worker, args))
    return StepCost(
        statistics.mean(c.step_s for c in costs),
        statistics.mean(c.eval_s_per_image for c in costs),
        max(c.startup_s for c in costs),
        statistics.mean(c.fixed_s for c in costs),
        costs[0].how,
    )


def measure(
    w: Workload,
    device: str,
    threads: int,
    concurrent: int,
    slow_s: float = SLOW_STEP_S,
    deadline: float = math.inf,
) -> StepCost:
    """Step cost of ``w`` with ``concurrent`` processes timing at once (1: in this process);
    past ``deadline`` (a ``time.time()``) a slow step is scaled from its first, cold step."""
    if concurrent <= 1:
        return _measure_with(None, w, device, threads, 1, slow_s, deadline)
    with ProcessPoolExecutor(concurrent) as pool:
        return _measure_with(pool, w, device, threads, concurrent, slow_s, deadline)


# ------------------------------------------------------------------ what to time, what to scale


@dataclass(frozen=True)
class Work:
    """Forward FLOPs per image and weights of a workload's model (what scaling goes by)."""

    flops: float
    params: int


def count_work(model: str, options, num_classes: int, channels: int, size: int) -> Work:
    """Build a model and count its forward FLOPs per image and its weights. The count runs on
    torch's meta device (shapes only: a full-width ResNet-50's counting forward took 1.7-3.3 s on
    a busy 2-core CPU, 0.1 s on meta; the counts are equal), on the CPU if a layer has no meta
    kernel."""

    def build():
        return build_model(
            model,
            num_classes=num_classes,
            in_channels=channels,
            image_size=size,
            seed=0,
            options=dict(options),
        )

    m = build()
    params = sum(p.numel() for p in m.parameters())
    try:
        flops = count_flops(m.to("meta"), (channels, size, size))
    except Exception:  # an op without a meta kernel: count on the CPU
        flops = count_flops(build(), (channels, size, size))
    return Work(float(flops), params)


class ModelWork:
    """``Work`` of the models one command sizes, each model shape built at most twice: FLOPs and
    weights are affine in the class count (the output layer's outputs), so a third class count is
    read off the line through two counted ones (a full-width ResNet-50 takes about a second to
    build and count; ``plan`` sizes four class counts of it)."""

    def __init__(self, count: Callable[..., Work] = count_work) -> None:
        self._count = count
        self._counted: dict[tuple, dict[int, Work]] = {}

    def __call__(self, model: str, options, num_classes: int, channels: int, size: int) -> Work:
        shape = (model, tuple(sorted(dict(options).items())), channels, size)
        counted = self._counted.setdefault(shape, {})
        if num_classes not in counted and len(counted) < 2:
            counted[num_classes] = self._count(model, options, num_classes, channels, size)
        if num_classes in counted:
            return counted[num_classes]
        (k0, a), (k1, b) = sorted(counted.items())[:2]
        flops = _on_line(((k0, a.flops), (k1, b.flops)), num_classes)
        params = _on_line(((k0, a.params), (k1, b.params)), num_classes)
        return Work(flops, round(params))

    def of(self, w: Workload) -> Work:
        return self(w.model, w.options, w.num_classes, w.channels, w.size)


def share_head_timings(
    todo: Iterable[Workload], work: Callable[[Workload], Work], known: Iterable[Workload] = ()
) -> tuple[list[Workload], dict[Workload, tuple[Workload, float, float]]]:
    """Which of ``todo`` to time, and which to take from another class count's figure: within one
    model shape (everything but the class count), when the output layer is less than
    ``HEAD_SHARE`` of a step's work (``_step_work``), one class count is timed (the largest one
    ``known`` already, else the largest) and the others scaled from it by forward FLOPs.
    Returns (to time, {derived: (reference, share of the head, FLOPs ratio to the reference)});
    FLOPs are linear in the class count, so only the smallest and largest models are built."""
    pending = list(dict.fromkeys(todo))
    known = [w for w in dict.fromkeys(known) if w not in set(pending)]
    groups: dict[Workload, list[Workload]] = {}
    for w in [*pending, *known]:
        groups.setdefault(dataclasses.replace(w, num_classes=0), []).append(w)
    timed: list[Workload] = []
    derived: dict[Workload, tuple[Workload, float, float]] = {}
    for members in groups.values():
        mine = [w for w in members if w in pending]
        if len(members) == 1 or not mine:
            timed += mine
            continue
        members.sort(key=lambda w: w.num_classes)
        lo, hi = members[0], members[-1]
        low, high = work(lo), work(hi)
        share = 1 - _step_work(lo, low) / _step_work(hi, high)
        if share >= HEAD_SHARE:
            timed += mine
            continue
        others = [w for w in members if w not in mine]
        ref = max(others or mine, key=lambda w: w.num_classes)
        timed += [ref] if ref in mine else []
        line = ((lo.num_classes, low.flops), (hi.num_classes, high.flops))
        for w in mine:
            if w != ref:
                ratio = _on_line(line, w.num_classes) / _on_line(line, ref.num_classes)
                derived[w] = (ref, share, ratio)
    return timed, derived


#: arithmetic equivalent of one weight's update (read and write weight, gradient and optimizer
#: state: memory-bound, about 16-32 bytes per weight at ~10 FLOP per byte moved)
UPDATE_FLOPS_PER_WEIGHT = 200


def _step_work(w: Workload, work: Work) -> float:
    """A step's arithmetic: forward and backward of the batch (3x forward FLOPs) plus the
    weights' update; what the head's share of a step is judged by."""
    return 3 * w.batch_size * work.flops + UPDATE_FLOPS_PER_WEIGHT * work.params


def _on_line(points: tuple[tuple[float, float], tuple[float, float]], x: float) -> float:
    """The straight line through two (x, y) points, at ``x``."""
    (x0, y0), (x1, y1) = points
    return y0 + (x - x0) * (y1 - y0) / (x1 - x0)


def scaled(cost: StepCost, ratio: float, batch_ratio: float, how: str) -> StepCost:
    """``cost`` for a workload doing ``ratio`` times the forward FLOPs per image at
    ``batch_ratio`` times the batch."""
    return StepCost(
        cost.step_s * ratio * batch_ratio,
        cost.eval_s_per_image * ratio,
        cost.startup_s,
        cost.fixed_s,
        how,
        cost.load,
    )


def _nearest(w: Workload, timed: Iterable[Workload], work) -> Workload:
    """The timed workload to scale ``w`` from: the same model (and options) if any, else the one
    with the most work per step."""
    timed = list(timed)
    same = [k for k in timed if (k.model, k.options) == (w.model, w.options)]
    return max(same or timed, key=lambda k: work(k).flops * k.batch_size)


def calibrated(
    workloads: Iterable[Workload],
    device: str,
    threads: int,
    concurrent: int,
    cache_dir: Path | None,
    *,
    budget_s: float = CALIBRATION_BUDGET_S,
    weights: Mapping[Workload, float] | None = None,
    on_progress: Callable[[str], None] | None = None,
    slow_s: float = SLOW_STEP_S,
    model_work: ModelWork | None = None,
) -> dict[Workload, StepCost]:
    """The step cost of each workload: from the cache, or timed now (and cached), within a budget
    of ``budget_s`` seconds of timing (heaviest workloads first, by ``weights``: their steps in the
    plan); the rest scaled by FLOPs (see the module docstring). ``on_progress`` gets a line before
    each timing; ``model_work`` counts FLOPs (shared with the FLOP budget, so models are built
    once per command)."""
    path = cache_dir / CALIBRATION_FILE if cache_dir else None
    cache: dict[str, Any] = {}
    if path and path.exists():
        try:
            cache = json.loads(path.read_text())
        except (OSError, ValueError):
            cache = {}  # a damaged cache is measured again
    out: dict[Workload, StepCost] = {}
    todo: list[Workload] = []
    load = load_average()
    cores = max(1, os.cpu_count() or 1)
    for w in dict.fromkeys(workloads):
        try:
            cost = StepCost(**cache[_key(w, device, threads, concurrent)])
        except (KeyError, TypeError):
            todo.append(w)
            continue
        if device == "cpu" and retime(cost, load, cores):
            todo.append(w)
        else:
            out[w] = cost
    work = (model_work or ModelWork()).of

    to_time, derived = share_head_timings(todo, work, known=out)
    weight = dict(weights or {})
    for w, (ref, _, _) in derived.items():
        weight[ref] = weight.get(ref, 0.0) + weight.get(w, 0.0)
    to_time.sort(key=lambda w: -weight.get(w, 0.0))
    end = time.monotonic() + budget_s
    pool: ProcessPoolExecutor | None = None
    try:
        for i, w in enumerate(to_time):
            if time.monotonic() >= end and (out or i > 0):
                break
            if on_progress:
                on_progress(
                    f"calibrating: timing {w.label()} on {device} ({i + 1} of {len(to_time)}; "
                    f"at most ~{budget_s:g} s in all, --no-calibrate skips this)"
                )
            if pool is None and concurrent > 1:
                pool = ProcessPoolExecutor(concurrent)
            deadline = time.time() + max(0.0, end - time.monotonic())
            timed = _measure_with(pool, w, device, threads, concurrent, slow_s, deadline)
            out[w] = dataclasses.replace(timed, load=load)
            cache[_key(w, device, threads, concurrent)] = asdict(out[w])
    finally:
        if pool is not None:
            pool.shutdown()
    measured = list(out)  # cached or timed now
    for w in to_time:
        if w not in out:
            ref = _nearest(w, measured, work)
            ratio = work(w).flops / work(ref).flops
            out[w] = scaled(
                out[ref],
                ratio,
                w.batch_size / ref.batch_size,
                f"not timed (calibration budget of {budget_s:g} s spent): scaled by FLOPs from "
                f"{ref.label()}; the next `plan` times it",
            )
    for w, (ref, share, ratio) in derived.items():
        how = f"from the {ref.num_classes}-class figure: the head is {100 * share:.1f}% of the work"
        out[w] = scaled(out[ref], ratio, 1.0, how)
    if todo and path is not None:
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

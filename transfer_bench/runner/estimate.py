"""Compute budget of a plan before anything trains: trainings, FLOPs, GPU- and CPU-hours.

FLOPs per training = 3 x forward FLOPs per sample (dense count: masks do not make dense kernels
cheaper) x samples seen, plus one forward per test sample per evaluation. Hours are FLOPs divided by
a stated sustained throughput, so they are a budget, not a promise.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from transfer_bench.config import PRUNE_AT_INIT, Suite
from transfer_bench.data.catalogue import get_entry
from transfer_bench.data.dataset import on_this_machine
from transfer_bench.devices import visible_gpus
from transfer_bench.errors import TransferBenchError
from transfer_bench.runner.calibrate import (
    CALIBRATION_BUDGET_S,
    Job,
    ModelWork,
    Workload,
    calibrated,
    evaluations,
    schedule,
    training_seconds,
)
from transfer_bench.runner.execute import is_complete
from transfer_bench.runner.executors import resolve_executor
from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import Run


@dataclass(frozen=True)
class RunEstimate:
    key: str
    trainings: int
    flops: float | None  # None when the dataset size is unknown (not loadable here)


def _trainings(suite: Suite, run: Run) -> int:
    if run.kind == "transfer":
        return len(run.levels)
    if run.kind == "stability":
        st = suite.stability
        return 2 * len(run.levels) * len(st.rewind_points) if st else 0
    spec = suite.search_for(run.config["dataset"]["name"])
    if spec.method in PRUNE_AT_INIT and not spec.train_levels:
        return 0
    return len(run.levels)


def scoring_steps(suite: Suite, run: Run, num_classes: int, batch_size: int) -> float:
    """Work a pruning-at-init search spends scoring, in training steps of its workload: SynFlow
    one forward/backward pass at batch 1 per round and density (``rounds`` x densities), SNIP one
    and GraSP about three over ``samples_per_class`` x classes images; magnitude and random none.
    A batch-1 pass costs within about 2x of a step for small networks (measured on a 2-core AMD
    EPYC: Conv-2 at 12x12 14 ms against a 17.9 ms step at batch 60, LeNet-300-100 6 ms against
    3.1 ms) and less for wide ones, where this overestimates. 0 for any other run."""
    if run.kind != "search":
        return 0.0
    spec = suite.search_for(run.config["dataset"]["name"])
    densities = len([lv for lv in run.levels if lv > 0])
    if spec.method == "synflow":
        return float(spec.rounds * densities if spec.rounds > 1 else 1)
    if spec.method in ("snip", "grasp"):
        passes = 1 if spec.method == "snip" else 3
        return passes * spec.samples_per_class * num_classes / max(1, batch_size)
    return 0.0


@dataclass(frozen=True)
class DatasetSize:
    """What ``plan`` shows of a dataset: sizes and classes, and how they are known."""

    name: str
    source: str
    train: int | None
    test: int | None
    classes: int | None
    known: (
        str  # "loaded", "catalogue" (the data is not here; sizes from the catalogue) or "unknown"
    )
    reason: str = ""  # why the data could not be loaded here


def dataset_size(ctx: Context, name: str, download: bool = False) -> DatasetSize:
    """Sizes of dataset ``name``: from the data if it loads here without a download (or with one,
    if ``download``), else from the catalogue."""
    spec = ctx.suite.datasets[name]
    suite = ctx.suite
    if download or on_this_machine(
        spec, suite.input, split_seed=suite.data_seed, cache_dir=ctx.cache_dir
    ):
        try:
            ds = ctx.dataset(name)
            return DatasetSize(
                name, spec.source, len(ds.y_train), len(ds.y_test), ds.num_classes, "loaded"
            )
        except TransferBenchError as e:
            reason = str(e)
    else:
        reason = (
            "not downloaded: plan sizes a hub dataset that is not on this machine from the "
            "catalogue (run downloads it; plan --strict loads it now)"
        )
    if not spec.source.startswith("catalog:"):
        return DatasetSize(name, spec.source, None, None, None, "unknown", reason)
    try:
        e = get_entry(spec.source.split(":", 1)[1])
    except TransferBenchError:
        return DatasetSize(name, spec.source, None, None, None, "unknown", reason)
    share = len(spec.classes) / e.num_classes if spec.classes else 1.0
    train = e.sizes.get(e.train_split, 0)
    test = e.sizes.get(e.test_split, 0) if e.test_split else int(train * spec.test_fraction)
    if not e.test_split:
        train -= test
    train, test = int(train * share), int(test * share)
    train = spec.train_size or min(train, spec.max_train or train)
    test = spec.test_size or min(test, spec.max_test or test)
    k = len(spec.classes) if spec.classes else e.num_classes
    return DatasetSize(name, spec.source, train, test, k, "catalogue", reason)


#: dataset name -> its sizes, found once per command (a dataset that cannot be loaded is not
#: tried again: offline, each try of the hub costs about 25 s)
Sizes = Mapping[str, DatasetSize]


def _sizes(ctx: Context, name: str, known: Sizes | None = None) -> tuple[int, int, int] | None:
    """(train size, test size, classes): from the data if it loads here, else the catalogue."""
    d = known[name] if known and name in known else dataset_size(ctx, name)
    if d.train is None or d.test is None or d.classes is None:
        return None
    return d.train, d.test, d.classes


def estimate_runs(
    ctx: Context,
    runs: list[Run],
    sizes: Sizes | None = None,
    model_work: ModelWork | None = None,
) -> list[RunEstimate]:
    """Trainings and FLOPs of each run (``sizes``, ``model_work``: found once per command)."""
    suite = ctx.suite
    work = model_work or ModelWork()
    out = []
    for run in runs:
        name = (
            run.config["dataset"]["name"]
            if "dataset" in run.config
            else run.config["target"]["name"]
        )
        n = _trainings(suite, run)
        found = _sizes(ctx, name, sizes)
        if found is None:
            out.append(RunEstimate(run.key, n, None))
            continue
        n_train, n_test, num_classes = found
        fwd = work(
            suite.model.name,
            suite.model.options,
            num_classes,
            suite.input.channels,
            suite.input.size,
        ).flops
        spe = math.ceil(n_train / suite.train.batch_size)
        iters = suite.train.total_iterations(spe)
        samples = min(iters * suite.train.batch_size, iters * n_train / spe)
        evals = max(1, math.ceil(iters / spe) // suite.train.eval_every)
        per_training = 3 * fwd * samples + fwd * n_test * evals
        out.append(RunEstimate(run.key, n, n * per_training))
    return out


def gpu_hours(estimates: list[RunEstimate], gpu_tflops: float) -> float:
    """The FLOP budget of the counted runs in hours of one GPU at ``gpu_tflops`` sustained."""
    return sum(e.flops for e in estimates if e.flops is not None) / (gpu_tflops * 1e12) / 3600


def summarize(estimates: list[RunEstimate], gpu_tflops: float, cpu_gflops: float) -> str:
    known = [e.flops for e in estimates if e.flops is not None]
    total = sum(known)
    trainings = sum(e.trainings for e in estimates)
    unknown = sum(1 for e in estimates if e.flops is None)
    text = (
        f"{len(estimates)} runs, {trainings} trainings, {total / 1e15:.3g} PFLOP "
        f"= {total / (gpu_tflops * 1e12) / 3600:.3g} GPU-hours at {gpu_tflops:g} TFLOP/s sustained, "
        f"{total / (cpu_gflops * 1e9) / 3600:.3g} CPU-hours at {cpu_gflops:g} GFLOP/s"
    )
    if unknown:
        text += (
            f" ({unknown} runs not counted: their dataset is not available here; the reasons are "
            "listed with the datasets above)"
        )
    return text


# ------------------------------------------------------------------------------- wall time


@dataclass(frozen=True)
class WallEstimate:
    """Expected wall seconds of the runs still to do, with the settings and costs behind it."""

    seconds: float
    executor: str
    workers: int
    threads: int
    costs: dict  # Workload -> StepCost
    runs: int
    unknown: int  # runs whose dataset is not available here (not counted)
    device: str = "cpu"
    seconds_timing: float = 0.0  # spent timing steps now (0 when every figure was cached)

    def describe(self) -> list[str]:
        scaled = sum(1 for c in self.costs.values() if c.how)
        basis = "from steps timed on this machine"
        if scaled:
            basis += f"; {scaled} of {len(self.costs)} figures extrapolated, as said below"
        lines = [
            f"expected wall time: {_duration(self.seconds)} for {self.runs} runs to do with "
            f"--executor {self.executor}"
            + (f" --workers {self.workers}" if self.executor == "local" else "")
            + f" on {self.device} ({self.threads} thread(s) per run; {basis})"
        ]
        cores = max(1, os.cpu_count() or 1)
        for w, c in self.costs.items():
            busy = (
                f"timed while the machine was busy (load {c.load:.1f} on {cores} cores), so "
                "likely too slow; a `plan` on a quieter machine times it again"
                if self.device == "cpu" and c.timed_busy(cores)
                else ""
            )
            notes = "; ".join(n for n in (c.how, busy) if n)
            lines.append(
                f"  {w.label()}: {_ms(c.step_s)} per step, "
                f"{1e6 * c.eval_s_per_image:.0f} us per test image"
                + (f" ({notes})" if notes else "")
            )
        if self.unknown:
            lines.append(
                f"  ({self.unknown} runs not counted: their dataset is not available here)"
            )
        return lines


def _ms(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 10 else f"{1e3 * seconds:.1f} ms"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.0f} days"


def _workload(suite: Suite, run: Run, num_classes: int):
    if run.kind == "transfer":
        opt = run.config["optimizer"]
    else:
        key = suite.search_optimizer(run.config["dataset"]["name"])
        opt = suite.optimizers[key].model_dump(mode="json")
    opt = tuple(
        sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in opt.items() if k != "key")
    )
    return Workload(
        model=suite.model.name,
        options=tuple(sorted(suite.model.options.items())),
        num_classes=num_classes,
        channels=suite.input.channels,
        size=suite.input.size,
        batch_size=suite.train.batch_size,
        optimizer=opt,
        augment=suite.train.augment,
        padding=suite.train.padding,
        precision=suite.train.precision,
        channels_last=suite.train.channels_last,
    )


def wall_estimate(
    ctx: Context,
    runs: list[Run],
    executor: str,
    workers: int | None,
    threads: int | None = None,
    runs_per_gpu: int = 1,
    *,
    sizes: Sizes | None = None,
    budget_s: float = CALIBRATION_BUDGET_S,
    on_progress: Callable[[str], None] | None = None,
    model_work: ModelWork | None = None,
) -> WallEstimate:
    """Expected wall time of ``runs`` (those not complete) on this machine with this executor.

    Parallel slots are CPU cores, or on GPUs the GPU slots (GPUs x ``runs_per_gpu`` for the pool,
    one GPU per run for Ray), as the executors use them. Steps are timed within ``budget_s``
    seconds (``calibrate.calibrated``), heaviest workloads first."""
    suite = ctx.suite
    cores = max(1, os.cpu_count() or 1)
    todo = [r for r in runs if not is_complete(r, ctx.suite_dir)]
    gpus = len(visible_gpus()) if ctx.device.type == "cuda" else 0
    executor = resolve_executor(executor, ctx.device.type, len(todo), cores, gpus=gpus)
    capacity = gpus * runs_per_gpu if gpus else cores
    slots = 1
    if executor == "local":
        slots = max(1, min(workers or capacity, capacity if gpus else 10**9, max(1, len(todo))))
        threads = max(1, cores // slots)
    elif executor == "ray":
        slots = max(1, workers or (gpus or cores))
        threads = threads or 1
    else:
        import torch

        threads = threads or torch.get_num_threads()
    concurrent = slots if ctx.device.type == "cpu" and executor != "sequential" else 1
    plans = []
    unknown = 0
    for run in todo:
        name = (
            run.config["dataset"]["name"]
            if "dataset" in run.config
            else run.config["target"]["name"]
        )
        found = _sizes(ctx, name, sizes)
        if found is None:
            unknown += 1
            continue
        n_train, n_test, k = found
        spe = math.ceil(n_train / suite.train.batch_size)
        steps = suite.train.total_iterations(spe)
        plans.append((run, _workload(suite, run, k), spe, steps, n_test))
    weights: dict = {}
    for run, w, _, steps, _ in plans:
        weights[w] = weights.get(w, 0.0) + _trainings(suite, run) * steps
    t0 = time.monotonic()
    costs = calibrated(
        [w for _, w, _, _, _ in plans],
        ctx.device.type,
        threads,
        concurrent,
        ctx.cache_dir,
        budget_s=budget_s,
        weights=weights,
        on_progress=on_progress,
        model_work=model_work,
    )
    timing = time.monotonic() - t0
    jobs = []
    for run, w, spe, steps, n_test in plans:
        one = training_seconds(
            costs[w], steps, evaluations(steps, spe, suite.train.eval_every), n_test
        )
        scoring = scoring_steps(suite, run, w.num_classes, w.batch_size) * costs[w].step_s
        jobs.append(Job(run.key, run.depends_on, _trainings(suite, run) * one + scoring))
    startup = max((c.startup_s for c in costs.values()), default=0.0) if concurrent > 1 else 0.0
    seconds = schedule(jobs, slots) + startup
    return WallEstimate(
        seconds,
        executor,
        slots,
        threads,
        costs,
        len(jobs),
        unknown,
        device=str(ctx.device),
        seconds_timing=timing,
    )


#: a CPU estimate beyond this many seconds marks a suite sized for GPUs
GPU_SIZED_S = 24 * 3600


def device_notes(
    wanted: str | None,
    wall: WallEstimate | None,
    estimates: list[RunEstimate],
    gpu_tflops: float,
) -> list[str]:
    """What the CPU estimate does not say: ``wanted`` (the suite's or --device's device when it
    is not on this machine) gets the CPU caveat and the GPU-hours figure; a CPU estimate beyond a
    day gets the GPU-hours figure too."""
    hours = gpu_hours(estimates, gpu_tflops)
    budget = (
        f"the FLOP budget above says {hours:,.0f} GPU-hours at {gpu_tflops:g} TFLOP/s sustained "
        "(--gpu-tflops)"
    )
    if wanted:
        cpu = (
            "above was timed on this CPU and does not describe" if wall else "is not estimated for"
        )
        return [
            f"note: device {wanted} is not on this machine: the wall time {cpu} {wanted}; for "
            f"{wanted}, {budget}; `transfer-bench plan` where it is times its steps there"
        ]
    if wall is not None and wall.device == "cpu" and wall.seconds > GPU_SIZED_S:
        return [
            f"note: {_duration(wall.seconds)} on this CPU: this suite is sized for GPUs; {budget}; "
            "`transfer-bench plan` on a GPU machine times its steps there"
        ]
    return []

"""Compute budget of a plan before anything trains: trainings, FLOPs, GPU- and CPU-hours.

FLOPs per training = 3 x forward FLOPs per sample (dense count: masks do not make dense kernels
cheaper) x samples seen, plus one forward per test sample per evaluation. Hours are FLOPs divided by
a stated sustained throughput, so they are a budget, not a promise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from transfer_bench.config import PRUNE_AT_INIT, Suite
from transfer_bench.errors import TransferBenchError
from transfer_bench.models import build_model, count_flops
from transfer_bench.runner.context import Context
from transfer_bench.runner.plan import Run


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


def dataset_size(ctx: Context, name: str) -> DatasetSize:
    """Sizes of dataset ``name``: from the data if it loads here, else from the catalogue."""
    spec = ctx.suite.datasets[name]
    try:
        ds = ctx.dataset(name)
        return DatasetSize(
            name, spec.source, len(ds.y_train), len(ds.y_test), ds.num_classes, "loaded"
        )
    except TransferBenchError as e:
        reason = str(e)
    if not spec.source.startswith("catalog:"):
        return DatasetSize(name, spec.source, None, None, None, "unknown", reason)
    from transfer_bench.data.catalogue import get_entry

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


def _sizes(ctx: Context, name: str) -> tuple[int, int, int] | None:
    """(train size, test size, classes): from the data if it loads here, else the catalogue."""
    d = dataset_size(ctx, name)
    if d.train is None or d.test is None or d.classes is None:
        return None
    return d.train, d.test, d.classes


def estimate_runs(ctx: Context, runs: list[Run]) -> list[RunEstimate]:
    suite = ctx.suite
    flops_per_sample: dict[int, float] = {}
    out = []
    for run in runs:
        name = (
            run.config["dataset"]["name"]
            if "dataset" in run.config
            else run.config["target"]["name"]
        )
        n = _trainings(suite, run)
        sizes = _sizes(ctx, name)
        if sizes is None:
            out.append(RunEstimate(run.key, n, None))
            continue
        n_train, n_test, num_classes = sizes
        if num_classes not in flops_per_sample:
            model = build_model(
                suite.model.name,
                num_classes=num_classes,
                in_channels=suite.input.channels,
                image_size=suite.input.size,
                seed=0,
                options=dict(suite.model.options),
            )
            flops_per_sample[num_classes] = float(
                count_flops(model, (suite.input.channels, suite.input.size, suite.input.size))
            )
        fwd = flops_per_sample[num_classes]
        spe = math.ceil(n_train / suite.train.batch_size)
        iters = suite.train.total_iterations(spe)
        samples = min(iters * suite.train.batch_size, iters * n_train / spe)
        evals = max(1, math.ceil(iters / spe) // suite.train.eval_every)
        per_training = 3 * fwd * samples + fwd * n_test * evals
        out.append(RunEstimate(run.key, n, n * per_training))
    return out


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

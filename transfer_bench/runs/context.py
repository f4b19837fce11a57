"""Per-invocation execution context: suite, paths, device and memoized datasets."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from transfer_bench.config import Suite
from transfer_bench.data import ImageDataset, load_dataset, normalize
from transfer_bench.errors import TransferBenchError
from transfer_bench.training import TrainData

Progress = Callable[[str], None]


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


CHECKPOINT_ENV = "TRANSFER_BENCH_CHECKPOINT_SECONDS"
DEFAULT_CHECKPOINT_SECONDS = 30.0


def checkpoint_seconds_from_env() -> float:
    """Seconds between mid-training checkpoints: ``$TRANSFER_BENCH_CHECKPOINT_SECONDS`` (0 = every
    epoch) or 30. An environment variable so that pool and Ray workers see the same value."""
    raw = os.environ.get(CHECKPOINT_ENV, "")
    if not raw:
        return DEFAULT_CHECKPOINT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise TransferBenchError(
            f"{CHECKPOINT_ENV}={raw!r}: give seconds between checkpoints (0 = every epoch)"
        )
    return value


@dataclass
class Context:
    """What a run needs besides its own config; datasets are loaded once per process.

    ``checkpoint_seconds``: at most one mid-training checkpoint per that many seconds (the latest
    epoch's state is also written when a training is interrupted); it does not change results."""

    suite: Suite
    suite_dir: Path
    device: torch.device
    cache_dir: Path | None
    suite_hash: str = ""
    checkpoint_seconds: float = field(default_factory=checkpoint_seconds_from_env)
    _datasets: dict[str, ImageDataset] = field(default_factory=dict, repr=False)
    _train_data: dict[str, TrainData] = field(default_factory=dict, repr=False)

    def dataset(self, name: str) -> ImageDataset:
        if name not in self._datasets:
            self._datasets[name] = load_dataset(
                self.suite.datasets[name],
                self.suite.input,
                split_seed=self.suite.data_seed,
                cache_dir=self.cache_dir,
            )
        return self._datasets[name]

    def train_data(self, name: str) -> TrainData:
        if name not in self._train_data:
            ds = self.dataset(name)
            dev = self.device
            self._train_data[name] = TrainData(
                x_train=normalize(ds.x_train, ds.mean, ds.std).to(dev),
                y_train=ds.y_train.to(dev),
                x_test=normalize(ds.x_test, ds.mean, ds.std).to(dev),
                y_test=ds.y_test.to(dev),
            )
        return self._train_data[name]

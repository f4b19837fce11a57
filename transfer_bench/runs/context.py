"""Per-invocation execution context: suite, paths, device and the datasets in use."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from transfer_bench.config import Suite
from transfer_bench.data import ImageDataset, load_dataset
from transfer_bench.devices import resolve_device
from transfer_bench.errors import TicketError, TransferBenchError
from transfer_bench.runs import external
from transfer_bench.training import TrainData

Progress = Callable[[str], None]

__all__ = ["Context", "Progress", "checkpoint_seconds_from_env", "resolve_device"]


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


#: datasets a process keeps loaded at once (a search and a transfer each need one); more are
#: loaded again from the dataset cache when needed
RESIDENT_DATASETS = 2


@dataclass
class Context:
    """What a run needs besides its own config; datasets are loaded once and kept compact.

    Each dataset is held once, as uint8 on the training device (``train_data``: on the CPU the
    loaded tensors themselves; on a GPU a copy, after which the CPU copy is dropped), and at most
    ``resident`` of them at a time, least recently used first out. So a process needs about the
    uint8 size of the two datasets it works on (3,072 bytes per 32x32x3 image), not a float32
    copy of every dataset the suite names.

    ``checkpoint_seconds``: at most one mid-training checkpoint per that many seconds (the latest
    epoch's state is also written when a training is interrupted); it does not change results."""

    suite: Suite
    suite_dir: Path
    device: torch.device
    cache_dir: Path | None
    suite_hash: str = ""
    checkpoint_seconds: float = field(default_factory=checkpoint_seconds_from_env)
    resident: int = RESIDENT_DATASETS
    _datasets: OrderedDict[str, ImageDataset] = field(default_factory=OrderedDict, repr=False)
    _train_data: dict[str, TrainData] = field(default_factory=dict, repr=False)
    _external: dict[str, external.ExternalSource] | None = field(default=None, repr=False)
    _tickets: dict[tuple[str, int], object] = field(default_factory=dict, repr=False)

    def external_source(self, name: str) -> external.ExternalSource:
        """The suite's ticket ``name`` (``tickets:``), resolved once per process."""
        if self._external is None:
            self._external = external.resolve(self.suite)
        return self._external[name]

    def external_ticket(self, name: str, level: int, sha256: str):
        """``(file, Ticket)`` of ticket ``name`` at ``level``, loaded once per process; the file
        must still have the digest the run was planned with."""
        f = self.external_source(name).at(level)
        if f.sha256 != sha256:
            raise TicketError(
                f"tickets.{name}: {f.shown} changed since the run was planned (sha256 "
                f"{f.sha256[:12]}..., planned {sha256[:12]}...); run the suite again to plan it "
                "anew"
            )
        key = (name, level)
        if key not in self._tickets:
            self._tickets[key] = external.load(self.suite, self.external_source(name), f)
        return f, self._tickets[key]

    def dataset(self, name: str) -> ImageDataset:
        if name in self._datasets:
            self._datasets.move_to_end(name)
            return self._datasets[name]
        ds = load_dataset(
            self.suite.datasets[name],
            self.suite.input,
            split_seed=self.suite.data_seed,
            cache_dir=self.cache_dir,
        )
        self._datasets[name] = ds
        while len(self._datasets) > max(1, self.resident):
            old, _ = self._datasets.popitem(last=False)
            self._train_data.pop(old, None)
        return ds

    def train_data(self, name: str) -> TrainData:
        ds = self.dataset(name)  # also marks it recently used
        if name not in self._train_data:
            dev = self.device
            data = TrainData(
                x_train=ds.x_train.to(dev),
                y_train=ds.y_train.to(dev),
                x_test=ds.x_test.to(dev),
                y_test=ds.y_test.to(dev),
                mean=tuple(ds.mean),
                std=tuple(ds.std),
            )
            self._train_data[name] = data
            if dev.type != "cpu":  # one copy: the dataset's tensors become the device's
                self._datasets[name] = replace(
                    ds,
                    x_train=data.x_train,
                    y_train=data.y_train,
                    x_test=data.x_test,
                    y_test=data.y_test,
                )
        return self._train_data[name]

"""How much two masks overlap: bit counts, Jaccard index and normalized Hamming distance, and
what independent random masks of the same densities would give.

Pure measures on bool masks (tensors, numpy arrays or per-layer dicts), below both the ticket
tools (``tickets.diff``) and the analysis of a results folder (``analysis.masks``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from transfer_bench.errors import ConfigError, TicketError

Masks = Mapping[str, torch.Tensor]
MaskLike = torch.Tensor | np.ndarray | Masks

METRICS: tuple[str, ...] = ("jaccard", "hamming")
METRIC_LABELS: Mapping[str, str] = {
    "jaccard": "Jaccard index",
    "hamming": "normalized Hamming distance",
}


@dataclass(frozen=True)
class Counts:
    """Bit counts of a pair of masks: both kept, either kept, equal bits, total bits, kept in each."""

    both: int
    either: int
    equal: int
    total: int
    kept_a: int
    kept_b: int

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.both + other.both,
            self.either + other.either,
            self.equal + other.equal,
            self.total + other.total,
            self.kept_a + other.kept_a,
            self.kept_b + other.kept_b,
        )

    def value(self, metric: str) -> float:
        """The ``metric`` ("jaccard" or "hamming") of these counts."""
        if metric == "jaccard":
            return self.both / self.either if self.either else 1.0
        return 1.0 - self.equal / self.total if self.total else 0.0

    def expected_random(self, metric: str) -> float:
        """The metric expected for independent random masks of the same two densities."""
        if not self.total:
            return math.nan
        return expected_random(metric, self.kept_a / self.total, self.kept_b / self.total)


ZERO = Counts(0, 0, 0, 0, 0, 0)


def check_metric(metric: str) -> str:
    """``metric`` if known, else a ConfigError listing the known ones."""
    if metric not in METRICS:
        raise ConfigError(
            f"mask overlap metric: unknown metric {metric!r}; use one of {', '.join(METRICS)}"
        )
    return metric


def expected_random(metric: str, p: float, q: float) -> float:
    """Expected Jaccard / Hamming of two independent random masks with densities ``p`` and ``q``."""
    check_metric(metric)
    if metric == "hamming":
        return p + q - 2 * p * q
    union = p + q - p * q
    return p * q / union if union > 0 else 1.0


def _bool_tensor(x: torch.Tensor | np.ndarray, where: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dtype != torch.bool:
        raise TicketError(
            f"{where}: mask has dtype {t.dtype}; masks are bool tensors (True = kept)"
        )
    return t


def counts(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, where: str = "mask"
) -> Counts:
    """Bit counts of two bool masks of the same shape."""
    ta, tb = _bool_tensor(a, where), _bool_tensor(b, where)
    if ta.shape != tb.shape:
        raise TicketError(
            f"{where}: mask shapes {list(ta.shape)} and {list(tb.shape)} differ; "
            "compare tickets of the same architecture"
        )
    ta, tb = ta.reshape(-1).cpu(), tb.reshape(-1).cpu()
    both = int(torch.count_nonzero(ta & tb))
    kept_a, kept_b = int(torch.count_nonzero(ta)), int(torch.count_nonzero(tb))
    either = kept_a + kept_b - both
    total = ta.numel()
    return Counts(both, either, total - (either - both), total, kept_a, kept_b)


def pooled_counts(a: MaskLike, b: MaskLike) -> Counts:
    """Counts of two masks or two dicts of masks (pooled over layers; same layers required)."""
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise TicketError("mask overlap: compare a mask with a mask, or a dict with a dict")
    if not isinstance(a, Mapping):
        return counts(a, b)  # type: ignore[arg-type]
    assert isinstance(b, Mapping)
    if set(a) != set(b):
        diff = sorted(set(a) ^ set(b))
        raise TicketError(
            f"mask overlap: layer {diff[0]!r} is in only one of the two tickets; "
            "compare tickets of the same architecture"
        )
    total = ZERO
    for name in a:
        total = total + counts(a[name], b[name], f"layer {name!r}")
    return total


def jaccard(a: MaskLike, b: MaskLike) -> float:
    """Jaccard index of the kept weights (dicts: pooled over all layers); 1.0 for two empty masks."""
    return pooled_counts(a, b).value("jaccard")


def hamming(a: MaskLike, b: MaskLike) -> float:
    """Normalized Hamming distance, ``1 - fraction of equal bits`` (dicts: pooled over layers)."""
    return pooled_counts(a, b).value("hamming")

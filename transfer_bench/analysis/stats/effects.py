"""Effect sizes and confidence intervals of a treatment sample vs a baseline sample.

Effect sizes: Hedges' g, Cliff's delta and the probability of improvement (rliable's P(A > B)).
Intervals: ``bootstrap_ci``, the BCa bootstrap CI (``scipy.stats.bootstrap``, seeded, with a
percentile fallback for degenerate data) of one mean or of a difference of two means. These say
how large a difference is and how sure we are of it; ``significance`` says whether it is there.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from transfer_bench.analysis.stats.samples import Samples, _quiet

MIN_BOOTSTRAP_N = 3

# scipy >= 1.15 takes ``rng``; older releases (the project allows >= 1.11) take ``random_state``.
_RNG_KW = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"


def hedges_g(a: Samples, b: Samples) -> float:
    """Hedges' g of ``a`` minus ``b``: Cohen's d with the pooled SD, times J = 1 - 3 / (4 df - 1).

    ``df = n_a + n_b - 2``, so J = 1 - 3 / (4 (n_a + n_b) - 9) (Hedges & Olkin 1985 approximation).
    NaN when either side has fewer than 2 values or the pooled SD is zero.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    n1, n2 = x.size, y.size
    if n1 < 2 or n2 < 2:
        return math.nan
    if np.ptp(x) == 0 and np.ptp(y) == 0:  # exact check; float noise would give a huge g
        return math.nan
    df = n1 + n2 - 2
    pooled = math.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / df)
    if pooled == 0:
        return math.nan
    return float((x.mean() - y.mean()) / pooled * (1.0 - 3.0 / (4.0 * df - 1.0)))


def probability_of_improvement(a: Samples, b: Samples) -> float:
    """P(A > B) + 0.5 P(A = B) over all pairs: the Mann-Whitney U of ``a`` divided by n_a n_b.

    U comes from ``scipy.stats.mannwhitneyu`` (as in rliable's ``probability_of_improvement``).
    NaN when a side is empty.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        return math.nan
    u = _quiet(sps.mannwhitneyu, x, y, alternative="two-sided", method="asymptotic").statistic
    return float(u) / (x.size * y.size)


def cliffs_delta(a: Samples, b: Samples) -> float:
    """Cliff's delta (#(a > b) - #(a < b)) / (n_a n_b) = 2 P(improvement) - 1; NaN if a side is empty."""
    return 2.0 * probability_of_improvement(a, b) - 1.0


@dataclass(frozen=True)
class Interval:
    """A confidence interval; ``method`` is "BCa" or "percentile" ("" when none was computed)."""

    low: float
    high: float
    method: str = ""
    note: str = ""


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def bootstrap_ci(
    *samples: Samples,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> Interval:
    """Bootstrap CI of the mean of one sample, or of mean(a) - mean(b) for two independent samples.

    ``scipy.stats.bootstrap`` with ``method='BCa'`` and a generator seeded with ``seed`` (so the same
    inputs give the same interval). BCa is undefined for degenerate data (e.g. all values equal); the
    percentile interval is used instead, with a note. Samples with fewer than 3 values, or
    ``n_resamples == 0``, give NaN (the former with a note). For paired data pass the per-seed
    differences as one sample.
    """
    data = tuple(np.asarray(s, dtype=float) for s in samples)
    if len(data) not in (1, 2):
        raise ValueError("bootstrap_ci takes one or two samples")
    sizes = [d.size for d in data]
    if min(sizes) < MIN_BOOTSTRAP_N:
        n = "/".join(str(s) for s in sizes)
        return Interval(math.nan, math.nan, "", f"n < {MIN_BOOTSTRAP_N} (n = {n}): no bootstrap CI")
    if n_resamples <= 0:
        return Interval(math.nan, math.nan)
    statistic = np.mean if len(data) == 1 else _mean_diff
    note = ""
    for method in ("BCa", "percentile"):
        try:
            res = _quiet(
                sps.bootstrap,
                data,
                statistic,
                n_resamples=n_resamples,
                confidence_level=confidence_level,
                method=method,
                vectorized=True,
                **{_RNG_KW: np.random.default_rng(seed)},
            )
        except (ValueError, FloatingPointError, ZeroDivisionError) as e:
            note = f"BCa bootstrap failed ({e}); percentile CI used"
            continue
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return Interval(low, high, method, note if method != "BCa" else "")
        note = "BCa bootstrap undefined (degenerate data); percentile CI used"
    return Interval(math.nan, math.nan, "", "bootstrap CI could not be computed")

"""Two-sample significance tests: Welch, Mann-Whitney U, paired t and Wilcoxon signed-rank.

Each wraps its scipy function and returns NaN with a ``note`` (never an exception, never an
infinite statistic) for the cases it cannot test: too few seeds, no variance, unaligned pairs.
``TESTS`` names the tests a table may use as its primary test; ``UNPAIRED_FALLBACK`` says which
unpaired test stands in for a paired one when the seeds of the two sides differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from transfer_bench.analysis.stats.samples import Samples, _quiet

TESTS: tuple[str, ...] = ("welch", "mannwhitney", "paired_t", "wilcoxon")

# A paired test falls back to its unpaired counterpart when the seeds of the two sides differ.
UNPAIRED_FALLBACK: dict[str, str] = {"paired_t": "welch", "wilcoxon": "mannwhitney"}


@dataclass(frozen=True)
class WelchResult:
    """Test statistic and two-sided p-value; ``note`` says why they are NaN (empty when not)."""

    t: float
    p: float
    note: str = ""


@dataclass(frozen=True)
class TestResult:
    """Statistic and two-sided p-value of one test; ``note`` says why they are NaN (empty when not)."""

    statistic: float
    p: float
    note: str = ""


def welch(a: Samples, b: Samples) -> WelchResult:
    """Two-sided Welch t-test of ``a`` vs ``b`` (``scipy.stats.ttest_ind(equal_var=False)``).

    Returns NaN with a ``note`` instead of a meaningless or infinite statistic when either sample has
    fewer than 2 values or both have zero variance.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        return WelchResult(math.nan, math.nan, f"fewer than 2 seeds (n = {x.size}/{y.size})")
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return WelchResult(math.nan, math.nan, "zero variance on both sides")
    # scipy flags an exactly constant sample as "catastrophic cancellation"; one constant side
    # is a valid Welch case, so that note would only confuse the report's warning list.
    res = _quiet(sps.ttest_ind, x, y, equal_var=False)
    return WelchResult(float(res.statistic), float(res.pvalue))


def mann_whitney(a: Samples, b: Samples) -> TestResult:
    """Two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``); U belongs to ``a``.

    NaN with a note when either sample has fewer than 2 values.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.size < 2 or y.size < 2:
        return TestResult(math.nan, math.nan, f"fewer than 2 seeds (n = {x.size}/{y.size})")
    res = _quiet(sps.mannwhitneyu, x, y, alternative="two-sided")
    return TestResult(float(res.statistic), float(res.pvalue))


def _paired_guard(x: np.ndarray, y: np.ndarray) -> str:
    if x.shape != y.shape:
        return f"paired samples differ in length ({x.size}/{y.size})"
    if x.size < 2:
        return f"fewer than 2 pairs (n = {x.size})"
    return ""


def paired_t(a: Samples, b: Samples) -> TestResult:
    """Two-sided paired t-test of aligned samples (``scipy.stats.ttest_rel``).

    NaN with a note for fewer than 2 pairs or zero variance of the differences (where scipy would
    return an infinite t and p = 0 for a constant non-zero shift).
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if note := _paired_guard(x, y):
        return TestResult(math.nan, math.nan, note)
    if np.ptp(x - y) == 0:
        return TestResult(math.nan, math.nan, "paired differences have zero variance")
    res = _quiet(sps.ttest_rel, x, y)
    return TestResult(float(res.statistic), float(res.pvalue))


def wilcoxon_signed_rank(a: Samples, b: Samples) -> TestResult:
    """Two-sided Wilcoxon signed-rank test of aligned samples (``scipy.stats.wilcoxon``).

    scipy's default ``zero_method='wilcox'`` drops zero differences; when all differences are zero
    the test is undefined and NaN is returned with a note.
    """
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if note := _paired_guard(x, y):
        return TestResult(math.nan, math.nan, note)
    if np.all(x - y == 0):
        return TestResult(math.nan, math.nan, "all paired differences are zero; Wilcoxon undefined")
    res = _quiet(sps.wilcoxon, x, y)
    return TestResult(float(res.statistic), float(res.pvalue))

"""Statistical power of the toolkit's comparisons: minimal detectable effects and seeds needed.

A "not significant" cell says little unless it also says how large a difference the test could
have found. The *minimal detectable effect* (MDE) is the smallest true difference that the cell's
test detects with the requested power (80% by default) at its level, given the observed spread and
seed counts; it is found by root finding on the test's power function, which is computed exactly,
not by a normal approximation:

- paired t-test (and one-sample t): a noncentral t distribution (noncentrality ``delta / se``,
  ``n - 1`` df), as in ``statsmodels``' ``TTestPower``;
- Welch's t-test: the power averaged over the sampling distributions of both sample variances
  (a 64 x 64 quantile grid of their chi-square laws), because the test's own standard error and
  Welch-Satterthwaite df are random; with few seeds this is several points of power below the
  noncentral-t shortcut that plugs in the true variances (0.74 instead of 0.80 at 5 vs 5 seeds).

Within a table corrected for multiple comparisons the per-cell level is the Bonferroni level
``alpha / m``: Holm's first (strictest) step, so the MDE is an upper bound on what the corrected
test can detect in any cell. Rank tests (Mann-Whitney, Wilcoxon) get the MDE of their t-test
counterpart (their efficiency relative to it is about 0.95 for normal data), except when their
smallest attainable p-value exceeds the level: then nothing is detectable and the MDE is infinite.
Observed standard deviations stand in for the true ones, so the MDE is an estimate, not a bound.

A metric has a range: two accuracies cannot differ by more than 100 points (``metric_span``). An
MDE beyond that span says only that no difference the metric allows would be detected (typical of
2 seeds, where the paired t-test has 1 degree of freedom), so ``mde(..., span=...)`` returns
infinity there, like a rank test that cannot reach its level: "not estimable with these seeds".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize
from scipy import stats as sps

DEFAULT_POWER = 0.8
MAX_SEEDS = 1000
_GRID = 64  # quantiles per sample variance in the Welch power integral


@dataclass(frozen=True)
class Design:
    """What a test's power depends on besides the true difference.

    ``paired``: a one-sample t-test on ``n_a`` per-seed differences with standard deviation
    ``sd_diff``; otherwise Welch's test of two groups (``sd_a``/``n_a`` vs ``sd_b``/``n_b``).
    """

    sd_a: float
    sd_b: float
    n_a: int
    n_b: int
    paired: bool = False
    sd_diff: float = math.nan

    def with_seeds(self, n: int) -> Design:
        """The same spread with ``n`` seeds per arm."""
        return replace(self, n_a=n, n_b=n)

    def se(self) -> float:
        """Standard error of the estimated difference (NaN with fewer than 2 seeds per arm)."""
        if self.paired:
            ok = self.n_a >= 2 and math.isfinite(self.sd_diff)
            return self.sd_diff / math.sqrt(self.n_a) if ok else math.nan
        ok = self.n_a >= 2 and self.n_b >= 2 and math.isfinite(self.sd_a + self.sd_b)
        return math.sqrt(self.sd_a**2 / self.n_a + self.sd_b**2 / self.n_b) if ok else math.nan

    def power(self, delta: float, alpha: float, sides: int = 2) -> float:
        """Probability that the test rejects at level ``alpha`` when the true difference is
        ``delta`` (``sides``: 2 for a two-sided test, 1 for a one-sided one in its direction)."""
        se = self.se()
        if not (se > 0 and 0 < alpha < 1):
            return math.nan
        if self.paired:
            return _nct_power(abs(delta) / se, self.n_a - 1, alpha, sides)
        return _welch_power(abs(delta), self, alpha, sides)


def _nct_power(nc: float, df: float, alpha: float, sides: int) -> float:
    crit = sps.t.ppf(1 - alpha / sides, df)
    power = float(sps.nct.sf(crit, df, nc))
    if sides == 2:
        # the wrong-sign tail; scipy returns NaN where it underflows for large noncentrality
        wrong = float(sps.nct.cdf(-crit, df, nc))
        power += wrong if math.isfinite(wrong) else 0.0
    return power


def _welch_power(delta: float, d: Design, alpha: float, sides: int) -> float:
    """Welch power: given both sample variances the test's SE and df are fixed and the mean
    difference is normal, so the power is a normal probability averaged over the variances."""
    q = (np.arange(_GRID) + 0.5) / _GRID
    va = d.sd_a**2 * sps.chi2.ppf(q, d.n_a - 1) / (d.n_a - 1) / d.n_a
    vb = d.sd_b**2 * sps.chi2.ppf(q, d.n_b - 1) / (d.n_b - 1) / d.n_b
    va, vb = va[:, None], vb[None, :]
    total = va + vb
    with np.errstate(divide="ignore", invalid="ignore"):
        df = total**2 / (va**2 / (d.n_a - 1) + vb**2 / (d.n_b - 1))
    df = np.where(np.isfinite(df), df, d.n_a + d.n_b - 2)
    reject_at = sps.t.ppf(1 - alpha / sides, df) * np.sqrt(total)
    se = d.se()
    power = sps.norm.cdf((delta - reject_at) / se)
    if sides == 2:
        power = power + sps.norm.cdf((-delta - reject_at) / se)
    return float(power.mean())


def min_rank_p(test: str, n_a: int, n_b: int, sides: int = 2) -> float:
    """Smallest p-value an exact rank test can return with these seed counts (0 for others)."""
    if test == "mannwhitney" and n_a > 0 and n_b > 0:
        return min(1.0, sides / math.comb(n_a + n_b, n_a))
    if test == "wilcoxon" and n_a > 0:
        return min(1.0, sides / 2**n_a)
    return 0.0


def metric_span(metric: str) -> float | None:
    """The largest difference ``metric`` allows, in its own unit: 1.0 for accuracies (fractions,
    so 100 points); None for metrics without a fixed range."""
    return 1.0 if str(metric).endswith("accuracy") else None


def mde(
    design: Design,
    alpha: float,
    *,
    power: float = DEFAULT_POWER,
    sides: int = 2,
    test: str = "welch",
    span: float | None = None,
) -> float:
    """The minimal detectable effect of ``test`` on ``design`` at level ``alpha`` (module doc):
    NaN with fewer than 2 seeds, 0 without any spread, infinite where a rank test cannot reach
    ``alpha`` or, given the metric's ``span`` (``metric_span``), where even a difference of the
    whole span is detected with less than ``power``. Same unit as the standard deviations."""
    if not (0 < power < 1 and 0 < alpha < 1):
        raise ValueError(f"power and alpha must lie in (0, 1), got {power} and {alpha}")
    if min_rank_p(test, design.n_a, design.n_b, sides) > alpha:
        return math.inf
    se = design.se()
    if not math.isfinite(se):
        return math.nan
    if se == 0:
        return 0.0
    if span is not None and design.power(span, alpha, sides) < power:
        return math.inf
    gap = lambda delta: design.power(delta, alpha, sides) - power  # noqa: E731
    high = se
    while gap(high) < 0:
        high *= 2
        if high > 1e6 * se:
            return math.inf
    return float(optimize.brentq(gap, 0.0, high, xtol=1e-9 * se))


def seeds_needed(
    design: Design,
    effect: float,
    alpha: float,
    *,
    power: float = DEFAULT_POWER,
    sides: int = 2,
    max_seeds: int = MAX_SEEDS,
) -> int | None:
    """Seeds per arm at which the test detects ``effect`` with ``power``, assuming the observed
    spread; both arms get the same count. ``None`` when even ``max_seeds`` is not enough, the
    effect is zero or the spread is undefined (fewer than 2 seeds observed); 2 without spread."""
    if not math.isfinite(effect) or effect == 0 or not math.isfinite(design.se()):
        return None
    if design.se() == 0:
        return 2
    lo, hi = 2, max_seeds
    if design.with_seeds(hi).power(effect, alpha, sides) < power:
        return None
    while lo < hi:  # power grows with n: bisect for the first count that is enough
        mid = (lo + hi) // 2
        if design.with_seeds(mid).power(effect, alpha, sides) >= power:
            hi = mid
        else:
            lo = mid + 1
    return lo


def cell_alpha(alpha: float, correction: str, m: int) -> float:
    """Per-cell level of a table of ``m`` tests: ``alpha / m`` under Holm or BH (their strictest
    step, Bonferroni's level), ``alpha`` without correction."""
    if correction == "none" or m <= 1:
        return alpha
    return alpha / m

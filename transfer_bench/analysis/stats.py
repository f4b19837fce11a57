"""Ticket-vs-control statistics: Welch t-tests with Holm step-down correction.

A transferred ticket is only interesting if it beats the matching control: the random
re-initialisation of the same mask (Frankle & Carbin 2019) or the dense network trained on the target
(Morcos et al. 2019). ``compare`` builds one row per (source, target, optimizer, level) with the
per-seed summary of both sides, a Welch test, and family-wise corrected p-values over the whole table.
Every case that cannot be tested (too few seeds, no variance, missing control) yields NaN and a
warning, never an exception.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from transfer_bench.errors import ConfigError

FAMILY_KEY: tuple[str, ...] = ("source", "target", "optimizer", "level")
BASELINES: tuple[str, ...] = ("random_reinit", "dense")
CORRECTIONS: tuple[str, ...] = ("holm", "none")

COMPARISON_COLUMNS: tuple[str, ...] = (
    *FAMILY_KEY,
    "density",
    "percent_remaining",
    "baseline",
    "ticket_mean",
    "ticket_std",
    "ticket_n",
    "baseline_mean",
    "baseline_std",
    "baseline_n",
    "diff",
    "t",
    "p",
    "p_adj",
    "significant",
    "note",
)


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input order.

    Sorted ascending, the i-th (0-based) of m p-values becomes ``max_{j<=i} min(1, (m - j) p_(j))``,
    which makes the adjusted values monotone in the rank. NaN entries are left NaN and do not count
    towards m.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    valid = p[ok]
    order = np.argsort(valid, kind="stable")
    scaled = (m - np.arange(m)) * valid[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    result = np.empty(m)
    result[order] = adjusted
    out[ok] = result
    return out


def adjust_pvalues(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Apply a multiple-comparison correction: ``"holm"`` or ``"none"`` (unchanged copy)."""
    if method == "holm":
        return holm(pvalues)
    if method == "none":
        return np.asarray(pvalues, dtype=float).copy()
    raise ConfigError(f"analysis.correction: unknown correction {method!r}; use 'holm' or 'none'")


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1, NaN for n < 2) and count of one sample."""

    mean: float
    std: float
    n: int


def summarize(values: Sequence[float] | np.ndarray) -> Summary:
    """Summary of a 1-D sample (an empty sample gives NaN mean and n = 0)."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n >= 2 else math.nan
    return Summary(mean, std, n)


@dataclass(frozen=True)
class WelchResult:
    """Test statistic and two-sided p-value; ``note`` says why they are NaN (empty when not)."""

    t: float
    p: float
    note: str = ""


def welch(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> WelchResult:
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
    with warnings.catch_warnings():
        # scipy flags an exactly constant sample as "catastrophic cancellation"; one constant side
        # is a valid Welch case, so that note would only confuse the report's warning list.
        warnings.filterwarnings(
            "ignore", message="Precision loss occurred", category=RuntimeWarning
        )
        res = sps.ttest_ind(x, y, equal_var=False)
    return WelchResult(float(res.statistic), float(res.pvalue))


def _eq(series: pd.Series, value: object) -> pd.Series:
    """Element-wise equality that treats missing == missing (for optional fields such as source)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return series.isna()
    return series == value


def select_baseline(transfer: pd.DataFrame, key: dict, baseline: str) -> pd.DataFrame:
    """Rows of ``transfer`` (kind == "transfer") that serve as ``baseline`` for a ticket family key.

    ``random_reinit``: same source, target, optimizer and level. ``dense``: dense rows of the same
    target and optimizer (level 0); those recorded with the ticket's source are preferred, then those
    without a source, then any source.
    """
    rows = transfer[
        (transfer["control"] == baseline)
        & _eq(transfer["target"], key["target"])
        & _eq(transfer["optimizer"], key["optimizer"])
    ]
    if baseline != "dense":
        return rows[_eq(rows["source"], key["source"]) & (rows["level"] == key["level"])]
    for subset in (_eq(rows["source"], key["source"]), rows["source"].isna()):
        if subset.any():
            return rows[subset]
    return rows


def per_seed(rows: pd.DataFrame, metric: str, where: str) -> np.ndarray:
    """One ``metric`` value per seed (sorted by seed), so that no seed is counted twice.

    Missing metric values are dropped and duplicate seeds averaged, each with a warning naming
    ``where``.
    """
    values = rows[["seed", metric]].astype({metric: float})
    nan = values[metric].isna()
    if nan.any():
        warnings.warn(f"{where}: dropped {int(nan.sum())} run(s) without {metric}", stacklevel=3)
        values = values[~nan]
    if values["seed"].duplicated().any():
        warnings.warn(
            f"{where}: several runs share a seed; averaged per seed to avoid counting one seed twice",
            stacklevel=3,
        )
    return values.groupby("seed", sort=True)[metric].mean().to_numpy(dtype=float)


def _label(key: dict) -> str:
    return f"ticket from {key['source']} on {key['target']}/{key['optimizer']} level {key['level']}"


def _check_args(
    df: pd.DataFrame, metric: str, baseline: str, correction: str, alpha: float
) -> None:
    if metric not in df.columns:
        known = ", ".join(c for c in ("test_accuracy", "best_test_accuracy") if c in df.columns)
        raise ConfigError(
            f"analysis.metric: {metric!r} is not a result field (use one of: {known})"
        )
    if baseline not in BASELINES:
        raise ConfigError(
            f"analysis.baseline: unknown baseline {baseline!r}; use one of {', '.join(BASELINES)}"
        )
    if correction not in CORRECTIONS:
        raise ConfigError(
            f"analysis.correction: unknown correction {correction!r}; use 'holm' or 'none'"
        )
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"analysis.alpha: {alpha} must be between 0 and 1 (e.g. 0.05)")


def compare_family(
    transfer: pd.DataFrame, key: dict, tickets: pd.DataFrame, *, metric: str, baseline: str
) -> dict:
    """One comparison row (without ``p_adj``/``significant``) for one ticket family key."""
    where = _label(key)
    base_rows = select_baseline(transfer, key, baseline)
    a = per_seed(tickets, metric, where)
    b = per_seed(base_rows, metric, f"{where} ({baseline})")
    sa, sb = summarize(a), summarize(b)
    if sb.n == 0:
        test = WelchResult(math.nan, math.nan, f"no {baseline} runs")
    else:
        test = welch(a, b)
    if test.note:
        warnings.warn(f"compare: {where} vs {baseline}: {test.note}; p left NaN", stacklevel=3)
    density = float(tickets["density"].mean())
    return {
        **key,
        "density": density,
        "percent_remaining": 100.0 * density,
        "baseline": baseline,
        "ticket_mean": sa.mean,
        "ticket_std": sa.std,
        "ticket_n": sa.n,
        "baseline_mean": sb.mean,
        "baseline_std": sb.std,
        "baseline_n": sb.n,
        "diff": sa.mean - sb.mean,
        "t": test.t,
        "p": test.p,
        "note": test.note,
    }


def compare(
    df: pd.DataFrame,
    *,
    metric: str = "test_accuracy",
    baseline: str = "random_reinit",
    correction: str = "holm",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Ticket vs ``baseline`` per (source, target, optimizer, level), with corrected p-values.

    ``df`` is a ``load_results`` frame; only ``kind == "transfer"`` rows are used. ``diff`` is ticket
    mean minus baseline mean in metric units (accuracy fraction). ``p_adj`` applies ``correction`` over
    all rows of the returned table; ``significant`` is ``p_adj < alpha`` (False where p is NaN).
    Columns: ``COMPARISON_COLUMNS``; rows sorted by target, optimizer, source, level.
    """
    _check_args(df, metric, baseline, correction, alpha)
    transfer = df[df["kind"] == "transfer"] if "kind" in df.columns else df.iloc[0:0]
    tickets = transfer[transfer["control"] == "ticket"]
    if tickets.empty:
        warnings.warn("compare: no transfer ticket results to compare", stacklevel=2)
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    rows = []
    for values, group in tickets.groupby(list(FAMILY_KEY), dropna=False, sort=False):
        key = dict(zip(FAMILY_KEY, values, strict=True))
        key["level"] = int(key["level"])
        rows.append(compare_family(transfer, key, group, metric=metric, baseline=baseline))
    out = pd.DataFrame(rows)
    out["p_adj"] = adjust_pvalues(out["p"].to_numpy(dtype=float), correction)
    out["significant"] = (out["p_adj"] < alpha).fillna(False).astype(bool)
    out = out.sort_values(["target", "optimizer", "source", "level"], na_position="first")
    out = out.reset_index(drop=True)[list(COMPARISON_COLUMNS)]
    out.attrs.update(metric=metric, baseline=baseline, correction=correction, alpha=alpha)
    return out

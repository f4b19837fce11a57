"""Ticket-vs-control statistics for paper tables: tests, bootstrap CIs, effect sizes, corrections.

A transferred ticket is only interesting if it beats the matching control: the random
re-initialisation of the same mask (Frankle & Carbin 2019), the dense network trained on the target
(Morcos et al. 2019), or any other control present in the results (e.g. ``shuffle_layerwise``,
``random_global``, ``own_ticket``). ``comparison_table`` builds one row per (control arm, source,
target, optimizer, level) with per-seed summaries of both sides, 95 % bootstrap CIs
(``scipy.stats.bootstrap``, BCa), Welch / Mann-Whitney tests, paired t / Wilcoxon tests when both
sides share the same seeds, effect sizes (Hedges' g, Cliff's delta, probability of improvement) and
Holm or Benjamini-Hochberg corrected p-values of a chosen primary test (Colas et al. 2018; Agarwal et
al. 2021). ``auc_table`` / ``compare_sources`` integrate over sparsity: per seed, the mean accuracy
over log10(density) (normalised trapezoid area), then the same tests between two arms.

Every case that cannot be tested (too few seeds, no variance, missing control, unpaired seeds for a
paired test) yields NaN and a ``note`` plus a ``UserWarning``, never an exception. ``compare`` is the
original Welch/Holm table and stays column-compatible (``COMPARISON_COLUMNS``).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate
from scipy import stats as sps

from transfer_bench.analysis import power as pw
from transfer_bench.errors import ConfigError

FAMILY_KEY: tuple[str, ...] = ("source", "target", "optimizer", "level")
BASELINES: tuple[str, ...] = ("random_reinit", "dense")
CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")
TESTS: tuple[str, ...] = ("welch", "mannwhitney", "paired_t", "wilcoxon")
# A paired test falls back to its unpaired counterpart when the seeds of the two sides differ.
UNPAIRED_FALLBACK: dict[str, str] = {"paired_t": "welch", "wilcoxon": "mannwhitney"}
# Controls that do not depend on the ticket's source mask: when no run of them was recorded with the
# ticket's source (nor without a source), runs recorded with any other source may stand in.
SOURCE_AGNOSTIC: tuple[str, ...] = ("dense", "random_global", "own_ticket")
MIN_BOOTSTRAP_N = 3
DENSITY_RTOL = 0.01  # relative density mismatch between ticket and baseline that earns a note

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

# Columns produced by ``compare_samples`` (both sides summarised, all tests, effect sizes).
SAMPLE_COLUMNS: tuple[str, ...] = (
    "ticket_mean",
    "ticket_std",
    "ticket_n",
    "ticket_ci_low",
    "ticket_ci_high",
    "baseline_mean",
    "baseline_std",
    "baseline_n",
    "baseline_ci_low",
    "baseline_ci_high",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "paired",
    "n_pairs",
    "paired_ci_low",
    "paired_ci_high",
    "diff_std",
    "ci_method",
    "welch_t",
    "welch_p",
    "mwu_u",
    "mwu_p",
    "paired_t",
    "paired_p",
    "wilcoxon_w",
    "wilcoxon_p",
    "hedges_g",
    "cliffs_delta",
    "prob_improvement",
    "test",
    "t",
    "p",
)

TABLE_COLUMNS: tuple[str, ...] = (
    *FAMILY_KEY,
    "control",
    "density",
    "percent_remaining",
    "baseline",
    "baseline_source",
    "baseline_density",
    *SAMPLE_COLUMNS,
    "p_adj",
    "significant",
    "mde",
    "mde_alpha",
    "note",
)

AUC_COLUMNS: tuple[str, ...] = (
    "source",
    "target",
    "optimizer",
    "control",
    "baseline",
    "baseline_source",
    "n_levels",
    "levels",
    "density_min",
    "density_max",
    *SAMPLE_COLUMNS,
    "p_adj",
    "significant",
    "mde",
    "mde_alpha",
    "note",
)

# scipy >= 1.15 takes ``rng``; older releases (the project allows >= 1.11) take ``random_state``.
_RNG_KW = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"

Samples = Sequence[float] | np.ndarray | pd.Series


# ----------------------------------------------------------------------------------- corrections


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


def benjamini_hochberg(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg (1995) FDR-adjusted p-values (``scipy.stats.false_discovery_control``).

    NaN entries are left NaN and do not count towards m (scipy itself rejects NaN).
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = sps.false_discovery_control(p[ok], method="bh")
    return out


def adjust_pvalues(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Multiple-comparison correction: ``"holm"``, ``"bh"`` (Benjamini-Hochberg) or ``"none"``."""
    if method == "holm":
        return holm(pvalues)
    if method == "bh":
        return benjamini_hochberg(pvalues)
    if method == "none":
        return np.asarray(pvalues, dtype=float).copy()
    raise ConfigError(
        f"analysis.correction: unknown correction {method!r}; use 'holm', 'bh' or 'none'"
    )


# ------------------------------------------------------------------------------ sample statistics


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1; NaN for n < 2, exactly 0 for constant) and count."""

    mean: float
    std: float
    n: int


def summarize(values: Samples) -> Summary:
    """Summary of a 1-D sample (an empty sample gives NaN mean and n = 0)."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    std = math.nan if n < 2 else 0.0 if np.ptp(x) == 0 else float(x.std(ddof=1))
    return Summary(mean, std, n)


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


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a scipy function without its numeric RuntimeWarnings / DegenerateDataWarnings.

    Degenerate inputs are detected and explained by the callers (as notes), so scipy's own messages
    ("Precision loss occurred", "invalid value encountered") would only duplicate them.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        return fn(*args, **kwargs)


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


# -------------------------------------------------------------------------------------- bootstrap


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


# ------------------------------------------------------------------------------- two-sample table


def _as_series(values: Samples) -> tuple[pd.Series, bool]:
    """Values as float Series and whether they carry seeds (a Series index) for pairing."""
    if isinstance(values, pd.Series):
        return values.astype(float), True
    return pd.Series(np.asarray(values, dtype=float)), False


def _zero_variance_note(x: np.ndarray, y: np.ndarray, names: tuple[str, str]) -> str:
    zero = [name for name, v in zip(names, (x, y), strict=True) if v.size >= 2 and np.ptp(v) == 0]
    if len(zero) == 2:
        return "zero variance on both sides"
    return f"zero variance in {zero[0]}" if zero else ""


def compare_samples(
    a: Samples,
    b: Samples,
    *,
    test: str = "welch",
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
    names: tuple[str, str] = ("ticket", "baseline"),
) -> dict[str, Any]:
    """All statistics of sample ``a`` (treatment) vs ``b`` (baseline), as one ``SAMPLE_COLUMNS`` row.

    ``a``/``b`` as ``pd.Series`` indexed by seed are *paired* when both hold exactly the same seeds;
    then paired t, Wilcoxon and the bootstrap CI of the per-seed differences are filled in (arrays
    are never paired). ``test`` picks the primary test whose statistic/p-value go to ``t``/``p``; a
    paired test on unpaired data falls back to Welch / Mann-Whitney (``test`` says which ran).
    ``note`` joins every reason for a NaN or a caveat; the caller decides how to warn.
    """
    sa, seeded_a = _as_series(a)
    sb, seeded_b = _as_series(b)
    x, y = sa.to_numpy(), sb.to_numpy()
    s1, s2 = summarize(x), summarize(y)
    row: dict[str, Any] = dict.fromkeys(SAMPLE_COLUMNS, math.nan)
    row.update(
        ticket_mean=s1.mean,
        ticket_std=s1.std,
        ticket_n=s1.n,
        baseline_mean=s2.mean,
        baseline_std=s2.std,
        baseline_n=s2.n,
        diff=s1.mean - s2.mean,
        paired=False,
        n_pairs=0,
        ci_method="",
        test=test,
    )
    empty = [name for name, s in zip(names, (s1, s2), strict=True) if s.n == 0]
    if empty:
        row["note"] = "; ".join(f"no {name} runs" for name in empty)
        return row

    notes: list[str] = []
    paired = seeded_a and seeded_b and s1.n >= 1 and set(sa.index) == set(sb.index)
    if paired:
        sb = sb.loc[sa.index]
        d = sa.to_numpy() - sb.to_numpy()
        y = sb.to_numpy()
        row.update(paired=True, n_pairs=int(d.size))
        row["diff_std"] = float(np.std(d, ddof=1)) if d.size >= 2 else math.nan

    # Bootstrap CIs.
    methods: list[str] = []
    ci_kw = dict(n_resamples=n_resamples, seed=seed, confidence_level=confidence_level)
    cis = {"ticket": (x,), "baseline": (y,), "diff": (x, y)}
    if paired:
        cis["paired"] = (d,)
    if min(s1.n, s2.n) < MIN_BOOTSTRAP_N:
        notes.append(f"n < {MIN_BOOTSTRAP_N} (n = {s1.n}/{s2.n}): no bootstrap CI")
    for key, data in cis.items():
        ci = bootstrap_ci(*data, **ci_kw)
        row[f"{key}_ci_low"], row[f"{key}_ci_high"] = ci.low, ci.high
        if ci.method:  # n < 3 is reported once above
            notes.append(ci.note)
        methods.append(ci.method)
    row["ci_method"] = ", ".join(m for m in ("BCa", "percentile") if m in methods)

    # Tests.
    w = welch(x, y)
    mw = mann_whitney(x, y)
    row.update(welch_t=w.t, welch_p=w.p, mwu_u=mw.statistic, mwu_p=mw.p)
    results: dict[str, tuple[float, float, str]] = {
        "welch": (w.t, w.p, w.note),
        "mannwhitney": (mw.statistic, mw.p, mw.note),
    }
    if paired:
        pt, wx = paired_t(x, y), wilcoxon_signed_rank(x, y)
        row.update(paired_t=pt.statistic, paired_p=pt.p, wilcoxon_w=wx.statistic)
        row["wilcoxon_p"] = wx.p
        results["paired_t"] = (pt.statistic, pt.p, pt.note)
        results["wilcoxon"] = (wx.statistic, wx.p, wx.note)
    used = test
    if test not in results:
        used = UNPAIRED_FALLBACK[test]
        notes.append(f"seeds not paired; {used} used instead of {test}")
    row["test"] = used
    row["t"], row["p"], test_note = results[used]
    notes.append(test_note)
    if s1.n != s2.n:
        notes.append(f"unequal n ({s1.n} vs {s2.n})")
    notes.append(_zero_variance_note(x, y, names))
    if paired and used not in UNPAIRED_FALLBACK and min(s1.n, s2.n) >= 2:
        # Say why a paired column is empty even when the primary test is unpaired.
        notes.extend(results[t][2] for t in UNPAIRED_FALLBACK)

    # Effect sizes.
    row.update(
        hedges_g=hedges_g(x, y),
        cliffs_delta=cliffs_delta(x, y),
        prob_improvement=probability_of_improvement(x, y),
    )
    row["note"] = "; ".join(dict.fromkeys(n for n in notes if n))
    return row


# ------------------------------------------------------------------------------------ row choice


def _eq(series: pd.Series, value: object) -> pd.Series:
    """Element-wise equality that treats missing == missing (for optional fields such as source)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return series.isna()
    return series == value


def _baseline_rows(
    transfer: pd.DataFrame,
    *,
    baseline: str,
    target: object,
    optimizer: object,
    source: object,
    level: int | None,
) -> pd.DataFrame:
    """Runs of control ``baseline`` that stand in for a treatment arm (all levels if ``level`` None).

    Preference: the arm's source, then runs recorded without a source; source-agnostic controls
    (``SOURCE_AGNOSTIC``) finally accept any source. ``dense`` ignores the level.
    """
    rows = transfer[
        (transfer["control"] == baseline)
        & _eq(transfer["target"], target)
        & _eq(transfer["optimizer"], optimizer)
    ]
    if baseline != "dense" and level is not None:
        rows = rows[rows["level"] == level]
    subsets = [_eq(rows["source"], source), rows["source"].isna()]
    for subset in subsets:
        if subset.any():
            return rows[subset]
    return rows if baseline in SOURCE_AGNOSTIC else rows.iloc[0:0]


def select_baseline(transfer: pd.DataFrame, key: dict, baseline: str) -> pd.DataFrame:
    """Rows of ``transfer`` (kind == "transfer") that serve as ``baseline`` for a ticket family key.

    ``random_reinit`` and other mask-derived controls: same source, target, optimizer and level.
    ``dense``: dense rows of the same target and optimizer (level 0); those recorded with the
    ticket's source are preferred, then those without a source, then any source.
    """
    return _baseline_rows(
        transfer,
        baseline=baseline,
        target=key["target"],
        optimizer=key["optimizer"],
        source=key["source"],
        level=key["level"],
    )


def seed_values(rows: pd.DataFrame, metric: str, where: str) -> pd.Series:
    """One ``metric`` value per seed (index = seed, sorted), so that no seed is counted twice.

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
    return values.groupby("seed", sort=True)[metric].mean()


def per_seed(rows: pd.DataFrame, metric: str, where: str) -> np.ndarray:
    """``seed_values`` as a plain array (sorted by seed)."""
    return seed_values(rows, metric, where).to_numpy(dtype=float)


def _name(value: object) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _sources(rows: pd.DataFrame) -> str:
    return ", ".join(sorted({_name(s) for s in rows["source"]}))


def _label(key: dict) -> str:
    control = key.get("control", "ticket")
    return (
        f"{control} from {_name(key['source'])} on {key['target']}/{key['optimizer']} "
        f"level {key['level']}"
    )


def _transfer(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["kind"] == "transfer"] if "kind" in df.columns else df.iloc[0:0]


def _as_tuple(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _check_args(
    df: pd.DataFrame,
    metric: str,
    baseline: str | None,
    correction: str,
    alpha: float,
    *,
    test: str = "welch",
    treatment: tuple[str, ...] = ("ticket",),
    n_resamples: int = 0,
) -> None:
    if metric not in df.columns:
        known = ", ".join(c for c in ("test_accuracy", "best_test_accuracy") if c in df.columns)
        raise ConfigError(
            f"analysis.metric: {metric!r} is not a result field (use one of: {known})"
        )
    if baseline is not None:
        present = set(_transfer(df)["control"].dropna()) if "control" in df.columns else set()
        known = list(dict.fromkeys([*BASELINES, *sorted(present - set(treatment))]))
        if baseline not in known:
            raise ConfigError(
                f"analysis.baseline: unknown baseline {baseline!r}; use one of {', '.join(known)}"
            )
        if baseline in treatment:
            raise ConfigError(
                f"analysis.baseline: {baseline!r} is also a compared arm; pick another control"
            )
    if correction not in CORRECTIONS:
        raise ConfigError(
            f"analysis.correction: unknown correction {correction!r}; use 'holm', 'bh' or 'none'"
        )
    if test not in TESTS:
        raise ConfigError(f"analysis.test: unknown test {test!r}; use one of {', '.join(TESTS)}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"analysis.alpha: {alpha} must be between 0 and 1 (e.g. 0.05)")
    if not (isinstance(n_resamples, int | np.integer) and n_resamples >= 0):
        raise ConfigError(
            f"analysis.n_resamples: {n_resamples!r} must be a whole number >= 0 (e.g. 9999)"
        )


def _warn_note(context: str, where: str, note: str) -> None:
    if note:
        warnings.warn(f"{context}: {where}: {note}", stacklevel=4)


def _apply_correction(
    out: pd.DataFrame, correction: str, alpha: float, family: Sequence[str] | None
) -> pd.DataFrame:
    """Fill ``p_adj`` (corrected over the whole table, or within groups of ``family`` columns)."""
    if out.empty:
        out["p_adj"] = pd.Series(dtype=float)
    elif family:
        out["p_adj"] = np.nan
        for _, idx in out.groupby(list(family), dropna=False, sort=False).groups.items():
            out.loc[idx, "p_adj"] = adjust_pvalues(out.loc[idx, "p"].to_numpy(float), correction)
    else:
        out["p_adj"] = adjust_pvalues(out["p"].to_numpy(dtype=float), correction)
    out["significant"] = (out["p_adj"] < alpha).fillna(False).astype(bool)
    return _add_mde(out, correction, alpha, family)


def row_design(row: pd.Series | dict) -> pw.Design:
    """The power-analysis design of one table row: paired when its primary test was paired."""
    return pw.Design(
        sd_a=float(row["ticket_std"]),
        sd_b=float(row["baseline_std"]),
        n_a=int(row["ticket_n"]),
        n_b=int(row["baseline_n"]),
        paired=row["test"] in ("paired_t", "wilcoxon"),
        sd_diff=float(row.get("diff_std", math.nan)),
    )


def _add_mde(
    out: pd.DataFrame,
    correction: str,
    alpha: float,
    family: Sequence[str] | None,
    power: float = pw.DEFAULT_POWER,
) -> pd.DataFrame:
    """``mde``: the smallest true difference (metric units) each row's primary test would detect
    with ``power`` at ``mde_alpha``, the per-cell level of its family (``power.cell_alpha``)."""
    out["mde"] = np.nan
    out["mde_alpha"] = np.nan
    if out.empty:
        return out
    groups = (
        out.groupby(list(family), dropna=False, sort=False).groups.values()
        if family
        else [out.index]
    )
    for idx in groups:
        m = int(out.loc[idx, "p"].notna().sum())
        level = pw.cell_alpha(alpha, correction, m)
        for i in idx:
            row = out.loc[i]
            if not math.isfinite(float(row["p"])):
                continue
            out.loc[i, "mde_alpha"] = level
            out.loc[i, "mde"] = pw.mde(row_design(row), level, power=power, test=str(row["test"]))
    out.attrs["power"] = power
    return out


# -------------------------------------------------------------------------------- per-level table


def _arm_row(
    arm: pd.DataFrame,
    base_rows: pd.DataFrame,
    *,
    key: dict,
    baseline: str,
    metric: str,
    stats_kw: dict,
    context: str,
) -> dict:
    """One comparison row (without ``p_adj``/``significant``) of a treatment arm vs its baseline."""
    where = _label(key)
    a = seed_values(arm, metric, where)
    b = seed_values(base_rows, metric, f"{where} ({baseline})")
    row = compare_samples(a, b, names=(key.get("control", "ticket"), baseline), **stats_kw)
    density = float(arm["density"].mean())
    base_density = float(base_rows["density"].mean()) if len(base_rows) else math.nan
    notes = [row["note"]]
    if (
        baseline != "dense"
        and math.isfinite(base_density)
        and not math.isclose(density, base_density, rel_tol=DENSITY_RTOL)
    ):
        notes.append(f"{baseline} density {base_density:.4g} differs from {density:.4g}")
    row.update(
        key,
        density=density,
        percent_remaining=100.0 * density,
        baseline=baseline,
        baseline_source=_sources(base_rows) if len(base_rows) else "",
        baseline_density=base_density,
        note="; ".join(n for n in notes if n),
    )
    _warn_note(context, f"{where} vs {baseline}", row["note"])
    return row


def comparison_table(
    df: pd.DataFrame,
    *,
    metric: str = "test_accuracy",
    baseline: str = "random_reinit",
    treatment: str | Sequence[str] = "ticket",
    test: str = "welch",
    correction: str = "holm",
    alpha: float = 0.05,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
    family: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The paper table: each ``treatment`` arm vs control ``baseline`` per source/target/opt./level.

    ``df`` is a ``load_results`` frame; only ``kind == "transfer"`` rows are used. ``baseline`` is
    ``random_reinit``, ``dense`` or any other transfer control present in ``df``. Treatment arms
    (default: ``ticket``) are grouped by (control, source, target, optimizer, level); their baseline
    runs follow ``select_baseline``. Statistics come from ``compare_samples`` (means, std, n, BCa
    bootstrap CIs with ``n_resamples`` resamples seeded by ``seed``, Welch, Mann-Whitney, paired t
    and Wilcoxon when seeds pair up, Hedges' g, Cliff's delta, P(improvement)). ``p`` is the primary
    ``test``'s p-value; ``p_adj`` applies ``correction`` ("holm" | "bh" | "none") over the whole
    table (or within groups of the ``family`` columns); ``significant`` is ``p_adj < alpha``.
    Columns: ``TABLE_COLUMNS``; rows sorted by target, optimizer, control, source, level; settings
    in ``.attrs``.
    """
    treatments = _as_tuple(treatment)
    _check_args(
        df,
        metric,
        baseline,
        correction,
        alpha,
        test=test,
        treatment=treatments,
        n_resamples=n_resamples,
    )
    transfer = _transfer(df)
    arms = transfer[transfer["control"].isin(treatments)]
    attrs = dict(
        table="comparison",
        metric=metric,
        baseline=baseline,
        treatment=treatments,
        test=test,
        correction=correction,
        alpha=alpha,
        n_resamples=n_resamples,
        seed=seed,
        confidence_level=confidence_level,
        family=tuple(family or ()),
    )
    if arms.empty:
        warnings.warn(
            f"compare: no transfer {'/'.join(treatments)} results to compare", stacklevel=2
        )
        out = pd.DataFrame(columns=list(TABLE_COLUMNS))
        out.attrs.update(attrs)
        return out
    stats_kw = dict(
        test=test, n_resamples=n_resamples, seed=seed, confidence_level=confidence_level
    )
    group_cols = ["control", *FAMILY_KEY]
    rows = []
    for values, group in arms.groupby(group_cols, dropna=False, sort=False):
        key = dict(zip(group_cols, values, strict=True))
        key["level"] = int(key["level"])
        base_rows = _baseline_rows(
            transfer,
            baseline=baseline,
            target=key["target"],
            optimizer=key["optimizer"],
            source=key["source"],
            level=key["level"],
        )
        rows.append(
            _arm_row(
                group,
                base_rows,
                key=key,
                baseline=baseline,
                metric=metric,
                stats_kw=stats_kw,
                context="compare",
            )
        )
    out = _apply_correction(pd.DataFrame(rows), correction, alpha, family)
    out = out.sort_values(
        ["target", "optimizer", "control", "source", "level"], na_position="first"
    )
    out = out.reset_index(drop=True)[list(TABLE_COLUMNS)]
    out.attrs.update(attrs)
    return out


def compare_family(
    transfer: pd.DataFrame, key: dict, tickets: pd.DataFrame, *, metric: str, baseline: str
) -> dict:
    """One ``compare`` row (without ``p_adj``/``significant``) for one ticket family key."""
    row = _arm_row(
        tickets,
        select_baseline(transfer, key, baseline),
        key=key,
        baseline=baseline,
        metric=metric,
        stats_kw=dict(test="welch", n_resamples=0),
        context="compare",
    )
    return {c: row[c] for c in COMPARISON_COLUMNS if c in row}


def compare(
    df: pd.DataFrame,
    *,
    metric: str = "test_accuracy",
    baseline: str = "random_reinit",
    correction: str = "holm",
    alpha: float = 0.05,
    test: str = "welch",
) -> pd.DataFrame:
    """Ticket vs ``baseline`` per (source, target, optimizer, level), with corrected p-values.

    The original compact table: ``comparison_table`` without bootstrap CIs, cut to
    ``COMPARISON_COLUMNS``. ``diff`` is ticket mean minus baseline mean in metric units (accuracy
    fraction); ``t``/``p`` belong to ``test`` (Welch by default); ``p_adj`` applies ``correction``
    over all rows; ``significant`` is ``p_adj < alpha`` (False where p is NaN).
    """
    full = comparison_table(
        df,
        metric=metric,
        baseline=baseline,
        test=test,
        correction=correction,
        alpha=alpha,
        n_resamples=0,
    )
    out = full[list(COMPARISON_COLUMNS)].copy()
    out.attrs.update(full.attrs)
    return out


# ------------------------------------------------------------------------- sparsity-integrated AUC


def normalized_auc(density: Samples, values: Samples) -> float:
    """Mean of ``values`` over log10(density): trapezoid area divided by the log-density span.

    Points are sorted by density; NaN when fewer than 2 distinct densities (zero span).
    """
    x = np.log10(np.asarray(density, dtype=float))
    y = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="stable")
    span = float(x.max() - x.min()) if x.size else 0.0
    if x.size < 2 or span <= 0:
        return math.nan
    return float(integrate.trapezoid(y[order], x[order]) / span)


def _auc_series(
    rows: pd.DataFrame, metric: str, levels: Sequence[int], where: str
) -> tuple[pd.Series, list[str]]:
    """Per-seed normalised AUC over ``levels``; seeds lacking a level are dropped (with a note)."""
    rows = rows[rows["level"].isin(levels)]
    rows = rows[rows[metric].notna()]
    if rows[["seed", "level"]].duplicated().any():
        warnings.warn(
            f"{where}: several runs share a seed and level; averaged per seed and level",
            stacklevel=4,
        )
    cell = rows.groupby(["seed", "level"])[[metric, "density"]].mean()
    acc = cell[metric].unstack("level").reindex(columns=list(levels))
    dens = cell["density"].unstack("level").reindex(columns=list(levels))
    complete = acc.notna().all(axis=1)
    notes = []
    if not complete.all():
        dropped = ", ".join(str(s) for s in acc.index[~complete])
        notes.append(f"{where}: seed(s) {dropped} lack some shared levels and were dropped")
    aucs = {
        s: normalized_auc(dens.loc[s].to_numpy(), acc.loc[s].to_numpy())
        for s in acc.index[complete]
    }
    return pd.Series(aucs, dtype=float, name=metric).rename_axis("seed"), notes


def _is_flat(rows: pd.DataFrame) -> bool:
    """A control trained only at density 1 (dense) has a flat curve: its AUC is its accuracy."""
    return len(rows) > 0 and bool((rows["density"] >= 1.0).all())


def _auc_row(
    arm: pd.DataFrame,
    base_rows: pd.DataFrame,
    *,
    key: dict,
    baseline: str,
    baseline_name: str,
    metric: str,
    stats_kw: dict,
    context: str,
) -> dict:
    """One sparsity-integrated comparison row (without ``p_adj``/``significant``)."""
    where = (
        f"{key['control']} from {_name(key['source'])} on {key['target']}/{key['optimizer']} "
        f"(AUC) vs {baseline_name}"
    )
    levels_a = set(arm["level"].astype(int))
    flat = _is_flat(base_rows)
    levels_b = levels_a if flat else set(base_rows["level"].astype(int))
    shared = sorted(levels_a & levels_b)
    notes = []
    if levels_a != levels_b and len(base_rows):
        only = ", ".join(str(v) for v in sorted(levels_a ^ levels_b))
        notes.append(f"level(s) {only} lack one arm; AUC over the {len(shared)} shared levels")
    names = (key["control"], baseline_name)
    if len(shared) < 2:
        if len(base_rows):
            notes.append(f"fewer than 2 shared levels ({len(shared)}); no AUC")
        row = compare_samples(pd.Series(dtype=float), pd.Series(dtype=float), names=names)
        if not len(base_rows):
            notes.append(f"no {baseline_name} runs")
        row["note"] = ""
        a_rows = arm.iloc[0:0]
    else:
        a, notes_a = _auc_series(arm, metric, shared, key["control"])
        if flat:
            b, notes_b = seed_values(base_rows, metric, f"{where} ({baseline})"), []
        else:
            b, notes_b = _auc_series(base_rows, metric, shared, baseline_name)
        notes += notes_a + notes_b
        row = compare_samples(a, b, names=names, **stats_kw)
        a_rows = arm[arm["level"].isin(shared)]
    notes.append(row["note"])
    row.update(
        key,
        baseline=baseline,
        baseline_source=_sources(base_rows) if len(base_rows) else "",
        n_levels=len(shared),
        levels=",".join(str(v) for v in shared),
        density_min=float(a_rows["density"].min()) if len(a_rows) else math.nan,
        density_max=float(a_rows["density"].max()) if len(a_rows) else math.nan,
        note="; ".join(dict.fromkeys(n for n in notes if n)),
    )
    _warn_note(context, where, row["note"])
    return row


def _finish_auc(rows: list[dict], correction: str, alpha: float, attrs: dict) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=list(AUC_COLUMNS)) if rows else None
    if out is None:
        out = pd.DataFrame(columns=list(AUC_COLUMNS))
    else:
        out = _apply_correction(out, correction, alpha, None)
        out = out.sort_values(
            ["target", "optimizer", "control", "source", "baseline_source"], na_position="first"
        )
        out = out.reset_index(drop=True)[list(AUC_COLUMNS)]
    out.attrs.update(attrs)
    return out


def auc_table(
    df: pd.DataFrame,
    *,
    metric: str = "test_accuracy",
    baseline: str | None = "random_reinit",
    treatment: str | Sequence[str] = "ticket",
    test: str = "welch",
    correction: str = "holm",
    alpha: float = 0.05,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> pd.DataFrame:
    """Sparsity-integrated comparisons: per seed, mean accuracy over log10(density), then tests.

    Each treatment arm (control, source, target, optimizer) is integrated over the levels it shares
    with its counterpart (``normalized_auc``). With ``baseline`` a control name the counterpart is
    that control's runs (``select_baseline`` rules; a dense baseline is a flat line, so its AUC is
    its accuracy). With ``baseline=None`` every pair of sources of the same treatment control on the
    same target and optimizer is compared (A = ``source``, B = ``baseline_source``, sorted by name;
    ``diff`` = A - B). Statistics as in ``comparison_table`` (``ticket_*`` = arm A, ``baseline_*`` =
    arm B); ``p_adj`` is corrected over all rows. Columns: ``AUC_COLUMNS``.
    """
    treatments = _as_tuple(treatment)
    _check_args(
        df,
        metric,
        baseline,
        correction,
        alpha,
        test=test,
        treatment=treatments,
        n_resamples=n_resamples,
    )
    transfer = _transfer(df)
    arms = transfer[transfer["control"].isin(treatments)]
    attrs = dict(
        table="auc",
        metric=metric,
        baseline=baseline,
        treatment=treatments,
        test=test,
        correction=correction,
        alpha=alpha,
        n_resamples=n_resamples,
        seed=seed,
        confidence_level=confidence_level,
    )
    stats_kw = dict(
        test=test, n_resamples=n_resamples, seed=seed, confidence_level=confidence_level
    )
    if arms.empty:
        warnings.warn(f"auc: no transfer {'/'.join(treatments)} results to compare", stacklevel=2)
        return _finish_auc([], correction, alpha, attrs)
    cols = ["control", "source", "target", "optimizer"]
    groups = {tuple(values): group for values, group in arms.groupby(cols, dropna=False, sort=True)}
    rows = []
    for values, group in groups.items():
        key = dict(zip(cols, values, strict=True))
        if baseline is not None:
            base_rows = _baseline_rows(
                transfer,
                baseline=baseline,
                target=key["target"],
                optimizer=key["optimizer"],
                source=key["source"],
                level=None,
            )
            rows.append(
                _auc_row(
                    group,
                    base_rows,
                    key=key,
                    baseline=baseline,
                    baseline_name=baseline,
                    metric=metric,
                    stats_kw=stats_kw,
                    context="auc",
                )
            )
            continue
        for other, other_rows in groups.items():
            same_family = (other[0], *other[2:]) == (values[0], *values[2:])
            if same_family and _name(other[1]) > _name(values[1]):
                rows.append(
                    _auc_row(
                        group,
                        other_rows,
                        key=key,
                        baseline=str(key["control"]),
                        baseline_name=f"{key['control']} from {_name(other[1])}",
                        metric=metric,
                        stats_kw=stats_kw,
                        context="auc",
                    )
                )
    return _finish_auc(rows, correction, alpha, attrs)


# -------------------------------------------------------------------------------- source vs source


@dataclass(frozen=True, eq=False)  # DataFrames have no boolean equality
class SourceComparison:
    """Source A vs source B on one target: the integrated (AUC) row and per-level rows.

    ``auc``: one ``AUC_COLUMNS`` row (the headline test). ``per_level``: ``TABLE_COLUMNS`` rows, one
    per shared level, corrected over the levels. ``verdict``: one plain-language sentence.
    """

    auc: pd.DataFrame
    per_level: pd.DataFrame
    verdict: str


def _verdict(row: pd.Series, a: str, b: str, target: str, test: str) -> str:
    if not math.isfinite(row["p"]):
        return f"{a} vs {b} on {target}: could not be tested ({row['note'] or 'no data'})"
    ci = ""
    if math.isfinite(row["diff_ci_low"]):
        ci = f" [{100 * row['diff_ci_low']:+.2f}, {100 * row['diff_ci_high']:+.2f}]"
    effect = (
        f"mean accuracy over sparsity {100 * row['diff']:+.2f} points{ci}, "
        f"p = {row['p']:.3g} ({row['test']}), n = {row['ticket_n']}/{row['baseline_n']}"
    )
    if not row["significant"]:
        return f"{a} and {b} do not differ significantly on {target}: {effect}"
    better, worse = (a, b) if row["diff"] > 0 else (b, a)
    return f"{better} transfers better than {worse} to {target}: {effect}"


def compare_sources(
    df: pd.DataFrame,
    target: str,
    optimizer: str,
    source_a: str,
    source_b: str,
    *,
    metric: str = "test_accuracy",
    control: str = "ticket",
    control_b: str | None = None,
    test: str = "welch",
    correction: str = "holm",
    alpha: float = 0.05,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> SourceComparison:
    """Does ``source_a``'s ``control`` arm transfer better to ``target`` than ``source_b``'s?

    Headline: the sparsity-integrated comparison (per-seed normalised AUC over the shared levels,
    ``diff`` = A - B, ``test`` as primary test, seeds paired when they match). Also per level, with
    ``correction`` over the levels. ``control_b`` (default ``control``) compares different arms,
    e.g. ``ticket`` from A vs ``own_ticket``. Missing runs give NaN rows and warnings.
    """
    control_b = control_b or control
    _check_args(df, metric, None, correction, alpha, test=test, n_resamples=n_resamples)
    transfer = _transfer(df)
    here = transfer[_eq(transfer["target"], target) & _eq(transfer["optimizer"], optimizer)]
    arm_a = here[(here["control"] == control) & _eq(here["source"], source_a)]
    arm_b = here[(here["control"] == control_b) & _eq(here["source"], source_b)]
    for arm, src, ctl in ((arm_a, source_a, control), (arm_b, source_b, control_b)):
        if arm.empty:
            have = _sources(here[here["control"] == ctl]) or "none"
            warnings.warn(
                f"compare_sources: no {ctl} runs from {src} on {target}/{optimizer} "
                f"(sources with {ctl} runs: {have})",
                stacklevel=2,
            )
    stats_kw = dict(
        test=test, n_resamples=n_resamples, seed=seed, confidence_level=confidence_level
    )
    name_b = f"{control_b} from {source_b}"
    key = dict(control=control, source=source_a, target=target, optimizer=optimizer)
    auc_row = _auc_row(
        arm_a,
        arm_b,
        key=key,
        baseline=control_b,
        baseline_name=name_b,
        metric=metric,
        stats_kw=stats_kw,
        context="compare_sources",
    )
    attrs = dict(
        table="auc",
        metric=metric,
        baseline=control_b,
        treatment=(control,),
        test=test,
        correction="none",
        alpha=alpha,
        n_resamples=n_resamples,
        seed=seed,
        confidence_level=confidence_level,
    )
    auc = _finish_auc([auc_row], "none", alpha, attrs)

    rows = []
    shared = sorted(set(arm_a["level"].astype(int)) & set(arm_b["level"].astype(int)))
    for level in shared:
        rows.append(
            _arm_row(
                arm_a[arm_a["level"] == level],
                arm_b[arm_b["level"] == level],
                key={**key, "level": level},
                baseline=name_b,
                metric=metric,
                stats_kw=stats_kw,
                context="compare_sources",
            )
        )
    if rows:
        per_level = _apply_correction(pd.DataFrame(rows), correction, alpha, None)
        per_level = per_level.reset_index(drop=True)[list(TABLE_COLUMNS)]
    else:
        per_level = pd.DataFrame(columns=list(TABLE_COLUMNS))
    per_level.attrs.update(attrs, table="comparison", correction=correction, baseline=name_b)
    verdict = _verdict(auc.iloc[0], source_a, source_b, f"{target} ({optimizer})", test)
    return SourceComparison(auc=auc, per_level=per_level, verdict=verdict)

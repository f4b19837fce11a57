"""``compare_samples``: every statistic of one treatment sample vs one baseline sample, as a row.

The unit every table is built from: summaries of both sides, bootstrap CIs (``effects``), all four
tests (``significance``) with the primary one in ``t``/``p`` (chosen by ``pairing.comparison_test``,
the one place that decides), effect sizes, and a ``note`` that joins every reason for a NaN or a
caveat. Seeded samples (``pd.Series`` indexed by seed) are paired when both sides hold the same
seeds; ``pair_r`` is then the correlation of the two arms over the seeds. Columns:
``SAMPLE_COLUMNS``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from transfer_bench.analysis.stats.effects import (
    MIN_BOOTSTRAP_N,
    bootstrap_ci,
    cliffs_delta,
    hedges_g,
    probability_of_improvement,
)
from transfer_bench.analysis.stats.pairing import DEFAULT_TEST, comparison_test
from transfer_bench.analysis.stats.samples import Samples, summarize
from transfer_bench.analysis.stats.significance import (
    UNPAIRED_FALLBACK,
    mann_whitney,
    paired_t,
    welch,
    wilcoxon_signed_rank,
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
    "pair_r",
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
    test: str = DEFAULT_TEST,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
    names: tuple[str, str] = ("ticket", "baseline"),
) -> dict[str, Any]:
    """All statistics of sample ``a`` (treatment) vs ``b`` (baseline), as one ``SAMPLE_COLUMNS`` row.

    ``a``/``b`` as ``pd.Series`` indexed by seed are *paired* when both hold exactly the same seeds;
    then paired t, Wilcoxon, the bootstrap CI of the per-seed differences and the arms' correlation
    ``pair_r`` are filled in (arrays are never paired). ``test`` picks the primary test whose
    statistic/p-value go to ``t``/``p`` (``comparison_test``: a paired test on unpaired data falls
    back to Welch / Mann-Whitney, and ``test`` says which ran).
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

    # Tests: every one for its column; the primary one decided by comparison_test.
    w = welch(x, y)
    mw = mann_whitney(x, y)
    row.update(welch_t=w.t, welch_p=w.p, mwu_u=mw.statistic, mwu_p=mw.p)
    why_empty = {}
    if paired:
        pt, wx = paired_t(x, y), wilcoxon_signed_rank(x, y)
        row.update(paired_t=pt.statistic, paired_p=pt.p, wilcoxon_w=wx.statistic)
        row["wilcoxon_p"] = wx.p
        why_empty = {"paired_t": pt.note, "wilcoxon": wx.note}
    primary = comparison_test(a, b, test)
    row.update(test=primary.test, t=primary.statistic, p=primary.p, pair_r=primary.correlation)
    notes.append(primary.note)
    if s1.n != s2.n:
        notes.append(f"unequal n ({s1.n} vs {s2.n})")
    notes.append(_zero_variance_note(x, y, names))
    if paired and primary.test not in UNPAIRED_FALLBACK and min(s1.n, s2.n) >= 2:
        # Say why a paired column is empty even when the primary test is unpaired.
        notes.extend(why_empty.values())

    # Effect sizes.
    row.update(
        hedges_g=hedges_g(x, y),
        cliffs_delta=cliffs_delta(x, y),
        prob_improvement=probability_of_improvement(x, y),
    )
    row["note"] = "; ".join(dict.fromkeys(n for n in notes if n))
    return row

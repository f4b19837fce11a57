"""The per-level tables: each treatment arm vs a control, one row per ticket family.

``comparison_table`` is the paper table (one row per control arm, source, target, optimizer and
level, with every statistic of ``compare_samples``, each arm's binomial test-set error, the row's
role, primary or secondary, and corrected p-values); ``compare`` is the original compact table cut
to ``COMPARISON_COLUMNS``; ``compare_family`` one row of it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import pandas as pd

from transfer_bench.analysis.stats.pairing import DEFAULT_TEST
from transfer_bench.analysis.stats.samples import binomial_se, summarize
from transfer_bench.analysis.stats.selection import (
    _as_tuple,
    _label,
    _sources,
    seed_values,
    select_baseline,
)
from transfer_bench.analysis.stats.table_common import (
    STAT_COLUMNS,
    TableSettings,
    _finish_table,
    _treatment_arms,
    _warn_note,
)
from transfer_bench.analysis.stats.two_sample import compare_samples
from transfer_bench.config import PrimaryComparison

FAMILY_KEY: tuple[str, ...] = ("source", "target", "optimizer", "level")

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
    "test",
    "t",
    "p",
    "p_adj",
    "significant",
    "note",
)

TABLE_COLUMNS: tuple[str, ...] = (
    *FAMILY_KEY,
    "control",
    "density",
    "percent_remaining",
    "baseline",
    "baseline_source",
    "baseline_density",
    "n_test",
    "ticket_binom_se",
    "baseline_binom_se",
    "dense_mean",
    "dense_std",
    "dense_n",
    *STAT_COLUMNS,
)


def _is_accuracy(metric: str) -> bool:
    return metric.endswith("accuracy")


def _n_test(rows: pd.DataFrame) -> float:
    """Test images behind each accuracy of ``rows`` (their median; NaN when not recorded)."""
    if "n_test" not in rows.columns or rows.empty:
        return math.nan
    n = pd.to_numeric(rows["n_test"], errors="coerce").dropna()
    return float(n.median()) if len(n) else math.nan


def _dense_summary(rows: pd.DataFrame | None, metric: str, where: str) -> dict:
    """``dense_mean``/``dense_std``/``dense_n`` of the dense network's runs (NaN, 0 without)."""
    if rows is None or rows.empty:
        return {"dense_mean": math.nan, "dense_std": math.nan, "dense_n": 0}
    s = summarize(seed_values(rows, metric, f"{where} (dense)").to_numpy())
    return {"dense_mean": s.mean, "dense_std": s.std, "dense_n": s.n}


def _arm_row(
    arm: pd.DataFrame,
    base_rows: pd.DataFrame,
    *,
    key: dict,
    baseline: str,
    metric: str,
    stats_kw: dict,
    context: str,
    dense_rows: pd.DataFrame | None = None,
) -> dict:
    """One comparison row (without ``p_adj``/``significant``) of a treatment arm vs its baseline;
    ``dense_rows``: the dense network's runs on the same target, summarised in ``dense_*``."""
    where = _label(key)
    a = seed_values(arm, metric, where)
    b = seed_values(base_rows, metric, f"{where} ({baseline})")
    row = compare_samples(a, b, names=(key.get("control", "ticket"), baseline), **stats_kw)
    n_test = _n_test(arm)
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
        n_test=n_test,
        ticket_binom_se=binomial_se(a, n_test) if _is_accuracy(metric) else math.nan,
        baseline_binom_se=binomial_se(b, _n_test(base_rows)) if _is_accuracy(metric) else math.nan,
        **_dense_summary(dense_rows, metric, where),
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
    test: str = DEFAULT_TEST,
    correction: str = "holm",
    alpha: float = 0.05,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
    family: Sequence[str] | None = None,
    primary: Sequence[PrimaryComparison] | None = None,
) -> pd.DataFrame:
    """The paper table: each ``treatment`` arm vs control ``baseline`` per source/target/opt./level.

    ``df`` is a ``load_results`` frame; only ``kind == "transfer"`` rows are used. ``baseline`` is
    ``random_reinit``, ``dense`` or any other transfer control present in ``df``. Treatment arms
    (default: ``ticket``) are grouped by (control, source, target, optimizer, level); their baseline
    runs follow ``select_baseline``. Statistics come from ``compare_samples`` (means, std, n, BCa
    bootstrap CIs with ``n_resamples`` resamples seeded by ``seed``, Welch, Mann-Whitney, paired t
    and Wilcoxon when seeds pair up, the arms' correlation, Hedges' g, Cliff's delta,
    P(improvement)). ``p`` is the primary ``test``'s p-value (``pairing.comparison_test``: paired t
    by default, Welch where the seeds differ). ``primary``: the comparisons the suite exists for
    (``PrimaryComparison`` entries; rows they match get ``role`` "primary", the others
    "secondary"); None makes every row primary, an empty list none. ``p_adj`` applies
    ``correction`` ("holm" | "bh" | "none") within each role (and within groups of the ``family``
    columns); ``significant`` is ``p_adj < alpha``. ``n_test`` and ``*_binom_se``: the test images
    behind each accuracy and the binomial standard error sqrt(p(1-p)/n_test) of one seed's
    accuracy (when the results record their test-set size). ``dense_*``: the dense network on
    the row's target and optimizer (mean, std, seeds), the reference every arm is pruned from.
    Columns: ``TABLE_COLUMNS``; rows
    sorted by target, optimizer, control, source, level; settings in ``.attrs``.
    """
    treatments = _as_tuple(treatment)
    settings = TableSettings(metric, test, correction, alpha, n_resamples, seed, confidence_level)
    settings.check(df, baseline, treatments)
    transfer, arms = _treatment_arms(df, treatments)
    attrs = settings.attrs(
        "comparison",
        baseline,
        treatments,
        family=tuple(family or ()),
        primary=None if primary is None else tuple(p.label() for p in primary),
    )
    finish = dict(correction=correction, alpha=alpha, attrs=attrs)
    if arms.empty:
        warnings.warn(
            f"compare: no transfer {'/'.join(treatments)} results to compare", stacklevel=2
        )
        return _finish_table([], TABLE_COLUMNS, **finish)
    group_cols = ["control", *FAMILY_KEY]
    rows = []
    for values, group in arms.groupby(group_cols, dropna=False, sort=False):
        key = dict(zip(group_cols, values, strict=True))
        key["level"] = int(key["level"])
        rows.append(
            _arm_row(
                group,
                select_baseline(transfer, key, baseline),
                key=key,
                baseline=baseline,
                metric=metric,
                stats_kw=settings.stats_kw,
                context="compare",
                dense_rows=select_baseline(transfer, key, "dense"),
            )
        )
    _assign_roles(rows, primary)
    order = ("target", "optimizer", "control", "source", "level")
    return _finish_table(rows, TABLE_COLUMNS, family=family, sort_by=order, **finish)


def _assign_roles(rows: list[dict], primary: Sequence[PrimaryComparison] | None) -> None:
    """Set each row's ``role``; warn about a declared primary that matches no row."""
    for r in rows:
        hit = primary is None or any(p.matches(r) for p in primary)
        r["role"] = "primary" if hit else "secondary"
    for i, p in enumerate(primary or ()):
        if not any(p.matches(r) for r in rows):
            warnings.warn(
                f"analysis.primary[{i}] ({p.label()}) matches no comparison in these results; "
                "check its names, or run the suite first",
                stacklevel=3,
            )


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
        stats_kw=dict(test=DEFAULT_TEST, n_resamples=0),
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
    test: str = DEFAULT_TEST,
) -> pd.DataFrame:
    """Ticket vs ``baseline`` per (source, target, optimizer, level), with corrected p-values.

    The original compact table: ``comparison_table`` without bootstrap CIs, cut to
    ``COMPARISON_COLUMNS``. ``diff`` is ticket mean minus baseline mean in metric units (accuracy
    fraction); ``t``/``p`` belong to ``test`` (paired t by default, Welch where seeds differ);
    ``p_adj`` applies ``correction`` over all rows; ``significant`` is ``p_adj < alpha`` (False
    where p is NaN).
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

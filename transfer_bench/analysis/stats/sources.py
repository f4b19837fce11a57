"""``compare_sources``: does one source's ticket transfer better to a target than another's?

The headline is the sparsity-integrated comparison of the two arms (``auc``), backed by one
per-level row for each shared level (``comparison``) and a one-sentence verdict.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import pandas as pd

from transfer_bench.analysis.stats.auc import _auc_row, _finish_auc
from transfer_bench.analysis.stats.comparison import TABLE_COLUMNS, _arm_row
from transfer_bench.analysis.stats.pairing import DEFAULT_TEST
from transfer_bench.analysis.stats.selection import _eq, _sources, _transfer
from transfer_bench.analysis.stats.table_common import TableSettings, _finish_table


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
    test: str = DEFAULT_TEST,
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
    settings = TableSettings(metric, test, correction, alpha, n_resamples, seed, confidence_level)
    settings.check(df, None)
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
    name_b = f"{control_b} from {source_b}"
    key = dict(control=control, source=source_a, target=target, optimizer=optimizer)
    auc_row = _auc_row(
        arm_a,
        arm_b,
        key=key,
        baseline=control_b,
        baseline_name=name_b,
        metric=metric,
        stats_kw=settings.stats_kw,
        context="compare_sources",
        keep_empty=True,
    )
    attrs = {**settings.attrs("auc", control_b, (control,)), "correction": "none"}
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
                stats_kw=settings.stats_kw,
                context="compare_sources",
            )
        )
    per_level = _finish_table(
        rows,
        TABLE_COLUMNS,
        correction=correction,
        alpha=alpha,
        attrs={**attrs, "table": "comparison", "correction": correction, "baseline": name_b},
    )
    verdict = _verdict(auc.iloc[0], source_a, source_b, f"{target} ({optimizer})", test)
    return SourceComparison(auc=auc, per_level=per_level, verdict=verdict)

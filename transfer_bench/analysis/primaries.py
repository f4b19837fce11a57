"""Which comparisons a suite exists for, and how a report says so.

A suite's confirmatory questions are few: ``analysis.primary`` names them (cells of the per-level
table), or a ``claim`` does (its checks). Only those share the multiple-comparison correction;
every other cell is *secondary*, corrected among the other secondary cells of its table and
marked so, which keeps a table of many cells from diluting the questions the suite was run for.
Without either, every cell of the per-level table is primary, as it was before primaries existed.
"""

from __future__ import annotations

import pandas as pd

from transfer_bench.config import AnalysisSpec, PrimaryComparison


def table_primaries(spec: AnalysisSpec, has_claim: bool) -> tuple[PrimaryComparison, ...] | None:
    """The ``primary`` argument of ``comparison_table`` for a suite: the declared entries; none
    for a claim suite without them (its checks are the primaries); None (every cell) otherwise."""
    if spec.primary:
        return spec.primary
    return () if has_claim else None


def _count(table: pd.DataFrame, role: str) -> int:
    if table.empty or "role" not in table.columns:
        return 0
    return int(((table["role"] == role) & table["p"].notna()).sum())


def primaries_text(spec: AnalysisSpec, table: pd.DataFrame, checks: int | None) -> str:
    """The report's sentence on what the correction runs over (``checks``: the claim's number of
    checks, None without a claim)."""
    correction = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}[spec.correction]
    primary, secondary = _count(table, "primary"), _count(table, "secondary")
    rest = (
        f"; the other {secondary} tested cells, and the integrated tables, are secondary: "
        f"{correction} correction among themselves, marked *secondary*, exploratory"
        if secondary
        else "; the integrated tables are secondary (each corrected within itself)"
    )
    if spec.primary:
        names = "; ".join(p.label() for p in spec.primary)
        return (
            f"Primary comparisons (`analysis.primary`): {names}: {primary} tested cells, "
            f"{correction} correction over those only{rest}."
        )
    if checks is not None:
        return (
            f"Primary comparisons: the claim's {checks} checks (Holm over them); every table "
            f"cell is secondary ({correction} correction within each table, exploratory)."
        )
    return (
        f"No primary comparisons declared (`analysis.primary`): all {primary} tested cells of "
        f"the per-level table form one family ({correction} correction over all of them){rest}; "
        "naming the few comparisons the suite exists for would shrink that family and raise "
        "its power."
    )

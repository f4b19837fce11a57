"""How many seeds a comparison needs, and what they would cost: ``transfer-bench power``.

For every cell of a suite's comparison tables (and every check of a claim) this takes the observed
spread and seed count, the cell's level after the table's correction (``power.cell_alpha``), and an
effect to look for (the observed one unless the user names one), and reports the minimal detectable
effect now, the seeds per arm that would give the requested power, and the training time those
extra seeds would take at the suite's measured cost per seed (every arm of the suite is trained
per seed, so a seed costs the suite's total compute divided by its seed count).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from transfer_bench.analysis import power as pw
from transfer_bench.analysis.claims import check_design
from transfer_bench.analysis.stats import row_design
from transfer_bench.config import ClaimSpec

ADVICE_COLUMNS: tuple[str, ...] = (
    "what",
    "n",
    "observed",
    "mde",
    "effect",
    "power_now",
    "alpha",
    "seeds_needed",
    "extra_seconds",
    "scale",
    "unit",
    "note",
)


def seconds_per_seed(results: pd.DataFrame) -> float:
    """Training seconds the whole suite spends per seed (NaN when nothing was timed)."""
    if results.empty or "seconds" not in results.columns:
        return math.nan
    seeds = results["seed"].nunique()
    total = float(pd.to_numeric(results["seconds"], errors="coerce").sum())
    return total / seeds if seeds and total > 0 else math.nan


def _extra(needed: int | None, n: int, per_seed: float) -> float:
    if needed is None:
        return math.nan
    return max(0, needed - n) * per_seed


def _label(row: pd.Series) -> str:
    arm = row.get("control", "ticket")
    where = f"{arm} from {row['source']} on {row['target']}"
    if "percent_remaining" in row.index and pd.notna(row.get("percent_remaining")):
        where += f" at {row['percent_remaining']:.3g}%"
    elif "density_min" in row.index and pd.notna(row.get("density_min")):
        where += f" over {100 * row['density_max']:.3g}-{100 * row['density_min']:.3g}% (AUC)"
    return f"{where} vs {row['baseline']}"


def table_advice(
    table: pd.DataFrame,
    *,
    effect: float | None = None,
    power: float = pw.DEFAULT_POWER,
    per_seed: float = math.nan,
) -> pd.DataFrame:
    """One advice row per tested row of a ``comparison_table``/``auc_table`` (metric units)."""
    rows = []
    span = pw.metric_span(table.attrs.get("metric", "test_accuracy"))
    for _, r in table.iterrows():
        if not math.isfinite(float(r.get("mde_alpha", math.nan))):
            continue
        design = row_design(r)
        n = int(min(r["ticket_n"], r["baseline_n"]))
        target = abs(float(r["diff"])) if effect is None else abs(effect)
        needed = pw.seeds_needed(design, target, float(r["mde_alpha"]), power=power)
        rows.append(
            {
                "what": _label(r),
                "n": n,
                "observed": float(r["diff"]),
                "mde": pw.mde(
                    design, float(r["mde_alpha"]), power=power, test=str(r["test"]), span=span
                ),
                "effect": target,
                "power_now": design.power(target, float(r["mde_alpha"])),
                "alpha": float(r["mde_alpha"]),
                "seeds_needed": needed,
                "extra_seconds": _extra(needed, n, per_seed),
                "scale": 100.0,
                "unit": "points",
                "note": "" if needed is not None else "not reachable within 1000 seeds",
            }
        )
    return pd.DataFrame(rows, columns=list(ADVICE_COLUMNS))


def _distance(expect: str, mean: float, check: Any) -> tuple[float, int, str]:
    """How far the true value must sit from the tested boundary, and the test's sidedness."""
    if expect in ("greater", "less"):
        return abs(mean), 2, ""
    if expect == "below":
        return (check.threshold or 0.0) - mean, 1, ""
    if expect == "above":
        return mean - (check.threshold or 0.0), 1, ""
    margin = check.margin or 0.0
    if expect == "not_less":
        return mean + margin, 1, ""
    return margin - abs(mean), 1, "TOST: power of the nearer bound's one-sided test (approximate)"


def claim_advice(
    record: dict[str, Any],
    claim: ClaimSpec,
    *,
    effect: float | None = None,
    power: float = pw.DEFAULT_POWER,
    per_seed: float = math.nan,
) -> pd.DataFrame:
    """One advice row per check of a claim, from ``claim.json``'s per-seed values.

    ``effect`` replaces the observed mean as the true value to plan for, in each check's display
    unit (points for accuracies; the check's ``scale`` converts). The level is the claim's alpha
    divided by its number of checks (Holm's first step)."""
    alpha = pw.cell_alpha(claim.alpha, "holm", len(claim.checks))
    specs = {c.name: c for c in claim.checks}
    rows = []
    for measured in record.get("checks", []):
        check = specs.get(measured["check"])
        design = check_design(measured)
        values = np.asarray(measured.get("values") or [], dtype=float)
        n = int(measured.get("n") or values.size)
        base: dict[str, Any] = dict.fromkeys(ADVICE_COLUMNS, math.nan)
        scale = check.scale if check is not None else 100.0
        base.update(
            what=measured["check"],
            n=n,
            alpha=alpha,
            scale=scale,
            unit=check.unit if check is not None else "points",
            note="",
        )
        if check is None or check.test != "t" or design is None:
            why = "sign test: no power formula here" if check and check.test == "sign" else ""
            base.update(note=why or "not a t-test check with 2+ seeds", seeds_needed=None)
            rows.append(base)
            continue
        mean = float(measured.get("effect", values.mean() if values.size else math.nan))
        planned = mean if effect is None else effect / scale
        distance, sides, note = _distance(check.expect, planned, check)
        needed = pw.seeds_needed(design, distance, alpha, power=power, sides=sides)
        if distance <= 0:
            note = "the planned value is on the wrong side of the tested boundary"
            needed = None
        base.update(
            observed=mean,
            mde=pw.mde(design, alpha, power=power, sides=sides, span=pw.metric_span(check.metric)),
            effect=distance,
            power_now=design.power(distance, alpha, sides) if distance > 0 else math.nan,
            seeds_needed=needed,
            extra_seconds=_extra(needed, n, per_seed),
            note=note,
        )
        rows.append(base)
    return pd.DataFrame(rows, columns=list(ADVICE_COLUMNS))

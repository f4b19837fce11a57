"""The report's opening: a short summary and a headline table of the answers the suite exists for.

A reader comes for one or two answers, and twenty findings of equal weight hide them. So a report
opens with a few sentences and one table row per primary comparison (or per claim check): effect
with its 95% CI, corrected p, minimal detectable effect (MDE), n and a verdict. The findings,
every table cell and how they were made come after.

With no ``analysis.primary`` (every cell of the per-level table is then primary) and more than
``HEADLINE_ROWS`` cells, the table shows the cells whose effect is largest relative to their MDE,
says that this is a selection for reading (the tests and the correction cover every cell), and
points to the full table.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from transfer_bench.analysis.claims import fmt_effect, fmt_p
from transfer_bench.analysis.tables import (
    NOT_ESTIMABLE,
    P_NAMES,
    finite,
    fmt_diff,
    fmt_mde,
    fmt_p_marked,
    fmt_percent_remaining,
    joined,
    p_phrase,
    shown_ci,
)
from transfer_bench.config import AnalysisSpec

#: rows of the headline table when the suite declares no primaries
HEADLINE_ROWS = 8
CORRECTIONS = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}


def verdict(row: Any, baseline: str) -> str:
    """A cell's answer in words: better / worse than the baseline (significant after correction),
    not significant, or not tested."""
    if not finite(row.p_adj):
        return "not tested (too few seeds or no spread)"
    if bool(row.significant):
        return f"**{'better' if row.diff > 0 else 'worse'} than {baseline}**"
    if finite(row.mde):
        return "not significant"
    return "not significant; nothing accuracy allows was detectable"


def _who(row: Any) -> str:
    own = " (its source)" if row.source == row.target else ""
    return f"{row.control} from {row.source} on {row.target}{own}"


def headline_cells(cmp: pd.DataFrame, spec: AnalysisSpec) -> tuple[pd.DataFrame, str]:
    """The cells the headline shows, and a note when they are a selection ("" otherwise).

    Declared primaries (``analysis.primary``): every primary cell. None declared (every cell is
    primary): all of them up to ``HEADLINE_ROWS``, else those with the largest |effect| / MDE."""
    if cmp.empty or "role" not in cmp.columns:
        return cmp.iloc[0:0], ""
    primary = cmp[cmp["role"] == "primary"]
    if spec.primary or len(primary) <= HEADLINE_ROWS:
        return primary, ""
    mde = primary["mde"].astype(float)
    strength = (primary["diff"].abs() / mde).where(mde.map(finite), 0.0).fillna(0.0)
    chosen = primary.loc[strength.sort_values(ascending=False, kind="stable").index[:HEADLINE_ROWS]]
    note = (
        f"No primary comparisons declared, so all {len(primary)} cells of the per-level table are "
        f"primary; shown are the {HEADLINE_ROWS} with the largest effect relative to their MDE, "
        "a selection for reading (the tests and the correction cover every cell; the rest are "
        f"in 'Each arm vs {spec.baseline}' below)."
    )
    return chosen, note


def cells_table(rows: pd.DataFrame, spec: AnalysisSpec) -> str:
    """The headline table of comparison cells (Markdown)."""
    multi_opt = rows["optimizer"].nunique(dropna=False) > 1
    head = (
        f"| comparison (vs {spec.baseline}) | weights remaining | Δ (points) [95% CI] | "
        f"p (adj.) | MDE (points) | n | verdict |"
    )
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows.itertuples():
        who = _who(r) + (f" ({r.optimizer})" if multi_opt else "")
        low, high = shown_ci(r)
        lines.append(
            f"| {who} | {fmt_percent_remaining(r.percent_remaining)}% | "
            f"{fmt_diff(r.diff, low, high)} | {fmt_p_marked(r.p_adj)} | {fmt_mde(r.mde)} | "
            f"{r.ticket_n}/{r.baseline_n} | {verdict(r, spec.baseline)} |"
        )
    return "\n".join(lines)


def cells_sentence(cmp: pd.DataFrame, spec: AnalysisSpec) -> str:
    """A few short sentences: how many primary cells, which are significant, and what the
    others could have detected."""
    primary = cmp[cmp["role"] == "primary"]
    tested = primary[primary["p_adj"].map(finite)]
    sig = tested[tested["significant"].fillna(False).astype(bool)]
    what = (
        "`analysis.primary`: " + "; ".join(p.label() for p in spec.primary)
        if spec.primary
        else "none declared, so every cell of the per-level table"
    )
    p_name = P_NAMES[spec.correction]
    text = (
        f"{len(primary)} primary comparisons with {spec.baseline} ({what}); "
        f"{CORRECTIONS[spec.correction]} correction over them. "
    )
    if sig.empty:
        text += f"Significant ({p_name} < {spec.alpha:g}): none."
    else:
        shown = significant_text(sig, p_name)
        more = f"; and {len(shown) - 3} more comparisons" if len(shown) > 3 else ""
        text += f"Significant ({p_name} < {spec.alpha:g}): {'; '.join(shown[:3])}{more}."
    rest = tested[~tested.index.isin(sig.index)]
    if not rest.empty:
        ns = sorted({f"{int(a)}/{int(b)}" for a, b in rest[["ticket_n", "baseline_n"]].to_numpy()})
        mde = rest["mde"].astype(float)
        known = mde[mde.map(finite)]
        text += f" Not significant: {len(rest)}"
        if known.empty:
            text += f"; with n = {', '.join(ns)} no difference accuracy allows was detectable."
        else:
            low, high = f"{100 * known.min():.1f}", f"{100 * known.max():.1f}"
            size = low if low == high else f"{low}-{high}"
            text += (
                f"; with n = {', '.join(ns)} seeds they could only have detected differences of "
                f"about {size} points or more (MDE, 80% power)."
            )
    untested = len(primary) - len(tested)
    if untested:
        text += f" Not tested: {untested} (too few seeds, or no spread)."
    return text


def significant_text(sig: pd.DataFrame, p_name: str) -> list[str]:
    """One phrase per comparison (arm, source, target) with its significant densities: "ticket
    from a on t at 7.0% and 4.5% (+2.76 and +2.92 points, p_holm = 0.005 and 0.005)"."""
    groups: dict[str, list[Any]] = {}
    for r in sig.itertuples():
        groups.setdefault(_who(r), []).append(r)

    out = []
    for who, rows in groups.items():
        where = joined([f"{fmt_percent_remaining(r.percent_remaining)}%" for r in rows])
        diffs = joined([f"{100 * r.diff:+.2f}" for r in rows])
        p_text = f"{p_name} {p_phrase(rows[0].p_adj)}"
        if len(rows) > 1:
            p_text = f"{p_name} " + joined(
                ["<0.001" if r.p_adj < 0.001 else f"{r.p_adj:.3f}" for r in rows]
            )
        out.append(f"{who} at {where} ({diffs} points, {p_text})")
    return out


def claim_sentence(record: dict[str, Any]) -> str:
    """The claim's verdict in one sentence, with its checks counted by verdict."""
    counts: dict[str, int] = {}
    for c in record["checks"]:
        counts[c["verdict"]] = counts.get(c["verdict"], 0) + 1
    parts = ", ".join(f"{n} {v}" for v, n in counts.items())
    return (
        f"Claim: {record['title']} ({record['paper']}): **{record['verdict']}** "
        f"({len(record['checks'])} checks fixed before the run: {parts}; Holm over the checks, "
        f"alpha = {record['alpha']:g})."
    )


def claim_table(record: dict[str, Any]) -> str:
    """The headline table of a claim's checks (Markdown); MDE in the check's unit."""
    lines = [
        "| check | effect [95% CI] | p_holm | MDE | n | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in record["checks"]:
        mde = r.get("mde", math.nan)
        if isinstance(mde, float) and math.isinf(mde):
            mde_text = NOT_ESTIMABLE
        else:
            mde_text = f"{mde * r['scale']:.2f}" if finite(mde) else "none (not a t-test)"
        lines.append(
            f"| {r['check']} | {fmt_effect(r)} | {fmt_p(r['p_holm'])} | {mde_text} | {r['n']} "
            f"| **{r['verdict']}** |"
        )
    return "\n".join(lines)


def summary_section(cmp: pd.DataFrame, spec: AnalysisSpec, claim: dict[str, Any] | None) -> str:
    """``## Summary``: the claim's verdict and checks, and/or the primary comparison cells, as
    sentences and a headline table ("" when there is nothing to summarise)."""
    parts: list[str] = []
    legend: list[str] = []
    if claim is not None:
        parts += [claim_sentence(claim), claim_table(claim)]
        legend.append(
            "effect: as the check defines it (a difference of arms, or a level); MDE: the "
            "smallest true effect (one-sided checks: distance from the threshold or margin) the "
            "check's t-test detects with 80% power at alpha / checks"
        )
    rows, note = headline_cells(cmp, spec)
    if not rows.empty and (claim is None or spec.primary):
        parts += [cells_sentence(cmp, spec), cells_table(rows, spec)]
        parts += [note] if note else []
        legend.append(
            "Δ: arm minus baseline; MDE: the smallest true difference the test detects with 80% "
            "power at its corrected level"
        )
    if not parts:
        return ""
    parts.append(
        "; ".join(legend) + "; n.e.: not estimable with these seeds. The findings, every "
        "comparison and how they were made follow."
    )
    return "## Summary\n\n" + "\n\n".join(parts)

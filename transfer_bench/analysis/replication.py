"""The same comparisons from two result folders side by side (``compare A --against B``).

Two runs of one suite on different machines or torch builds give different floats; what should
agree is the effects within their uncertainty. Cells are matched on arm, source, target, optimizer
and level; each side shows its difference in points, 95% CI and corrected p-value.
"""

from __future__ import annotations

import math

import pandas as pd

KEY: tuple[str, ...] = ("control", "source", "target", "optimizer", "level")


def _cell(row: pd.Series) -> str:
    if not math.isfinite(float(row["diff"])):
        return "–"
    text = f"{100 * row['diff']:+.2f}"
    low, high = row.get("diff_ci_low"), row.get("diff_ci_high")
    if pd.notna(low) and pd.notna(high):
        text += f" [{100 * low:+.2f}, {100 * high:+.2f}]"
    p = row.get("p_adj")
    if pd.notna(p):
        text += f", p_adj {p:.3g}"
    return text + f", n {int(row['ticket_n'])}/{int(row['baseline_n'])}"


def side_by_side(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per cell present in both comparison tables: where, A's and B's effect, and whether
    both reach the same verdict (significant with the same sign, or both not significant)."""
    if a.empty or b.empty:
        return pd.DataFrame(columns=["comparison", "remaining (%)", "A", "B", "same verdict"])
    merged = a.merge(b, on=list(KEY), suffixes=("_a", "_b"))
    rows = []
    for _, r in merged.iterrows():
        side = {
            k: pd.Series({c[:-2]: r[c] for c in r.index if c.endswith(k)}) for k in ("_a", "_b")
        }
        verdicts = [
            (bool(s["significant"]), math.copysign(1, float(s["diff"])) if s["significant"] else 0)
            for s in side.values()
        ]
        rows.append(
            {
                "comparison": f"{r['control']} from {r['source']} on {r['target']} vs "
                f"{r['baseline_a']}",
                "remaining (%)": f"{r['percent_remaining_a']:.3g}",
                "A": _cell(side["_a"]),
                "B": _cell(side["_b"]),
                "same verdict": "yes" if verdicts[0] == verdicts[1] else "no",
            }
        )
    return pd.DataFrame(rows)

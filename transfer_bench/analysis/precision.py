"""What limits a comparison's precision, in one line each for the report.

Two sources of noise sit in every cell of a comparison table: the spread between seeds, and the
finite test set that measures each network (a binomial error of sqrt(p(1-p)/n_test) per
accuracy). Pairing arms by seed removes the part of the seed spread the arms share, as much as
their correlation says. ``pairing_text`` summarises how the cells were tested and how correlated
the paired arms were; ``noise_text`` sets the test-set error next to the seed-to-seed spread, so
a reader sees which one dominates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _range(values: pd.Series, scale: float = 1.0, digits: int = 2) -> str:
    v = values.astype(float).dropna() * scale
    low, high = f"{v.min():.{digits}f}", f"{v.max():.{digits}f}"
    return low if low == high else f"{low} to {high}"


def pairing_text(table: pd.DataFrame) -> str:
    """ "Pairing: 16 of 16 tested cells compared paired by seed (...); the paired arms'
    correlation over seeds: median r = 0.35 (-0.20 to 0.81; ...)." ("" for an empty table)."""
    if table.empty or "paired" not in table.columns:
        return ""
    tested = table[table["p"].notna()]
    if tested.empty:
        return ""
    paired = tested[tested["test"].isin(("paired_t", "wilcoxon"))]
    unpaired = len(tested) - len(paired)
    text = f"Pairing: {len(paired)} of {len(tested)} tested cells compared paired by seed"
    if unpaired:
        text += f", {unpaired} unpaired (their seeds differ, or an unpaired test was asked for)"
    r = paired["pair_r"].astype(float).dropna() if "pair_r" in paired.columns else pd.Series()
    if r.empty:
        return text + "."
    n = sorted({int(x) for x in paired["n_pairs"]})
    pairs = str(n[0]) if len(n) == 1 else f"{n[0]}-{n[-1]}"
    noisy = "; r from so few seeds is itself very uncertain" if n[-1] < 8 else ""
    return (
        f"{text}; the paired arms' correlation over seeds: median r = {np.median(r):.2f} "
        f"(range {_range(r)}, {pairs} pairs each{noisy}). A positive r is about the share of "
        "the seed-to-seed variance of a difference that pairing removes; near zero, pairing "
        "removes little and costs the paired test half its degrees of freedom."
    )


def noise_text(table: pd.DataFrame) -> str:
    """ "Test-set noise: the binomial standard error of one accuracy is 0.25-0.79 points
    (n_test = 4000), against seed-to-seed SDs of 0.17-3.20 points; the seed spread is the
    larger in 20 of 32 arm cells." ("" when the test-set sizes were not recorded)."""
    if table.empty or "ticket_binom_se" not in table.columns:
        return ""
    cells = pd.concat(
        [
            table[["ticket_binom_se", "ticket_std"]].set_axis(["se", "sd"], axis=1),
            table[["baseline_binom_se", "baseline_std"]].set_axis(["se", "sd"], axis=1),
        ]
    ).astype(float)
    cells = cells[np.isfinite(cells["se"]) & np.isfinite(cells["sd"])]
    if cells.empty:
        return ""
    sizes = sorted({int(n) for n in table["n_test"].dropna()})
    n_text = ", ".join(f"{n:,}" for n in sizes)
    seed_wins = int((cells["sd"] > cells["se"]).sum())
    share = f"the spread between seeds is the larger in {seed_wins} of {len(cells)} arm cells"
    if seed_wins >= 0.75 * len(cells):
        verdict = "the spread between seeds dominates."
    elif seed_wins <= 0.25 * len(cells):
        verdict = (
            "the test set's sampling error dominates. Every arm is scored on the same test "
            "images, so that error moves the arms together and largely cancels in their "
            "differences (which the tests compare, taking the test set as fixed); it does limit "
            "how precisely each accuracy itself, or a comparison with another test set, is known."
        )
    else:
        verdict = "neither source dominates throughout."
    return (
        f"Test-set noise: one accuracy measured on n_test = {n_text} images has a binomial "
        f"standard error, sqrt(p(1-p)/n_test), of {_range(cells['se'], 100)} points, against "
        f"seed-to-seed SDs of {_range(cells['sd'], 100)} points; {share}: {verdict}"
    )

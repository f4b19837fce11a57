"""Power analysis: minimal detectable effects and seeds needed, checked against simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from transfer_bench.analysis import power as pw
from transfer_bench.analysis.stats import comparison_table


def _simulated_power(delta: float, design: pw.Design, alpha: float, sims: int = 40_000) -> float:
    """Share of simulated experiments in which the test rejects, at true difference ``delta``."""
    rng = np.random.default_rng(7)
    if design.paired:
        d = rng.normal(delta, design.sd_diff, size=(sims, design.n_a))
        p = sps.ttest_1samp(d, 0.0, axis=1).pvalue
    else:
        a = rng.normal(delta, design.sd_a, size=(sims, design.n_a))
        b = rng.normal(0.0, design.sd_b, size=(sims, design.n_b))
        p = sps.ttest_ind(a, b, axis=1, equal_var=False).pvalue
    return float(np.mean(p < alpha))


@pytest.mark.parametrize(
    "design",
    [
        pw.Design(sd_a=1.0, sd_b=1.0, n_a=5, n_b=5),
        pw.Design(sd_a=0.5, sd_b=2.0, n_a=4, n_b=8),  # Welch, unequal spread and n
        pw.Design(sd_a=1.0, sd_b=1.0, n_a=6, n_b=6, paired=True, sd_diff=0.7),
    ],
    ids=["welch-equal", "welch-unequal", "paired"],
)
@pytest.mark.parametrize("alpha", [0.05, 0.05 / 6])
def test_mde_has_the_requested_power_in_simulation(design: pw.Design, alpha: float) -> None:
    mde = pw.mde(design, alpha, power=0.8)
    assert math.isfinite(mde) and mde > 0
    # at the MDE the test rejects ~80% of the time; well below it, clearly less often
    assert _simulated_power(mde, design, alpha) == pytest.approx(0.8, abs=0.02)
    assert _simulated_power(0.6 * mde, design, alpha) < 0.6


def test_mde_matches_the_textbook_one_sample_value() -> None:
    # G*Power / statsmodels TTestPower: one-sample (paired) t, n = 20, alpha 0.05 two-sided,
    # 80% power: d = 0.6604
    mde = pw.mde(pw.Design(1.0, 1.0, 20, 20, paired=True, sd_diff=1.0), 0.05)
    assert mde == pytest.approx(0.6604, abs=0.002)


def test_mde_grows_with_correction_and_shrinks_with_seeds() -> None:
    base = pw.Design(sd_a=1.0, sd_b=1.0, n_a=3, n_b=3)
    more = pw.Design(sd_a=1.0, sd_b=1.0, n_a=10, n_b=10)
    assert pw.mde(base, 0.05 / 12) > pw.mde(base, 0.05) > pw.mde(more, 0.05)
    assert pw.cell_alpha(0.05, "holm", 12) == pytest.approx(0.05 / 12)
    assert pw.cell_alpha(0.05, "none", 12) == 0.05


def test_undefined_and_degenerate_designs() -> None:
    assert math.isnan(pw.mde(pw.Design(sd_a=1.0, sd_b=1.0, n_a=1, n_b=3), 0.05))
    assert pw.mde(pw.Design(sd_a=0.0, sd_b=0.0, n_a=3, n_b=3), 0.05) == 0.0
    # an exact Mann-Whitney test with 3 vs 3 seeds cannot go below p = 0.1: nothing is detectable
    assert pw.min_rank_p("mannwhitney", 3, 3) == pytest.approx(0.1)
    assert math.isinf(pw.mde(pw.Design(1.0, 1.0, 3, 3), 0.05, test="mannwhitney"))
    assert math.isfinite(pw.mde(pw.Design(1.0, 1.0, 5, 5), 0.05, test="mannwhitney"))


def test_seeds_needed_is_the_first_count_with_enough_power() -> None:
    design = pw.Design(sd_a=1.0, sd_b=1.0, n_a=3, n_b=3)
    n = pw.seeds_needed(design, 1.0, 0.05, power=0.8)
    assert n is not None and n > 3
    assert design.with_seeds(n - 1).power(1.0, 0.05) < 0.8 <= design.with_seeds(n).power(1.0, 0.05)
    assert pw.seeds_needed(design, 0.0, 0.05) is None
    assert pw.seeds_needed(design, 1e-4, 0.05, max_seeds=50) is None


def _frame(diff: float, sd: float, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for level, density in ((1, 0.5), (2, 0.25)):
        for control, shift in (("ticket", diff), ("random_reinit", 0.0)):
            for seed in range(n):
                rows.append(
                    dict(
                        kind="transfer",
                        source="a",
                        target="b",
                        optimizer="sgd",
                        control=control,
                        level=level,
                        density=density,
                        seed=seed,
                        test_accuracy=0.8 + shift + rng.normal(0, sd),
                    )
                )
    return pd.DataFrame(rows)


def test_comparison_table_carries_the_mde_of_its_corrected_level() -> None:
    cmp = comparison_table(_frame(0.0, 0.01, 4), n_resamples=0, test="welch")
    assert {"mde", "mde_alpha"} <= set(cmp.columns)
    assert cmp["mde_alpha"].tolist() == pytest.approx([0.025, 0.025])  # Holm over 2 cells
    for _, row in cmp.iterrows():
        design = pw.Design(row.ticket_std, row.baseline_std, 4, 4)
        assert row.mde == pytest.approx(pw.mde(design, 0.025))
    # by default the seeds pair: the MDE is the paired t-test's, from the differences' spread
    paired = comparison_table(_frame(0.0, 0.01, 4), n_resamples=0)
    for _, row in paired.iterrows():
        design = pw.Design(
            row.ticket_std, row.baseline_std, 4, 4, paired=True, sd_diff=row.diff_std
        )
        assert row.test == "paired_t" and row.mde == pytest.approx(pw.mde(design, 0.025))


def test_claim_advice_plans_each_check_against_its_boundary() -> None:
    from transfer_bench.analysis.seed_advice import claim_advice
    from transfer_bench.config import ClaimSpec

    arm = {"kind": "transfer", "control": "ticket"}
    claim = ClaimSpec(
        title="t",
        paper="p",
        expected="e",
        checks=[
            {"name": "diff", "treatment": arm, "baseline": arm, "expect": "greater"},
            {
                "name": "eq",
                "treatment": arm,
                "baseline": arm,
                "expect": "equivalent",
                "margin": 0.01,
            },
            {
                "name": "sign",
                "treatment": arm,
                "baseline": arm,
                "expect": "greater",
                "test": "sign",
            },
        ],
    )
    values = [0.020, 0.025, 0.030, 0.022, 0.028]
    record = {"checks": [{"check": n, "values": values} for n in ("diff", "eq", "sign")]}
    advice = claim_advice(record, claim).set_index("what")
    assert advice.loc["diff", "effect"] == pytest.approx(0.025)
    assert advice.loc["diff", "alpha"] == pytest.approx(0.05 / 3)
    assert advice.loc["diff", "seeds_needed"] <= 5 and advice.loc["diff", "power_now"] > 0.8
    # the observed mean (2.5 points) lies outside the 1-point margin: no seed count helps
    assert pd.isna(advice.loc["eq", "seeds_needed"])
    assert "wrong side" in advice.loc["eq", "note"]
    assert "sign test" in advice.loc["sign", "note"]
    planned = claim_advice(record, claim, effect=0.0).set_index("what")
    assert planned.loc["eq", "effect"] == pytest.approx(0.01)  # a true 0 is a full margin away
    assert not pd.isna(planned.loc["eq", "seeds_needed"])

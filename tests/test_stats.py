"""Paper statistics: tests vs scipy, hand-computed effect sizes, corrections, bootstrap, AUC, tables."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from transfer_bench.analysis.stats import (
    AUC_COLUMNS,
    COMPARISON_COLUMNS,
    TABLE_COLUMNS,
    adjust_pvalues,
    auc_table,
    benjamini_hochberg,
    bootstrap_ci,
    cliffs_delta,
    compare,
    compare_samples,
    compare_sources,
    comparison_table,
    hedges_g,
    holm,
    mann_whitney,
    normalized_auc,
    paired_t,
    probability_of_improvement,
    welch,
    wilcoxon_signed_rank,
)
from transfer_bench.analysis.tables import (
    caption_text,
    escape_latex,
    significance_marks,
    to_latex,
    to_markdown,
    write_tables,
)
from transfer_bench.errors import ConfigError

R = 999  # bootstrap resamples in tests (fast)
LEVELS = 5  # levels 0..4, density 0.5 ** level
SLOPES = {"big": 0.01, "small": 0.03}  # accuracy lost per level by each source's ticket


def make_frame(seeds=range(6), slopes=SLOPES, noise: float = 0.002) -> pd.DataFrame:
    """A ``load_results``-like frame on target "t": tickets from two sources plus controls.

    Tickets lose ``slope`` per level (linear in log density, so their normalised AUC is the accuracy
    at the middle level); random_reinit loses 0.05 per level, random_global (no source) 0.06,
    dense sits at 0.91.
    """
    rng = np.random.default_rng(7)
    rows = []

    def add(source, control, level, seed, acc, density=None):
        rows.append(
            {
                "kind": "transfer",
                "source": source,
                "target": "t",
                "optimizer": "adam",
                "control": control,
                "level": level,
                "density": 0.5**level if density is None else density,
                "seed": seed,
                "test_accuracy": float(acc + rng.normal(0, noise)),
                "best_test_accuracy": float(acc + 0.01),
            }
        )

    for seed in seeds:
        add(None, "dense", 0, seed, 0.91, density=1.0)
        for lv in range(LEVELS):
            add(None, "random_global", lv, seed, 0.9 - 0.06 * lv)
            for src, slope in slopes.items():
                add(src, "ticket", lv, seed, 0.9 - slope * lv)
                add(src, "random_reinit", lv, seed, 0.9 - 0.05 * lv)
    df = pd.DataFrame(rows)
    df["percent_remaining"] = 100 * df["density"]
    return df


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_frame()


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


A = np.array([0.91, 0.93, 0.90, 0.94, 0.92, 0.95])
B = np.array([0.89, 0.90, 0.91, 0.88, 0.905, 0.87])


# ------------------------------------------------------------------------------- tests vs scipy


def test_test_pvalues_equal_scipy() -> None:
    assert welch(A, B).p == pytest.approx(sps.ttest_ind(A, B, equal_var=False).pvalue)
    mw = sps.mannwhitneyu(A, B, alternative="two-sided")
    assert mann_whitney(A, B).p == pytest.approx(mw.pvalue)
    assert mann_whitney(A, B).statistic == pytest.approx(mw.statistic)
    assert paired_t(A, B).p == pytest.approx(sps.ttest_rel(A, B).pvalue)
    assert wilcoxon_signed_rank(A, B).p == pytest.approx(sps.wilcoxon(A, B).pvalue)


def test_compare_samples_paired_series_match_scipy() -> None:
    seeds = [3, 1, 2, 0, 5, 4]
    a = pd.Series(A, index=seeds)
    b = pd.Series(B, index=seeds).sort_index()  # other order: aligned by seed, not position
    row = compare_samples(a, b, test="paired_t", n_resamples=R)
    assert row["paired"] and row["n_pairs"] == 6 and row["test"] == "paired_t"
    assert row["p"] == pytest.approx(sps.ttest_rel(A, B).pvalue)
    assert row["wilcoxon_p"] == pytest.approx(sps.wilcoxon(A, B).pvalue)
    assert row["welch_p"] == pytest.approx(sps.ttest_ind(A, B, equal_var=False).pvalue)
    assert row["mwu_p"] == pytest.approx(sps.mannwhitneyu(A, B).pvalue)
    assert row["diff"] == pytest.approx(A.mean() - B.mean())
    assert row["paired_ci_low"] <= row["diff"] <= row["paired_ci_high"]
    assert row["ci_method"] == "BCa" and row["note"] == ""
    # Plain arrays carry no seeds, so they are never paired.
    unpaired = compare_samples(A, B, test="wilcoxon", n_resamples=R)
    assert not unpaired["paired"] and unpaired["test"] == "mannwhitney"
    assert unpaired["p"] == pytest.approx(sps.mannwhitneyu(A, B).pvalue)
    assert "seeds not paired" in unpaired["note"] and math.isnan(unpaired["paired_p"])


# ---------------------------------------------------------------------------------- effect sizes


def test_hedges_g_hand_computed() -> None:
    # a: mean 4, var 4; b: mean 2, var 1; pooled SD sqrt((2*4 + 2*1) / 4) = sqrt(2.5);
    # d = 2 / sqrt(2.5) = 1.264911; J = 1 - 3 / (4*6 - 9) = 0.8; g = 1.011929
    assert hedges_g([2, 4, 6], [1, 2, 3]) == pytest.approx(1.0119288513)
    assert hedges_g([1, 2, 3], [2, 4, 6]) == pytest.approx(-1.0119288513)
    # unequal n: a mean 6, var 20/3; b mean 2, var 2; pooled sqrt((20 + 2) / 4) = sqrt(5.5);
    # d = 4 / sqrt(5.5) = 1.705606; df = 4, J = 1 - 3/15 = 0.8; g = 1.364485
    assert hedges_g([3, 5, 7, 9], [1, 3]) == pytest.approx(1.3644845836)
    assert math.isnan(hedges_g([1.0], [2.0, 3.0]))
    assert math.isnan(hedges_g([0.9, 0.9], [0.8, 0.8]))  # zero pooled SD


def test_cliffs_delta_and_probability_of_improvement_hand_computed() -> None:
    # a vs b pairs: 2 vs (1, 2, 3): > = <; 4 and 6 beat all three -> 7 wins, 1 tie, 1 loss.
    assert cliffs_delta([2, 4, 6], [1, 2, 3]) == pytest.approx((7 - 1) / 9)
    assert probability_of_improvement([2, 4, 6], [1, 2, 3]) == pytest.approx(7.5 / 9)
    assert cliffs_delta([1, 2], [3, 4]) == pytest.approx(-1.0)
    assert probability_of_improvement([1, 2], [3, 4]) == 0.0
    assert probability_of_improvement([5, 5], [5, 5, 5]) == pytest.approx(0.5)
    assert math.isnan(cliffs_delta([], [1.0]))


def test_probability_of_improvement_is_normalised_u() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 7), rng.normal(0.3, 1, 5)
    u = sps.mannwhitneyu(a, b).statistic
    assert probability_of_improvement(a, b) == pytest.approx(u / (7 * 5))
    row = compare_samples(a, b, n_resamples=0)
    assert row["prob_improvement"] == pytest.approx(u / 35)
    assert row["cliffs_delta"] == pytest.approx(2 * u / 35 - 1)


# ----------------------------------------------------------------------------------- corrections


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        ([0.01, 0.04, 0.03, 0.005], [0.02, 0.04, 0.04, 0.02]),
        ([0.01, 0.02, 0.03, 0.04, 0.05], [0.05] * 5),
        ([0.01, np.nan, 0.04], [0.02, np.nan, 0.04]),  # NaN ignored, m = 2
        ([0.5, 0.9], [0.9, 0.9]),
        ([], []),
    ],
)
def test_benjamini_hochberg_known_vectors(p: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(benjamini_hochberg(p), expected, equal_nan=True)
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), expected, equal_nan=True)


def test_holm_known_vector_and_bad_method() -> None:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(adjust_pvalues([0.01, 0.04], "holm"), [0.02, 0.04])
    with pytest.raises(ConfigError, match="'holm', 'bh' or 'none'"):
        adjust_pvalues([0.1], "bonferroni")


# ------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_mean_and_is_deterministic() -> None:
    ci = bootstrap_ci(A, n_resamples=R, seed=1)
    assert ci.method == "BCa" and ci.note == ""
    assert ci.low < A.mean() < ci.high
    assert bootstrap_ci(A, n_resamples=R, seed=1) == ci
    assert bootstrap_ci(A, n_resamples=R, seed=2) != ci
    ref = sps.bootstrap((A,), np.mean, n_resamples=R, rng=np.random.default_rng(1))
    assert (ci.low, ci.high) == pytest.approx(
        (ref.confidence_interval.low, ref.confidence_interval.high)
    )
    diff = bootstrap_ci(A, B, n_resamples=R, seed=1)
    assert diff.low < A.mean() - B.mean() < diff.high


def test_bootstrap_ci_degenerate_and_small() -> None:
    flat = bootstrap_ci([0.5, 0.5, 0.5, 0.5], n_resamples=R)
    assert flat.method == "percentile" and "percentile" in flat.note
    assert (flat.low, flat.high) == pytest.approx((0.5, 0.5))
    small = bootstrap_ci([0.5, 0.6], n_resamples=R)
    assert math.isnan(small.low) and "n < 3" in small.note
    assert math.isnan(bootstrap_ci(A, n_resamples=0).low)


# ------------------------------------------------------------------------------------------- AUC


def test_normalized_auc_hand_computed() -> None:
    # x = log10 d = 0, -1, -2; trapezoids (0.9+0.8)/2 + (0.8+0.5)/2 = 1.5 over a span of 2
    assert normalized_auc([1.0, 0.1, 0.01], [0.9, 0.8, 0.5]) == pytest.approx(0.75)
    assert normalized_auc([0.01, 1.0, 0.1], [0.5, 0.9, 0.8]) == pytest.approx(0.75)  # any order
    # uneven spacing: x = 0, -0.30103, -1 -> 0.85 * 0.30103 + 0.7 * 0.69897 = 0.7451545
    assert normalized_auc([1.0, 0.5, 0.1], [0.9, 0.8, 0.6]) == pytest.approx(0.7451545, abs=1e-6)
    assert math.isnan(normalized_auc([0.5], [0.9]))


def test_compare_sources_detects_constructed_difference(frame: pd.DataFrame) -> None:
    res = compare_sources(frame, "t", "adam", "big", "small", n_resamples=R)
    row = res.auc.iloc[0]
    assert list(res.auc.columns) == list(AUC_COLUMNS)
    # linear in log density, so the mean over it is the accuracy at level 2: 0.88 vs 0.84
    assert row.ticket_mean == pytest.approx(0.88, abs=0.003)
    assert row.baseline_mean == pytest.approx(0.84, abs=0.003)
    assert row["diff"] == pytest.approx(0.04, abs=0.003)
    assert row.diff_ci_low > 0 and row.significant and row.paired and row.n_levels == LEVELS
    assert row.prob_improvement == 1.0 and row.hedges_g > 3
    assert res.verdict.startswith("big transfers better than small to t (adam)")
    assert len(res.per_level) == LEVELS and list(res.per_level.columns) == list(TABLE_COLUMNS)
    assert res.per_level.set_index("level").loc[4, "significant"]
    np.testing.assert_allclose(res.per_level["p_adj"], holm(res.per_level["p"]))
    # the reverse question has the opposite sign
    rev = compare_sources(frame, "t", "adam", "small", "big", n_resamples=R)
    assert rev.auc.iloc[0]["diff"] == pytest.approx(-row["diff"])


def test_compare_sources_no_difference_and_missing_source(frame: pd.DataFrame) -> None:
    same = make_frame(slopes={"big": 0.02, "small": 0.02})
    res = compare_sources(same, "t", "adam", "big", "small", n_resamples=R)
    assert not res.auc.iloc[0].significant and "do not differ significantly" in res.verdict
    with pytest.warns(UserWarning, match="no ticket runs from nope"):
        res = compare_sources(frame, "t", "adam", "big", "nope", n_resamples=R)
    assert math.isnan(res.auc.iloc[0]["p"]) and res.per_level.empty
    assert "could not be tested" in res.verdict


def test_auc_table_modes(frame: pd.DataFrame) -> None:
    vs_reinit = auc_table(frame, n_resamples=R)
    assert list(vs_reinit.columns) == list(AUC_COLUMNS) and len(vs_reinit) == 2
    assert vs_reinit["significant"].all() and (vs_reinit["diff"] > 0).all()
    pairs = auc_table(frame, baseline=None, n_resamples=R)
    assert len(pairs) == 1
    row = pairs.iloc[0]
    assert (row.source, row.baseline_source) == ("big", "small")
    assert row["diff"] == pytest.approx(0.04, abs=0.003)
    # dense is a flat line: its AUC is its accuracy, 0.91 vs the ticket's 0.88
    dense = auc_table(frame, baseline="dense", n_resamples=R)
    big = dense[dense.source == "big"].iloc[0]
    assert big.baseline_mean == pytest.approx(0.91, abs=0.003)
    assert big["diff"] == pytest.approx(-0.03, abs=0.003) and big.paired


def test_auc_missing_level_warns(frame: pd.DataFrame) -> None:
    df = frame[~((frame.control == "random_reinit") & (frame.level == 4))]
    with pytest.warns(UserWarning, match="lack one arm"):
        out = auc_table(df, n_resamples=R)
    assert (out["n_levels"] == LEVELS - 1).all() and out["p"].notna().all()


# ----------------------------------------------------------------------------- comparison table


def test_comparison_table_tests_and_corrections(frame: pd.DataFrame) -> None:
    cmp = comparison_table(frame, n_resamples=R)
    assert list(cmp.columns) == list(TABLE_COLUMNS) and len(cmp) == 2 * LEVELS
    sel = frame[(frame.source == "big") & (frame.level == 3)].sort_values("seed")
    a = sel[sel.control == "ticket"]["test_accuracy"].to_numpy()
    b = sel[sel.control == "random_reinit"]["test_accuracy"].to_numpy()
    row = cmp[(cmp.source == "big") & (cmp.level == 3)].iloc[0]
    # arms with the same seeds are compared with the paired t-test by default
    assert row.test == "paired_t" and row.paired
    assert row.p == pytest.approx(sps.ttest_rel(a, b).pvalue) and row.p == row.paired_p
    assert row.welch_p == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    assert row.pair_r == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert row.wilcoxon_p == pytest.approx(sps.wilcoxon(a, b).pvalue)
    assert row.ticket_ci_low < a.mean() < row.ticket_ci_high
    assert row.baseline_ci_low < b.mean() < row.baseline_ci_high
    assert row.density == pytest.approx(0.125) and row.baseline_source == "big"
    np.testing.assert_allclose(cmp["p_adj"], holm(cmp["p"]))
    # compare() is the compact version of the same table, with the same test
    old = _quiet(compare, frame)
    assert list(old.columns) == list(COMPARISON_COLUMNS)
    np.testing.assert_allclose(old["p"], cmp["p"])

    for test, col in (
        ("welch", "welch_p"),
        ("mannwhitney", "mwu_p"),
        ("paired_t", "paired_p"),
        ("wilcoxon", "wilcoxon_p"),
    ):
        t = comparison_table(frame, test=test, correction="bh", n_resamples=0)
        assert (t["test"] == test).all()
        np.testing.assert_allclose(t["p"], t[col])
        np.testing.assert_allclose(t["p_adj"], benjamini_hochberg(t["p"]))
    none = comparison_table(frame, correction="none", n_resamples=0)
    np.testing.assert_array_equal(none["p_adj"], none["p"])
    fam = comparison_table(frame, family=["source"], n_resamples=0)
    big = fam[fam.source == "big"]
    np.testing.assert_allclose(big["p_adj"], holm(big["p"]))


def test_comparison_table_deterministic(frame: pd.DataFrame) -> None:
    one = comparison_table(frame, n_resamples=R, seed=5)
    two = comparison_table(frame, n_resamples=R, seed=5)
    pd.testing.assert_frame_equal(one, two)
    assert one.attrs["test"] == "paired_t" and one.attrs["n_resamples"] == R


def test_comparison_table_other_controls(frame: pd.DataFrame) -> None:
    # random_global runs have no source: they stand in for every source's tickets
    cmp = comparison_table(frame, baseline="random_global", n_resamples=0)
    assert (cmp["baseline_source"] == "–").all() and (cmp["baseline_n"] == 6).all()
    # another control as the arm, vs random_global
    arms = comparison_table(
        frame, treatment=["ticket", "random_reinit"], baseline="random_global", n_resamples=0
    )
    assert set(arms["control"]) == {"ticket", "random_reinit"} and len(arms) == 4 * LEVELS
    with pytest.raises(ConfigError, match="analysis.baseline"):
        comparison_table(frame, baseline="shuffle_layerwise")
    with pytest.raises(ConfigError, match="also a compared arm"):
        comparison_table(frame, treatment=["ticket", "dense"], baseline="dense")
    with pytest.raises(ConfigError, match="analysis.test"):
        comparison_table(frame, test="ttest")
    with pytest.raises(ConfigError, match="analysis.correction"):
        comparison_table(frame, correction="fdr")
    with pytest.raises(ConfigError, match="analysis.n_resamples"):
        comparison_table(frame, n_resamples=-1)


# ------------------------------------------------------------------------------ warnings, no crash


def test_missing_baseline_and_single_seed_warn(frame: pd.DataFrame) -> None:
    df = frame[~((frame.control == "random_reinit") & (frame.level == 2))]
    with pytest.warns(UserWarning, match="no random_reinit runs"):
        cmp = comparison_table(df, n_resamples=R)
    gone = cmp[cmp.level == 2]
    assert len(gone) == 2 and gone["p"].isna().all() and (gone["baseline_n"] == 0).all()
    assert math.isnan(gone.iloc[0].diff_ci_low) and not gone["significant"].any()

    one = make_frame(seeds=[0])
    with pytest.warns(UserWarning) as record:
        cmp = comparison_table(one, test="wilcoxon", n_resamples=R)
        auc = auc_table(one, n_resamples=R)
    text = " ".join(str(w.message) for w in record)
    assert "n < 3" in text and "fewer than 2 pairs" in text  # one seed pairs, but too few
    assert cmp["p"].isna().all() and cmp["ticket_ci_low"].isna().all()
    assert auc["p"].isna().all() and (auc["ticket_n"] == 1).all()


def test_unequal_n_unpaired_and_zero_variance_warn(frame: pd.DataFrame) -> None:
    df = frame[~((frame.control == "random_reinit") & (frame.seed == 0))]
    with pytest.warns(UserWarning) as record:
        cmp = comparison_table(df, test="paired_t", n_resamples=R)
    text = " ".join(str(w.message) for w in record)
    assert (
        "unequal n (6 vs 5)" in text and "seeds not paired; welch used instead of paired_t" in text
    )
    assert (cmp["test"] == "welch").all() and not cmp["paired"].any()
    np.testing.assert_allclose(cmp["p"], cmp["welch_p"])

    same = pd.Series([0.9, 0.9, 0.9], index=[0, 1, 2])
    row = compare_samples(same, same.copy(), test="wilcoxon", n_resamples=R)
    assert math.isnan(row["p"]) and "all paired differences are zero" in row["note"]
    assert "zero variance on both sides" in row["note"] and row["ci_method"] == "percentile"


# ----------------------------------------------------------------------------------------- tables


def test_latex_markdown_and_files(frame: pd.DataFrame, tmp_path: Path) -> None:
    cmp = comparison_table(frame, test="paired_t", correction="bh", n_resamples=R)
    caption = caption_text(cmp, {"title": "Ticket transfer to t"})
    for part in ("paired t-test", "Benjamini-Hochberg", "n = 6 seeds", "BCa", f"{R} resamples"):
        assert part in caption
    tex = to_latex(cmp, caption=caption, label="tab:transfer")
    for part in (
        r"\toprule",
        r"\midrule",
        r"\bottomrule",
        r"\begin{tabular}",
        r"\label{tab:transfer}",
    ):
        assert part in tex
    assert r"random\_reinit" in tex and "random_reinit" not in tex
    assert r"\caption{Ticket transfer to t." in tex and r"\ensuremath{\pm}" in tex
    assert "***" in tex  # the level-4 rows are far apart
    md = to_markdown(cmp, caption)
    assert md.startswith("Ticket transfer to t.") and "| Target | Source |" in md
    assert "\\*\\*\\*" in md

    paths = write_tables(cmp, tmp_path / "tables", "transfer", {"title": "x"})
    assert [p.name for p in paths] == ["transfer.csv", "transfer.md", "transfer.tex"]
    back = pd.read_csv(paths[0])
    assert list(back.columns) == list(TABLE_COLUMNS) and len(back) == len(cmp)
    assert r"\label{tab:transfer}" in paths[2].read_text()
    assert not list((tmp_path / "tables").glob("*.tmp"))
    # AUC tables and the compact compare() table render too
    assert r"\toprule" in to_latex(auc_table(frame, n_resamples=0))
    assert "| Target |" in to_markdown(_quiet(compare, frame))
    assert r"\bottomrule" in to_latex(cmp.iloc[0:0])


def test_marks_and_escape() -> None:
    assert [significance_marks(p) for p in (0.0005, 0.005, 0.03, 0.05, float("nan"))] == [
        "***",
        "**",
        "*",
        "",
        "",
    ]
    assert escape_latex("a_b & 50% {x}") == r"a\_b \& 50\% \{x\}"

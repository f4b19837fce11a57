"""Analysis: loading result files, Welch/Holm statistics, headless figures and the Markdown report."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from transfer_bench.analysis import (
    compare,
    holm,
    load_histories,
    load_results,
    sparsity_curve,
    sparsity_figure,
    write_report,
)
from transfer_bench.analysis.stats import COMPARISON_COLUMNS, adjust_pvalues, welch
from transfer_bench.errors import ConfigError

SEEDS = (0, 1, 2)
SOURCES = ("mnist5k", "digits")
TARGETS = ("digits", "usps")
LEVELS = 4  # levels 0..3, density 0.8 ** level


def _accuracy(rng: np.random.Generator, control: str, level: int) -> float:
    """Tickets hold 90 %; random re-init loses 5 points per level; dense sits at 91 %."""
    base = {"ticket": 0.90, "random_reinit": 0.90 - 0.05 * level, "dense": 0.91, "imp": 0.95}
    return float(np.clip(base[control] + rng.normal(0, 0.004), 0, 1))


def make_records(seeds=SEEDS, sources=SOURCES, targets=TARGETS, levels=LEVELS) -> list[dict]:
    rng = np.random.default_rng(1234)
    recs = []

    def add(kind, source, target, control, level, seed):
        n = len(recs)
        acc = _accuracy(rng, control, level)
        recs.append(
            {
                "kind": kind,
                "suite": "quick",
                "run_id": f"{kind}-{n:05d}",
                "source": source,
                "target": target,
                "optimizer": "adam",
                "source_optimizer": "adam",
                "control": control,
                "level": level,
                "density": 1.0 if control == "dense" else 0.8**level,
                "seed": seed,
                "test_accuracy": acc,
                "best_test_accuracy": min(1.0, acc + 0.01),
                "final_train_loss": 0.1,
                "final_test_loss": 0.2,
                "early_stop_iteration": 40,
                "iterations": 67,
                "seconds": 0.5,
                "history": [
                    {
                        "iteration": 33,
                        "epoch": 1,
                        "train_loss": 0.5,
                        "test_loss": 0.4,
                        "test_accuracy": acc - 0.02,
                    },
                    {
                        "iteration": 67,
                        "epoch": 2,
                        "train_loss": 0.3,
                        "test_loss": 0.2,
                        "test_accuracy": acc,
                    },
                ],
            }
        )

    for seed in seeds:
        for src in sources:
            for lv in range(levels):
                add("search", src, src, "imp", lv, seed)
        for tgt in targets:
            add("transfer", None, tgt, "dense", 0, seed)
            for src in sources:
                for lv in range(levels):
                    add("transfer", src, tgt, "ticket", lv, seed)
                    add("transfer", src, tgt, "random_reinit", lv, seed)
    return recs


def write_records(root: Path, recs: list[dict]) -> Path:
    for r in recs:
        d = root / r["kind"] / f"{r['target']}" / r["run_id"]
        d.mkdir(parents=True, exist_ok=True)
        (d / "result.json").write_text(json.dumps(r))
    return root


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    return write_records(tmp_path / "results" / "quick", make_records())


@pytest.fixture
def df(suite_dir: Path) -> pd.DataFrame:
    return load_results(suite_dir)


def _silently(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ------------------------------------------------------------------------------------------ frame


def test_load_results_shape_and_columns(df: pd.DataFrame) -> None:
    per_seed = len(SOURCES) * LEVELS + len(TARGETS) * (1 + len(SOURCES) * LEVELS * 2)
    assert len(df) == per_seed * len(SEEDS)
    assert "history" not in df.columns
    for col in (
        "kind",
        "source",
        "target",
        "optimizer",
        "control",
        "level",
        "density",
        "seed",
        "test_accuracy",
        "percent_remaining",
        "run_id",
        "path",
    ):
        assert col in df.columns
    np.testing.assert_allclose(df["percent_remaining"], 100 * df["density"])
    assert set(df["control"]) == {"imp", "ticket", "random_reinit", "dense"}
    assert df["level"].dtype == np.int64
    assert df.loc[df["control"] == "dense", "source"].isna().all()


def test_load_results_skips_bad_files_with_warning(suite_dir: Path) -> None:
    bad = suite_dir / "broken"
    (bad / "a").mkdir(parents=True)
    (bad / "a" / "result.json").write_text('{"kind": "transfer", "target": ')  # truncated
    (bad / "b").mkdir()
    (bad / "b" / "result.json").write_text(json.dumps({"kind": "transfer", "control": "ticket"}))
    (bad / "c").mkdir()
    (bad / "c" / "result.json").write_text("[1, 2]")
    with pytest.warns(UserWarning) as record:
        frame = load_results(suite_dir)
    msgs = " ".join(str(w.message) for w in record)
    assert "unreadable" in msgs and "missing field" in msgs and "expected an object" in msgs
    assert len(frame) == len(make_records())


def test_load_results_empty_dir(tmp_path: Path) -> None:
    frame = load_results(tmp_path / "nothing")
    assert frame.empty and "percent_remaining" in frame.columns


def test_load_histories_long_format(suite_dir: Path) -> None:
    h = load_histories(suite_dir)
    assert len(h) == 2 * len(make_records())
    for col in (
        "run_id",
        "control",
        "source",
        "target",
        "seed",
        "level",
        "iteration",
        "train_loss",
    ):
        assert col in h.columns
    assert sorted(h["iteration"].unique()) == [33, 67]


# ------------------------------------------------------------------------------------------ stats


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        ([0.01, 0.04, 0.03, 0.005], [0.03, 0.06, 0.06, 0.02]),
        ([0.001, 0.01, 0.02, 0.9], [0.004, 0.03, 0.04, 0.9]),
        ([0.5, 0.6], [1.0, 1.0]),  # capped at 1, monotone
        ([0.04, 0.01, 0.03], [0.06, 0.03, 0.06]),  # step-down max: 0.03*2=0.06 carries to 0.04
        ([0.02], [0.02]),
        ([0.01, np.nan, 0.02], [0.02, np.nan, 0.02]),  # NaN ignored, m = 2
        ([], []),
    ],
)
def test_holm_known_vectors(p: list[float], expected: list[float]) -> None:
    np.testing.assert_allclose(holm(p), expected, equal_nan=True)


def test_holm_properties() -> None:
    p = np.random.default_rng(0).uniform(0, 0.2, size=25)
    adj = holm(p)
    assert np.all(adj >= p) and np.all(adj <= 1)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)
    np.testing.assert_array_equal(adjust_pvalues(p, "none"), p)
    with pytest.raises(ConfigError):
        adjust_pvalues(p, "bonferonni")


def test_compare_welch_matches_scipy(df: pd.DataFrame) -> None:
    cmp = compare(df, test="welch")
    assert list(cmp.columns) == list(COMPARISON_COLUMNS)
    assert len(cmp) == len(SOURCES) * len(TARGETS) * LEVELS
    row = cmp[(cmp.source == "mnist5k") & (cmp.target == "usps") & (cmp.level == 2)].iloc[0]
    sel = df[
        (df.kind == "transfer") & (df.source == "mnist5k") & (df.target == "usps") & (df.level == 2)
    ]
    a = sel[sel.control == "ticket"].sort_values("seed")["test_accuracy"].to_numpy()
    b = sel[sel.control == "random_reinit"].sort_values("seed")["test_accuracy"].to_numpy()
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert row.t == pytest.approx(ref.statistic) and row.p == pytest.approx(ref.pvalue)
    assert row["diff"] == pytest.approx(a.mean() - b.mean())
    assert row.ticket_std == pytest.approx(a.std(ddof=1))
    assert (row.ticket_n, row.baseline_n) == (3, 3)
    assert row.density == pytest.approx(0.64) and row.percent_remaining == pytest.approx(64.0)
    np.testing.assert_allclose(cmp["p_adj"], holm(cmp["p"]))
    assert cmp.loc[cmp.level >= 1, "significant"].all()
    assert not cmp.loc[cmp.level == 0, "significant"].any()
    none = compare(df, correction="none", test="welch")
    np.testing.assert_array_equal(none["p_adj"], none["p"])


def test_compare_dense_baseline(df: pd.DataFrame) -> None:
    cmp = compare(df, baseline="dense", metric="best_test_accuracy")
    dense = df[(df.control == "dense") & (df.target == "digits")]["best_test_accuracy"]
    rows = cmp[cmp.target == "digits"]
    assert (rows["baseline"] == "dense").all() and (rows["baseline_n"] == 3).all()
    np.testing.assert_allclose(rows["baseline_mean"], dense.mean())


def test_compare_one_seed_warns_not_crashes(tmp_path: Path) -> None:
    frame = load_results(write_records(tmp_path, make_records(seeds=(0,))))
    with pytest.warns(UserWarning, match="fewer than 2 (seeds|pairs)"):
        cmp = compare(frame)
    assert cmp["p"].isna().all() and cmp["p_adj"].isna().all() and not cmp["significant"].any()
    assert (cmp["ticket_n"] == 1).all() and cmp["ticket_std"].isna().all()


def test_compare_zero_variance_warns(df: pd.DataFrame) -> None:
    df = df.copy()
    fam = (
        (df.kind == "transfer")
        & (df.source == "digits")
        & (df.target == "digits")
        & (df.level == 1)
    )
    df.loc[fam & (df.control == "ticket"), "test_accuracy"] = 0.9
    df.loc[fam & (df.control == "random_reinit"), "test_accuracy"] = 0.8
    with pytest.warns(UserWarning, match="zero variance"):
        cmp = compare(df)
    row = cmp[(cmp.source == "digits") & (cmp.target == "digits") & (cmp.level == 1)].iloc[0]
    assert np.isnan(row.p) and row["diff"] == pytest.approx(0.1)
    assert cmp["p"].notna().sum() == len(cmp) - 1


def test_compare_missing_baseline_warns(df: pd.DataFrame) -> None:
    df = df[~((df.control == "random_reinit") & (df.level == 3) & (df.target == "usps"))]
    with pytest.warns(UserWarning, match="no random_reinit runs"):
        cmp = compare(df)
    missing = cmp[(cmp.level == 3) & (cmp.target == "usps")]
    assert len(missing) == len(SOURCES)
    assert (missing["baseline_n"] == 0).all() and missing["baseline_mean"].isna().all()
    assert missing["p"].isna().all() and missing["ticket_n"].eq(3).all()


def test_compare_bad_arguments(df: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="analysis.metric"):
        compare(df, metric="accuracy")
    with pytest.raises(ConfigError, match="analysis.baseline"):
        compare(df, baseline="imp")


def test_welch_guards() -> None:
    assert np.isnan(welch([0.5], [0.4, 0.6]).p)
    assert "zero variance" in welch([0.5, 0.5], [0.4, 0.4]).note
    ref = _silently(sps.ttest_ind, [0.5, 0.6, 0.7], [0.5, 0.5, 0.5], equal_var=False)
    assert welch([0.5, 0.6, 0.7], [0.5, 0.5, 0.5]).p == pytest.approx(ref.pvalue)


# ------------------------------------------------------------------------------------------ plots


def test_sparsity_curve_headless(df: pd.DataFrame, tmp_path: Path) -> None:
    fig = sparsity_figure(df)
    axes = fig.get_axes()
    assert len(axes) == len(TARGETS)
    for ax in axes:
        # ticket + random_reinit per source, plus the dense horizontal line
        assert len(ax.lines) == 2 * len(SOURCES) + 1
        labels = [ln.get_label() for ln in ax.lines]
        assert "ticket from mnist5k" in labels and "dense" in labels
        assert ax.get_xscale() == "log"
        left, right = ax.get_xlim()
        assert left > right  # 100 % on the left
    paths = sparsity_curve(df, tmp_path / "fig" / "sparsity_curve")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert "n = 3 seeds" in " ".join(fig.get_suptitle().split())
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[0].stat().st_size > 1000
    assert paths[1].read_bytes()[:4] == b"%PDF"


def test_sparsity_curve_one_seed_missing_control(df: pd.DataFrame, tmp_path: Path) -> None:
    one = df[(df.seed == 0) & (df.control != "random_reinit")]
    fig = _silently(sparsity_figure, one)
    assert all(len(ax.lines) == len(SOURCES) + 1 for ax in fig.get_axes())
    assert all(p.exists() for p in _silently(sparsity_curve, one, tmp_path / "one"))
    assert all(p.exists() for p in sparsity_curve(df.iloc[0:0], tmp_path / "empty"))


# ----------------------------------------------------------------------------------------- report


def test_write_report(suite_dir: Path) -> None:
    (suite_dir / "broken").mkdir()
    (suite_dir / "broken" / "result.json").write_text("{")
    with pytest.warns(UserWarning, match="unreadable"):
        path = write_report(
            suite_dir,
            suite_name="quick",
            analysis={"n_resamples": 199},
            config_summary="model: lenet_300_100",
        )
    assert path == suite_dir / "report.md"
    text = path.read_text()
    assert text.startswith("# Report: quick")
    assert "model: lenet_300_100" in text
    assert "| transfer | ticket | 48 |" in text
    assert "![sparsity_curve](figures/sparsity_curve.png)" in text
    assert (
        "- Ticket from mnist5k beats random_reinit on digits at 51.2% weights remaining: +14."
        in text
    )
    assert "p_holm < 0.001, n = 3/3" in text
    assert "does not differ significantly from random_reinit on digits at 100.0%" in text
    assert "Integrated over" in text
    assert "## Warnings" in text and "skipped unreadable result file" in text
    for rel in (
        "figures/sparsity_curve.png",
        "figures/sparsity_curve.pdf",
        "tables/comparison.csv",
        "tables/comparison.tex",
        "tables/auc.csv",
        "report.html",
    ):
        assert (suite_dir / rel).stat().st_size > 0
    html = (suite_dir / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    csv = pd.read_csv(suite_dir / "tables" / "comparison.csv")
    assert len(csv) == 16 and {"diff_ci_low", "hedges_g", "p_adj"} <= set(csv.columns)
    assert not list(suite_dir.rglob("*.tmp"))


def test_write_report_empty_and_bad_analysis(tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        path = write_report(tmp_path, suite_name="empty")
    assert "No readable `result.json` files" in path.read_text()
    with pytest.raises(ConfigError, match="analysis"):
        write_report(tmp_path, suite_name="x", analysis={"baseline": "imp"})

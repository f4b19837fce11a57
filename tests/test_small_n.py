"""Statistics that cannot mislead at small n: a report made from 1-4 seeds, constant arms,
identical arms or one transfer level holds no NaN, no bare "–", no "n/a" and no impossible number
(an MDE or a difference beyond 100 points, an accuracy outside 0-100%); cells that cannot be
estimated say "n.e." and the caption says why, once; captions promise only the intervals that
exist; the dense network's accuracy is in the tables and the findings; figures clip intervals to
0-100%. Also: `compare --out` and the report's own tables, and `plot` with the suite's settings.

Results are written as ``result.json`` files (no training), so each report takes well under a
second."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic_results import write_results
from typer.testing import CliRunner

from transfer_bench.analysis import power as pw
from transfer_bench.analysis.figures.common import curve_table, mean_ci
from transfer_bench.analysis.stats import comparison_table
from transfer_bench.analysis.tables import caption_text, to_markdown
from transfer_bench.api import write_suite_report
from transfer_bench.cli import app
from transfer_bench.config import parse_suite

ARMS = ("ticket", "random_global", "dense")


def suite_data(n: int, levels: tuple[int, ...], sources=("a",), plots=()) -> dict:
    return {
        "name": "small",
        "seeds": list(range(n)),
        "model": {"name": "lenet_300_100"},
        "datasets": {
            name: {"source": f"synthetic:{name}", "num_classes": 4, "samples": 160}
            for name in ("a", "b", "t")
        },
        "search": {"sources": list(sources), "levels": 2},
        "transfer": {
            "targets": ["t"],
            "controls": ["random_global", "dense"],
            "levels": list(levels),
        },
        "analysis": {"baseline": "random_global", "n_resamples": 99, "plots": list(plots)},
    }


def report_text(suite_dir: Path, data: dict) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path, _ = write_suite_report(suite_dir, parse_suite(data))
    return path.read_text()


SCENARIOS = {
    # seed-to-seed noise large enough that 2 seeds detect nothing accuracy allows
    "noisy": lambda c, s, seed, lv: np.clip(0.5 + 0.3 * np.sin(7.1 * seed + lv + len(c)), 0, 1),
    "constant": lambda c, s, seed, lv: {"ticket": 0.71, "random_global": 0.64, "dense": 0.8}[c],
    "identical": lambda c, s, seed, lv: 0.9 if c == "dense" else 0.6 + 0.05 * seed,
    "perfect": lambda c, s, seed, lv: 1.0,
}


def table_cells(text: str) -> list[dict[str, str]]:
    """Every row of every Markdown table in ``text`` as {header: cell}."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not set(line) <= set("|-"):
            rows.append(dict(zip(header, cells, strict=False)))
    return rows


def assert_nothing_impossible(text: str) -> None:
    assert not re.search(r"\b(nan|NaN|inf|-inf)\b", text)
    for word in ("∞", "n/a", "(– to –)", "– points"):
        assert word not in text, word
    for row in table_cells(text):
        for header, cell in row.items():
            assert cell != "–", (header, row)
            if header.startswith("MDE") and cell != "n.e.":
                assert 0 <= float(cell) <= 100, row
            if header.endswith("(%)") and header != "Remaining (%)" and "±" in cell:
                mean, sd = (float(x) for x in cell.split("±"))
                assert 0 <= mean <= 100 and sd >= 0, row
    for number in re.findall(r"([+-]?\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))? points", text):
        assert all(abs(float(x)) <= 100 for x in number if x), number
    if "n.e." in text:
        assert "n.e.: not estimable with these seeds" in text


@pytest.mark.parametrize("levels", [(2,), (1, 2)], ids=["one level", "two levels"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_no_impossible_number_reaches_a_report(tmp_path, n, scenario, levels) -> None:
    data = suite_data(n, levels)
    text = report_text(write_results(tmp_path, data, SCENARIOS[scenario]), data)
    assert_nothing_impossible(text)
    findings = text.split("## Findings", 1)[1].split("##", 1)[0]
    assert "The dense network" in findings and "on t (" in findings
    assert any("dense (%)" in row for row in table_cells(text))
    if len(levels) == 1:
        assert "Integrated over" not in text and "Sparsity-integrated" not in text
        assert "One transfer level" in text
    if n < 3:  # no bootstrap CI exists, so none is promised
        assert "bootstrap CI (" not in text and "intervals are BCa" not in text
        assert "a bootstrap CI needs at least 3 seeds per arm" in text
    if n == 1:
        assert "a test needs at least 2 seeds per arm" in findings


def test_two_noisy_seeds_say_not_estimable(tmp_path) -> None:
    """The walkthrough's report said "only differences of about 531.9-538.6 points or more were
    detectable"; now the MDE is bounded by what accuracy allows."""
    data = suite_data(2, (1, 2))
    text = report_text(write_results(tmp_path, data, SCENARIOS["noisy"]), data)
    assert "no difference accuracy allows (up to 100 points) was detectable" in text
    assert "not estimable with these seeds" in text
    table = pd.read_csv(tmp_path / "small" / "tables" / "comparison.csv")
    finite = table["mde"][np.isfinite(table["mde"])]
    assert np.isinf(table["mde"]).any() and (finite <= 1.0).all()


def test_mde_is_bounded_by_the_metric_span() -> None:
    design = pw.Design(0.3, 0.3, 2, 2, paired=True, sd_diff=0.4)
    assert pw.mde(design, 0.05) > 1.0  # the unbounded estimate: more than 100 points
    assert math.isinf(pw.mde(design, 0.05, span=pw.metric_span("test_accuracy")))
    small = pw.Design(0.01, 0.01, 5, 5, paired=True, sd_diff=0.01)
    assert pw.mde(small, 0.05, span=1.0) == pytest.approx(pw.mde(small, 0.05))
    assert pw.metric_span("iterations") is None


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 4),
    a=st.lists(st.floats(0, 1), min_size=4, max_size=4),
    b=st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
def test_tables_never_show_impossible_values(n, a, b) -> None:
    rows = []
    for seed in range(n):
        for control, values in (("ticket", a), ("random_global", b), ("dense", b[::-1])):
            rows.append(
                dict(kind="transfer", source=None if control == "dense" else "a", target="t",
                     control=control, optimizer="adam", seed=seed, level=0 if control == "dense"
                     else 2, density=1.0 if control == "dense" else 0.25,
                     percent_remaining=100.0 if control == "dense" else 25.0,
                     test_accuracy=values[seed], n_test=100)
            )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = comparison_table(pd.DataFrame(rows), baseline="random_global", n_resamples=99)
    text = caption_text(cmp) + "\n\n" + to_markdown(cmp)
    assert_nothing_impossible(text)
    assert "with 95% bootstrap CI" not in text or n >= 3


def test_figure_intervals_are_clipped_to_the_metric_range() -> None:
    mean, lo, hi, n = mean_ci([0.05, 0.95])  # two seeds: the t-interval spans -5 to +6
    assert lo < 0 and hi > 1
    assert mean_ci([0.05, 0.95], bounds=(0.0, 1.0))[1:3] == (0.0, 1.0)
    frame = pd.DataFrame(
        [
            dict(kind="transfer", source="a", target="t", control="ticket", optimizer="adam",
                 seed=s, level=2, density=0.25, percent_remaining=25.0, test_accuracy=acc)
            for s, acc in enumerate([0.02, 0.98])
        ]
    )  # fmt: skip
    pts = curve_table(frame)
    assert (pts["lo"] >= 0).all() and (pts["hi"] <= 100).all()


def test_the_sparsity_figure_says_its_interval_is_clipped(tmp_path) -> None:
    from transfer_bench.analysis.plots import make_figure

    data = suite_data(2, (1, 2))
    suite_dir = write_results(tmp_path, data, SCENARIOS["noisy"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = make_figure("sparsity_curve", suite_dir)
    title = fig.get_suptitle().replace("\n", " ")
    assert "t-interval" in title and "clipped to 0–100%" in title
    drawn = [
        path.vertices[:, 1]
        for ax in fig.axes
        for coll in ax.collections
        for path in coll.get_paths()
        if len(path.vertices)
    ]
    heights = np.concatenate(drawn)
    assert heights.min() >= 0 and heights.max() <= 100


def test_compare_writes_where_told_and_the_report_keeps_its_own(tmp_path) -> None:
    """`compare --test welch` no longer overwrites tables/, so the next report cannot replace
    the user's table with the suite's (paired) one; --out names the folder."""
    data = suite_data(4, (1, 2))
    suite_dir = write_results(tmp_path, data, SCENARIOS["noisy"])
    report_text(suite_dir, data)
    report_table = (suite_dir / "tables" / "comparison.csv").read_text()
    runner = CliRunner()
    out = runner.invoke(app, ["compare", str(suite_dir), "--test", "welch"])
    assert out.exit_code == 0, out.output
    welch = pd.read_csv(suite_dir / "compare" / "comparison.csv")
    assert set(welch["test"]) == {"welch"}
    assert (suite_dir / "tables" / "comparison.csv").read_text() == report_table
    mine = tmp_path / "mine"
    out = runner.invoke(app, ["compare", str(suite_dir), "--test", "welch", "--out", str(mine)])
    assert out.exit_code == 0 and (mine / "comparison.md").exists()
    report_text(suite_dir, data)  # the next report leaves both alone
    assert set(pd.read_csv(mine / "comparison.csv")["test"]) == {"welch"}
    assert set(pd.read_csv(suite_dir / "compare" / "comparison.csv")["test"]) == {"welch"}
    out = runner.invoke(app, ["compare", str(suite_dir), "--out", str(suite_dir / "tables")])
    assert out.exit_code != 0
    assert "the report's" in str(out.exception) and "choose another folder" in str(out.exception)


def test_plot_uses_the_suites_baseline_and_metric(tmp_path, monkeypatch) -> None:
    """`plot --kind transfer_matrix` used random_reinit whatever the suite said."""
    import transfer_bench.analysis.plots as plots

    data = suite_data(3, (1, 2), sources=("a", "b"))
    data["analysis"]["metric"] = "best_test_accuracy"
    suite_dir = write_results(tmp_path, data, SCENARIOS["noisy"])
    seen = {}

    def record(kind, frames, out_base, **kw):
        seen.update(kw, kind=kind, comparison=frames["comparison"])
        return []

    monkeypatch.setattr(plots, "plot", record)
    out = CliRunner().invoke(app, ["plot", str(suite_dir), "--kind", "transfer_matrix"])
    assert out.exit_code == 0, out.output
    assert seen["reference"] == "random_global" and seen["metric"] == "best_test_accuracy"
    assert set(seen["comparison"]["baseline"]) == {"random_global"}
    assert set(seen["comparison"]["test"]) == {"paired_t"}
    from transfer_bench.analysis.report import figure_options, parse_analysis

    spec = parse_analysis(data["analysis"])
    assert figure_options("sparsity_curve", spec) == {"metric": "best_test_accuracy"}

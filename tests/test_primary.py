"""`analysis.primary`: the comparisons a suite exists for share the correction; the rest are
secondary, corrected among themselves and marked; bad entries are one-line errors with the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from transfer_bench.analysis import write_report
from transfer_bench.analysis.stats import comparison_table, holm
from transfer_bench.config import PrimaryComparison, load_suite
from transfer_bench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _suite_with(tmp_path: Path, primary, **over) -> Path:
    data = yaml.safe_load((ROOT / "suites" / "quickstart.yaml").read_text())
    data["analysis"] = {**(data.get("analysis") or {}), "primary": primary}
    data.update(over)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("primary", "message"),
    [
        (
            [{"level": 5}],
            r"analysis.primary\[0\].level: 5 is not a transferred level .* \(0, 3, 6, 7\)",
        ),
        ([{"arm": "tiket"}], r"primary\[0\].arm: 'tiket' .* did you mean 'ticket'"),
        ([{"source": "mnist"}], r"primary\[0\].source: 'mnist' .* did you mean 'mnist5k'"),
        ([{"arm": "random_reinit"}], r"primary\[0\].arm: 'random_reinit' is the analysis.baseline"),
        ([{"level": 3}, {"level": 3}], r"primary\[1\]: .* is listed twice \(also at \[0\]\)"),
        ([{"lvl": 3}], r"primary\[0\].lvl: unknown key 'lvl'; did you mean 'level'"),
    ],
)
def test_bad_entries_are_one_line_errors(tmp_path: Path, primary, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        load_suite(_suite_with(tmp_path, primary))
    assert "\n" not in str(err.value)


def test_a_search_only_suite_has_nothing_to_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="transfers no tickets"):
        load_suite(_suite_with(tmp_path, [{"level": 3}], transfer=None))
    assert load_suite(_suite_with(tmp_path, [{"level": 3}, {"level": 7}])).analysis.primary


def _frame(seeds: int = 5) -> pd.DataFrame:
    """Tickets from two sources on one target at four levels; the gap grows with the level."""
    rng = np.random.default_rng(5)
    rows = []
    for seed in range(seeds):
        for source in ("a", "b"):
            for level in range(4):
                for control, gap in (("ticket", 0.004 * level), ("random_reinit", 0.0)):
                    rows.append(
                        dict(
                            kind="transfer", source=source, target="t", optimizer="sgd",
                            control=control, level=level, density=0.5**level, seed=seed,
                            test_accuracy=0.9 + gap + rng.normal(0, 0.004),
                        )
                    )  # fmt: skip
    return pd.DataFrame(rows)


def test_the_correction_runs_over_the_primaries_only() -> None:
    df = _frame()
    primary = (PrimaryComparison(source="a", level=3), PrimaryComparison(source="b", level=3))
    table = comparison_table(df, n_resamples=0, primary=primary)
    first = table[table["role"] == "primary"]
    rest = table[table["role"] == "secondary"]
    assert sorted(zip(first["source"], first["level"], strict=True)) == [("a", 3), ("b", 3)]
    assert len(rest) == 6
    np.testing.assert_allclose(first["p_adj"], holm(first["p"]))
    np.testing.assert_allclose(rest["p_adj"], holm(rest["p"]))
    np.testing.assert_allclose(first["mde_alpha"], 0.05 / 2)
    np.testing.assert_allclose(rest["mde_alpha"], 0.05 / 6)
    # every cell in one family (no primaries declared) corrects the same cells over eight
    every = comparison_table(df, n_resamples=0)
    assert (every["role"] == "primary").all()
    mine = every.set_index(["source", "level"]).loc[[("a", 3), ("b", 3)], "p_adj"]
    assert (first.set_index(["source", "level"])["p_adj"] <= mine).all()
    # an empty list (a claim suite: the claim's checks are the primaries) makes all secondary
    assert (comparison_table(df, n_resamples=0, primary=())["role"] == "secondary").all()


def test_a_primary_that_matches_nothing_warns() -> None:
    with pytest.warns(UserWarning, match=r"analysis.primary\[0\] \(ticket from c .*\) matches no"):
        comparison_table(_frame(), n_resamples=0, primary=(PrimaryComparison(source="c"),))


def _write(suite_dir: Path, df: pd.DataFrame) -> Path:
    for i, r in enumerate(df.to_dict("records")):
        run = suite_dir / f"run{i:04d}"
        run.mkdir(parents=True)
        (run / "result.json").write_text(json.dumps(r))
    return suite_dir


def test_the_report_names_the_primaries_and_marks_the_rest(tmp_path: Path) -> None:
    suite_dir = _write(tmp_path / "s", _frame())
    analysis = {"n_resamples": 0, "plots": [], "primary": [{"level": 3}]}
    text = write_report(suite_dir, suite_name="s", analysis=analysis).read_text()
    assert "Primary comparisons (`analysis.primary`): ticket from any source on any target at " \
        "level 3: 2 tested cells" in text  # fmt: skip
    assert "(secondary, exploratory)" in text and "| Role |" in text
    assert "over the 2 primary comparisons" in text  # the table's caption
    csv = pd.read_csv(suite_dir / "tables" / "comparison.csv")
    assert sorted(csv.loc[csv["role"] == "primary", "level"]) == [3, 3]
    plain = write_report(suite_dir, suite_name="s", analysis={"n_resamples": 0, "plots": []})
    assert "No primary comparisons declared (`analysis.primary`): all 8 tested cells" in (
        plain.read_text()
    )


def _planned_cells(suite) -> set[tuple]:
    from transfer_bench.runs.plan import plan

    cells = set()
    for r in plan(suite):
        if r.kind != "transfer":
            continue
        c = r.config
        for level in r.levels:
            cells.add((c["control"], c.get("source"), c["target"]["name"], c["optimizer"]["key"],
                       level))  # fmt: skip
    return cells


@pytest.mark.parametrize("name", ["vgg19", "resnet50", "optimizers"])
def test_morcos_suites_declare_primaries_at_every_scale(name: str) -> None:
    path = ROOT / "suites" / f"morcos2019-{name}.yaml"
    scales = [None, *yaml.safe_load(path.read_text()).get("scales", {})]
    for scale in scales:
        suite = load_suite(path, scale)
        cells = _planned_cells(suite)
        assert suite.analysis.primary, scale
        for entry in suite.analysis.primary:
            keys = ("control", "source", "target", "optimizer", "level")
            hits = [c for c in cells if entry.matches(dict(zip(keys, c, strict=True)))]
            assert hits, (name, scale, entry.label())
            assert len(hits) < len([c for c in cells if c[0] == "ticket"]) or scale is None

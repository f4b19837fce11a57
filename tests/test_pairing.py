"""One comparison, one test: the report's table, `transfer-bench compare`, the Python `compare`
and a claim check that selects the same cell give the same test and the same p-value; arms with
the same seeds are paired by default, arms whose seeds differ fall back to Welch, said so."""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps
from typer.testing import CliRunner

from transfer_bench.analysis import compare, load_results
from transfer_bench.analysis.stats import comparison_test, pair_by_seed
from transfer_bench.api import SUITE_COPY
from transfer_bench.cli import app
from transfer_bench.config import parse_suite
from transfer_bench.runs.plan import plan

SEEDS = range(6)
CELL = {"kind": "transfer", "source": "a", "target": "b", "level": 2}

SUITE = {
    "name": "pairs",
    "seeds": list(SEEDS),
    "model": {"name": "lenet_300_100"},
    "datasets": {
        "a": {"source": "synthetic:a", "num_classes": 4, "samples": 160},
        "b": {"source": "synthetic:b", "num_classes": 4, "samples": 160},
    },
    "search": {"sources": ["a"], "levels": 2},
    "transfer": {"targets": ["b"], "controls": ["random_global"], "levels": [1, 2]},
    "analysis": {"baseline": "random_global", "n_resamples": 99, "plots": ["sparsity_curve"]},
    "claim": {
        "title": "t",
        "paper": "p",
        "expected": "e",
        "n_resamples": 99,
        "checks": [
            {
                "name": "ticket - random_global at level 2",
                "treatment": {**CELL, "control": "ticket"},
                "baseline": {**CELL, "control": "random_global"},
                "expect": "greater",
            }
        ],
    },
}


def _folders(suite_dir: Path) -> dict[tuple[str, int], Path]:
    """(control, seed) -> the run folder the suite plans for it."""
    runs = plan(parse_suite(SUITE))
    return {
        (r.config["control"], r.seed): r.folder(suite_dir) for r in runs if r.kind == "transfer"
    }


def _write(root: Path, drop_seed: int | None = None) -> Path:
    """A results folder with a suite copy: ticket and random_global on b, correlated by seed."""
    rng = np.random.default_rng(11)
    suite_dir = root / "pairs"
    folders = _folders(suite_dir)
    for seed in SEEDS:
        shared = rng.normal(0, 0.02)  # the seed's init and data order, shared by both arms
        for control, gain in (("ticket", 0.01), ("random_global", 0.0)):
            if control == "random_global" and seed == drop_seed:
                continue
            for level in (1, 2):
                acc = 0.8 + gain * level + shared + rng.normal(0, 0.004)
                run = folders[control, seed] / f"level_{level}"
                run.mkdir(parents=True)
                record = dict(
                    **{**CELL, "level": level}, control=control, optimizer="adam", seed=seed,
                    density=0.5**level, test_accuracy=acc, best_test_accuracy=acc,
                )  # fmt: skip
                (run / "result.json").write_text(json.dumps(record))
    (suite_dir / SUITE_COPY).write_text(yaml.safe_dump(SUITE))
    return suite_dir


def _cell(table: pd.DataFrame) -> pd.Series:
    ticket = table["control"] == "ticket" if "control" in table.columns else True
    rows = table[ticket & (table["level"] == 2)]
    assert len(rows) == 1
    return rows.iloc[0]


@pytest.mark.parametrize("drop_seed", [None, 3], ids=["same seeds", "a seed missing"])
def test_report_compare_and_claim_give_one_test_and_one_p(tmp_path: Path, drop_seed) -> None:
    suite_dir = _write(tmp_path, drop_seed)
    runner = CliRunner()
    with pytest.warns(UserWarning) if drop_seed is not None else nullcontext():
        out = runner.invoke(app, ["report", str(suite_dir)])
    assert out.exit_code == 0, out.output
    report_row = _cell(pd.read_csv(suite_dir / "tables" / "comparison.csv"))
    check = json.loads((suite_dir / "claim.json").read_text())["checks"][0]

    out = runner.invoke(app, ["compare", str(suite_dir)])
    assert out.exit_code == 0, out.output
    compare_row = _cell(pd.read_csv(suite_dir / "compare" / "comparison.csv"))
    with pytest.warns(UserWarning) if drop_seed is not None else nullcontext():
        python_row = _cell(compare(load_results(suite_dir), baseline="random_global"))

    # the same test and the identical p-value everywhere
    assert report_row["p"] == compare_row["p"] == python_row["p"] == check["p"]
    assert report_row["test"] == compare_row["test"] == python_row["test"]

    df = load_results(suite_dir)
    sel = df[df["level"] == 2].pivot(index="seed", columns="control", values="test_accuracy")
    if drop_seed is None:
        assert report_row["test"] == "paired_t" and check["test"] == "paired t-test (two-sided)"
        assert check["p"] == pytest.approx(
            sps.ttest_rel(sel["ticket"], sel["random_global"]).pvalue
        )
        assert report_row["pair_r"] == pytest.approx(check["pair_r"])
        assert report_row["pair_r"] > 0.5  # the shared seed effect shows as a correlation
    else:
        base = sel["random_global"].dropna()
        assert report_row["test"] == "welch" and check["test"] == "Welch's t-test (two-sided)"
        assert check["p"] == pytest.approx(
            sps.ttest_ind(sel["ticket"], base, equal_var=False).pvalue
        )
        assert "seeds not paired" in report_row["note"] and "seeds not paired" in check["note"]
        assert not check["paired"] and math.isnan(report_row["pair_r"])


def test_pairing_needs_the_same_seeds() -> None:
    a = pd.Series([0.9, 0.8, 0.85], index=[0, 1, 2])
    b = pd.Series([0.88, 0.79, 0.83], index=[2, 0, 1])  # same seeds, another order
    pairing = pair_by_seed(a, b)
    assert pairing.paired and pairing.seeds == (0, 1, 2)
    np.testing.assert_array_equal(pairing.y, [0.79, 0.83, 0.88])
    res = comparison_test(a, b)
    assert res.test == "paired_t" and res.p == pytest.approx(
        sps.ttest_rel([0.9, 0.8, 0.85], [0.79, 0.83, 0.88]).pvalue
    )
    res = comparison_test(a, b.drop(index=2))
    assert res.test == "welch" and not res.paired and "[2] only in the first" in res.note
    # arrays carry no seeds; an unpaired test asked for runs as asked
    assert not comparison_test(a.to_numpy(), b.to_numpy()).paired
    assert comparison_test(a, b, "welch").test == "welch"
    with pytest.raises(ValueError, match="unknown test"):
        comparison_test(a, b, "ttest")

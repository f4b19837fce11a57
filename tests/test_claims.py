"""Claim verdicts: selection, paired statistics, verdict rules, and the committed summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from transfer_bench.analysis.claims import (
    CLAIM_FILE,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    SUMMARY_COLUMNS,
    claim_records,
    evaluate_claim,
    summary_rows,
    write_summary,
)
from transfer_bench.config import ClaimSpec, load_suite
from transfer_bench.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def frame(ticket: list[float], reinit: list[float], density: float = 0.04) -> pd.DataFrame:
    rows = []
    for control, values in (("ticket", ticket), ("random_reinit", reinit)):
        for seed, v in enumerate(values):
            rows.append(
                {
                    "kind": "transfer",
                    "control": control,
                    "source": "a",
                    "target": "a",
                    "optimizer": "adam",
                    "level": 7,
                    "density": density,
                    "seed": seed,
                    "test_accuracy": v,
                }
            )
    return pd.DataFrame(rows)


def spec(expect: str = "greater", **check) -> ClaimSpec:
    return ClaimSpec.model_validate(
        {
            "title": "t",
            "paper": "p",
            "expected": "e",
            "n_resamples": 999,
            "checks": [
                {
                    "name": "c",
                    "treatment": {"control": "ticket", "density": [0.02, 0.05]},
                    "baseline": {"control": "random_reinit", "density": [0.02, 0.05]},
                    "expect": expect,
                    **check,
                }
            ],
        }
    )


TICKET = [0.95, 0.96, 0.94, 0.955, 0.965, 0.95]
REINIT = [0.93, 0.935, 0.925, 0.94, 0.945, 0.93]


def test_paired_difference_and_t_test_match_scipy():
    rec = evaluate_claim({"results": frame(TICKET, REINIT)}, spec(min_effect=0.005))
    (row,) = rec["checks"]
    d = np.array(TICKET) - np.array(REINIT)
    assert row["n"] == 6 and row["seeds"] == list(range(6))
    assert row["effect"] == pytest.approx(d.mean())
    assert row["p"] == pytest.approx(sps.ttest_rel(TICKET, REINIT).pvalue)
    assert row["ci_low"] < d.mean() < row["ci_high"]
    assert row["verdict"] == REPRODUCED and rec["verdict"] == REPRODUCED


def test_rows_outside_the_density_range_are_ignored():
    df = pd.concat([frame(TICKET, REINIT), frame([0.0] * 6, [1.0] * 6, density=0.5)])
    rec = evaluate_claim({"results": df}, spec())
    assert rec["checks"][0]["effect"] == pytest.approx(np.mean(np.subtract(TICKET, REINIT)))


def test_tight_null_excludes_the_predicted_effect():
    noise = [0.001, -0.001, 0.0005, -0.0005, 0.0, 0.0002]
    rec = evaluate_claim(
        {"results": frame(np.add(REINIT, noise).tolist(), REINIT)}, spec(min_effect=0.005)
    )
    assert rec["checks"][0]["verdict"] == NOT_REPRODUCED
    assert "excludes" in rec["checks"][0]["why"]


def test_opposite_direction_is_not_reproduced():
    rec = evaluate_claim({"results": frame(REINIT, TICKET)}, spec(min_effect=0.005))
    assert rec["verdict"] == NOT_REPRODUCED


def test_noisy_small_sample_is_inconclusive():
    rec = evaluate_claim(
        {"results": frame([0.9, 0.99, 0.85], [0.92, 0.88, 0.95])}, spec(min_effect=0.005)
    )
    assert rec["verdict"] == INCONCLUSIVE


def test_equivalence_uses_tost():
    close = np.add(REINIT, [0.001, -0.002, 0.0, 0.002, -0.001, 0.001]).tolist()
    rec = evaluate_claim({"results": frame(close, REINIT)}, spec("equivalent", margin=0.01))
    row = rec["checks"][0]
    d = np.subtract(close, REINIT)
    lower = sps.ttest_1samp(d, -0.01, alternative="greater").pvalue
    upper = sps.ttest_1samp(d, 0.01, alternative="less").pvalue
    assert row["p"] == pytest.approx(max(lower, upper))
    assert row["verdict"] == REPRODUCED


def test_one_sample_below_threshold():
    df = pd.DataFrame(
        {
            "kind": "stability",
            "level": 0,
            "rewind": 0,
            "density": 1.0,
            "seed": range(6),
            "barrier": [0.004, 0.006, 0.003, 0.005, 0.007, 0.004],
        }
    )
    s = ClaimSpec.model_validate(
        {
            "title": "t",
            "paper": "p",
            "expected": "e",
            "n_resamples": 999,
            "checks": [
                {
                    "name": "b",
                    "metric": "barrier",
                    "treatment": {"kind": "stability", "level": 0, "rewind": 0},
                    "expect": "below",
                    "threshold": 0.02,
                }
            ],
        }
    )
    row = evaluate_claim({"results": df}, s)["checks"][0]
    assert row["verdict"] == REPRODUCED
    assert row["p"] == pytest.approx(
        sps.ttest_1samp(df["barrier"], 0.02, alternative="less").pvalue
    )


def test_sign_test_on_constant_differences():
    s = spec(min_effect=0.005, test="sign")
    rec = evaluate_claim({"results": frame([1.0] * 8, [0.0] * 8)}, s)
    row = rec["checks"][0]
    assert row["p"] == pytest.approx(2 * 0.5**8)
    assert row["verdict"] == REPRODUCED


def test_holm_over_the_checks_of_a_claim():
    base = spec(min_effect=0.005).model_dump()
    base["checks"] = [base["checks"][0], {**base["checks"][0], "name": "again"}]
    rec = evaluate_claim({"results": frame(TICKET, REINIT)}, ClaimSpec.model_validate(base))
    p = rec["checks"][0]["p"]
    assert [r["p_holm"] for r in rec["checks"]] == pytest.approx([min(1, 2 * p)] * 2)


def test_missing_data_is_inconclusive_not_an_error():
    rec = evaluate_claim({"results": frame([], [])}, spec())
    assert rec["verdict"] == INCONCLUSIVE
    assert math.isnan(rec["checks"][0]["effect"])


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ({"expect": "greater"}, "add a baseline"),
        ({"expect": "below", "baseline": {"control": "dense"}}, "threshold"),
        ({"expect": "equivalent", "baseline": {"control": "dense"}}, "margin"),
    ],
)
def test_inconsistent_checks_are_config_errors(tmp_path, check, message):
    path = tmp_path / "s.yaml"
    data = {
        "name": "s",
        "seeds": [0],
        "model": {"name": "lenet_300_100"},
        "datasets": {"d": {"source": "builtin:digits"}},
        "search": {"sources": ["d"]},
        "claim": {
            "title": "t",
            "paper": "p",
            "expected": "e",
            "checks": [{"name": "c", "treatment": {"control": "ticket"}, **check}],
        },
    }
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        load_suite(path)


def test_summary_is_written_from_claim_files(tmp_path):
    rec = evaluate_claim({"results": frame(TICKET, REINIT)}, spec(min_effect=0.005))
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / CLAIM_FILE).write_text(json.dumps(rec))
    text = write_summary(tmp_path).read_text()
    assert "1 claims: 1 reproduced." in text
    assert "[t](one/report.md) — **reproduced**" in text


def _table(text: str) -> list[dict[str, str]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split(" | ")]
    out = []
    for ln in lines[1:]:
        cells = [c.strip().replace("\\|", "|") for c in ln[2:-2].split(" | ")]
        out.append(dict(zip(head, cells, strict=True)))
    return out


CLAIMS = ROOT / "results" / "claims"


@pytest.mark.skipif(not (CLAIMS / "README.md").exists(), reason="no committed claims summary")
def test_committed_summary_matches_committed_statistics():
    """Every row of results/claims/README.md equals what the committed claim.json files say."""
    records = claim_records(CLAIMS)
    assert len(records) == len(list((ROOT / "suites" / "claims").glob("*.yaml")))
    expected = summary_rows(records)
    table = _table((CLAIMS / "README.md").read_text())
    assert [list(r) for r in table][:1] == [list(SUMMARY_COLUMNS)]
    assert table == [{c: r[c].replace("\n", " ") for c in SUMMARY_COLUMNS} for r in expected]
    for name, rec in records:
        # each claim's statistics file agrees with the suite that produced it
        suite = load_suite(ROOT / "suites" / "claims" / f"{name}.yaml")
        assert suite.claim is not None
        assert [c["check"] for c in rec["checks"]] == [c.name for c in suite.claim.checks]
        assert rec["verdict"] in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)


@pytest.mark.skipif(not (CLAIMS / "README.md").exists(), reason="no committed claims summary")
def test_committed_statistics_follow_from_committed_results():
    """claim.json is recomputed from the committed result.json and ticket.json files."""
    from transfer_bench.analysis.frame import apply_diverged, load_results, with_own_ticket_rows
    from transfer_bench.analysis.report import ticket_facts_frame

    checked = 0
    for name, rec in claim_records(CLAIMS):
        suite = load_suite(ROOT / "suites" / "claims" / f"{name}.yaml")
        df = apply_diverged(load_results(CLAIMS / name), suite.analysis.diverged)
        frames = {"results": with_own_ticket_rows(df), "tickets": ticket_facts_frame(CLAIMS / name)}
        again = evaluate_claim(frames, suite.claim)
        for stored, fresh in zip(rec["checks"], again["checks"], strict=True):
            assert stored["n"] == fresh["n"], name
            for key in ("effect", "p", "p_holm", "ci_low", "ci_high"):
                assert stored[key] == pytest.approx(fresh[key], rel=1e-9, nan_ok=True), (name, key)
            assert stored["verdict"] == fresh["verdict"], name
        checked += 1
    assert checked == len(list((ROOT / "suites" / "claims").glob("*.yaml")))

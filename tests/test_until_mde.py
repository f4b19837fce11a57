"""`run --until-mde`: the seed-adding rule reads spreads only, and keeps the false-positive rate.

The null simulation runs 2,000 suites with no true effect through the package's own rule
(``required_paired``, ``next_seed_count``, the pilot of ``PILOT_SEEDS``) and its own test
(``comparison_test`` with Holm over each suite's primaries), and counts suites with any
significant primary. A harness check shows the simulation does catch a rule that peeks at p.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from transfer_bench.analysis import power as pw
from transfer_bench.analysis.rounds import (
    PILOT_SEEDS,
    Primary,
    decide,
    extend_seeds,
    next_seed_count,
    primaries_of_table,
    required_paired,
    required_seeds,
    run_rounds,
)
from transfer_bench.analysis.stats import comparison_table, comparison_test, holm
from transfer_bench.cli import app

ALPHA = 0.05
TARGET = 1.0  # points
MAX_SEEDS = 20


def _null_suites(n_suites: int, seed: int):
    """Per suite: 1-4 primaries, each two arms correlated by seed (r 0-0.8), spreads of the
    differences 0.3-3x the target, the suite's own seeds 3, 5 or 8; no true effect."""
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 5, size=n_suites)
    start = rng.choice([3, 5, 8], size=n_suites)
    sd = np.exp(rng.uniform(np.log(0.3), np.log(3.0), size=(n_suites, 4))) / math.sqrt(2)
    r = rng.uniform(0.0, 0.8, size=(n_suites, 4))
    shared = rng.normal(size=(n_suites, 4, MAX_SEEDS))
    noise = rng.normal(size=(2, n_suites, 4, MAX_SEEDS))
    scale = (sd / np.sqrt(1 - r))[..., None]  # arm sd so that the difference has sd * sqrt(2)
    base = 90.0 + scale * np.sqrt(r)[..., None] * shared
    x = base + scale * np.sqrt(1 - r)[..., None] * noise[0]
    y = base + scale * np.sqrt(1 - r)[..., None] * noise[1]
    return k, start, x, y


def _rounds(k, start, x, y, stop_rule):
    """Seeds per suite after the rounds: the pilot (at least PILOT_SEEDS), then ``stop_rule``."""
    n = np.maximum(start, PILOT_SEEDS)
    live = np.arange(4)[None, :] < k[:, None]
    active = np.ones(len(n), bool)
    while active.any():
        seen = np.arange(MAX_SEEDS)[None, None, :] < n[:, None, None]
        nxt = stop_rule(np.where(seen, x - y, np.nan), n, live)
        active &= nxt != n
        n = np.where(active, nxt, n)
    return n


def _variance_rule(d, n, live):
    """The package's rule, vectorised: each primary's required seeds from its spread."""
    sd = np.nanstd(d, axis=-1, ddof=1)
    need = np.zeros(len(n), int)
    for m in (1, 2, 3, 4):  # one factor table per family size (the level is alpha / m)
        rows = live.sum(axis=1) == m
        req = required_paired(sd[rows], TARGET, ALPHA / m, max_seeds=MAX_SEEDS)
        need[rows] = np.where(live[rows], req, 0).max(axis=1)
    return next_seed_count(n, need, MAX_SEEDS)


def _peeking_rule(d, n, live):
    """A rule that looks at the effect: add a seed while no primary is significant."""
    mean, sd = np.nanmean(d, axis=-1), np.nanstd(d, axis=-1, ddof=1)
    from scipy import stats as sps

    p = 2 * sps.t.sf(np.abs(mean / (sd / np.sqrt(n[:, None]))), n[:, None] - 1)
    significant = (np.where(live, p, 1.0).min(axis=1) * live.sum(axis=1)) < ALPHA
    return np.where(significant | (n >= MAX_SEEDS), n, n + 1)


def _rejections(k, n, x, y) -> np.ndarray:
    """Whether each suite's Holm-corrected primaries reject, with the package's own test."""
    out = np.zeros(len(n), bool)
    for s in range(len(n)):
        seeds = range(int(n[s]))
        ps = [
            comparison_test(
                pd.Series(x[s, j, : n[s]], index=seeds), pd.Series(y[s, j, : n[s]], index=seeds)
            ).p
            for j in range(int(k[s]))
        ]
        out[s] = bool((holm(ps) < ALPHA).any())
    return out


def test_null_suites_keep_the_false_positive_rate() -> None:
    k, start, x, y = _null_suites(2000, seed=2024)
    n = _rounds(k, start, x, y, _variance_rule)
    assert (n > np.maximum(start, PILOT_SEEDS)).mean() > 0.3  # the rule did add seeds
    assert (n == MAX_SEEDS).mean() < 0.8
    rate = _rejections(k, n, x, y).mean()
    assert 0.035 <= rate <= 0.065, rate


def test_the_simulation_catches_a_rule_that_peeks_at_the_effect() -> None:
    k, start, x, y = _null_suites(500, seed=7)
    n = _rounds(k, start, x, y, _peeking_rule)
    assert _rejections(k, n, x, y).mean() > 0.1


def test_required_paired_is_the_first_count_that_reaches_the_target() -> None:
    for sd in (0.3, 1.0, 2.0):
        n = int(required_paired(sd, TARGET, 0.025, max_seeds=60))
        at, before = (pw.Design(sd, sd, m, m, paired=True, sd_diff=sd) for m in (n, n - 1))
        assert pw.mde(at, 0.025) <= TARGET < pw.mde(before, 0.025)
    assert required_paired(50.0, TARGET, 0.025, max_seeds=10) == 11  # unreachable
    assert required_paired(math.nan, TARGET, 0.025, max_seeds=10) == 11


def test_welch_primaries_use_their_own_design() -> None:
    p = Primary("w", pw.Design(0.01, 0.02, 5, 5), 0.05, test="welch")
    n = required_seeds(p, 1.0, max_seeds=60)
    assert pw.mde(p.design.with_seeds(n), 0.05) <= 0.01 < pw.mde(p.design.with_seeds(n - 1), 0.05)


def _frame(shift: float, seeds: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for seed in range(seeds):
        common = rng.normal(0, 0.01)
        for control, add in (("ticket", shift), ("random_reinit", 0.0)):
            for level in (1, 2):
                rows.append(
                    dict(
                        kind="transfer", source="a", target="b", optimizer="sgd", control=control,
                        level=level, density=0.5**level, seed=seed,
                        test_accuracy=0.8 + add + common + rng.normal(0, 0.005),
                    )
                )  # fmt: skip
    return pd.DataFrame(rows)


def test_the_decision_does_not_move_with_the_effect() -> None:
    """The same results with the ticket shifted by 0, 2 or 20 points: the same rounds."""
    decisions = []
    for shift in (0.0, 0.02, 0.2):
        table = comparison_table(_frame(shift), n_resamples=0)
        primaries = primaries_of_table(table)
        assert len(primaries) == 2 and all(p.design.paired for p in primaries)
        r = decide(primaries, 6, 0.5, max_seeds=MAX_SEEDS)
        decisions.append((r.next_n, r.required))
    assert decisions[0] == decisions[1] == decisions[2]
    assert decisions[0][0] > 6  # 0.5 points needs more than 6 seeds at this spread


def test_decide_is_the_vectorised_rule() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        sds = rng.uniform(0.2, 3.0, size=3)
        n = int(rng.integers(5, 15))
        ps = [Primary(f"p{i}", pw.Design(s, s, n, n, True, s), 0.05 / 3, scale=1.0) for i, s in
              enumerate(sds)]  # fmt: skip
        need = required_paired(sds, TARGET, 0.05 / 3, max_seeds=MAX_SEEDS).max()
        assert decide(ps, n, TARGET, max_seeds=MAX_SEEDS).next_n == next_seed_count(
            n, need, MAX_SEEDS
        )


def test_run_rounds_trains_the_pilot_then_adds_seeds_until_the_target() -> None:
    trained: list[tuple[int, ...]] = []
    sd = {"now": 1.2}

    def measure():
        n = len(trained[-1])
        s = sd["now"]
        return [Primary("x", pw.Design(s, s, n, n, True, s), 0.05, scale=1.0)]

    rounds = run_rounds((0, 1, 2), trained.append, measure, TARGET, max_seeds=MAX_SEEDS)
    assert trained[0] == (0, 1, 2, 3, 4)  # the pilot: PILOT_SEEDS before the first look
    assert [len(t) for t in trained] == [r.n for r in rounds]
    assert rounds[-1].stop and rounds[-1].mdes[0] <= TARGET
    assert all(len(b) > len(a) for a, b in zip(trained, trained[1:], strict=False))
    # a spread the cap cannot beat stops at max seeds
    trained.clear()
    sd["now"] = 30.0
    rounds = run_rounds((0, 1, 2), trained.append, measure, TARGET, max_seeds=8)
    assert len(trained[-1]) == 8 and rounds[-1].stop and "max seeds" in rounds[-1].reason
    assert extend_seeds((4, 9), 4) == (4, 9, 10, 11)
    with pytest.raises(ValueError, match="max-seeds"):
        run_rounds((0,), trained.append, measure, TARGET, max_seeds=1)


TINY = {
    "name": "um",
    "seeds": [0, 1, 2],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "a": {"source": "synthetic:a", "num_classes": 4, "samples": 160},
        "b": {"source": "synthetic:b", "num_classes": 4, "samples": 160},
    },
    "train": {"batch_size": 40, "epochs": 1},
    "search": {"sources": ["a"], "rate": 0.5, "head_rate": 0.2, "levels": 1},
    "transfer": {"targets": ["b"], "controls": ["random_reinit"], "levels": [1]},
    "analysis": {"n_resamples": 0, "plots": [], "primary": [{"arm": "ticket", "level": 1}]},
}


def test_run_until_mde_adds_seeds_and_plan_prices_them(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(TINY))
    res = tmp_path / "res"
    args = ["run", str(suite), "--results", str(res), "--executor", "sequential"]
    out = CliRunner().invoke(app, [*args, "--until-mde", "0.5", "--max-seeds", "6"])
    assert out.exit_code == 0, out.output
    assert "until-mde: 5 seeds" in out.output and "max seeds (6) reached" in out.output
    folder = res / "um"
    record = json.loads((folder / "rounds.json").read_text())
    assert [r["seeds"] for r in record["rounds"]] == [5, 6] and record["suite_seeds"] == [0, 1, 2]
    seeds = {p.name for p in folder.glob("transfer-*/seed_*")}
    assert seeds == {f"seed_{s}" for s in range(6)}
    assert (
        "extended to 6 by `run --until-mde 0.5 --max-seeds 6`" in (folder / "report.md").read_text()
    )
    plan = CliRunner().invoke(
        app, ["plan", str(suite), "--results", str(res), "--no-estimate", "--until-mde", "0.5"]
    )
    assert plan.exit_code == 0, plan.output
    assert "until-mde 0.5 points: 6 seeds" in plan.output and "expected:" in plan.output
    bad = CliRunner().invoke(app, [*args, "--until-mde", "-1"])
    assert bad.exit_code != 0 and "--until-mde -1" in str(bad.exception)

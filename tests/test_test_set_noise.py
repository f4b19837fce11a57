"""Reports set each accuracy's binomial test-set error next to the seed-to-seed spread, and say how
correlated the paired arms were."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from transfer_bench.analysis import load_results, write_report
from transfer_bench.analysis.precision import noise_text, pairing_text
from transfer_bench.analysis.stats import binomial_se, comparison_table


def test_binomial_se_is_the_root_mean_binomial_variance() -> None:
    assert binomial_se([0.9], 1000) == pytest.approx(math.sqrt(0.9 * 0.1 / 1000))
    p = np.array([0.5, 0.9])
    assert binomial_se(p, 400) == pytest.approx(math.sqrt(np.mean(p * (1 - p)) / 400))
    assert math.isnan(binomial_se([0.9], math.nan)) and math.isnan(binomial_se([1.5], 100))


def _write(suite_dir: Path, n_test: int, seeds: int = 5, noise: float = 0.01) -> Path:
    """Ticket and random_reinit on one target, each seed folder with its run config."""
    rng = np.random.default_rng(2)
    for seed in range(seeds):
        shared = rng.normal(0, noise)
        for control, gain in (("ticket", 0.02), ("random_reinit", 0.0)):
            folder = suite_dir / f"transfer-{control}" / f"seed_{seed}"
            (folder / "level_1").mkdir(parents=True)
            config = {"data": {"sizes": {"train": 4000, "test": n_test}}}
            (folder / "config.json").write_text(json.dumps(config))
            acc = 0.85 + gain + shared + rng.normal(0, noise / 4)
            record = dict(
                kind="transfer", source="a", target="b", optimizer="sgd", control=control,
                level=1, density=0.5, seed=seed, test_accuracy=acc, best_test_accuracy=acc,
            )  # fmt: skip
            (folder / "level_1" / "result.json").write_text(json.dumps(record))
    return suite_dir


def test_tables_carry_each_arms_test_set_error(tmp_path: Path) -> None:
    df = load_results(_write(tmp_path / "s", n_test=1000))
    assert (df["n_test"] == 1000).all()
    row = comparison_table(df, n_resamples=0).iloc[0]
    ticket = df[df.control == "ticket"].sort_values("seed")["test_accuracy"]
    assert row.n_test == 1000
    assert row.ticket_binom_se == pytest.approx(binomial_se(ticket, 1000))
    assert 0.01 < row.ticket_binom_se < 0.012  # sqrt(0.87 * 0.13 / 1000) = 1.06 points
    assert row.pair_r > 0.5  # the shared seed effect
    losses = comparison_table(df.assign(loss=df["test_accuracy"]), metric="loss", n_resamples=0)
    assert math.isnan(losses.iloc[0].ticket_binom_se)  # not an accuracy: no binomial error


def test_the_report_says_which_noise_dominates(tmp_path: Path) -> None:
    big = comparison_table(load_results(_write(tmp_path / "a", n_test=100_000)), n_resamples=0)
    assert "the spread between seeds dominates" in noise_text(big)
    small = comparison_table(load_results(_write(tmp_path / "b", n_test=200)), n_resamples=0)
    assert "the test set's sampling error dominates" in noise_text(small)
    text = pairing_text(small)
    assert text.startswith("Pairing: 1 of 1 tested cells compared paired by seed")
    assert f"median r = {small.iloc[0].pair_r:.2f}" in text
    path = write_report(tmp_path / "b", suite_name="b", analysis={"n_resamples": 0, "plots": []})
    report = path.read_text()
    assert "Test-set noise: one accuracy measured on n_test = 200 images" in report
    assert "| Test SE (points) |" in report and "| r |" in report
    assert (
        pd.read_csv(tmp_path / "b" / "tables" / "comparison.csv")["ticket_binom_se"].notna().all()
    )

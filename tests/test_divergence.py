"""Numerical faults: a diverging training is recorded with its step, not crashed, and the analysis
treats it as configured (chance, exclude or keep)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from transfer_bench.analysis.frame import apply_diverged, load_results
from transfer_bench.analysis.report import write_report
from transfer_bench.config import OptimizerSpec, TrainSpec, parse_suite
from transfer_bench.runner.execute import execute
from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import plan
from transfer_bench.training import TrainData, train
from transfer_bench.training.loop import epoch_order

pytestmark = pytest.mark.reliability


def _data(n: int = 120, poison: int | None = None) -> TrainData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 4, 4, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    if poison is not None:
        x[poison, 0, 0, 0] = float("nan")
    return TrainData(x_train=x, y_train=y, x_test=x[:30].nan_to_num(), y_test=y[:30])


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def test_nan_in_one_batch_is_reported_at_its_exact_step():
    bs, poison, epochs = 20, 77, 3
    spe = 120 // bs
    # where sample 77 falls in epoch 1 (the second epoch) with this order seed
    pos = int((epoch_order(5, 1, 120, torch.device("cpu")) == poison).nonzero())
    expected = spe + pos // bs + 1
    data = _data(poison=poison)
    # sample 77 is also in epoch 0: start after epoch 0 to hit it in epoch 1 only
    out = train(
        _model(),
        data,
        TrainSpec(batch_size=bs, epochs=epochs),
        OptimizerSpec(name="sgd", lr=0.1),
        None,
        order_seed=5,
        start_iteration=spe,
    )
    assert out.diverged_at == expected
    assert out.iterations == spe * 2  # stopped at the end of the epoch it diverged in
    assert len(out.history) == 0  # no evaluation of a diverged network


def test_finite_training_is_not_marked_diverged():
    out = train(
        _model(),
        _data(),
        TrainSpec(batch_size=20, epochs=2),
        OptimizerSpec(name="sgd", lr=0.1),
        None,
        order_seed=5,
    )
    assert out.diverged_at is None
    assert len(out.history) == 2


SUITE = {
    "name": "boom",
    "seeds": [0, 1],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {"src": {"source": "synthetic:src", "num_classes": 4, "samples": 160}},
    "optimizers": {"sgd": {"name": "sgd", "lr": 10.0, "momentum": 0.99}},
    "train": {"optimizer": "sgd", "batch_size": 40, "epochs": 2},
    "search": {"sources": ["src"], "rate": 0.5, "levels": 2},
    "transfer": {"targets": ["src"], "controls": ["random_reinit", "dense"], "levels": [0, 1]},
    "analysis": {"n_resamples": 0, "plots": ["sparsity_curve"]},
}


def test_diverging_suite_finishes_and_records_the_step(tmp_path: Path):
    suite = parse_suite(SUITE)
    ctx = Context(suite, tmp_path / "boom", torch.device("cpu"), tmp_path / "cache")
    execute(ctx, plan(suite))  # no exception
    df = load_results(ctx.suite_dir)
    bad = df[df["diverged"]]
    assert len(bad) >= 1 and (~df["diverged"]).any()
    assert ((bad["diverged_at"] >= 1) & (bad["diverged_at"] <= 8)).all()
    assert df.loc[~df["diverged"], "diverged_at"].isna().all()
    # IMP stops at the level that diverged: no ticket is pruned from NaN weights, and transfers
    # of the missing tickets are skipped with a note instead of crashing the suite
    for seed, search in df[df["kind"] == "search"].groupby("seed"):
        if search["diverged"].any():
            stop = search.loc[search["diverged"], "level"].min()
            assert search["level"].max() == stop
            notes = list(ctx.suite_dir.glob(f"transfer-*/seed_{seed}/level_*/skipped.json"))
            if stop < 1:
                assert notes
    assert (df["num_classes"] == 4).all()


def _records(tmp: Path) -> Path:
    suite_dir = tmp / "toy"
    rows = []
    for seed in range(4):
        for control, acc in (("ticket", 0.9), ("random_reinit", 0.8)):
            diverged = control == "ticket" and seed == 3
            rows.append(
                {
                    "kind": "transfer",
                    "suite": "toy",
                    "run_id": f"transfer-{control}",
                    "source": "a",
                    "target": "b",
                    "optimizer": "adam",
                    "control": control,
                    "level": 2,
                    "density": 0.64,
                    "seed": seed,
                    "test_accuracy": 0.5 if diverged else acc + 0.01 * seed,
                    "best_test_accuracy": 0.5 if diverged else acc + 0.01 * seed,
                    "diverged": diverged,
                    "diverged_at": 17 if diverged else None,
                    "num_classes": 10,
                }
            )
    for i, r in enumerate(rows):
        p = suite_dir / f"run{i}" / "level_2" / "result.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps(r))
    return suite_dir


@pytest.mark.parametrize(
    ("policy", "n_ticket", "diverged_acc"),
    [("chance", 4, 0.1), ("exclude", 3, None), ("keep", 4, 0.5)],
)
def test_policies(tmp_path, policy, n_ticket, diverged_acc):
    df = apply_diverged(load_results(_records(tmp_path)), policy)
    ticket = df[df["control"] == "ticket"]
    assert len(ticket) == n_ticket
    if diverged_acc is not None:
        got = ticket.loc[ticket["seed"] == 3, "test_accuracy"].item()
        assert got == pytest.approx(diverged_acc)
    assert len(df[df["control"] == "random_reinit"]) == 4


def test_report_lists_diverged_trainings_and_policy(tmp_path):
    suite_dir = _records(tmp_path)
    analysis = {"n_resamples": 0, "plots": [], "diverged": "exclude"}
    with pytest.warns(UserWarning, match="diverged"):
        path = write_report(suite_dir, suite_name="toy", analysis=analysis)
    text = path.read_text()
    assert "## Diverged trainings" in text
    assert "analysis.diverged: exclude" in text
    assert "| transfer | a | b | adam | ticket | 2 | 3 | 17 |" in text


def test_policy_is_a_suite_setting():
    data = yaml.safe_load(yaml.safe_dump(SUITE))
    data["analysis"]["diverged"] = "exlude"
    with pytest.raises(Exception, match="diverged"):
        parse_suite(data)

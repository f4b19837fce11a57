"""Instability analysis: interpolation, error barrier, linear path, end-to-end two-copy training."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.errors import ConfigError, ModelError
from transfer_bench.training import TrainData
from transfer_bench.training.stability import (
    STABLE_THRESHOLD,
    error_barrier,
    instability,
    interpolate_state,
    linear_path_errors,
)


class Tiny(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.l1 = nn.Linear(16, 32)
        self.bn = nn.BatchNorm1d(32)
        self.head = nn.Linear(32, 3)
        with torch.no_grad():
            for p in (self.l1.weight, self.head.weight):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.prunable_names = ("l1.weight", "head.weight")
        self.head_names = ("head.weight", "head.bias")

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.l1(x.flatten(1)))))


def data(n=240, seed=0) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    protos = torch.randn(3, 16, generator=g)
    x = protos[y] + 0.8 * torch.randn(n, 16, generator=g)
    return TrainData(x[:200].view(200, 1, 4, 4), y[:200], x[200:].view(-1, 1, 4, 4), y[200:])


def test_error_barrier_hand_values():
    assert error_barrier([0.1, 0.3, 0.2]) == pytest.approx(0.3 - 0.15)
    assert error_barrier([0.2, 0.1, 0.05, 0.2]) == pytest.approx(0.0)  # below the chord
    # (alpha, error) pairs in any order: ends are alpha 0 and 1
    assert error_barrier([(1.0, 0.2), (0.0, 0.1), (0.5, 0.3)]) == pytest.approx(0.15)
    assert error_barrier([0.5, 0.4], end_errors=[0.1, 0.3]) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        error_barrier([])


def test_interpolate_state_endpoints_exact_and_midpoint():
    a, b = Tiny(0).state_dict(), Tiny(1).state_dict()
    b["bn.num_batches_tracked"] = torch.tensor(7)
    at1 = interpolate_state(a, b, 1.0)
    at0 = interpolate_state(a, b, 0.0)
    for k in a:
        assert torch.equal(at1[k], a[k])
        if k != "bn.num_batches_tracked":
            assert torch.equal(at0[k], b[k])
    assert torch.equal(at0["bn.num_batches_tracked"], a["bn.num_batches_tracked"])  # from a
    mid = interpolate_state(a, b, 0.25)
    assert torch.allclose(mid["l1.weight"], 0.25 * a["l1.weight"] + 0.75 * b["l1.weight"])
    assert mid["bn.num_batches_tracked"].dtype == torch.int64
    at1["l1.weight"].add_(1.0)  # copies, not views
    assert not torch.equal(at1["l1.weight"], a["l1.weight"])
    with pytest.raises(ModelError):
        interpolate_state(a, {k: v for k, v in b.items() if k != "head.bias"}, 0.5)


def test_linear_path_identical_states_flat_and_restores_model():
    d = data()
    model = Tiny(3)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    state = Tiny(0).state_dict()
    path = linear_path_errors(model, state, state, d.x_test, d.y_test, points=30)
    assert len(path) == 30
    assert path[0][0] == 0.0 and path[-1][0] == 1.0
    assert len({e for _, e in path}) == 1
    assert error_barrier(path) == 0.0
    assert all(torch.equal(v, own[k]) for k, v in model.state_dict().items())


def test_linear_path_applies_masks():
    d = data()
    model = Tiny(0)
    masks = {
        n: torch.zeros_like(p, dtype=torch.bool)
        for n, p in model.named_parameters()
        if n in model.prunable_names
    }
    state = Tiny(0).state_dict()
    path = linear_path_errors(model, state, state, d.x_test, d.y_test, points=3, masks=masks)
    # all weights pruned: logits = head.bias for every input -> one class predicted everywhere
    pred = int(state["head.bias"].argmax())
    expected = 1.0 - float((d.y_test == pred).float().mean())
    assert [e for _, e in path] == pytest.approx([expected] * 3)
    with pytest.raises(ConfigError):
        linear_path_errors(model, state, state, d.x_test, d.y_test, points=1)


def test_instability_end_to_end():
    d = data()
    start = Tiny(0)
    g = torch.Generator().manual_seed(5)
    masks = {
        n: torch.rand(p.shape, generator=g) < 0.5
        for n, p in start.named_parameters()
        if n in start.prunable_names
    }
    spec = TrainSpec(batch_size=20, epochs=2, eval_batch_size=50)
    opt = OptimizerSpec(name="sgd", lr=0.2, momentum=0.9)
    res = instability(
        lambda: Tiny(9), start.state_dict(), masks, d, spec, opt, seeds=(11, 12), points=30
    )
    json.dumps(res)  # JSON-able
    assert len(res["path"]) == 30
    assert res["path"][0][0] == 0.0 and res["path"][-1][0] == 1.0
    assert [c["order_seed"] for c in res["copies"]] == [11, 12]
    assert all(c["iterations"] == 20 for c in res["copies"])
    assert res["end_errors"] == [res["path"][-1][1], res["path"][0][1]]
    assert res["end_errors"][0] == pytest.approx(1.0 - res["copies"][0]["test_accuracy"])
    assert res["end_errors"][1] == pytest.approx(1.0 - res["copies"][1]["test_accuracy"])
    assert res["barrier"] == pytest.approx(error_barrier(res["path"]))
    assert res["barrier"] >= 0.0
    assert res["stable"] == (res["barrier"] < STABLE_THRESHOLD)
    # the two copies differ (different data order) but started from the same state
    assert res["copies"][0]["final_train_loss"] != res["copies"][1]["final_train_loss"]


def test_instability_same_seed_is_rejected_and_deterministic_otherwise():
    d = data()
    spec = TrainSpec(batch_size=40, epochs=1)
    opt = OptimizerSpec(name="adam", lr=1e-2)
    start = Tiny(0).state_dict()
    with pytest.raises(ConfigError, match="different"):
        instability(Tiny, start, None, d, spec, opt, seeds=(1, 1))
    r1 = instability(Tiny, start, None, d, spec, opt, seeds=(1, 2), points=5)
    r2 = instability(Tiny, start, None, d, spec, opt, seeds=(1, 2), points=5)
    assert r1["path"] == r2["path"] and r1["barrier"] == r2["barrier"]
    with pytest.raises(ModelError, match="start_state"):
        instability(Tiny, {"x": torch.zeros(1)}, None, d, spec, opt, seeds=(1, 2))

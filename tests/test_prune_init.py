"""Pruning at initialization: hand-checked scores, exact selection, SynFlow vs layer collapse."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from transfer_bench.errors import ConfigError
from transfer_bench.models import build_model
from transfer_bench.pruning.at_init import (
    compression,
    density_from_log_compression,
    layer_collapse,
    prune_at_init,
    schedule_densities,
)
from transfer_bench.pruning.masks import density, full_masks
from transfer_bench.pruning.scores import (
    GRASP_EPS,
    compute_scores,
    get_scorer,
    grasp,
    grasp_hessian_gradient,
    list_scorers,
    snip,
    synflow,
)
from transfer_bench.pruning.select import select_top


def _attach(model: nn.Module, prunable, head, in_channels: int, image_size: int) -> nn.Module:
    model.prunable_names = tuple(prunable)
    model.head_names = tuple(head)
    model.model_spec = {
        "name": "test",
        "num_classes": 0,
        "in_channels": in_channels,
        "image_size": image_size,
        "options": {},
    }
    return model


class TwoLayer(nn.Module):
    """x (flattened, 2 features) -> W1 (2x2) -> ReLU -> W2 (1x2); no biases."""

    def __init__(self, w1: list[list[float]], w2: list[list[float]]) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 2, bias=False)
        self.fc = nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor(w1))
            self.fc.weight.copy_(torch.tensor(w2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.fc1(x.flatten(1))))


def _two_layer() -> nn.Module:
    model = TwoLayer([[1.0, -2.0], [3.0, 0.5]], [[-1.0, 2.0]])
    return _attach(model, ("fc1.weight", "fc.weight"), ("fc.weight",), 2, 1)


class TinyConv(nn.Module):
    """Two 3x3 convs with max-pooling, then FC 256 -> 128 -> 10 (PyTorch default init)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 4 * 4, 128)
        self.fc = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(torch.relu(self.fc1(x.flatten(1))))


def _tiny_conv(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TinyConv()
    prunable = ("conv1.weight", "conv2.weight", "fc1.weight", "fc.weight")
    return _attach(model, prunable, ("fc.weight", "fc.bias"), 1, 16)


def _batch(n: int, shape: tuple[int, ...], classes: int, seed: int, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *shape), generator=g, dtype=dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


# --- SynFlow -----------------------------------------------------------------------------------


def test_synflow_two_layer_linear_net_hand_computed():
    # R = 1^T |W2| |W1| 1 with |W1| = [[1, 2], [3, .5]], |W2| = [1, 2]: |W1| 1 = [3, 3.5], R = 10.
    # score(W1_ij) = |W1_ij| |W2_i|; score(W2_i) = |W2_i| (|W1| 1)_i.
    model = _two_layer()
    scores = synflow(model)
    assert scores["fc1.weight"].dtype == torch.float64
    torch.testing.assert_close(
        scores["fc1.weight"], torch.tensor([[1.0, 2.0], [6.0, 1.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(scores["fc.weight"], torch.tensor([[3.0, 7.0]], dtype=torch.float64))
    # conservation of synaptic flow: every layer's scores sum to R = 10
    for s in scores.values():
        assert float(s.sum()) == pytest.approx(10.0)


def test_synflow_applies_current_masks():
    # pruning W1[1, 0] (|3|): |W1| 1 = [3, 0.5] so score(W2) = [3, 1] and W1[1, 0] scores 0.
    model = _two_layer()
    masks = full_masks(model)
    masks["fc1.weight"][1, 0] = False
    scores = synflow(model, masks)
    torch.testing.assert_close(
        scores["fc1.weight"], torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(scores["fc.weight"], torch.tensor([[3.0, 1.0]], dtype=torch.float64))


def test_synflow_float64_survives_a_deep_net():
    # 40 layers of 4x4 weights 5.0: R ~ 20^40 ~ 1e52 overflows float32 but not float64.
    layers = [nn.Linear(4, 4, bias=False) for _ in range(40)]
    for layer in layers:
        nn.init.constant_(layer.weight, 5.0)
    model = nn.Sequential(nn.Flatten(), *layers)
    names = tuple(n for n, _ in model.named_parameters())
    _attach(model, names, (names[-1],), 4, 1)
    scores = synflow(model)
    for s in scores.values():
        assert torch.isfinite(s).all() and (s > 0).all()


def test_synflow_on_batchnorm_resnet_leaves_model_intact():
    model = build_model("resnet20", num_classes=10, in_channels=3, image_size=8, seed=0)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = synflow(model)
    assert set(scores) == set(model.prunable_names)
    assert all(torch.isfinite(s).all() and (s >= 0).all() for s in scores.values())
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


# --- SNIP --------------------------------------------------------------------------------------


def test_snip_matches_analytic_gradient_of_linear_softmax():
    w = torch.tensor([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]])  # 3 classes x 2 features
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 3, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(w)
    _attach(model, ("1.weight",), ("1.weight",), 2, 1)
    x = torch.tensor([[1.0, 2.0], [-0.5, 1.0]]).reshape(2, 2, 1, 1)
    y = torch.tensor([0, 2])
    # dL/dW for mean cross-entropy of softmax(W x): (softmax - onehot)^T x / N
    xf = x.flatten(1)
    p = torch.softmax(xf @ w.T, dim=1)
    grad = (p - F.one_hot(y, 3).float()).T @ xf / 2
    expected = (w * grad).abs()
    expected = expected / expected.sum()
    scores = snip(model, None, (x, y))
    torch.testing.assert_close(scores["1.weight"], expected)
    assert float(scores["1.weight"].sum()) == pytest.approx(1.0)


def test_snip_is_normalized_over_all_layers_and_zero_on_pruned():
    model = _tiny_conv()
    masks = full_masks(model)
    masks["fc1.weight"][:, :5] = False
    scores = snip(model, masks, _batch(20, (1, 16, 16), 10, seed=1))
    assert sum(float(s.sum()) for s in scores.values()) == pytest.approx(1.0)
    assert float(scores["fc1.weight"][:, :5].abs().sum()) == 0.0


# --- GraSP -------------------------------------------------------------------------------------


def test_grasp_hessian_gradient_matches_autograd_hvp():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    names = ("1.weight", "3.weight")
    _attach(model, names, ("3.weight", "3.bias"), 4, 1)
    batches = [_batch(6, (4, 1, 1), 3, seed=s, dtype=torch.float64) for s in (7, 8)]
    params = dict(model.named_parameters())

    def loss(w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), dtype=torch.float64)
        for x, y in batches:
            out = functional_call(model, {names[0]: w1, names[1]: w2}, (x,))
            total = total + F.cross_entropy(out / 200.0, y)
        return total

    w = tuple(params[n].detach().clone().requires_grad_(True) for n in names)
    g = torch.autograd.grad(loss(*w), w)
    _, hvp = torch.autograd.functional.hvp(loss, tuple(t.detach() for t in w), g)
    theta, hg = grasp_hessian_gradient(model, None, batches)
    for n, expected in zip(names, hvp, strict=True):
        torch.testing.assert_close(hg[n], expected, rtol=1e-9, atol=1e-18)
        torch.testing.assert_close(theta[n], params[n].detach())
    # score = +theta * Hg / (|sum| + eps) = -S(-theta) of the paper: keeping the highest score
    # removes the weights with the highest S.
    raw = {n: params[n].detach() * hg[n] for n in names}
    norm = abs(sum(float(r.sum()) for r in raw.values())) + GRASP_EPS
    scores = grasp(model, None, batches)
    for n in names:
        torch.testing.assert_close(scores[n], raw[n] / norm)


# --- selection ---------------------------------------------------------------------------------


def test_select_top_global_and_layerwise_exact_counts():
    g = torch.Generator().manual_seed(0)
    shapes = {"b": (7, 3), "a": (5,), "c": (2, 2, 3)}
    scores = {n: torch.rand(s, generator=g) for n, s in shapes.items()}
    masks = {n: torch.ones(s, dtype=torch.bool) for n, s in shapes.items()}
    total = sum(math.prod(s) for s in shapes.values())
    for d in (0.0, 0.1, 0.37, 0.5, 0.9, 1.0):
        out = select_top(scores, masks, d, "global")
        assert list(out) == list(masks)
        assert sum(int(m.sum()) for m in out.values()) == round(d * total)
        lw = select_top(scores, masks, d, "layerwise")
        for n, s in shapes.items():
            assert int(lw[n].sum()) == round(d * math.prod(s))
    # global keeps exactly the top scores
    out = select_top(scores, masks, 0.25, "global")
    flat = torch.cat([scores[n].flatten() for n in sorted(scores)])
    kept = torch.cat([out[n].flatten() for n in sorted(out)])
    assert float(flat[kept].min()) > float(flat[~kept].max())


def test_select_top_ties_are_deterministic_by_sorted_name_then_index():
    scores = {"b": torch.ones(4), "a": torch.ones(2, 2)}
    masks = {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    out = select_top(scores, masks, 0.75, "global")  # 6 of 8: all of "a", then b[0], b[1]
    assert out["a"].all()
    assert out["b"].tolist() == [True, True, False, False]
    lw = select_top(scores, masks, 0.5, "layerwise")
    assert lw["a"].tolist() == [[True, True], [False, False]]
    assert lw["b"].tolist() == [True, True, False, False]


def test_select_top_ignores_pruned_entries_and_stays_nested():
    scores = {"w": torch.tensor([100.0, 1.0, 2.0, 3.0, 100.0, 0.5])}
    masks = {"w": torch.tensor([False, True, True, True, False, True])}
    out = select_top(scores, masks, 0.5, "global")
    assert out["w"].tolist() == [False, True, True, True, False, False]
    with pytest.raises(ValueError, match="still kept"):
        select_top(scores, masks, 5 / 6, "global")
    with pytest.raises(ConfigError, match="scope"):
        select_top(scores, masks, 0.5, "local")
    with pytest.raises(ConfigError, match="density"):
        select_top(scores, masks, 1.5, "global")


# --- prune_at_init -----------------------------------------------------------------------------


def test_synflow_avoids_layer_collapse_where_magnitude_collapses():
    model = _tiny_conv()
    d = density_from_log_compression(2.5)  # 10^-2.5: keeps 65 of 20,480 weights
    mag = prune_at_init(model, "magnitude_init", [d])[d]
    assert "fc1.weight" in layer_collapse(mag)
    masks = prune_at_init(model, "synflow", [d])[d]  # 100 rounds, exponential schedule
    assert layer_collapse(masks) == []
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(d * total)
    single = prune_at_init(model, "synflow", [d], rounds=1)[d]
    assert sum(int(m.sum()) for m in single.values()) == round(d * total)


@pytest.mark.slow
def test_synflow_avoids_layer_collapse_on_conv2():
    model = build_model("conv2", num_classes=10, in_channels=1, image_size=16, seed=0)
    d = 10**-2.5
    assert "fc1.weight" in layer_collapse(prune_at_init(model, "magnitude_init", [d])[d])
    assert layer_collapse(prune_at_init(model, "synflow", [d])[d]) == []


def test_single_shot_masks_are_nested_and_exact():
    model = _tiny_conv()
    data = _batch(20, (1, 16, 16), 10, seed=2)
    total = sum(p.numel() for n, p in model.named_parameters() if n in model.prunable_names)
    for method in ("magnitude_init", "snip", "grasp"):
        out = prune_at_init(model, method, [0.5, 0.1, 0.02], data=data)
        assert list(out) == [0.5, 0.1, 0.02]
        for d, m in out.items():
            assert density(m) == round(d * total) / total
        for n in model.prunable_names:
            assert not (out[0.1][n] & ~out[0.5][n]).any()
            assert not (out[0.02][n] & ~out[0.1][n]).any()
    lw = prune_at_init(model, "snip", [0.2], data=data, scope="layerwise")[0.2]
    for m in lw.values():
        assert int(m.sum()) == round(0.2 * m.numel())


def test_random_init_is_seeded_by_the_generator():
    model = _tiny_conv()
    a = prune_at_init(model, "random_init", [0.3], generator=torch.Generator().manual_seed(5))
    b = prune_at_init(model, "random_init", [0.3], generator=torch.Generator().manual_seed(5))
    c = prune_at_init(model, "random_init", [0.3], generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(a[0.3][n], b[0.3][n]) for n in a[0.3])
    assert not all(torch.equal(a[0.3][n], c[0.3][n]) for n in a[0.3])


@pytest.mark.parametrize("method", ["magnitude_init", "random_init", "snip", "grasp", "synflow"])
def test_scorers_leave_model_and_global_rng_unchanged(method):
    model = _tiny_conv()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    data = _batch(10, (1, 16, 16), 10, seed=3)
    masks = full_masks(model)
    masks["conv2.weight"][0] = False
    scores = compute_scores(method, model, masks, data, generator=torch.Generator().manual_seed(0))
    assert set(scores) == set(model.prunable_names)
    for n, s in scores.items():
        assert s.shape == masks[n].shape and torch.isfinite(s).all()
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_errors_and_helpers():
    model = _tiny_conv()
    assert set(list_scorers()) >= {"magnitude_init", "random_init", "snip", "grasp", "synflow"}
    assert get_scorer("synflow").default_rounds == 100
    with pytest.raises(ConfigError, match="did you mean 'snip'"):
        prune_at_init(model, "snipp", [0.1])
    with pytest.raises(ConfigError, match="needs labelled data"):
        prune_at_init(model, "grasp", [0.1])
    with pytest.raises(ConfigError, match="density"):
        prune_at_init(model, "magnitude_init", [0.0])
    with pytest.raises(ConfigError, match="rounds"):
        prune_at_init(model, "synflow", [0.1], rounds=0)
    with pytest.raises(ConfigError, match="schedule"):
        prune_at_init(model, "synflow", [0.1], schedule="cosine")
    steps = schedule_densities(0.01, 4)
    assert steps == pytest.approx([0.01**0.25, 0.01**0.5, 0.01**0.75, 0.01])
    assert schedule_densities(0.2, 4, "linear") == pytest.approx([0.8, 0.6, 0.4, 0.2])
    assert compression(0.25) == 4.0 and compression(0.0) == math.inf
    assert density_from_log_compression(2) == pytest.approx(0.01)
    assert layer_collapse(
        {"a": torch.zeros(2, dtype=torch.bool), "b": torch.ones(1, dtype=bool)}
    ) == ["a"]

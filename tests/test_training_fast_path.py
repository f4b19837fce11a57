"""The training loop's fast paths change speed, not results.

- ``FusedAdam`` (the registered Adam) calls torch's fused kernel on cached lists; it must match
  ``torch.optim.Adam(fused=True)`` bit for bit, also across ``state_dict`` round trips and lr changes.
- Gradients are not masked for element-wise optimizers; the kept weights must come out bit-identical
  to masking them, and pruned weights must stay exactly zero.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.training import TrainData, train
from transfer_bench.training import loop as loop_module
from transfer_bench.training.optim import ELEMENTWISE, SGD, FusedAdam


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 20), nn.ReLU(), nn.Linear(20, 4))


def run_steps(model, opt, steps: int, seed: int = 0, lrs=(1e-2, 5e-3)) -> None:
    g = torch.Generator().manual_seed(seed)
    for i in range(steps):
        x = torch.randn(8, 1, 6, 6, generator=g)
        y = torch.randint(0, 4, (8,), generator=g)
        for group in opt.param_groups:
            group["lr"] = lrs[i % len(lrs)]
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def assert_same(a: nn.Module, b: nn.Module) -> None:
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), n


@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_fused_adam_fast_path_is_bit_identical(weight_decay: float) -> None:
    a, b = mlp(), mlp()
    ref = torch.optim.Adam(a.parameters(), betas=(0.8, 0.95), weight_decay=weight_decay, fused=True)
    fast = FusedAdam(b.parameters(), betas=(0.8, 0.95), weight_decay=weight_decay)
    run_steps(a, ref, 25)
    run_steps(b, fast, 25)
    assert fast._cached is not None  # the fast path was taken
    assert_same(a, b)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(ref.state[p][key], fast.state[q][key]), key

    # resume from a state dict into a fresh optimizer: the cache is rebuilt, results still equal
    c = mlp(1)
    c.load_state_dict(b.state_dict())
    resumed = FusedAdam(c.parameters(), betas=(0.8, 0.95), weight_decay=weight_decay)
    resumed.load_state_dict(fast.state_dict())
    run_steps(a, ref, 10, seed=3)
    run_steps(c, resumed, 10, seed=3)
    assert_same(a, c)


def test_state_dicts_match_the_stock_optimizers() -> None:
    """The first Adam step makes its state here; it must be the stock state (keys, dtypes, devices)."""
    a, b = mlp(), mlp()
    ref = torch.optim.Adam(a.parameters(), fused=True)
    fast = FusedAdam(b.parameters())
    run_steps(a, ref, 1)
    run_steps(b, fast, 1)
    sa, sb = ref.state_dict(), fast.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i in sa["state"]:
        assert list(sa["state"][i]) == list(sb["state"][i])
        for key, t in sa["state"][i].items():
            u = sb["state"][i][key]
            assert (t.dtype, t.device, t.shape) == (u.dtype, u.device, u.shape), key
            assert torch.equal(t, u), key


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_is_bit_identical_to_torch_sgd(nesterov: bool) -> None:
    a, b = mlp(), mlp()
    kw = dict(lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=5e-4)
    ref, ours = torch.optim.SGD(a.parameters(), **kw), SGD(b.parameters(), **kw)
    run_steps(a, ref, 12)
    run_steps(b, ours, 12)
    assert_same(a, b)
    sa, sb = ref.state_dict(), ours.state_dict()
    for i in sa["state"]:
        assert torch.equal(sa["state"][i]["momentum_buffer"], sb["state"][i]["momentum_buffer"])


def test_training_does_not_import_dynamo() -> None:
    """Building and stepping the registered optimizers must not import torch._dynamo (1.5-2.3 s of
    every worker process's first training, for a guard that only torch.compile needs)."""
    code = (
        "import sys, torch\n"
        "from transfer_bench.config import OptimizerSpec\n"
        "from transfer_bench.training.optim import build_optimizer\n"
        "for spec in (OptimizerSpec(name='adam', lr=1e-3), "
        "OptimizerSpec(name='sgd', lr=0.1, momentum=0.9)):\n"
        "    m = torch.nn.Linear(4, 2)\n"
        "    opt = build_optimizer(m.parameters(), spec)\n"
        "    for _ in range(2):\n"
        "        m(torch.randn(3, 4)).sum().backward()\n"
        "        opt.step()\n"
        "    again = build_optimizer(m.parameters(), spec)\n"
        "    again.load_state_dict(opt.state_dict())\n"
        "from transfer_bench.config import TrainSpec\n"
        "from transfer_bench.training import TrainData, train\n"
        "x, y = torch.randn(64, 1, 6, 6), torch.randint(0, 4, (64,))\n"
        "m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 4))\n"
        "train(m, TrainData(x, y, x, y), TrainSpec(batch_size=16, epochs=3), "
        "OptimizerSpec(name='adam', lr=1e-3), None, order_seed=0, "
        "on_epoch=lambda state: None, checkpoint_every=30.0)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fused_adam_falls_back_when_a_gradient_is_missing() -> None:
    model = mlp()
    opt = FusedAdam(model.parameters())
    run_steps(model, opt, 2)
    before = [p.detach().clone() for p in model.parameters()]
    model[1].weight.grad = None  # e.g. a frozen layer this step
    model[3].weight.grad = torch.ones_like(model[3].weight)
    opt.step()
    after = list(model.parameters())
    assert torch.equal(before[0], after[0]) and not torch.equal(before[2], after[2])


@pytest.mark.parametrize(
    "optimizer",
    [
        OptimizerSpec(name="adam", lr=1e-2, weight_decay=1e-3),
        OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4),
    ],
)
def test_unmasked_gradients_leave_kept_weights_bit_identical(
    optimizer: OptimizerSpec, monkeypatch
) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 1, 6, 6, generator=g), torch.randint(0, 4, (96,), generator=g)
    data = TrainData(x, y, x[:32], y[:32])
    spec = TrainSpec(batch_size=16, epochs=3)
    base = mlp()
    masks = {
        "1.weight": torch.rand(20, 36, generator=g) < 0.3,
        "3.weight": torch.rand(4, 20, generator=g) < 0.5,
    }

    def trained(mask_grads: bool) -> nn.Module:
        model = mlp()
        model.load_state_dict(base.state_dict())
        if mask_grads:  # as for a non-element-wise optimizer
            monkeypatch.setattr(loop_module, "ELEMENTWISE", set())
        else:
            monkeypatch.setattr(loop_module, "ELEMENTWISE", ELEMENTWISE)
        train(model, data, spec, optimizer, masks, order_seed=1)
        return model

    assert optimizer.name in ELEMENTWISE
    unmasked, masked = trained(False), trained(True)
    assert_same(unmasked, masked)
    for name, m in masks.items():
        w = dict(unmasked.named_parameters())[name]
        assert not w[~m].any()  # pruned weights exactly zero
        assert w[m].abs().sum() > 0

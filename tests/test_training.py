"""Training loop: masks enforced, schedules, determinism, resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.training import TrainData, lr_factor, train


class Tiny(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.l1 = nn.Linear(16, 32)
        self.head = nn.Linear(32, 3)
        self.prunable_names = ("l1.weight", "head.weight")
        self.head_names = ("head.weight", "head.bias")

    def forward(self, x):
        return self.head(torch.relu(self.l1(x.flatten(1))))


def data(n=240, seed=0) -> TrainData:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    protos = torch.randn(3, 16, generator=g)
    x = protos[y] + 0.5 * torch.randn(n, 16, generator=g)
    return TrainData(x[:200].view(200, 1, 4, 4), y[:200], x[200:].view(-1, 1, 4, 4), y[200:])


def masks_for(model, seed=1, dens=0.3):
    g = torch.Generator().manual_seed(seed)
    return {
        n: torch.rand(p.shape, generator=g) < dens
        for n, p in model.named_parameters()
        if n in model.prunable_names
    }


OPTS = {
    "sgd_momentum_wd": OptimizerSpec(
        name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-3, nesterov=True
    ),
    "adam_wd": OptimizerSpec(name="adam", lr=1e-2, weight_decay=1e-3),
}


@pytest.mark.parametrize("opt", list(OPTS))
def test_pruned_weights_stay_exactly_zero(opt):
    model = Tiny()
    masks = masks_for(model)
    spec = TrainSpec(batch_size=8, epochs=12)  # 25 steps/epoch -> 300 steps
    out = train(model, data(), spec, OPTS[opt], masks, order_seed=0)
    assert out.iterations == 300
    params = dict(model.named_parameters())
    for n, m in masks.items():
        assert torch.count_nonzero(params[n][~m]) == 0
        assert torch.count_nonzero(params[n][m]) > 0
    assert out.test_accuracy > 0.6  # it learned


def test_deterministic_given_seeds():
    spec = TrainSpec(batch_size=20, epochs=3)
    a, b = Tiny(), Tiny()
    ra = train(a, data(), spec, OPTS["adam_wd"], masks_for(a), order_seed=5)
    rb = train(b, data(), spec, OPTS["adam_wd"], masks_for(b), order_seed=5)
    assert ra.history == rb.history
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_resume_from_checkpoint_equals_uninterrupted():
    spec = TrainSpec(batch_size=20, epochs=4)
    ref = Tiny()
    r_ref = train(ref, data(), spec, OPTS["sgd_momentum_wd"], masks_for(ref), order_seed=2)

    ckpts = []

    class Stop(Exception):
        pass

    def on_epoch(state):
        ckpts.append({k: (v if not isinstance(v, dict) else v) for k, v in state.items()})
        import copy

        ckpts[-1] = copy.deepcopy(state)
        if state["iteration"] >= 20:
            raise Stop

    m1 = Tiny()
    with pytest.raises(Stop):
        train(
            m1,
            data(),
            spec,
            OPTS["sgd_momentum_wd"],
            masks_for(m1),
            order_seed=2,
            on_epoch=on_epoch,
        )
    m2 = Tiny(seed=99)  # weights come from the checkpoint
    r2 = train(
        m2, data(), spec, OPTS["sgd_momentum_wd"], masks_for(m2), order_seed=2, resume=ckpts[-1]
    )
    assert r2.history == r_ref.history
    assert all(
        torch.equal(x, y)
        for x, y in zip(ref.state_dict().values(), m2.state_dict().values(), strict=True)
    )


def test_snapshot_at_rewind_point():
    spec = TrainSpec(batch_size=20, epochs=2)
    snaps = []
    m = Tiny()
    train(
        m,
        data(),
        spec,
        OPTS["adam_wd"],
        None,
        order_seed=0,
        snapshot_at=7,
        on_snapshot=snaps.append,
    )
    assert len(snaps) == 1
    # rerunning only 7 steps reproduces the snapshot
    m2 = Tiny()
    spec7 = TrainSpec(batch_size=20, epochs=1)
    snaps2 = []
    train(
        m2,
        data(),
        spec7,
        OPTS["adam_wd"],
        None,
        order_seed=0,
        snapshot_at=7,
        on_snapshot=snaps2.append,
    )
    assert all(torch.equal(snaps[0][k], snaps2[0][k]) for k in snaps[0])


def test_lr_schedules():
    warm = TrainSpec(warmup_steps=10, epochs=2)
    assert lr_factor(warm, 0, 100) == pytest.approx(0.1)
    assert lr_factor(warm, 9, 100) == 1.0
    step = TrainSpec(schedule="step", milestones=(1, 2), gamma=0.1, epochs=3)
    assert lr_factor(step, 50, 100) == 1.0
    assert lr_factor(step, 150, 100) == pytest.approx(0.1)
    assert lr_factor(step, 250, 100) == pytest.approx(0.01)
    cos = TrainSpec(schedule="cosine", epochs=2)
    assert lr_factor(cos, 0, 100) == 1.0 and lr_factor(cos, 100, 100) == pytest.approx(0.5)


def test_divergence_is_recorded_not_raised():
    spec = TrainSpec(batch_size=20, epochs=3)
    m = Tiny()
    with torch.no_grad():
        m.l1.weight.fill_(float("nan"))
    out = train(m, data(), spec, OPTS["sgd_momentum_wd"], None, order_seed=0)
    assert out.diverged_at is not None


def test_iterations_override_epochs_and_stop_mid_epoch():
    spec = TrainSpec(batch_size=20, epochs=50, iterations=23)  # 10 steps per epoch
    m = Tiny()
    out = train(m, data(), spec, OPTS["adam_wd"], None, order_seed=0)
    assert out.iterations == 23
    assert [h["iteration"] for h in out.history] == [10, 20, 23]


def test_per_type_rates():
    from transfer_bench.pruning import magnitude_prune

    g = torch.Generator().manual_seed(0)
    w = {
        "conv.weight": torch.randn(8, 4, 3, 3, generator=g),
        "fc.weight": torch.randn(10, 50, generator=g),
        "head.weight": torch.randn(3, 10, generator=g),
    }
    masks = {k: torch.ones_like(v, dtype=torch.bool) for k, v in w.items()}
    from transfer_bench.config import SearchSpec

    spec = SearchSpec(sources=("a",), conv_rate=0.15, linear_rate=0.2, head_rate=0.1)
    rates = spec.layer_rates({k: tuple(v.shape) for k, v in w.items() if k != "head.weight"})
    assert rates == {"conv.weight": 0.15, "fc.weight": 0.2}
    out = magnitude_prune(
        w, masks, level=2, rate=0.5, head_rate=0.1, head_names=("head.weight",), rates=rates
    )
    assert int(out["conv.weight"].sum()) == round(288 * 0.85**2)
    assert int(out["fc.weight"].sum()) == round(500 * 0.8**2)
    assert int(out["head.weight"].sum()) == round(30 * 0.9**2)


def test_bf16_autocast_on_cpu_trains_and_keeps_masks():
    spec = TrainSpec(batch_size=20, epochs=3, precision="bf16")
    m = Tiny()
    masks = masks_for(m)
    out = train(m, data(), spec, OPTS["adam_wd"], masks, order_seed=0)
    params = dict(m.named_parameters())
    assert all(torch.count_nonzero(params[n][~mk]) == 0 for n, mk in masks.items())
    assert params["l1.weight"].dtype == torch.float32 and out.test_accuracy > 0.5


def test_augmentation_is_deterministic_and_trains():
    spec = TrainSpec(batch_size=20, epochs=2, augment="crop_flip", padding=1)
    a, b = Tiny(), Tiny()
    ra = train(a, data(), spec, OPTS["adam_wd"], None, order_seed=3)
    rb = train(b, data(), spec, OPTS["adam_wd"], None, order_seed=3)
    plain = train(
        Tiny(), data(), TrainSpec(batch_size=20, epochs=2), OPTS["adam_wd"], None, order_seed=3
    )
    assert ra.history == rb.history and ra.history != plain.history


def test_throttled_checkpoints_flush_the_latest_state_on_interrupt():
    """With checkpoint_every large, on_epoch is not called during training, but Ctrl-C hands it the
    latest epoch-end state, and resuming from that equals the uninterrupted training."""
    spec = TrainSpec(batch_size=20, epochs=4)
    ref = Tiny()
    r_ref = train(ref, data(), spec, OPTS["sgd_momentum_wd"], masks_for(ref), order_seed=2)
    saved = []

    def on_progress(epoch, acc):
        if epoch == 3:
            raise KeyboardInterrupt

    m1 = Tiny()
    with pytest.raises(KeyboardInterrupt):
        train(
            m1,
            data(),
            spec,
            OPTS["sgd_momentum_wd"],
            masks_for(m1),
            order_seed=2,
            on_epoch=saved.append,
            on_progress=on_progress,
            checkpoint_every=3600,
        )
    assert len(saved) == 1  # the end of epoch 2 (on_progress of epoch 3 stopped it)
    assert saved[0]["iteration"] == 2 * data().steps_per_epoch(20)
    m2 = Tiny(seed=99)
    r2 = train(
        m2, data(), spec, OPTS["sgd_momentum_wd"], masks_for(m2), order_seed=2, resume=saved[0]
    )
    assert r2.history == r_ref.history
    assert all(
        torch.equal(a, b)
        for a, b in zip(m2.state_dict().values(), ref.state_dict().values(), strict=True)
    )


def test_checkpoint_seconds_env(monkeypatch):
    from transfer_bench.errors import TransferBenchError
    from transfer_bench.runs.context import CHECKPOINT_ENV, checkpoint_seconds_from_env

    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    assert checkpoint_seconds_from_env() == 30.0
    monkeypatch.setenv(CHECKPOINT_ENV, "0")
    assert checkpoint_seconds_from_env() == 0.0
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(CHECKPOINT_ENV, bad)
        with pytest.raises(TransferBenchError, match=CHECKPOINT_ENV):
            checkpoint_seconds_from_env()

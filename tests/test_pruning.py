"""IMP magnitude pruning: exact densities, determinism, monotone masks."""

from __future__ import annotations

import pytest
import torch

from transfer_bench.pruning import density, magnitude_prune, random_masks_like


def weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "l1.weight": torch.randn(300, 784, generator=g),
        "l2.weight": torch.randn(100, 300, generator=g),
        "head.weight": torch.randn(10, 100, generator=g),
    }


HEAD = ("head.weight",)


def run_levels(scope: str, levels: int, rate=0.2, head_rate=0.1, retrain=True):
    w = weights()
    masks = {k: torch.ones_like(v, dtype=torch.bool) for k, v in w.items()}
    out = []
    for level in range(1, levels + 1):
        if retrain:  # new "trained" weights each level, as IMP would see
            w = {k: v * masks[k] for k, v in weights(level).items()}
        masks = magnitude_prune(
            w, masks, level=level, rate=rate, head_rate=head_rate, head_names=HEAD, scope=scope
        )
        out.append(masks)
    return out


@pytest.mark.parametrize("levels", [1, 3, 7])
def test_layerwise_density_is_exact_per_layer(levels):
    masks = run_levels("layerwise", levels)[-1]
    for name, m in masks.items():
        p = 0.1 if name in HEAD else 0.2
        assert int(m.sum()) == round(m.numel() * (1 - p) ** levels)


@pytest.mark.parametrize("levels", [1, 4, 9])
def test_global_density_is_exact_overall(levels):
    masks = run_levels("global", levels)[-1]
    body = [k for k in masks if k not in HEAD]
    total = sum(masks[k].numel() for k in body)
    assert sum(int(masks[k].sum()) for k in body) == round(total * 0.8**levels)
    assert abs(density(masks, body) - 0.8**levels) <= 0.5 / total
    # global scope lets layers differ
    assert len({round(density(masks, [k]), 4) for k in body}) > 1


def test_masks_only_shrink():
    seq = run_levels("layerwise", 5)
    for a, b in zip(seq, seq[1:], strict=False):
        for k in a:
            assert not (b[k] & ~a[k]).any()


def test_keeps_largest_magnitudes_and_is_deterministic():
    w = {"a": torch.tensor([[0.5, -3.0, 1.0, 0.0, 2.0]])}
    m = {"a": torch.ones(1, 5, dtype=torch.bool)}
    out = magnitude_prune(w, m, level=1, rate=0.4, head_rate=0.0, head_names=(), scope="layerwise")
    assert out["a"].tolist() == [[False, True, True, False, True]]
    # ties broken by index, same result every time
    w2 = {"a": torch.ones(1, 5)}
    r1 = magnitude_prune(w2, m, level=1, rate=0.4, head_rate=0.0, head_names=(), scope="global")
    r2 = magnitude_prune(w2, m, level=1, rate=0.4, head_rate=0.0, head_names=(), scope="global")
    assert torch.equal(r1["a"], r2["a"]) and r1["a"].tolist() == [[True, True, True, False, False]]


def test_head_rate_zero_keeps_head_dense():
    masks = run_levels("layerwise", 3, head_rate=0.0)[-1]
    assert bool(masks["head.weight"].all())


def test_layerwise_shuffle_keeps_counts():
    masks = run_levels("global", 4)[-1]
    shuffled = random_masks_like(masks, torch.Generator().manual_seed(3))
    for k in masks:
        assert int(shuffled[k].sum()) == int(masks[k].sum())
        assert not torch.equal(shuffled[k], masks[k])


def test_random_global_keeps_overall_count_only():
    from transfer_bench.pruning import random_global

    masks = run_levels("layerwise", 6)[-1]
    g = torch.Generator().manual_seed(0)
    out = random_global(masks, g)
    assert sum(int(m.sum()) for m in out.values()) == sum(int(m.sum()) for m in masks.values())
    # per-layer densities become roughly uniform: the head (pruned at 10%) loses its higher density
    assert abs(density(out, ["head.weight"]) - density(out)) < 0.05
    assert density(masks, ["head.weight"]) - density(masks) > 0.2
    again = random_global(masks, torch.Generator().manual_seed(0))
    assert all(torch.equal(out[k], again[k]) for k in out)

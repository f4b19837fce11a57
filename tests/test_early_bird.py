"""Early-Bird tickets: mask distances, the FIFO detector, BN channel masks, L1 on gamma."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from transfer_bench.errors import ConfigError, ModelError, TicketError
from transfer_bench.pruning.early_bird import (
    EarlyBirdDetector,
    bn_channel_mask,
    hamming_distance,
    jaccard,
    l1_bn_penalty,
    magnitude_mask,
)

T, F = True, False


def t(*bits: bool) -> torch.Tensor:
    return torch.tensor(bits, dtype=torch.bool)


def test_hamming_and_jaccard_tensor_form():
    a = t(T, T, F, F)
    b = t(T, F, T, F)
    assert hamming_distance(a, b) == pytest.approx(0.5)
    assert jaccard(a, b) == pytest.approx(1 / 3)  # |{0}| / |{0,1,2}|
    assert hamming_distance(a, a) == 0.0
    assert jaccard(a, a) == 1.0
    assert hamming_distance(a, ~a) == 1.0
    assert jaccard(a, ~a) == 0.0
    none = t(F, F, F, F)
    assert jaccard(none, none) == 1.0
    assert hamming_distance(a.view(2, 2), b.view(2, 2)) == pytest.approx(0.5)


def test_hamming_and_jaccard_dict_form_pools_layers():
    a = {"l1.weight": t(T, T, T, T, F, F), "l2.weight": t(T, F).view(1, 2)}
    b = {"l2.weight": t(T, T).view(1, 2), "l1.weight": t(T, T, F, F, F, F)}
    # differing bits: l1 positions 2,3 and l2 position 1 -> 3 of 8
    assert hamming_distance(a, b) == pytest.approx(3 / 8)
    # kept: a = 4 + 1 = 5, b = 2 + 2 = 4, intersection = 2 + 1 = 3, union = 6
    assert jaccard(a, b) == pytest.approx(3 / 6)
    assert hamming_distance(a, b) == hamming_distance(b, a)


def test_mismatched_masks_raise_one_line_error():
    with pytest.raises(TicketError, match="layer names differ"):
        hamming_distance({"a": t(T)}, {"b": t(T)})
    with pytest.raises(TicketError, match="shapes"):
        jaccard(t(T, F), t(T, F, T))
    with pytest.raises(TicketError):
        hamming_distance(t(T), {"a": t(T)})


def seq_mask(flips: int, n: int = 100) -> torch.Tensor:
    """A mask of length n differing from the all-True mask in its first ``flips`` bits."""
    m = torch.ones(n, dtype=torch.bool)
    m[:flips] = False
    return m


def test_detector_fires_at_expected_epoch_not_before_window_full():
    det = EarlyBirdDetector(window=5, threshold=0.1)
    # epochs 1-3 wildly different, then stable masks from epoch 4 on (distance <= 0.1 among them)
    masks = [seq_mask(60), seq_mask(40), seq_mask(25), seq_mask(10), seq_mask(5)]
    masks += [seq_mask(0), seq_mask(2), seq_mask(3), seq_mask(4)]
    fired = [det.update(m) for m in masks]
    # FIFO of epochs 4..8 = flips 10,5,0,2,3: newest (3) vs others -> 0.07, 0.02, 0.03, 0.01
    assert fired == [F, F, F, F, F, F, F, T, T]
    assert det.detected_epoch == 8
    assert det.distances[:4] == [(), (), (), ()]
    assert det.distances[4] == pytest.approx((0.55, 0.35, 0.2, 0.05))
    assert det.distances[7] == pytest.approx((0.07, 0.02, 0.03, 0.01))
    assert det.max_distances[:4] == [None] * 4
    assert det.epochs == list(range(1, 10))


def test_detector_needs_a_full_window_even_for_identical_masks():
    det = EarlyBirdDetector(window=5, threshold=0.1)
    fired = [det.update(seq_mask(0), epoch=e) for e in range(10, 16)]
    assert fired == [F, F, F, F, T, T]
    assert det.detected_epoch == 14


def test_detector_threshold_is_inclusive_and_exceeding_blocks():
    det = EarlyBirdDetector(window=3, threshold=0.1)
    # distance exactly 0.1 (10 of 100 bits) is allowed: You et al. reject only dist > threshold
    assert [det.update(m) for m in (seq_mask(10), seq_mask(0), seq_mask(0))] == [F, F, T]
    det = EarlyBirdDetector(window=3, threshold=0.1)
    # newest vs oldest = 0.11 > 0.1 -> no detection although the other distance is 0
    assert [det.update(m) for m in (seq_mask(11), seq_mask(0), seq_mask(0))] == [F, F, F]
    assert det.detected_epoch is None
    assert det.distances[-1] == pytest.approx((0.11, 0.0))


def test_detector_accepts_dict_masks_and_copies_them():
    det = EarlyBirdDetector(window=2, threshold=0.0)
    m = {"bn.weight": t(T, F, T)}
    assert det.update(m) is False
    m["bn.weight"][1] = True  # mutating the caller's mask must not affect the stored one
    assert det.update(m) is False
    assert det.distances[-1] == pytest.approx((1 / 3,))
    with pytest.raises(ConfigError):
        EarlyBirdDetector(window=1)


class BNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 3, 3)
        self.bn2 = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 2)
        self.prunable_names = ("conv1.weight", "conv2.weight", "fc.weight")
        self.head_names = ("fc.weight", "fc.bias")

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


def test_bn_channel_mask_keeps_top_gammas_globally():
    model = BNNet()
    with torch.no_grad():
        model.bn1.weight.copy_(torch.tensor([0.5, -0.9, 0.05, 0.3]))
        model.bn2.weight.copy_(torch.tensor([-0.1, 0.7, 0.2]))
    # |gamma| over 7 channels: 0.9 0.7 0.5 0.3 0.2 0.1 0.05; prune 3/7 -> keep round(7*4/7) = 4
    m = bn_channel_mask(model, 3 / 7)
    assert list(m) == ["bn1.weight", "bn2.weight"]
    assert m["bn1.weight"].tolist() == [T, T, F, T]
    assert m["bn2.weight"].tolist() == [F, T, F]
    assert m["bn1.weight"].dtype == torch.bool
    # prune 50% of 7 -> keep round(3.5) = 4 (banker's rounding); 0% keeps all
    assert sum(int(v.sum()) for v in bn_channel_mask(model, 0.5).values()) == 4
    assert sum(int(v.sum()) for v in bn_channel_mask(model, 0.0).values()) == 7
    assert sum(int(v.sum()) for v in bn_channel_mask(model, 0.7).values()) == 2


def test_bn_channel_mask_errors():
    mlp = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ModelError, match="no affine BatchNorm2d"):
        bn_channel_mask(mlp, 0.5)
    with pytest.raises(ConfigError, match="prune_fraction"):
        bn_channel_mask(BNNet(), 1.0)


def test_magnitude_mask_global_and_layerwise():
    model = BNNet()
    with torch.no_grad():
        model.fc.weight.copy_(torch.tensor([[10.0, -20.0, 30.0], [-40.0, 50.0, 60.0]]))
    m = magnitude_mask(model, 0.5, ["fc.weight"])
    assert m["fc.weight"].tolist() == [[F, F, F], [T, T, T]]
    g = magnitude_mask(model, 0.5)  # default: model.prunable_names, global
    assert set(g) == set(model.prunable_names)
    total = sum(p.numel() for n, p in model.named_parameters() if n in model.prunable_names)
    assert sum(int(v.sum()) for v in g.values()) == round(total * 0.5)
    assert g["fc.weight"].all()  # the large fc weights win the global ranking
    lw = magnitude_mask(model, 0.5, scope="layerwise")
    assert int(lw["conv1.weight"].sum()) == round(36 * 0.5)
    with pytest.raises(ModelError):
        magnitude_mask(model, 0.5, ["nope.weight"])


def test_l1_bn_penalty_adds_sign_subgradient():
    model = BNNet()
    with torch.no_grad():
        model.bn1.weight.copy_(torch.tensor([0.5, -0.9, 0.0, 0.3]))
    x = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    model(x).sum().backward()
    before = model.bn1.weight.grad.clone()
    fc_before = model.fc.weight.grad.clone()
    l1_bn_penalty(model, 1e-2)
    assert torch.allclose(model.bn1.weight.grad - before, torch.tensor([1e-2, -1e-2, 0.0, 1e-2]))
    assert torch.equal(model.fc.weight.grad, fc_before)
    fresh = BNNet()
    l1_bn_penalty(fresh, 1e-4)  # no backward yet: the penalty becomes the gradient
    assert torch.allclose(fresh.bn2.weight.grad, torch.full((3,), 1e-4))

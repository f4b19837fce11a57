"""Batch crop/flip augmentation: shapes, determinism, identity, exact flips, padded-pixel origin."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transfer_bench.errors import ConfigError
from transfer_bench.training.augment import (
    AUGMENTATIONS,
    apply_crop_flip,
    get_augmentation,
    random_crop_flip,
    sample_crop_flip,
)


def _batch(n: int = 16, c: int = 3, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", ["none", "crop_flip", "crop"])
def test_registry_preserves_shape_dtype_device(name: str) -> None:
    x = _batch()
    out = AUGMENTATIONS[name](x, generator=_gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    as_uint8 = (x.abs() * 40).clamp(0, 255).to(torch.uint8)
    assert get_augmentation(name)(as_uint8, generator=_gen(0)).dtype == torch.uint8


def test_deterministic_per_generator_and_generator_advances() -> None:
    x = _batch()
    a = random_crop_flip(x, generator=_gen(1))
    b = random_crop_flip(x, generator=_gen(1))
    c = random_crop_flip(x, generator=_gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = _gen(1)
    first, second = random_crop_flip(x, generator=g), random_crop_flip(x, generator=g)
    assert torch.equal(first, a) and not torch.equal(first, second)
    before = torch.random.get_rng_state()
    random_crop_flip(x, generator=_gen(3))
    assert torch.equal(torch.random.get_rng_state(), before)  # global RNG untouched


def test_padding_zero_without_flip_is_identity() -> None:
    x = _batch()
    assert torch.equal(random_crop_flip(x, padding=0, flip=False, generator=_gen(0)), x)
    assert torch.equal(AUGMENTATIONS["crop"](x, padding=0, generator=_gen(0)), x)
    assert AUGMENTATIONS["none"](x, generator=_gen(0)) is x


def test_flip_mirrors_exactly_the_selected_samples() -> None:
    x = _batch(n=64)
    out = random_crop_flip(x, padding=0, flip=True, generator=_gen(5))
    _, _, flipped = sample_crop_flip(64, padding=0, flip=True, generator=_gen(5))
    assert 0 < int(flipped.sum()) < 64
    expected = torch.where(flipped.view(-1, 1, 1, 1), x.flip(-1), x)
    assert torch.equal(out, expected)
    # "crop" never flips: with padding 0 it is the identity on every sample
    assert not sample_crop_flip(64, padding=4, flip=False, generator=_gen(5))[2].any()


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_values_come_from_the_padded_image(mode: str) -> None:
    x, p = _batch(n=32, h=9, w=7), 3
    top, left, flipped = sample_crop_flip(32, padding=p, flip=True, generator=_gen(7))
    assert int(top.min()) >= 0 and int(top.max()) <= 2 * p and top.unique().numel() > 1
    out = apply_crop_flip(x, top, left, flipped, padding=p, padding_mode=mode)
    padded = F.pad(x, (p, p, p, p), mode=mode)
    for i in range(32):
        window = padded[i, :, top[i] : top[i] + 9, left[i] : left[i] + 7]
        assert torch.equal(out[i], window.flip(-1) if flipped[i] else window)
    # random_crop_flip draws the same parameters from the same generator state
    assert torch.equal(random_crop_flip(x, padding=p, generator=_gen(7), padding_mode=mode), out)


def test_per_channel_fill_and_errors() -> None:
    x = torch.zeros(4, 2, 5, 5)
    top, left = torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long)
    out = apply_crop_flip(x, top, left, torch.zeros(4, dtype=torch.bool), padding=2, fill=[1, -1])
    assert (
        out[:, 0, :2].eq(1).all() and out[:, 1, :2].eq(-1).all() and out[:, :, 2:, 2:].eq(0).all()
    )
    with pytest.raises(ConfigError, match="did you mean 'crop_flip'"):
        get_augmentation("crop-flip")
    with pytest.raises(ConfigError, match=r"\[N, C, H, W\]"):
        random_crop_flip(torch.zeros(3, 5, 5), generator=_gen(0))
    with pytest.raises(ConfigError, match="non-negative"):
        random_crop_flip(x, padding=-1, generator=_gen(0))
    with pytest.raises(ConfigError, match="reflect padding 5"):
        random_crop_flip(x, padding=5, padding_mode="reflect", generator=_gen(0))
    with pytest.raises(ConfigError, match="fill has 3 values for 2 channels"):
        random_crop_flip(x, fill=(0, 0, 0), generator=_gen(0))
    with pytest.raises(ConfigError, match="torch.Generator"):
        random_crop_flip(x, generator=0)  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_same_result_on_gpu() -> None:
    x = _batch(n=256, h=32, w=32)
    cpu = random_crop_flip(x, generator=_gen(9))
    gpu = random_crop_flip(x.cuda(), generator=_gen(9))
    assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu)

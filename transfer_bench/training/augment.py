"""Batch augmentation on the training device: random crop with padding and horizontal flip.

Morcos et al. (2019) and the LTH papers train CIFAR-style nets with "pad 4, random 32x32 crop,
random horizontal flip". Doing this per sample in a DataLoader would dominate the step time of the
in-memory training loop, so it is done here for a whole ``[N, C, H, W]`` batch with two ``gather``
calls on whatever device the batch lives on. The random offsets and flip bits are drawn on the CPU
from an explicit ``torch.Generator`` (then copied to the device), so the result is a pure function
of the batch and the generator state, on any device.

A flip is folded into the column index of the crop (reversed columns), so crop + flip costs the
same as a crop. ``AUGMENTATIONS`` maps the names a suite may use to ``fn(x, *, generator)``:
``"none"``, ``"crop_flip"`` (natural images) and ``"crop"`` (digits, which must not be mirrored).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F

from transfer_bench.errors import ConfigError

#: ``fn(x, *, generator) -> x'``: same shape, dtype and device as ``x``.
Augmentation = Callable[..., torch.Tensor]

PaddingMode = Literal["constant", "reflect"]

AUGMENTATIONS: dict[str, Augmentation] = {}


def register_augmentation(name: str) -> Callable[[Augmentation], Augmentation]:
    """Decorator registering ``fn(x, *, generator)`` under ``name`` in ``AUGMENTATIONS``."""

    def deco(fn: Augmentation) -> Augmentation:
        if name in AUGMENTATIONS:
            raise ValueError(f"augmentation {name!r} is registered twice")
        AUGMENTATIONS[name] = fn
        return fn

    return deco


def get_augmentation(name: str) -> Augmentation:
    """The registered augmentation ``name``; ConfigError naming the valid ones otherwise."""
    if name in AUGMENTATIONS:
        return AUGMENTATIONS[name]
    close = difflib.get_close_matches(str(name), list(AUGMENTATIONS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"augmentation {name!r} is unknown; {hint}valid: {', '.join(sorted(AUGMENTATIONS))}"
    )


def _check_batch(x: torch.Tensor, padding: int, padding_mode: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"augmentation needs an [N, C, H, W] batch, got {shape}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ConfigError(f"augmentation padding must be a non-negative integer, got {padding!r}")
    if padding_mode not in ("constant", "reflect"):
        raise ConfigError(
            f"augmentation padding_mode must be 'constant' or 'reflect', got {padding_mode!r}"
        )
    if padding_mode == "reflect" and padding >= min(x.shape[-2:]):
        raise ConfigError(
            f"reflect padding {padding} needs images larger than {padding} pixels, got "
            f"{tuple(x.shape[-2:])}; use padding_mode='constant' or a smaller padding"
        )


def sample_crop_flip(
    n: int, *, padding: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample ``(top, left, flipped)`` on the CPU: offsets in ``0..2*padding``, flips with p=0.5.

    Draw order (fixed, part of the reproducibility contract): top offsets, left offsets, then flip
    bits (only when ``flip``; otherwise all False and nothing is drawn).
    """
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    if flip:
        flipped = torch.rand(n, generator=generator) < 0.5
    else:
        flipped = torch.zeros(n, dtype=torch.bool)
    return top, left, flipped


def _pad(
    x: torch.Tensor, padding: int, padding_mode: PaddingMode, fill: float | Sequence[float]
) -> torch.Tensor:
    if padding == 0:
        return x
    if padding_mode == "reflect":
        return F.pad(x, (padding,) * 4, mode="reflect")
    n, c, h, w = x.shape
    out = x.new_empty((n, c, h + 2 * padding, w + 2 * padding))
    if isinstance(fill, (int, float)):
        out.fill_(fill)
    else:
        values = torch.as_tensor(list(fill), dtype=x.dtype, device=x.device)
        if values.numel() != c:
            raise ConfigError(f"augmentation fill has {values.numel()} values for {c} channels")
        out.copy_(values.view(1, c, 1, 1).expand_as(out))
    out[:, :, padding : padding + h, padding : padding + w] = x
    return out


def apply_crop_flip(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flipped: torch.Tensor,
    *,
    padding: int,
    padding_mode: PaddingMode = "constant",
    fill: float | Sequence[float] = 0.0,
) -> torch.Tensor:
    """Crop ``x`` padded by ``padding`` at ``(top, left)`` per sample, mirroring where ``flipped``.

    Output pixel ``[i, :, r, c]`` is ``padded[i, :, top[i] + r, left[i] + c']`` with ``c' = c`` or
    ``W - 1 - c`` when ``flipped[i]``. ``top``/``left``/``flipped`` may live on any device.
    """
    _check_batch(x, padding, padding_mode)
    n, c, h, w = x.shape
    device = x.device
    top, left, flipped = (t.to(device, non_blocking=True) for t in (top, left, flipped))
    padded = _pad(x, padding, padding_mode, fill)
    rows = top.view(n, 1) + torch.arange(h, device=device).view(1, h)  # [N, H]
    cols_fwd = torch.arange(w, device=device)
    cols = left.view(n, 1) + torch.where(flipped.view(n, 1), cols_fwd.flip(0), cols_fwd)  # [N, W]
    wp = padded.shape[-1]
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, wp))
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))


def random_crop_flip(
    x: torch.Tensor,
    *,
    padding: int = 4,
    flip: bool = True,
    generator: torch.Generator,
    padding_mode: PaddingMode = "constant",
    fill: float | Sequence[float] = 0.0,
) -> torch.Tensor:
    """Random ``H x W`` crop of ``x`` padded by ``padding``, mirrored with probability 0.5 if ``flip``.

    ``x`` is an ``[N, C, H, W]`` batch (float or uint8) on any device; the result has the same shape,
    dtype and device and is deterministic given ``generator`` (a CPU ``torch.Generator``).
    ``padding_mode`` is ``"constant"`` (value ``fill``: a number or one per channel) or
    ``"reflect"``. Note for normalized batches: torchvision pads raw pixels with 0 (black) before
    normalizing; to match, pass ``fill=[-m / s for m, s in zip(mean, std)]``.
    """
    _check_batch(x, padding, padding_mode)
    if not isinstance(generator, torch.Generator):
        raise ConfigError(f"augmentation needs a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ConfigError("augmentation generator must be a CPU torch.Generator")
    top, left, flipped = sample_crop_flip(len(x), padding=padding, flip=flip, generator=generator)
    return apply_crop_flip(
        x, top, left, flipped, padding=padding, padding_mode=padding_mode, fill=fill
    )


@register_augmentation("none")
def no_augmentation(x: torch.Tensor, *, generator: torch.Generator, **_: object) -> torch.Tensor:
    """Identity (draws nothing from ``generator``)."""
    return x


@register_augmentation("crop_flip")
def crop_flip(
    x: torch.Tensor, *, generator: torch.Generator, padding: int = 4, **kwargs: object
) -> torch.Tensor:
    """Pad-4 random crop + horizontal flip (CIFAR / Morcos et al. natural images)."""
    return random_crop_flip(x, padding=padding, flip=True, generator=generator, **kwargs)


@register_augmentation("crop")
def crop(
    x: torch.Tensor, *, generator: torch.Generator, padding: int = 4, **kwargs: object
) -> torch.Tensor:
    """Pad-4 random crop without flips (digits and characters must not be mirrored)."""
    return random_crop_flip(x, padding=padding, flip=False, generator=generator, **kwargs)

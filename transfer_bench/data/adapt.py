"""Pure transforms from raw source arrays to the tensors every model sees.

Label remapping, the seeded stratified train/test split, stratified subsampling, resizing and
channel conversion to the suite's ``InputSpec``, per-channel statistics and normalization. Nothing
here reads files or global state, so the same inputs always give the same tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from transfer_bench.config import InputSpec
from transfer_bench.errors import DatasetError
from transfer_bench.seeding import derive_seed

# ITU-R BT.601 luma, as PIL's convert("L")
LUMA = (0.299, 0.587, 0.114)
_CHUNK = 2048  # images resized at a time (bounds float memory)


def remap_labels(
    y_train: np.ndarray, y_test: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, list[Any]]:
    """Map labels to 0..K-1 in sorted order of the distinct values of both splits."""
    both = y_train if y_test is None else np.concatenate([y_train, y_test])
    classes, inverse = np.unique(both, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    ytr = inverse[: len(y_train)]
    yte = None if y_test is None else inverse[len(y_train) :]
    return ytr, yte, [c.item() if hasattr(c, "item") else c for c in classes]


def sk_seed(*parts: object) -> int:
    """A seed for scikit-learn (< 2**32) derived from ``parts``."""
    return derive_seed(*parts) % (2**32)


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) of a stratified split, ``random_state=seed``; both sorted."""
    from sklearn.model_selection import train_test_split  # lazy: slow import

    idx = np.arange(len(y))
    try:
        tr, te = train_test_split(
            idx, test_size=test_fraction, stratify=y, random_state=seed % 2**32
        )
    except ValueError as e:
        raise DatasetError(
            f"{where}: cannot split {len(y)} images of {len(np.unique(y))} classes stratified with "
            f"test_fraction={test_fraction} ({e}); use more samples or a larger test_fraction"
        ) from None
    return np.sort(tr), np.sort(te)


def stratified_subsample(y: np.ndarray, n: int | None, seed: int, where: str) -> np.ndarray:
    """Sorted indices of a seeded stratified subset of size ``n`` (all indices if n is None or >= len)."""
    from sklearn.model_selection import train_test_split  # lazy: slow import

    idx = np.arange(len(y))
    if n is None or n >= len(y):
        return idx
    k = len(np.unique(y))
    if n < k:
        raise DatasetError(f"{where}: {n} images cannot hold all {k} classes; raise it to >= {k}")
    try:
        keep, _ = train_test_split(idx, train_size=n, stratify=y, random_state=seed)
    except ValueError as e:
        raise DatasetError(
            f"{where}: cannot subsample {n} of {len(y)} images stratified ({e})"
        ) from None
    return np.sort(keep)


def take(images: np.ndarray | list[np.ndarray], idx: np.ndarray) -> np.ndarray | list[np.ndarray]:
    """Select images by index from a stacked array or a list of differently sized images."""
    if isinstance(images, np.ndarray):
        return images[idx]
    return [images[i] for i in idx]


def _adapt_stack(x: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """Uniform uint8 ``[N, H, W]`` / ``[N, H, W, C]`` to uint8 ``[N, channels, size, size]``."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    n, c, h, w = t.shape
    if c not in (1, 3):
        raise DatasetError(f"images have {c} channels; expected 1 or 3")
    out = torch.empty((n, spec.channels, spec.size, spec.size), dtype=torch.uint8)
    luma = torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1)
    for s in range(0, n, _CHUNK):
        f = t[s : s + _CHUNK].to(torch.float32)
        if c == 3 and spec.channels == 1:
            f = (f * luma).sum(dim=1, keepdim=True)
        if (h, w) != (spec.size, spec.size):
            f = F.interpolate(
                f, size=(spec.size, spec.size), mode="bilinear", align_corners=False, antialias=True
            )
        u = f.round_().clamp_(0, 255).to(torch.uint8)
        out[s : s + _CHUNK] = u.expand(-1, spec.channels, -1, -1) if u.shape[1] == 1 else u
    return out


def adapt_images(images: np.ndarray | Sequence[np.ndarray], spec: InputSpec) -> torch.Tensor:
    """Resize (bilinear, antialiased) and convert channels to ``spec``: uint8 ``[N, C, S, S]``.

    Gray becomes RGB by replication, RGB becomes gray by BT.601 luminance. Lists of images with
    different shapes are adapted group by group and reassembled in order.
    """
    if isinstance(images, np.ndarray):
        return _adapt_stack(images, spec)
    out = torch.empty((len(images), spec.channels, spec.size, spec.size), dtype=torch.uint8)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(images):
        groups.setdefault(im.shape, []).append(i)
    for members in groups.values():
        out[members] = _adapt_stack(np.stack([images[i] for i in members]), spec)
    return out


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 ``[N, C, H, W]`` in [0, 1] units.

    A constant channel gets std 1.0 so normalization never divides by zero.
    """
    c = x.shape[1]
    if x.numel() == 0:
        return (0.0,) * c, (1.0,) * c
    flat = x.transpose(0, 1).reshape(c, -1)
    mean, std = [], []
    for ch in range(c):
        v = flat[ch].to(torch.float64) / 255.0
        m = float(v.mean())
        s = float(v.std(correction=0))
        mean.append(m)
        std.append(s if s > 1e-8 else 1.0)
    return tuple(mean), tuple(std)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel, as float32 on ``x``'s device.

    ``x`` is uint8 ``[N, C, H, W]`` or ``[C, H, W]``; why: data is stored as compact uint8 and
    normalized per batch on the training device.
    """
    c = x.shape[-3]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"normalize: {c} channels but {len(mean)} means and {len(std)} stds")
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(c, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(c, 1, 1)
    return (x.to(torch.float32) / 255.0 - m) / s

"""Masks: ``dict[param name, bool tensor]``, True = kept.

density = kept / prunable weights (over all masked tensors); sparsity = 1 - density.
"""

from __future__ import annotations

import torch
from torch import nn

Masks = dict[str, torch.Tensor]


def full_masks(model: nn.Module) -> Masks:
    """All-True masks for every prunable parameter of ``model`` (a dense network)."""
    params = dict(model.named_parameters())
    return {n: torch.ones_like(params[n], dtype=torch.bool) for n in model.prunable_names}


def density(masks: Masks, names: tuple[str, ...] | list[str] | None = None) -> float:
    """Kept fraction over the masks (optionally restricted to ``names``)."""
    keys = list(masks) if names is None else list(names)
    kept = sum(int(masks[k].sum()) for k in keys)
    total = sum(masks[k].numel() for k in keys)
    return kept / total if total else 1.0


def layer_density(masks: Masks) -> dict[str, float]:
    """Per-parameter kept fraction."""
    return {k: float(m.float().mean()) for k, m in masks.items()}


@torch.no_grad()
def apply_masks_(model: nn.Module, masks: Masks) -> None:
    """Zero the pruned weights of ``model`` in place."""
    params = dict(model.named_parameters())
    for name, m in masks.items():
        params[name].mul_(m.to(params[name].device, params[name].dtype))


def random_masks_like(masks: Masks, generator: torch.Generator) -> Masks:
    """Layerwise shuffle: a seeded random permutation of each mask (same kept count per layer)."""
    out: Masks = {}
    for name in sorted(masks):
        m = masks[name].flatten().cpu()
        perm = torch.randperm(m.numel(), generator=generator)
        out[name] = m[perm].reshape(masks[name].shape).to(masks[name].device)
    return {k: out[k] for k in masks}


def shuffle_layerwise(masks: Masks, generator: torch.Generator) -> Masks:
    """Frankle et al. 2021's control: permute each layer's mask (per-layer counts kept exactly)."""
    return random_masks_like(masks, generator)


def random_global(masks: Masks, generator: torch.Generator) -> Masks:
    """Morcos et al. 2019's random ticket: one permutation over all masked entries pooled, so only
    the overall density is kept (per-layer densities become uniform in expectation)."""
    names = sorted(masks)
    flat = torch.cat([masks[n].flatten().cpu() for n in names])
    flat = flat[torch.randperm(flat.numel(), generator=generator)]
    out: Masks = {}
    offset = 0
    for n in names:
        size = masks[n].numel()
        out[n] = flat[offset : offset + size].reshape(masks[n].shape).to(masks[n].device)
        offset += size
    return {k: out[k] for k in masks}

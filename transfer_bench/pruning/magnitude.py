"""Magnitude pruning for IMP (Frankle & Carbin 2019, layerwise; global as in Morcos et al. 2019).

Counts are computed from the ORIGINAL tensor sizes: after L rounds at rate p a layer keeps
round(n * (1-p)^L) weights, so density equals (1-p)^L up to one weight and rounding never drifts
across levels. Selection is an exact top-k with deterministic tie-breaking (stable sort by magnitude,
then by flat index), so the same weights always give the same mask.
"""

from __future__ import annotations

from typing import Literal

import torch

from transfer_bench.pruning.masks import Masks


def target_counts(sizes: dict[str, int], rate: float, level: int) -> dict[str, int]:
    """Weights kept per tensor after ``level`` rounds at ``rate`` (layerwise schedule)."""
    return {k: int(round(n * (1.0 - rate) ** level)) for k, n in sizes.items()}


def _keep_top(scores: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` highest-scoring currently kept entries; ties broken by lower flat index."""
    flat = torch.where(
        mask.flatten(), scores.flatten().double(), torch.tensor(-1.0, dtype=torch.float64)
    )
    order = torch.sort(flat, descending=True, stable=True).indices
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[order[:k]] = True
    return keep.reshape(mask.shape) & mask


def _prune_group(
    scores: dict[str, torch.Tensor],
    old: Masks,
    names: list[str],
    rate: float,
    level: int,
    scope: str,
) -> Masks:
    """Prune ``names`` (all at one ``rate``) to density (1-rate)^level, per tensor or pooled."""
    out: Masks = {}
    if scope == "layerwise":
        for n in names:
            k = target_counts({n: old[n].numel()}, rate, level)[n]
            out[n] = _keep_top(scores[n], old[n], min(k, int(old[n].sum())))
        return out
    total = sum(old[n].numel() for n in names)
    k = int(round(total * (1.0 - rate) ** level))
    flat_mask = torch.cat([old[n].flatten() for n in names])
    keep = _keep_top(
        torch.cat([scores[n].flatten() for n in names]), flat_mask, min(k, int(flat_mask.sum()))
    )
    offset = 0
    for n in names:
        size = old[n].numel()
        out[n] = keep[offset : offset + size].reshape(old[n].shape)
        offset += size
    return out


@torch.no_grad()
def magnitude_prune(
    weights: dict[str, torch.Tensor],
    masks: Masks,
    *,
    level: int,
    rate: float,
    head_rate: float,
    head_names: tuple[str, ...] | list[str],
    scope: Literal["layerwise", "global"] = "layerwise",
    rates: dict[str, float] | None = None,
) -> Masks:
    """Masks for IMP ``level`` (>= 1) from the trained ``weights`` of level ``level - 1``.

    Non-head tensors are pruned to density (1-rate)^level, each on its own (``layerwise``) or
    together by one magnitude ranking (``global``). ``rates`` optionally overrides the rate per
    tensor (Frankle & Carbin's conv/fc rates); with ``global`` scope, tensors sharing a rate are
    ranked together. Head tensors are always pruned layerwise at ``head_rate`` (0 keeps them
    dense), as in Frankle & Carbin's output-layer rate.
    """
    if level < 1:
        raise ValueError("level must be >= 1")
    heads = set(head_names)
    cpu = {n: weights[n].detach().abs().float().cpu() for n in masks}
    old = {n: masks[n].cpu() for n in masks}
    new: Masks = _prune_group(
        cpu, old, [n for n in masks if n in heads], head_rate, level, "layerwise"
    )
    groups: dict[float, list[str]] = {}
    for n in masks:
        if n not in heads:
            groups.setdefault((rates or {}).get(n, rate), []).append(n)
    for r, names in groups.items():
        new.update(_prune_group(cpu, old, names, r, level, scope))
    return {n: new[n].to(masks[n].device) for n in masks}

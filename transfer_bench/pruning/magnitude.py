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
) -> Masks:
    """Masks for IMP ``level`` (>= 1) from the trained ``weights`` of level ``level - 1``.

    Non-head tensors are pruned to density (1-rate)^level, each on its own (``layerwise``) or
    together by one magnitude ranking (``global``). Head tensors in ``masks`` are always pruned
    layerwise at ``head_rate`` (0 keeps them dense), as in Frankle & Carbin's output-layer rate.
    """
    if level < 1:
        raise ValueError("level must be >= 1")
    head = [n for n in masks if n in set(head_names)]
    body = [n for n in masks if n not in set(head_names)]
    cpu = {n: weights[n].detach().abs().float().cpu() for n in masks}
    old = {n: masks[n].cpu() for n in masks}
    new: Masks = {}
    for n in head:
        k = target_counts({n: old[n].numel()}, head_rate, level)[n]
        new[n] = _keep_top(cpu[n], old[n], min(k, int(old[n].sum())))
    if scope == "layerwise":
        for n in body:
            k = target_counts({n: old[n].numel()}, rate, level)[n]
            new[n] = _keep_top(cpu[n], old[n], min(k, int(old[n].sum())))
    else:
        total = sum(old[n].numel() for n in body)
        k = int(round(total * (1.0 - rate) ** level))
        flat_scores = torch.cat([cpu[n].flatten() for n in body])
        flat_mask = torch.cat([old[n].flatten() for n in body])
        keep = _keep_top(flat_scores, flat_mask, min(k, int(flat_mask.sum())))
        offset = 0
        for n in body:
            size = old[n].numel()
            new[n] = keep[offset : offset + size].reshape(old[n].shape)
            offset += size
    return {n: new[n].to(masks[n].device) for n in masks}

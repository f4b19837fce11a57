"""Selection step of pruning: turn per-weight scores into masks by exact top-k.

Scoring (``pruning.scores``) is kept separate from selection (as Synaptic-Flow's ``Pruner.score`` /
``Pruner.mask``), but unlike Synaptic-Flow's ``kthvalue`` threshold, which keeps every tie and may
miss the target count, :func:`select_top` keeps EXACTLY ``round(density * N)`` entries, breaks ties
deterministically and asserts the resulting count. Higher score = more important = kept.
"""

from __future__ import annotations

from typing import Literal

import torch

from transfer_bench.errors import ConfigError
from transfer_bench.pruning.masks import Masks

Scope = Literal["global", "layerwise"]
SCOPES: tuple[str, ...] = ("global", "layerwise")


def check_density(density: float, where: str = "pruning density") -> float:
    """Return ``density`` as a float if it lies in [0, 1], else raise ConfigError."""
    if isinstance(density, bool) or not isinstance(density, (int, float)):
        raise ConfigError(f"{where} must be a number in [0, 1], got {density!r}")
    value = float(density)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"{where} must be in [0, 1] (kept fraction; sparsity = 1 - density), got {value!r}"
        )
    return value


def check_scope(scope: str) -> str:
    """Return ``scope`` if it is ``"global"`` or ``"layerwise"``, else raise ConfigError."""
    if scope not in SCOPES:
        raise ConfigError(f"pruning scope must be 'global' or 'layerwise', got {scope!r}")
    return scope


def _top_of_kept(scores: torch.Tensor, kept: torch.Tensor, k: int, what: str) -> torch.Tensor:
    """Flat bool mask keeping the ``k`` highest ``scores`` among the ``kept`` entries.

    Equals the first ``k`` of a stable descending sort (ties go to the lower flat index), computed
    in linear time: everything above the k-th largest value, then the lowest-index ties.
    Pruned entries never come back.
    """
    idx = torch.nonzero(kept, as_tuple=True)[0]
    n = idx.numel()
    if k > n:
        raise ValueError(
            f"{what}: cannot keep {k} entries, only {n} are still kept (density can only decrease)"
        )
    out = torch.zeros_like(kept)
    if k == 0:
        return out
    values = scores[idx]
    if torch.isnan(values).any():
        raise ValueError(f"{what}: scores contain NaN at kept entries")
    if k == n:
        out[idx] = True
        return out
    threshold = torch.kthvalue(values, n - k + 1).values
    above = values > threshold
    ties = values == threshold
    need = k - int(above.sum())
    chosen = above | (ties & (torch.cumsum(ties, 0) <= need))
    out[idx[chosen]] = True
    return out


def select_top(
    scores: dict[str, torch.Tensor], masks: Masks, density: float, scope: Scope = "global"
) -> Masks:
    """New masks keeping the highest-scoring ``round(density * N)`` weights of ``masks``.

    ``N`` counts all entries of ``masks`` (pruned ones included) for ``scope="global"``, or each
    tensor on its own for ``"layerwise"``. Only currently kept entries compete (scores of pruned
    entries are ignored, so the result is nested in ``masks``). Ties are broken by the lower flat
    index in the concatenation of the tensors in sorted-name order. Returns masks with the keys,
    shapes and devices of ``masks``.
    """
    density = check_density(density)
    check_scope(scope)
    missing = sorted(set(masks) - set(scores))
    if missing:
        raise ValueError(f"select_top: no scores for {missing}")
    names = sorted(masks)
    flat_scores = {}
    flat_masks = {}
    for n in names:
        if scores[n].shape != masks[n].shape:
            raise ValueError(
                f"select_top: score shape {tuple(scores[n].shape)} != mask shape "
                f"{tuple(masks[n].shape)} for {n!r}"
            )
        flat_scores[n] = scores[n].detach().flatten().to("cpu", torch.float64)
        flat_masks[n] = masks[n].detach().flatten().to("cpu", torch.bool)

    new: dict[str, torch.Tensor] = {}
    if scope == "layerwise":
        for n in names:
            k = int(round(density * flat_masks[n].numel()))
            new[n] = _top_of_kept(flat_scores[n], flat_masks[n], k, f"layer {n!r}")
            assert int(new[n].sum()) == k
    else:
        total = sum(m.numel() for m in flat_masks.values())
        k = int(round(density * total))
        if names:
            keep = _top_of_kept(
                torch.cat([flat_scores[n] for n in names]),
                torch.cat([flat_masks[n] for n in names]),
                k,
                "global selection",
            )
        else:
            keep = torch.zeros(0, dtype=torch.bool)
        assert int(keep.sum()) == k
        offset = 0
        for n in names:
            size = flat_masks[n].numel()
            new[n] = keep[offset : offset + size]
            offset += size
    return {n: new[n].reshape(masks[n].shape).to(masks[n].device) for n in masks}

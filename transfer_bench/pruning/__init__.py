"""Masks and magnitude pruning (the IMP selection step)."""

from transfer_bench.pruning.magnitude import magnitude_prune, target_counts
from transfer_bench.pruning.masks import (
    Masks,
    apply_masks_,
    density,
    full_masks,
    layer_density,
    random_masks_like,
)

__all__ = [
    "Masks",
    "apply_masks_",
    "density",
    "full_masks",
    "layer_density",
    "magnitude_prune",
    "random_masks_like",
    "target_counts",
]

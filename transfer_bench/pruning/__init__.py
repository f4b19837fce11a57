"""Masks and magnitude pruning (the IMP selection step)."""

from transfer_bench.pruning.magnitude import magnitude_prune, target_counts
from transfer_bench.pruning.masks import (
    Masks,
    apply_masks_,
    density,
    full_masks,
    layer_density,
    random_global,
    random_masks_like,
    shuffle_layerwise,
)

__all__ = [
    "Masks",
    "apply_masks_",
    "density",
    "full_masks",
    "layer_density",
    "magnitude_prune",
    "random_global",
    "random_masks_like",
    "shuffle_layerwise",
    "target_counts",
]

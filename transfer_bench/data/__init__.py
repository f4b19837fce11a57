"""Datasets for transfer-bench: sources, adaptation to the suite's input, seeded splits, caching.

``load_dataset(spec, input, split_seed=..., cache_dir=...)`` returns an ``ImageDataset`` of uint8
``[N, C, H, W]`` tensors; ``normalize`` turns a batch into float32 for a model; ``list_sources()``
names the accepted ``source`` forms; ``list_catalogue()`` the named datasets of ``catalog:<name>``.
"""

from __future__ import annotations

from transfer_bench.data.adapt import normalize
from transfer_bench.data.catalogue import (  # also registers the catalog: source
    CatalogueEntry,
    catalogue_spec,
    list_catalogue,
)
from transfer_bench.data.dataset import ImageDataset, dataset_key, load_dataset
from transfer_bench.data.sources import RawData, list_sources, register_builtin, register_source

__all__ = [
    "CatalogueEntry",
    "ImageDataset",
    "RawData",
    "catalogue_spec",
    "dataset_key",
    "list_catalogue",
    "list_sources",
    "load_dataset",
    "normalize",
    "register_builtin",
    "register_source",
]

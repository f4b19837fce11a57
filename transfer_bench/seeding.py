"""Explicit seed derivation.

Every random choice in a run (init, data order, head re-init, random masks, splits) draws from a seed
derived here from the suite seed and a role name, so that runs are reproducible and independent roles
never share a stream. No global RNG state is read or written.

Seeds that concern a dataset are derived from what the dataset holds (:func:`data_identity`: the
digest of the training rows used), never from what a suite calls it, so two arms that train on the
same data share their data order and augmentation whatever their names, in a search as in a
transfer. :data:`SEEDING_VERSION` names this rule; it enters every run's id and is recorded in every
result, so results made under another rule are never resumed into or mixed with these.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

from transfer_bench.errors import DatasetError

#: The rule that turns a run into seeds. 1 (before the rule had a number): data order,
#: augmentation and the other dataset-dependent draws were seeded by the dataset's name in the suite
#: and by the stage (search or transfer). 2: by the dataset's training rows (:func:`data_identity`)
#: and the seed.
SEEDING_VERSION = 2


def derive_seed(*parts: object) -> int:
    """Map any sequence of printable parts to a stable 63-bit seed (sha256 of their joined repr)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)


def generator(*parts: object) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(*parts)``."""
    g = torch.Generator()
    g.manual_seed(derive_seed(*parts))
    return g


def data_identity(info: Mapping[str, Any]) -> str:
    """What a dataset trains on, from its recorded provenance (``ImageDataset.info``): the sha256 of
    the source rows of its training split after class selection, splitting and subsetting.

    The dataset's name, its labels and its test rows do not enter: the stream of batches and
    augmentation depends only on which training rows there are, so arms on the same rows share it.
    Nor does the source's address (a hub copy, a local mirror and a moved file are the same rows);
    two sources whose selections have the same row numbers then share a permutation of positions,
    which pairs nothing and biases nothing.
    """
    rows = (info.get("rows") or {}).get("train") or {}
    digest = rows.get("sha256")
    if not isinstance(digest, str) or not digest:
        raise DatasetError(
            f"dataset {info.get('source', '?')!r}: its provenance records no training-rows digest "
            "(a dataset cache written before row digests); delete the dataset cache folder "
            "(~/.cache/transfer-bench, $TRANSFER_BENCH_CACHE or --cache-dir) and rerun"
        )
    return digest


def order_seed(seed: int, data: str) -> int:
    """The data-order and augmentation seed of a training on ``data`` (a :func:`data_identity`)."""
    return derive_seed(seed, "order", data)

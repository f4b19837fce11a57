"""Class subsets and exact-size stratified subsets of a dataset's splits (pure functions).

``select_classes`` resolves a spec's ``classes`` (label ids or class names) to the raw label values
to keep, in the listed order; ``stratified_take`` picks exactly ``n`` rows of a split, stratified by
class. Each class's rows are visited in one seeded permutation that depends only on the seed, the
split and the class, so a smaller subset of the same split is always contained in a larger one
(a 1,000-image CIFAR-10 source is part of the 10,000-image one). ``rows_digest`` fingerprints the
chosen rows for provenance (config.json and tickets record it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from transfer_bench.errors import DatasetError
from transfer_bench.seeding import derive_seed


def _describe(values: Sequence[object], names: Sequence[str] | None, limit: int = 12) -> str:
    """``airplane (0), automobile (1), ...`` or ``0, 1, 2, ...`` for an error message."""
    shown = []
    for v in list(values)[:limit]:
        named = names is not None and isinstance(v, int | np.integer) and 0 <= int(v) < len(names)
        shown.append(
            f"{names[int(v)]} ({v})" if named else repr(v) if isinstance(v, str) else str(v)
        )
    more = f", ... ({len(values)} in all)" if len(values) > limit else ""
    return ", ".join(shown) + more


def select_classes(
    wanted: Sequence[int | str],
    present: np.ndarray,
    names: Sequence[str] | None,
    where: str,
) -> list[int | str]:
    """The raw label values of ``wanted``, in its order.

    ``present`` are the distinct raw labels of the dataset (ints or strings); a wanted entry matches
    a label equal to it or, for integer labels with known class ``names``, the label whose name it
    is. Anything else is a one-line ``DatasetError`` listing the dataset's classes.
    """
    values = [v.item() if hasattr(v, "item") else v for v in present]
    text_labels = bool(values) and isinstance(values[0], str)
    out: list[int | str] = []
    for c in wanted:
        if c in values and isinstance(c, str) == text_labels:
            out.append(c)
            continue
        if isinstance(c, str) and not text_labels and names is not None and c in names:
            idx = list(names).index(c)
            if idx in values:
                out.append(idx)
                continue
        raise DatasetError(
            f"{where}: classes: {c!r} is not a class of this dataset; its classes are "
            f"{_describe(values, names)}; list label ids or names from these"
        )
    if len(set(out)) != len(out):
        dup = next(v for v in out if out.count(v) > 1)
        raise DatasetError(
            f"{where}: classes: label {dup!r} is listed twice (by id and by name); list it once"
        )
    return out


def class_quotas(counts: np.ndarray, n: int) -> np.ndarray:
    """How many of ``n`` rows each class gets: proportional to ``counts``, at least 1 each.

    Largest remainders (ties to the lower class index) distribute what flooring leaves over; no
    class gets more rows than it has. Requires ``len(counts) <= n <= counts.sum()``.
    """
    total = int(counts.sum())
    exact = counts * (n / total)
    quota = np.maximum(np.floor(exact).astype(np.int64), 1)
    quota = np.minimum(quota, counts)
    order = np.lexsort((np.arange(len(counts)), -(exact - np.floor(exact))))
    i = 0
    while quota.sum() < n:  # hand out the remainder, skipping classes that are used up
        c = order[i % len(order)]
        if quota[c] < counts[c]:
            quota[c] += 1
        i += 1
    while quota.sum() > n:  # the minimum of 1 per class overshot: take from the largest quotas
        c = int(np.argmax(quota - (quota <= 1) * n))
        quota[c] -= 1
    return quota


def stratified_take(
    y: np.ndarray, n: int, seed: int, split: str, class_keys: Sequence[object], where: str
) -> np.ndarray:
    """Sorted positions of exactly ``n`` rows of labels ``y`` (0..k-1), stratified by class.

    Class ``j`` contributes its quota (``class_quotas``) from a permutation of its rows seeded by
    ``(seed, split, class_keys[j])``; raises a one-line ``DatasetError`` when ``n`` is more rows
    than there are or fewer than the number of classes.
    """
    k = len(class_keys)
    counts = np.bincount(y, minlength=k)
    present = int((counts > 0).sum())
    size_key = f"{split}_size"
    if n > len(y):
        raise DatasetError(
            f"{where}: {size_key} {n} is more than the {len(y)} {split} images available "
            f"(after the class selection and split); use {size_key} <= {len(y)} or drop it"
        )
    if n < present:
        raise DatasetError(
            f"{where}: {size_key} {n} cannot hold one image of each of the {present} classes; "
            f"use {size_key} >= {present}"
        )
    quota = class_quotas(counts, n)
    keep = []
    for j in range(k):
        if quota[j] == 0:
            continue
        rows = np.flatnonzero(y == j)
        rng = np.random.default_rng(derive_seed("subset", split, seed, str(class_keys[j])))
        keep.append(rows[rng.permutation(len(rows))[: quota[j]]])
    return np.sort(np.concatenate(keep))


def rows_digest(rows: np.ndarray) -> str:
    """sha256 of the sorted row numbers (int64 little endian): which images a split holds."""
    data = np.sort(np.asarray(rows, dtype=np.int64)).astype("<i8").tobytes()
    return hashlib.sha256(data).hexdigest()

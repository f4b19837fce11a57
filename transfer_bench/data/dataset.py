"""``load_dataset``: source -> classes, labels 0..K-1 -> split -> subsample -> adapt -> stats, cached.

The order is fixed so that results depend only on (source spec, input spec, split seed): the split
and subsampling act on raw images (cheap), and only the kept images are resized.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transfer_bench.config import DatasetSpec, InputSpec
from transfer_bench.data import cache
from transfer_bench.data.adapt import (
    adapt_images,
    channel_stats,
    remap_labels,
    sk_seed,
    stratified_split,
    stratified_subsample,
    take,
)
from transfer_bench.data.catalogue import get_entry, resolve
from transfer_bench.data.sources import RawData, load_raw, source_files
from transfer_bench.data.subset import rows_digest, select_classes, stratified_take
from transfer_bench.errors import DatasetError


@dataclass(frozen=True)
class ImageDataset:
    """A dataset adapted to the suite's input: uint8 ``[N, C, H, W]`` images, int64 labels.

    ``mean``/``std`` are per channel in [0, 1] units from the train split (0 and 1 when the input
    spec says ``normalize: none``); ``info`` is JSON-able provenance.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    info: dict


def _fingerprint(spec: DatasetSpec) -> list[list[Any]]:
    """Size and mtime of the local files a source reads, so edits to them invalidate the cache."""
    out = []
    for p in source_files(spec):
        try:
            st = p.stat()
        except OSError:
            continue
        out.append([str(p), st.st_size, st.st_mtime_ns])
    return out


def _catalog_origin(spec: DatasetSpec) -> list[Any] | None:
    """Where a ``catalog:`` source would load from now (a mirror copy or the hub), else None."""
    prefix, _, name = spec.source.partition(":")
    if prefix != "catalog":
        return None
    try:
        ref, config, local = resolve(get_entry(name))
    except DatasetError:
        return None
    return [ref, config, local]


def dataset_key(spec: DatasetSpec, input: InputSpec, split_seed: int) -> str:
    """The cache key of ``load_dataset(spec, input, split_seed=...)``."""
    parts = {
        "source": spec.model_dump(mode="json"),
        "input": input.model_dump(mode="json"),
        "split_seed": int(split_seed),
        "files": _fingerprint(spec),
    }
    origin = _catalog_origin(spec)
    if origin is not None:  # a mirror copy and the hub's copy are different data
        parts["catalog_origin"] = origin
    return cache.cache_key(parts)


def _shape_of(images: np.ndarray | list[np.ndarray]) -> list[int] | str:
    if isinstance(images, np.ndarray):
        return list(images.shape[1:])
    return "mixed"


def _check_lengths(x: np.ndarray | list[np.ndarray], y: np.ndarray, split: str, where: str) -> None:
    if len(x) != len(y):
        raise DatasetError(f"{where}: {split} split has {len(x)} images but {len(y)} labels")
    if len(y) == 0:
        raise DatasetError(f"{where}: {split} split is empty")


def _relabel(
    spec: DatasetSpec, raw: RawData, where: str
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None, list[Any]]:
    """Labels 0..k-1 and the kept rows of each split: all classes (sorted), or ``spec.classes``.

    Returns ``(y_train, y_test, train_rows, test_rows, classes)`` where ``*_rows`` are row numbers
    in the source's splits and ``classes[i]`` is the raw label value of new label ``i``.
    """
    if spec.classes is None:
        y_tr, y_te, classes = remap_labels(raw.y_train, raw.y_test)
        rows_te = None if y_te is None else np.arange(len(y_te))
        return y_tr, y_te, np.arange(len(y_tr)), rows_te, classes
    both = raw.y_train if raw.y_test is None else np.concatenate([raw.y_train, raw.y_test])
    classes = select_classes(spec.classes, np.unique(both), raw.class_names, where)
    lookup = {c: i for i, c in enumerate(classes)}

    def keep(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        new = np.array([lookup.get(v.item(), -1) for v in y], dtype=np.int64)
        rows = np.flatnonzero(new >= 0)
        return new[rows], rows

    y_tr, rows_tr = keep(raw.y_train)
    if raw.y_test is None:
        return y_tr, None, rows_tr, None, classes
    y_te, rows_te = keep(raw.y_test)
    return y_tr, y_te, rows_tr, rows_te, classes


def _subset(
    spec: DatasetSpec, y: np.ndarray, split: str, split_seed: int, classes: list[Any], where: str
) -> np.ndarray:
    """Positions kept of one split: ``train_size``/``test_size`` exactly, else ``max_*`` at most."""
    exact = spec.train_size if split == "train" else spec.test_size
    if exact is not None:
        return stratified_take(y, exact, split_seed, split, classes, where)
    legacy = spec.max_train if split == "train" else spec.max_test
    key = f"max_{split}"
    return stratified_subsample(y, legacy, sk_seed(key, split_seed), f"{where}: {key}")


def _build(spec: DatasetSpec, input: InputSpec, split_seed: int, key: str) -> ImageDataset:
    where = f"dataset {spec.source!r}"
    prefix = spec.source.partition(":")[0]
    if prefix != "synthetic" and spec.samples is not None:
        raise DatasetError(
            f"{where}: `samples` only applies to synthetic: sources; use train_size / test_size "
            "to subsample real data"
        )
    raw: RawData = load_raw(spec)
    _check_lengths(raw.x_train, raw.y_train, "train", where)
    if raw.x_test is not None and raw.y_test is not None:
        _check_lengths(raw.x_test, raw.y_test, "test", where)
    y_all_train, y_given_test, rows_tr, rows_given_te, classes = _relabel(spec, raw, where)
    k = len(classes)
    if k < 2:
        raise DatasetError(f"{where}: only one class ({classes[0]!r}) found; need at least 2")
    if spec.num_classes is not None and prefix != "synthetic" and spec.num_classes != k:
        raise DatasetError(
            f"{where}: num_classes is {spec.num_classes} but the data has {k} classes; "
            f"set num_classes: {k} or remove it"
        )

    if raw.x_test is None or y_given_test is None:
        tr, te = stratified_split(y_all_train, spec.test_fraction, split_seed, where)
        rows_te = rows_tr[te]
        rows_tr = rows_tr[tr]
        y_tr, y_te = y_all_train[tr], y_all_train[te]
        test_rows_of = "train"
        split = {"method": "stratified", "seed": int(split_seed), "fraction": spec.test_fraction}
    else:
        y_tr, y_te, rows_te = y_all_train, y_given_test, rows_given_te
        test_rows_of = "test"
        split = {"method": "given", "seed": int(split_seed), "fraction": None}
    split.update(train_size=len(y_tr), test_size=len(y_te))

    keep_tr = _subset(spec, y_tr, "train", split_seed, classes, where)
    keep_te = _subset(spec, y_te, "test", split_seed, classes, where)
    rows_tr, rows_te = rows_tr[keep_tr], rows_te[keep_te]
    x_tr, y_tr = take(raw.x_train, rows_tr), y_tr[keep_tr]
    x_te, y_te = (
        take(raw.x_train if test_rows_of == "train" else raw.x_test, rows_te),
        y_te[keep_te],
    )

    try:
        xt_train = adapt_images(x_tr, input)
        xt_test = adapt_images(x_te, input)
    except DatasetError as e:
        raise DatasetError(f"{where}: {e}") from None
    if input.normalize == "none":
        mean, std = (0.0,) * input.channels, (1.0,) * input.channels
    else:
        mean, std = channel_stats(xt_train)
    names = raw.class_names
    info = {
        "source": spec.source,
        "origin": raw.origin,
        "raw_image_shape": _shape_of(raw.x_train),
        "num_classes": k,
        "classes": classes,
        "class_names": [
            names[c] if isinstance(c, int) and 0 <= c < len(names) else str(c) for c in classes
        ]
        if names
        else None,
        "split": split,
        "max_train": spec.max_train,
        "max_test": spec.max_test,
        "sizes": {"train": int(len(y_tr)), "test": int(len(y_te))},
        # which source rows each split holds: row numbers of the source's train split (and of
        # its test split, or of the train split when the test split was drawn from it)
        "rows": {
            "train": {"of": "train", "count": int(len(rows_tr)), "sha256": rows_digest(rows_tr)},
            "test": {
                "of": test_rows_of,
                "count": int(len(rows_te)),
                "sha256": rows_digest(rows_te),
            },
        },
        "input": input.model_dump(mode="json"),
        "cache_key": key,
        "format_version": cache.FORMAT_VERSION,
    }
    return ImageDataset(
        name=spec.source,
        x_train=xt_train,
        y_train=torch.from_numpy(np.ascontiguousarray(y_tr, dtype=np.int64)),
        x_test=xt_test,
        y_test=torch.from_numpy(np.ascontiguousarray(y_te, dtype=np.int64)),
        num_classes=k,
        mean=tuple(mean),
        std=tuple(std),
        info=info,
    )


def _from_cache(spec: DatasetSpec, path: Path, key: str) -> ImageDataset | None:
    got = cache.load(path, key)
    if got is None:
        return None
    tensors, meta = got
    try:
        return ImageDataset(
            name=spec.source,
            x_train=tensors["x_train"],
            y_train=tensors["y_train"],
            x_test=tensors["x_test"],
            y_test=tensors["y_test"],
            num_classes=int(meta["num_classes"]),
            mean=tuple(float(v) for v in meta["mean"]),
            std=tuple(float(v) for v in meta["std"]),
            info=dict(meta["info"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _hf_cache_has(hub_id: str) -> bool:
    """Whether the Hugging Face datasets cache of this machine holds ``hub_id`` (its folder
    ``<owner>___<name>``), found without importing ``datasets`` or reaching the hub."""
    root = os.environ.get("HF_DATASETS_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(Path.home(), ".cache", "huggingface"), "datasets"
    )
    return (Path(root) / hub_id.replace("/", "___")).is_dir()


def on_this_machine(
    spec: DatasetSpec, input: InputSpec, *, split_seed: int, cache_dir: Path | None
) -> bool:
    """Whether ``spec`` loads without a download: a bundled, synthetic or local source, a copy in
    the dataset cache or a mirror (``TRANSFER_BENCH_HF_MIRROR``), or a hub dataset already in the
    Hugging Face cache. ``plan`` sizes the others from the catalogue instead of fetching
    gigabytes to count them."""
    prefix, _, ref = spec.source.partition(":")
    if prefix in ("builtin", "synthetic", "local"):
        return True
    if cache_dir is not None:
        key = dataset_key(spec, input, split_seed)
        if cache.cache_path(Path(os.fspath(cache_dir)), key).is_file():
            return True
    if prefix == "catalog":
        try:
            entry = get_entry(ref)
        except DatasetError:
            return True  # let the loader give its one-line error
        hub, _, is_local = resolve(entry)
        return is_local or _hf_cache_has(entry.hub_id)
    hub_id = ref.split(":", 1)[0]
    return Path(hub_id).expanduser().exists() or _hf_cache_has(hub_id)


def load_dataset(
    spec: DatasetSpec, input: InputSpec, *, split_seed: int, cache_dir: Path | None
) -> ImageDataset:
    """Load ``spec`` adapted to ``input``; read/write ``cache_dir`` (None disables caching).

    ``classes`` keeps and relabels classes first; sources without a test split are then split
    stratified with ``random_state=split_seed``; then ``train_size``/``test_size`` (exact) or
    ``max_train``/``max_test`` (at most) subsample stratified, seeded from ``split_seed``.
    """
    key = dataset_key(spec, input, split_seed)
    path = cache.cache_path(Path(os.fspath(cache_dir)), key) if cache_dir is not None else None
    if path is not None:
        hit = _from_cache(spec, path, key)
        if hit is not None:
            return hit
    ds = _build(spec, input, split_seed, key)
    if path is not None:
        tensors = {
            "x_train": ds.x_train,
            "y_train": ds.y_train,
            "x_test": ds.x_test,
            "y_test": ds.y_test,
        }
        meta = {"num_classes": ds.num_classes, "mean": ds.mean, "std": ds.std, "info": ds.info}
        cache.save(path, key, tensors, meta)
    return ds

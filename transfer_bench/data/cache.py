"""On-disk cache of adapted datasets as safetensors files (no pickle).

The file name is a sha256 key over everything that determines the tensors (source spec, input spec,
split seed, a format version and, for local sources, the files' sizes and mtimes). The metadata
holds a checksum of the payload; any file that cannot be read, does not match its key, or fails the
checksum is treated as absent and rebuilt, with a warning naming the file and the damage. Writes
go through ``fileio.atomic_write_with`` so concurrent runs never see half-written files; a write
the disk refuses (full, no permission) only warns, and the dataset is then used uncached.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from transfer_bench.fileio import FileWriteError, atomic_write_with

FORMAT_VERSION = 1
TENSOR_NAMES = ("x_train", "y_train", "x_test", "y_test")


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of ``parts`` plus the format version."""
    blob = json.dumps({"format": FORMAT_VERSION, **parts}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_path(cache_dir: Path, key: str) -> Path:
    """Where the dataset with ``key`` is cached."""
    return Path(cache_dir) / f"dataset-{key[:40]}.safetensors"


def payload_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors, in a fixed order."""
    h = hashlib.sha256()
    for name in TENSOR_NAMES:
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save(path: Path, key: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> bool:
    """Write tensors and JSON-able ``meta`` atomically; warn (not fail) if the disk refuses."""
    from safetensors.torch import save_file

    metadata = {
        "format": str(FORMAT_VERSION),
        "key": key,
        "checksum": payload_checksum(tensors),
        "meta": json.dumps(meta, sort_keys=True),
    }
    flat = {k: tensors[k].contiguous() for k in TENSOR_NAMES}
    try:
        atomic_write_with(path, lambda tmp: save_file(flat, tmp, metadata=metadata))
        return True
    except (FileWriteError, OSError) as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        warnings.warn(
            f"dataset cache {path} not written ({reason}); continuing uncached", stacklevel=3
        )
        return False


def _damaged(path: Path, reason: str) -> None:
    warnings.warn(f"dataset cache {path} is damaged ({reason}); rebuilding it", stacklevel=5)


def load(path: Path, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """Tensors and meta from a valid cache file for ``key``, or None (missing or damaged).

    A damaged file (unreadable, truncated, wrong key, checksum mismatch) warns and reads as None,
    so the caller rebuilds the dataset and overwrites it.
    """
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            if metadata.get("format") != str(FORMAT_VERSION) or metadata.get("key") != key:
                _damaged(path, "its header does not match the cache key")
                return None
            if set(f.keys()) != set(TENSOR_NAMES):
                _damaged(path, f"tensors {sorted(f.keys())} instead of {list(TENSOR_NAMES)}")
                return None
            tensors = {k: f.get_tensor(k) for k in TENSOR_NAMES}
        if payload_checksum(tensors) != metadata.get("checksum"):
            _damaged(path, "checksum mismatch")
            return None
        meta = json.loads(metadata["meta"])
        if not isinstance(meta, dict):
            _damaged(path, "its metadata is not a JSON object")
            return None
        return tensors, meta
    except Exception as e:  # any unreadable or corrupt file is rebuilt, never fatal
        _damaged(path, " ".join(f"{type(e).__name__}: {e}".split())[:200])
        return None

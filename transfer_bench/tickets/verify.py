"""Read and fully check a ticket file with numpy only: the one implementation of the checks.

``load_ticket`` (torch tensors, :mod:`transfer_bench.tickets.format`) and the torch-free
``ticket verify`` / ``ticket inspect`` both go through :func:`read_ticket_arrays`; ``check_ticket``
on an in-memory ticket converts its tensors to numpy views and runs :func:`check_arrays`. So a
ticket that one path accepts the other accepts too, with the same one-line messages.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from transfer_bench.errors import TicketError
from transfer_bench.tickets.container import (
    FIX_REEXPORT,
    FLOAT_DTYPES,
    as_float,
    check_canonical,
    err,
    file_sha256,
    parse_header,
    payload_sha256,
    read_file,
    short,
    tensor_arrays,
)

FORMAT_NAME = "transfer-bench-ticket"
FORMAT_VERSION = 2  # what save_ticket writes
SUPPORTED_VERSIONS = (1, 2)  # what load_ticket reads

MASK_PREFIX = "mask/"
WEIGHT_PREFIX = "weight/"  # version 1: dense rewound values
KEPT_PREFIX = "kept/"  # version 2: the kept values only
STATE_PREFIX = "state/"

REQUIRED_META = (
    "model",
    "param_shapes",
    "head_names",
    "mask_lengths",
    "level",
    "density",
    "layer_density",
    "head_density",
    "rewind",
    "seed",
    "source",
    "search",
    "suite",
    "created_by",
)
_DICT_META = ("model", "param_shapes", "mask_lengths", "layer_density", "source", "search", "suite")
_DENSITY_TOL = 1e-6


@dataclass(frozen=True, eq=False)
class TicketArrays:
    """A ticket as numpy arrays: bool ``masks``, dense rewound ``weights`` (pruned entries 0) and
    other ``state``, each with its safetensors dtype name in ``dtypes`` (keys ``weight/<name>`` and
    ``state/<name>``; BF16 arrays hold raw bits), plus ``meta`` and the file's format version."""

    masks: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    state: dict[str, np.ndarray]
    dtypes: dict[str, str]
    meta: dict[str, Any]
    version: int = FORMAT_VERSION

    @property
    def density(self) -> float:
        return density(self.masks.values())


def density(masks: Iterable[Any]) -> float:
    """Kept / total entries over ``masks`` (numpy arrays or CPU tensors); 1.0 when empty."""
    kept = total = 0
    for m in masks:
        a = np.asarray(m)
        kept += int(np.count_nonzero(a))
        total += a.size
    return kept / total if total else 1.0


def derived_meta(masks: Mapping[str, Any], head_names: Iterable[str]) -> dict[str, Any]:
    """The metadata fields that follow from the masks (recomputed and checked on load)."""
    heads = list(head_names)
    head_set = set(heads)
    return {
        "prunable_names": list(masks),
        "param_shapes": {n: list(np.shape(m)) for n, m in masks.items()},
        "mask_lengths": {n: int(np.size(m)) for n, m in masks.items()},
        "head_names": heads,
        "density": density(masks.values()),
        "layer_density": {n: density([m]) for n, m in masks.items()},
        "head_density": density([m for n, m in masks.items() if n in head_set]),
    }


def describe(masks: Mapping[str, Any], head_names: Iterable[str]) -> list[dict[str, Any]]:
    """One row per masked parameter (layer, shape, kept, total, density, is_head) for a table."""
    heads = set(head_names)
    rows = []
    for name, m in masks.items():
        a = np.asarray(m)
        kept, total = int(np.count_nonzero(a)), a.size
        rows.append(
            {
                "layer": name,
                "shape": list(a.shape),
                "kept": kept,
                "total": total,
                "density": kept / total if total else 1.0,
                "is_head": name in heads,
            }
        )
    return rows


def _is_shape(shape: object) -> bool:
    return isinstance(shape, list) and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    )


def _close(a: object, b: float) -> bool:
    if not isinstance(a, (int, float)) or isinstance(a, bool):
        return False
    try:
        return abs(float(a) - b) <= _DENSITY_TOL
    except OverflowError:  # an integer too large for a float is never a density
        return False


def _check_meta_fields(meta: object, where: object) -> None:
    if not isinstance(meta, dict):
        raise err(where, "meta is not a JSON object", FIX_REEXPORT)
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise err(
            where,
            f"metadata is missing field(s) {', '.join(missing)}",
            "the file was edited or written by an incompatible tool; " + FIX_REEXPORT,
        )
    for key in _DICT_META:
        if not isinstance(meta[key], dict):
            raise err(where, f"metadata field {key!r} must be a JSON object", FIX_REEXPORT)
    for key in ("level", "seed"):
        if not isinstance(meta[key], int) or isinstance(meta[key], bool):
            raise err(
                where,
                f"metadata field {key!r} must be an integer, got {short(meta[key])}",
                FIX_REEXPORT,
            )
    heads = meta["head_names"]
    if not isinstance(heads, list) or not all(isinstance(h, str) for h in heads):
        raise err(where, "metadata field 'head_names' must be a list of names", FIX_REEXPORT)


def check_arrays(t: TicketArrays, where: object) -> None:
    """Raise ``TicketError`` unless the ticket is internally consistent (as load guarantees)."""
    meta = t.meta
    _check_meta_fields(meta, where)
    heads = meta["head_names"]
    names = list(t.masks)
    if set(t.weights) != set(names):
        odd = [n for n in t.weights if n not in t.masks] + [n for n in names if n not in t.weights]
        raise err(
            where,
            f"parameter {short(odd[0])} has a mask but no weight or vice versa",
            FIX_REEXPORT,
        )
    if set(meta["param_shapes"]) != set(names):
        odd = [n for n in meta["param_shapes"] if n not in t.masks] + [
            n for n in names if n not in meta["param_shapes"]
        ]
        raise err(where, f"param_shapes and masks disagree at {short(odd[0])}", FIX_REEXPORT)
    overlap = [k for k in t.state if k in t.masks]
    if overlap:
        raise err(where, f"{overlap[0]!r} is stored both as a weight and as state", FIX_REEXPORT)

    for name in names:
        m, w = t.masks[name], t.weights[name]
        shape = meta["param_shapes"][name]
        if not _is_shape(shape):
            raise err(
                where, f"param_shapes[{name!r}] = {short(shape)} is not a shape", FIX_REEXPORT
            )
        if m.dtype != np.bool_:
            raise err(where, f"mask {name!r} is not boolean", FIX_REEXPORT)
        if list(m.shape) != shape or list(w.shape) != shape:
            raise err(
                where,
                f"parameter {name!r}: mask shape {list(m.shape)} and weight shape "
                f"{list(w.shape)} do not both match the recorded {short(shape)}",
                "the file is corrupted; " + FIX_REEXPORT,
            )
        if meta["mask_lengths"].get(name) != m.size:
            raise err(
                where,
                f"mask {name!r}: recorded length {short(meta['mask_lengths'].get(name))} "
                f"!= {m.size} entries",
                "the file is corrupted; " + FIX_REEXPORT,
            )
        dtype = t.dtypes.get(WEIGHT_PREFIX + name, "")
        if dtype not in FLOAT_DTYPES:
            raise err(
                where, f"weight {name!r} has non-float dtype {_torch_name(dtype)}", FIX_REEXPORT
            )
        values = as_float(dtype, w)
        if not np.isfinite(values).all():
            raise err(
                where,
                f"weight {name!r} contains NaN or infinite values",
                "the source training diverged; re-run the search",
            )
        if np.count_nonzero(values[~m]):
            raise err(
                where,
                f"weight {name!r} has non-zero values at pruned positions",
                "the file is corrupted; " + FIX_REEXPORT,
            )
    for name, v in t.state.items():
        dtype = t.dtypes.get(STATE_PREFIX + name, "")
        if dtype in FLOAT_DTYPES and not np.isfinite(as_float(dtype, v)).all():
            raise err(
                where,
                f"state entry {name!r} contains NaN or infinite values",
                "the source training diverged; re-run the search",
            )

    expected = derived_meta(t.masks, heads)
    for key in ("density", "head_density"):
        if not _close(meta[key], expected[key]):
            raise err(
                where,
                f"metadata {key} {short(meta[key])} disagrees with the masks ({expected[key]:.6g})",
                "the metadata was edited; " + FIX_REEXPORT,
            )
    for name, value in expected["layer_density"].items():
        if not _close(meta["layer_density"].get(name), value):
            raise err(
                where,
                f"metadata layer_density[{name!r}] disagrees with the mask ({value:.6g})",
                "the metadata was edited; " + FIX_REEXPORT,
            )


# -------------------------------------------------------------------------------------- reading


def _verified_block(path: Path, raw: bytes) -> tuple[dict[str, str], dict, dict, int]:
    """Metadata block, arrays and dtypes of a ticket file whose format and digest check out."""
    header, block = parse_header(path, raw)
    if block["format"] != FORMAT_NAME:
        raise err(
            path,
            f"format {short(block['format'])} is not {FORMAT_NAME!r}",
            "pass a .ticket file written by transfer-bench",
        )
    version = block.get("format_version")
    try:
        v = int(version)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise err(
            path,
            f"format_version {short(version)} is not a version number",
            "the file was edited; " + FIX_REEXPORT,
        ) from None
    if v > FORMAT_VERSION:
        raise err(
            path,
            f"format_version {v} is newer than this transfer-bench supports ({FORMAT_VERSION})",
            "upgrade transfer-bench",
        )
    if v not in SUPPORTED_VERSIONS:
        raise err(path, f"unknown format_version {v}", FIX_REEXPORT)
    arrays, dtypes = tensor_arrays(path, raw)
    key = "payload_sha256" if v == 1 else "sha256"
    expected = block.get(key)
    if not isinstance(expected, str):
        raise err(path, f"has no {key} metadata", "the file was edited; " + FIX_REEXPORT)
    n = int.from_bytes(raw[:8], "little")
    data = memoryview(raw)[8 + n :]
    try:
        if v == 1:
            actual = payload_sha256(header, data)
        else:
            check_canonical(path, raw[: 8 + n], header, block)
            actual = file_sha256(block, header, data)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # json safetensors accepted
        raise err(
            path, f"header is malformed ({short(e)})", "it is corrupted; copy it again"
        ) from None
    if actual != expected:
        raise err(
            path,
            f"{'payload ' if v == 1 else ''}sha256 mismatch (recorded {expected[:12]}..., "
            f"computed {actual[:12]}...): the file "
            f"{'(tensors or metadata) ' if v == 2 else ''}was modified or corrupted",
            "copy the original file again or re-run the search",
        )
    return block, arrays, dtypes, v


def read_ticket_arrays(path: str | os.PathLike[str]) -> TicketArrays:
    """Read and fully verify a ``.ticket`` file (any supported version) without torch; any
    problem is a one-line ``TicketError`` naming the file, the reason and the fix."""
    path = Path(path)
    raw = read_file(path)
    block, arrays, dtypes, version = _verified_block(path, raw)
    try:
        meta = json.loads(block.get("meta", ""))
    except (ValueError, RecursionError):
        raise err(
            path,
            "metadata 'meta' is missing or not valid JSON",
            "the file was edited; " + FIX_REEXPORT,
        ) from None
    if not isinstance(meta, dict):
        raise err(
            path, "metadata 'meta' is not a JSON object", "the file was edited; " + FIX_REEXPORT
        )
    try:
        ticket = _build(path, meta, arrays, dtypes, version)
        check_arrays(ticket, path)
    except TicketError:
        raise
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        AttributeError,
        RuntimeError,
        OverflowError,
        RecursionError,
        MemoryError,
    ) as e:  # last line of defence: metadata of a shape the checks above did not foresee
        raise err(
            path,
            f"malformed ticket metadata ({short(e, 120)})",
            "the file was edited; " + FIX_REEXPORT,
        ) from None
    return ticket


def _build(
    path: Path,
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray],
    dtypes: dict[str, str],
    version: int,
) -> TicketArrays:
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise err(
            path,
            f"metadata is missing field(s) {', '.join(missing)}",
            "the file was edited or written by an incompatible tool; " + FIX_REEXPORT,
        )
    shapes, lengths = meta["param_shapes"], meta["mask_lengths"]
    if not isinstance(shapes, dict) or not isinstance(lengths, dict):
        raise err(path, "metadata param_shapes/mask_lengths must be JSON objects", FIX_REEXPORT)
    order = meta.get("prunable_names", list(shapes))
    if not isinstance(order, list) or set(order) != set(shapes) or len(order) != len(shapes):
        raise err(
            path,
            "metadata prunable_names and param_shapes disagree",
            "the file was edited; " + FIX_REEXPORT,
        )

    packed: dict[str, str] = {}
    values: dict[str, str] = {}
    state: dict[str, np.ndarray] = {}
    out_dtypes: dict[str, str] = {}
    values_prefix = WEIGHT_PREFIX if version == 1 else KEPT_PREFIX
    for key in arrays:
        if key.startswith(MASK_PREFIX):
            packed[key[len(MASK_PREFIX) :]] = key
        elif key.startswith(values_prefix):
            values[key[len(values_prefix) :]] = key
        elif key.startswith(STATE_PREFIX):
            state[key[len(STATE_PREFIX) :]] = arrays[key]
            out_dtypes[key] = dtypes[key]
        else:
            raise err(
                path,
                f"unexpected tensor {short(key)} (expected mask/, {values_prefix} or state/ "
                f"names in a version-{version} ticket)",
                FIX_REEXPORT,
            )

    for kind, found in (("mask", packed), ("weight", values)):
        for name in found:
            if name not in shapes:
                raise err(
                    path,
                    f"{kind} {short(name)} is not listed in param_shapes",
                    "the file is corrupted; " + FIX_REEXPORT,
                )
    masks: dict[str, np.ndarray] = {}
    weights: dict[str, np.ndarray] = {}
    for name in order:
        if name not in packed or name not in values:
            raise err(
                path,
                f"parameter {short(name)} lacks its mask or weight tensor",
                "the file is corrupted; " + FIX_REEXPORT,
            )
        shape = shapes[name]
        if not _is_shape(shape):
            raise err(path, f"param_shapes[{name!r}] = {short(shape)} is not a shape", FIX_REEXPORT)
        w, w_dtype = arrays[values[name]], dtypes[values[name]]
        p, p_dtype = arrays[packed[name]], dtypes[packed[name]]
        if version == 2:
            w = _scatter_kept(path, name, w, w_dtype, p, p_dtype, shape)
        if list(w.shape) != shape:  # compared first: the array's shape is bounded by the file
            raise err(
                path,
                f"weight {name!r} has shape {list(w.shape)} but its mask has {short(shape)}",
                "the file is corrupted; " + FIX_REEXPORT,
            )
        length = lengths.get(name)
        if not isinstance(length, int) or isinstance(length, bool) or length != w.size:
            raise err(
                path,
                f"mask_lengths[{name!r}] = {short(length)} does not match shape {shape}",
                "the file is corrupted; " + FIX_REEXPORT,
            )
        masks[name] = _unpack(path, name, p, p_dtype, length).reshape(shape)
        weights[name] = w
        out_dtypes[WEIGHT_PREFIX + name] = w_dtype
    return TicketArrays(masks, weights, state, out_dtypes, meta, version)


def _unpack(path: Path, name: str, p: np.ndarray, dtype: str, length: int) -> np.ndarray:
    """The bool mask of ``length`` entries packed (big bit order, zero pad bits) in ``p``."""
    if dtype != "U8" or p.ndim != 1 or p.size != (length + 7) // 8:
        raise err(
            path,
            f"mask {name!r} holds {p.size} {_torch_name(dtype)} elements, expected "
            f"{(length + 7) // 8} torch.uint8 bytes for {length} entries",
            "the file is corrupted; " + FIX_REEXPORT,
        )
    bits = np.unpackbits(p)
    if bits[length:].any():
        raise err(
            path,
            f"mask {name!r} has non-zero pad bits beyond its {length} entries",
            "the file is corrupted; " + FIX_REEXPORT,
        )
    return bits[:length].astype(bool)


_TORCH_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}
_TORCH_NAMES |= {"I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8"}
_TORCH_NAMES |= {"BOOL": "bool"}


def _torch_name(dtype: str) -> str:
    """The dtype as torch prints it (``torch.float32``), for messages users compare with code."""
    return "torch." + _TORCH_NAMES.get(dtype, dtype.lower())


def _scatter_kept(
    path: Path,
    name: str,
    kept: np.ndarray,
    kept_dtype: str,
    packed: np.ndarray,
    packed_dtype: str,
    shape: list[int],
) -> np.ndarray:
    """Version 2: the dense rewound weight from a parameter's kept values and packed mask."""
    length = int(np.prod(shape, dtype=np.int64))
    if packed_dtype != "U8" or packed.ndim != 1:
        raise err(path, f"mask {name!r} is missing or not packed bytes", FIX_REEXPORT)
    if packed.size != (length + 7) // 8:
        raise err(
            path,
            f"mask {name!r} holds {packed.size} bytes, expected {(length + 7) // 8} for shape "
            f"{shape}",
            "the file is corrupted; " + FIX_REEXPORT,
        )
    bits = np.unpackbits(packed)[:length].astype(bool)
    if kept.ndim != 1 or kept_dtype not in FLOAT_DTYPES:
        raise err(
            path,
            f"kept values of {name!r} must be a 1-D float tensor, got {_torch_name(kept_dtype)} "
            f"{list(kept.shape)}",
            "the file is corrupted; " + FIX_REEXPORT,
        )
    n_kept = int(np.count_nonzero(bits))
    if kept.size != n_kept:
        raise err(
            path,
            f"{name!r} stores {kept.size} kept values but its mask keeps {n_kept}",
            "the file is corrupted; " + FIX_REEXPORT,
        )
    dense = np.zeros(length, dtype=kept.dtype)
    dense[bits] = kept
    return dense.reshape(shape)

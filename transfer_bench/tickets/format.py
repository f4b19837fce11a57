"""The portable ticket file: one safetensors file per ticket (suffix ``.ticket``), never pickle.

A ticket is a pruning mask plus the rewound weights it applies to, so that it can be retrained on
another dataset or optimizer, shared, and checked without running any code from the file.

Layout (format ``transfer-bench-ticket``, ``format_version`` 1):

- tensor ``mask/<param>``: ``np.packbits(mask.flatten())`` as uint8 (numpy's default big bit order),
  for every prunable parameter; pad bits after the recorded length are zero;
- tensor ``weight/<param>``: the rewound dense values of that parameter, pruned entries exactly 0;
- tensor ``state/<name>``: every other entry of the rewound ``state_dict`` (biases, BN statistics,
  ``num_batches_tracked``...), dtypes kept;
- metadata ``format``, ``format_version``, ``meta`` (a JSON object, see ``REQUIRED_META``) and
  ``payload_sha256``.

``payload_sha256`` covers the tensors only (so it can live in the metadata): sha256 over the tensors
sorted by name (Unicode code points), each fed as ``u64le(len(d)) + d`` with
``d = json([name, safetensors dtype, shape])`` (compact separators), then ``u64le(len(b)) + b`` with
``b`` the tensor's raw little-endian bytes as stored in the file. The digest does not cover
``meta``: its mask-derived fields are re-checked against the masks, its provenance is not protected.

Writing is byte-deterministic (equal tickets give equal files in any process): transfer-bench writes
the safetensors container itself, with the JSON header's keys sorted (``__metadata__`` and ``meta``
included), compact separators, the header space-padded to a multiple of 8, and the tensors laid out
by decreasing item size, then name (naturally aligned, no gaps). Any safetensors reader loads it.

``load_ticket`` verifies everything (header size, format, version, digest, metadata, mask/weight
agreement, pad bits, finite weights and state, zero pruned weights) and turns every problem into a one-line
``TicketError`` naming the file, the reason and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save  # noqa: F401  (tests build raw files with it)

from transfer_bench.errors import TicketError
from transfer_bench.fileio import atomic_write_bytes

FORMAT_NAME = "transfer-bench-ticket"
FORMAT_VERSION = 2  # what save_ticket writes
SUPPORTED_VERSIONS = (1, 2)  # what load_ticket reads
TICKET_SUFFIX = ".ticket"
MAX_HEADER_BYTES = 100 * 1024 * 1024

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

_FIX_REEXPORT = "re-export the ticket with transfer-bench"


@dataclass(frozen=True, eq=False)
class Ticket:
    """Masks, rewound weights and remaining state of one pruned network, plus provenance ``meta``.

    ``masks`` and ``weights`` are keyed by the prunable parameter names (in model order); ``state``
    holds every other ``state_dict`` entry. Pruned entries of ``weights`` are exactly zero.
    """

    masks: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor]
    state: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def prunable_names(self) -> tuple[str, ...]:
        """Names of the masked parameters, in model order."""
        return tuple(self.masks)

    @property
    def head_names(self) -> tuple[str, ...]:
        """All parameter names of the classifier head (masked or not)."""
        return tuple(self.meta.get("head_names", ()))

    @property
    def density(self) -> float:
        """Kept / prunable weights over all masks (head included)."""
        return _density(self.masks.values())

    def layer_density(self) -> dict[str, float]:
        """Density of each masked parameter."""
        return {name: _density([m]) for name, m in self.masks.items()}

    @property
    def head_density(self) -> float:
        """Density of the masked head parameters (1.0 when the head is not masked)."""
        heads = set(self.head_names)
        return _density([m for name, m in self.masks.items() if name in heads])

    def apply(
        self,
        model: torch.nn.Module,
        *,
        head: str = "auto",
        generator: torch.Generator | None = None,
        reset_head: Callable[[torch.nn.Module, torch.Generator], None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Load this ticket into ``model``; see ``transfer_bench.tickets.apply.apply_ticket``."""
        from transfer_bench.tickets.apply import apply_ticket

        return apply_ticket(self, model, head=head, generator=generator, reset_head=reset_head)


def _density(masks: Iterable[torch.Tensor]) -> float:
    kept = total = 0
    for m in masks:
        kept += int(torch.count_nonzero(m))
        total += m.numel()
    return kept / total if total else 1.0


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _err(where: object, reason: str, fix: str) -> TicketError:
    return TicketError(_one_line(f"{where}: {reason}; {fix}"))


def _short(value: object, limit: int = 60) -> str:
    """``repr`` of an untrusted value, cut to ``limit`` characters for a one-line message."""
    try:
        r = repr(value)
    except (RecursionError, ValueError):  # absurdly nested JSON, or an int too long to print
        r = f"<{type(value).__name__}>"
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _created_by() -> dict[str, str]:
    try:
        from importlib.metadata import version

        tb = version("transfer-bench")
    except Exception:  # not installed as a distribution (e.g. run from a checkout)
        tb = "unknown"
    return {"transfer_bench": tb, "torch": torch.__version__}


def derived_meta(masks: Mapping[str, torch.Tensor], head_names: Iterable[str]) -> dict[str, Any]:
    """The metadata fields that follow from the masks (recomputed and checked on load)."""
    heads = list(head_names)
    head_set = set(heads)
    return {
        "prunable_names": list(masks),
        "param_shapes": {n: list(m.shape) for n, m in masks.items()},
        "mask_lengths": {n: m.numel() for n, m in masks.items()},
        "head_names": heads,
        "density": _density(masks.values()),
        "layer_density": {n: _density([m]) for n, m in masks.items()},
        "head_density": _density([m for n, m in masks.items() if n in head_set]),
    }


def ticket_from_state(
    state_dict: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor],
    prunable_names: Iterable[str],
    head_names: Iterable[str],
    meta: Mapping[str, Any],
) -> Ticket:
    """Build a ticket from a rewound ``state_dict`` and its masks.

    ``meta`` supplies the provenance fields (model, level, rewind, seed, source, search, suite);
    the mask-derived fields and ``created_by`` (if absent) are filled in here. Weights are copied to
    CPU with pruned entries set to exactly 0; ``meta`` is normalized through JSON so that the
    in-memory ticket equals the one read back from disk.
    """
    where = "ticket_from_state"
    names = list(prunable_names)
    heads = list(head_names)
    if set(masks) != set(names):
        extra = [n for n in masks if n not in names] + [n for n in names if n not in masks]
        raise _err(
            where,
            f"masks and prunable_names differ at {extra[0]!r}",
            "pass one mask per prunable parameter",
        )
    out_masks: dict[str, torch.Tensor] = {}
    weights: dict[str, torch.Tensor] = {}
    for name in names:
        if name not in state_dict:
            raise _err(
                where,
                f"prunable parameter {name!r} is not in the state_dict",
                "pass the model's full state_dict",
            )
        w = state_dict[name].detach().cpu()
        m = masks[name].detach().cpu()
        if m.dtype != torch.bool:
            raise _err(
                where,
                f"mask {name!r} has dtype {m.dtype}, expected torch.bool",
                "pass bool masks (True = kept)",
            )
        if m.shape != w.shape:
            raise _err(
                where,
                f"mask {name!r} has shape {list(m.shape)} but the weight has {list(w.shape)}",
                "pass masks shaped like their parameters",
            )
        out_masks[name] = m.clone().contiguous()
        weights[name] = torch.where(m, w, torch.zeros((), dtype=w.dtype)).contiguous()
    for name in heads:
        if name not in state_dict:
            raise _err(
                where,
                f"head parameter {name!r} is not in the state_dict",
                "pass the model's head_names",
            )
    state = {
        k: v.detach().cpu().clone().contiguous()
        for k, v in state_dict.items()
        if k not in out_masks
    }
    full = dict(meta)
    full.setdefault("created_by", _created_by())
    full.update(derived_meta(out_masks, heads))
    try:
        full = json.loads(json.dumps(full, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise _err(
            where,
            f"meta is not JSON-serializable ({e})",
            "pass plain dicts, lists, numbers and strings",
        ) from None
    ticket = Ticket(masks=out_masks, weights=weights, state=state, meta=full)
    check_ticket(ticket, where)
    return ticket


def check_ticket(ticket: Ticket, where: object) -> None:
    """Raise ``TicketError`` unless the ticket is internally consistent (as load guarantees)."""
    meta = ticket.meta
    if not isinstance(meta, dict):
        raise _err(where, "meta is not a JSON object", _FIX_REEXPORT)
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise _err(
            where,
            f"metadata is missing field(s) {', '.join(missing)}",
            "the file was edited or written by an incompatible tool; " + _FIX_REEXPORT,
        )
    for key in _DICT_META:
        if not isinstance(meta[key], dict):
            raise _err(where, f"metadata field {key!r} must be a JSON object", _FIX_REEXPORT)
    for key in ("level", "seed"):
        if not isinstance(meta[key], int) or isinstance(meta[key], bool):
            raise _err(
                where,
                f"metadata field {key!r} must be an integer, got {_short(meta[key])}",
                _FIX_REEXPORT,
            )
    heads = meta["head_names"]
    if not isinstance(heads, list) or not all(isinstance(h, str) for h in heads):
        raise _err(where, "metadata field 'head_names' must be a list of names", _FIX_REEXPORT)

    names = list(ticket.masks)
    if set(ticket.weights) != set(names):
        odd = [n for n in ticket.weights if n not in ticket.masks] + [
            n for n in names if n not in ticket.weights
        ]
        raise _err(
            where,
            f"parameter {_short(odd[0])} has a mask but no weight or vice versa",
            _FIX_REEXPORT,
        )
    if set(meta["param_shapes"]) != set(names):
        odd = [n for n in meta["param_shapes"] if n not in ticket.masks] + [
            n for n in names if n not in meta["param_shapes"]
        ]
        raise _err(where, f"param_shapes and masks disagree at {_short(odd[0])}", _FIX_REEXPORT)
    overlap = [k for k in ticket.state if k in ticket.masks]
    if overlap:
        raise _err(where, f"{overlap[0]!r} is stored both as a weight and as state", _FIX_REEXPORT)

    for name in names:
        m, w = ticket.masks[name], ticket.weights[name]
        shape = meta["param_shapes"][name]
        if not _is_shape(shape):
            raise _err(
                where, f"param_shapes[{name!r}] = {_short(shape)} is not a shape", _FIX_REEXPORT
            )
        if m.dtype != torch.bool:
            raise _err(where, f"mask {name!r} is not boolean", _FIX_REEXPORT)
        if list(m.shape) != shape or list(w.shape) != shape:
            raise _err(
                where,
                f"parameter {name!r}: mask shape {list(m.shape)} and weight shape "
                f"{list(w.shape)} do not both match the recorded {_short(shape)}",
                "the file is corrupted; " + _FIX_REEXPORT,
            )
        if meta["mask_lengths"].get(name) != m.numel():
            raise _err(
                where,
                f"mask {name!r}: recorded length {_short(meta['mask_lengths'].get(name))} "
                f"!= {m.numel()} entries",
                "the file is corrupted; " + _FIX_REEXPORT,
            )
        if not w.is_floating_point():
            raise _err(where, f"weight {name!r} has non-float dtype {w.dtype}", _FIX_REEXPORT)
        if not bool(torch.isfinite(w).all()):
            raise _err(
                where,
                f"weight {name!r} contains NaN or infinite values",
                "the source training diverged; re-run the search",
            )
        if int(torch.count_nonzero(torch.where(m, torch.zeros((), dtype=w.dtype), w))):
            raise _err(
                where,
                f"weight {name!r} has non-zero values at pruned positions",
                "the file is corrupted; " + _FIX_REEXPORT,
            )
    for name, v in ticket.state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise _err(
                where,
                f"state entry {name!r} contains NaN or infinite values",
                "the source training diverged; re-run the search",
            )

    expected = derived_meta(ticket.masks, heads)
    for key in ("density", "head_density"):
        if not _close(meta[key], expected[key]):
            raise _err(
                where,
                f"metadata {key} {_short(meta[key])} disagrees with the masks "
                f"({expected[key]:.6g})",
                "the metadata was edited; " + _FIX_REEXPORT,
            )
    for name, value in expected["layer_density"].items():
        if not _close(meta["layer_density"].get(name), value):
            raise _err(
                where,
                f"metadata layer_density[{name!r}] disagrees with the mask ({value:.6g})",
                "the metadata was edited; " + _FIX_REEXPORT,
            )


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


# ---------------------------------------------------------------------------------------- writing


def _payload_sha256(header: Mapping[str, Any], data: memoryview) -> str:
    """Canonical digest of the tensors of a parsed safetensors file (see the module docstring)."""
    h = hashlib.sha256()
    for name in sorted(k for k in header if k != "__metadata__"):
        entry = header[name]
        begin, end = entry["data_offsets"]
        desc = json.dumps([name, entry["dtype"], list(entry["shape"])], separators=(",", ":"))
        desc_b = desc.encode()
        h.update(len(desc_b).to_bytes(8, "little"))
        h.update(desc_b)
        h.update((end - begin).to_bytes(8, "little"))
        h.update(data[begin:end])
    return h.hexdigest()


def _split_blob(blob: bytes) -> tuple[dict[str, Any], memoryview]:
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + n]), memoryview(blob)[8 + n :]


_ST_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def _layout(
    tensors: Mapping[str, torch.Tensor], where: object = "ticket"
) -> tuple[dict[str, Any], bytes]:
    """Safetensors header entries and data buffer for ``tensors``, independent of dict order.

    Tensors are laid out by decreasing item size, then by name, so that every tensor starts at a
    multiple of its item size (the data starts 8-aligned) with no gaps, as safetensors requires.
    """
    entries: dict[str, Any] = {}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors, key=lambda k: (-tensors[k].element_size(), k)):
        t = tensors[name].detach().cpu().contiguous()
        dtype = _ST_DTYPES.get(t.dtype)
        if dtype is None:
            raise _err(
                where,
                f"tensor {name!r} has dtype {t.dtype}, which a ticket cannot store",
                "convert it to a float, integer or bool dtype before saving",
            )
        b = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        entries[name] = {
            "dtype": dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(b)],
        }
        chunks.append(b)
        offset += len(b)
    return entries, b"".join(chunks)


def _container(entries: Mapping[str, Any], data: bytes, metadata: Mapping[str, str]) -> bytes:
    """A safetensors file: u64le header length, JSON header (sorted keys, space-padded to a
    multiple of 8), data. Byte-identical for equal inputs, unlike safetensors' own writer, whose
    metadata order varies from call to call (a Rust hash map)."""
    header = {"__metadata__": dict(metadata), **entries}
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    return len(hb).to_bytes(8, "little") + hb + data


def _file_sha256(metadata: Mapping[str, str], header: Mapping[str, Any], data: memoryview) -> str:
    """Version-2 digest of a whole ticket: every metadata entry but ``sha256`` itself (sorted by
    key, each as ``u64le(len) + bytes`` of key and value), then the payload as in version 1."""
    h = hashlib.sha256()
    for key in sorted(k for k in metadata if k != "sha256"):
        for part in (key.encode(), str(metadata[key]).encode()):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
    h.update(bytes.fromhex(_payload_sha256(header, data)))
    return h.hexdigest()


def _encode(
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    where: object = "ticket",
    version: int = FORMAT_VERSION,
) -> bytes:
    """The bytes of a ticket file holding ``tensors`` and ``meta`` (digest computed here)."""
    if sys.byteorder != "little":  # raw tensor bytes must be little-endian as the format says
        raise _err(
            where,
            "saving tickets on a big-endian machine is not supported",
            "save on a little-endian machine",
        )
    entries, data = _layout(tensors, where)
    try:
        meta_json = json.dumps(meta, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise _err(
            where, f"meta is not JSON-serializable ({e})", "pass plain JSON values in meta"
        ) from None
    metadata = {"format": FORMAT_NAME, "format_version": str(version), "meta": meta_json}
    if version == 1:
        metadata["payload_sha256"] = _payload_sha256(entries, memoryview(data))
    else:
        metadata["sha256"] = _file_sha256(metadata, entries, memoryview(data))
    return _container(entries, data, metadata)


def _tensors_v2(ticket: Ticket) -> dict[str, torch.Tensor]:
    """Version-2 tensors: packed masks, the kept values of each masked parameter (row-major, in
    the mask's order), and the other state dense."""
    out: dict[str, torch.Tensor] = {}
    for name, m in ticket.masks.items():
        bits = m.detach().cpu().numpy().reshape(-1)
        out[MASK_PREFIX + name] = torch.from_numpy(np.packbits(bits))
        w = ticket.weights[name].detach().cpu()
        out[KEPT_PREFIX + name] = w.reshape(-1)[m.detach().cpu().reshape(-1)].clone()
    for name, v in ticket.state.items():
        out[STATE_PREFIX + name] = v.detach().cpu().clone().contiguous()
    return out


def _tensors(ticket: Ticket) -> dict[str, torch.Tensor]:
    """Version-1 tensors (dense weights); kept for tests and ``ticket upgrade`` comparisons."""
    out: dict[str, torch.Tensor] = {}
    for name, m in ticket.masks.items():
        bits = m.detach().cpu().numpy().reshape(-1)
        out[MASK_PREFIX + name] = torch.from_numpy(np.packbits(bits))
    for name, w in ticket.weights.items():
        out[WEIGHT_PREFIX + name] = w.detach().cpu().clone().contiguous()
    for name, v in ticket.state.items():
        out[STATE_PREFIX + name] = v.detach().cpu().clone().contiguous()
    return out


def ticket_bytes(ticket: Ticket) -> bytes:
    """Serialize a (checked) ticket to the bytes of a ``.ticket`` file, deterministically.

    Equal tickets give equal bytes in any process: the header's keys (metadata included) are
    sorted and tensors are laid out in a fixed order.
    """
    return _encode(_tensors_v2(ticket), ticket.meta)


def save_ticket(ticket: Ticket, path: str | os.PathLike[str]) -> Path:
    """Check and write ``ticket`` to ``path`` atomically (temp file in the same folder, replace)."""
    path = Path(path)
    check_ticket(ticket, path)
    blob = _encode(_tensors_v2(ticket), ticket.meta, path)
    atomic_write_bytes(path, blob)
    return path


# ---------------------------------------------------------------------------------------- reading


def _read(path: Path) -> bytes:
    fix = "check the path (tickets are .ticket files written by transfer-bench)"
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _err(
                    path,
                    f"file is only {len(head)} bytes, too short for a safetensors ticket",
                    "it is truncated or not a ticket; " + fix,
                )
            if head.startswith(b"PK\x03\x04"):
                raise _err(
                    path,
                    "is a zip archive (e.g. a torch.save file), not a safetensors ticket",
                    "tickets are never pickles; export it with transfer-bench",
                )
            if head[0] == 0x80 and 2 <= head[1] <= 5:
                raise _err(
                    path,
                    "is a Python pickle, not a safetensors ticket",
                    "pickles are never loaded; export it with transfer-bench",
                )
            n = int.from_bytes(head, "little")
            if n > MAX_HEADER_BYTES:
                raise _err(
                    path,
                    f"declares a {n}-byte header (limit {MAX_HEADER_BYTES} bytes)",
                    "it is corrupted or not a safetensors ticket; " + fix,
                )
            size = os.fstat(f.fileno()).st_size
            if 8 + n > size:
                raise _err(
                    path,
                    f"is truncated: its header needs {8 + n} bytes but the file has {size}",
                    "copy the file again",
                )
            return head + f.read()
    except FileNotFoundError:
        raise _err(path, "no such ticket file", fix) from None
    except IsADirectoryError:
        raise _err(path, "is a directory, not a ticket file", fix) from None
    except OSError as e:
        raise _err(path, f"cannot be read ({e.strerror})", "check the file's permissions") from None
    except ValueError as e:  # e.g. a NUL byte in the path
        raise _err(path, f"is not a usable path ({e})", fix) from None


def _parse(path: Path, raw: bytes) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    n = int.from_bytes(raw[:8], "little")
    not_st = "it is not a safetensors ticket or is corrupted"
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise _err(path, "header is not valid JSON", not_st) from None
    if not isinstance(header, dict):
        raise _err(path, "header is not a JSON object", not_st)
    block = header.get("__metadata__")
    if not isinstance(block, dict) or "format" not in block:
        raise _err(
            path,
            "has no 'format' metadata, so it is not a transfer-bench ticket",
            "pass a .ticket file written by transfer-bench",
        )
    if block["format"] != FORMAT_NAME:
        raise _err(
            path,
            f"format {_short(block['format'])} is not {FORMAT_NAME!r}",
            "pass a .ticket file written by transfer-bench",
        )
    version = block.get("format_version")
    try:
        v = int(version)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _err(
            path,
            f"format_version {_short(version)} is not a version number",
            "the file was edited; " + _FIX_REEXPORT,
        ) from None
    if v > FORMAT_VERSION:
        raise _err(
            path,
            f"format_version {v} is newer than this transfer-bench supports ({FORMAT_VERSION})",
            "upgrade transfer-bench",
        )
    if v not in SUPPORTED_VERSIONS:
        raise _err(path, f"unknown format_version {v}", _FIX_REEXPORT)
    try:
        tensors = _st_load(raw)
    except Exception as e:  # safetensors raises its own error types for malformed files
        raise _err(
            path,
            f"is not a valid safetensors file ({e})",
            "it is truncated or corrupted; copy it again",
        ) from None
    key = "payload_sha256" if v == 1 else "sha256"
    expected = block.get(key)
    if not isinstance(expected, str):
        raise _err(path, f"has no {key} metadata", "the file was edited; " + _FIX_REEXPORT)
    data = memoryview(raw)[8 + n :]
    try:
        if v == 1:
            actual = _payload_sha256(header, data)
        else:
            _check_canonical(path, raw[: 8 + n], header, block)
            actual = _file_sha256(block, header, data)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # json safetensors accepted
        raise _err(
            path, f"header is malformed ({_short(e)})", "it is corrupted; copy it again"
        ) from None
    if actual != expected:
        raise _err(
            path,
            f"{'payload ' if v == 1 else ''}sha256 mismatch (recorded {expected[:12]}..., "
            f"computed {actual[:12]}...): the file "
            f"{'(tensors or metadata) ' if v == 2 else ''}was modified or corrupted",
            "copy the original file again or re-run the search",
        )
    return block, tensors


_ST_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1}
_ST_SIZES |= {"U8": 1, "BOOL": 1}


def _check_canonical(
    path: Path, raw_header: bytes, header: Mapping[str, Any], block: Mapping[str, str]
) -> None:
    """Version 2: the header must be exactly what ``save_ticket`` writes for these tensors and
    metadata (sorted keys, canonical offsets, padding), so that no byte of the file is free:
    data and metadata are covered by ``sha256``, everything else by this check."""
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    order = sorted(tensors, key=lambda k: (-_ST_SIZES[tensors[k]["dtype"]], k))
    entries: dict[str, Any] = {}
    offset = 0
    for name in order:
        e = tensors[name]
        size = _ST_SIZES[e["dtype"]] * int(np.prod(e["shape"], dtype=np.int64))
        entries[name] = {"dtype": e["dtype"], "shape": list(e["shape"])}
        entries[name]["data_offsets"] = [offset, offset + size]
        offset += size
    canonical = _container(entries, b"", block)
    if canonical != raw_header:
        raise _err(
            path,
            "header differs from its canonical form (edited outside transfer-bench)",
            "copy the original file again; " + _FIX_REEXPORT,
        )


def load_ticket(path: str | os.PathLike[str]) -> Ticket:
    """Read and fully verify a ``.ticket`` file; any problem is a one-line ``TicketError``."""
    path = Path(path)
    raw = _read(path)
    block, tensors = _parse(path, raw)
    try:
        meta = json.loads(block.get("meta", ""))
    except (ValueError, RecursionError):
        raise _err(
            path,
            "metadata 'meta' is missing or not valid JSON",
            "the file was edited; " + _FIX_REEXPORT,
        ) from None
    if not isinstance(meta, dict):
        raise _err(
            path, "metadata 'meta' is not a JSON object", "the file was edited; " + _FIX_REEXPORT
        )
    try:
        ticket = _build(path, meta, tensors, int(block["format_version"]))
        check_ticket(ticket, path)
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
    ) as e:  # last line of defence: metadata of a shape the checks above did not foresee
        raise _err(
            path,
            f"malformed ticket metadata ({_short(e, 120)})",
            "the file was edited; " + _FIX_REEXPORT,
        ) from None
    return ticket


def verify_ticket(path: str | os.PathLike[str]) -> Ticket:
    """Verify a ticket file (digest, metadata, masks, weights); return it or raise TicketError."""
    return load_ticket(path)


def _build(
    path: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor], version: int = 1
) -> Ticket:
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise _err(
            path,
            f"metadata is missing field(s) {', '.join(missing)}",
            "the file was edited or written by an incompatible tool; " + _FIX_REEXPORT,
        )
    shapes, lengths = meta["param_shapes"], meta["mask_lengths"]
    if not isinstance(shapes, dict) or not isinstance(lengths, dict):
        raise _err(path, "metadata param_shapes/mask_lengths must be JSON objects", _FIX_REEXPORT)
    order = meta.get("prunable_names", list(shapes))
    if not isinstance(order, list) or set(order) != set(shapes) or len(order) != len(shapes):
        raise _err(
            path,
            "metadata prunable_names and param_shapes disagree",
            "the file was edited; " + _FIX_REEXPORT,
        )

    packed: dict[str, torch.Tensor] = {}
    weights: dict[str, torch.Tensor] = {}
    state: dict[str, torch.Tensor] = {}
    values_prefix = WEIGHT_PREFIX if version == 1 else KEPT_PREFIX
    for key, t in tensors.items():
        for prefix, dest in (
            (MASK_PREFIX, packed),
            (values_prefix, weights),
            (STATE_PREFIX, state),
        ):
            if key.startswith(prefix):
                dest[key[len(prefix) :]] = t
                break
        else:
            raise _err(
                path,
                f"unexpected tensor {_short(key)} (expected mask/, {values_prefix} or state/ "
                f"names in a version-{version} ticket)",
                _FIX_REEXPORT,
            )

    for kind, found in (("mask", packed), ("weight", weights)):
        for name in found:
            if name not in shapes:
                raise _err(
                    path,
                    f"{kind} {_short(name)} is not listed in param_shapes",
                    "the file is corrupted; " + _FIX_REEXPORT,
                )
    masks: dict[str, torch.Tensor] = {}
    ordered_weights: dict[str, torch.Tensor] = {}
    for name in order:
        if name not in packed or name not in weights:
            raise _err(
                path,
                f"parameter {_short(name)} lacks its mask or weight tensor",
                "the file is corrupted; " + _FIX_REEXPORT,
            )
        shape = shapes[name]
        if not _is_shape(shape):
            raise _err(
                path, f"param_shapes[{name!r}] = {_short(shape)} is not a shape", _FIX_REEXPORT
            )
        w = weights[name]
        if version == 2:
            w = _scatter_kept(path, name, w, packed.get(name), shape)
        if list(w.shape) != shape:  # compared first: the tensor's shape is bounded by the file
            raise _err(
                path,
                f"weight {name!r} has shape {list(w.shape)} but its mask has {_short(shape)}",
                "the file is corrupted; " + _FIX_REEXPORT,
            )
        length = lengths.get(name)
        if not isinstance(length, int) or isinstance(length, bool) or length != w.numel():
            raise _err(
                path,
                f"mask_lengths[{name!r}] = {_short(length)} does not match shape {shape}",
                "the file is corrupted; " + _FIX_REEXPORT,
            )
        p = packed[name]
        if p.dtype != torch.uint8 or p.dim() != 1 or p.numel() != (length + 7) // 8:
            raise _err(
                path,
                f"mask {name!r} holds {p.numel()} {p.dtype} elements, expected "
                f"{(length + 7) // 8} torch.uint8 bytes for {length} entries",
                "the file is corrupted; " + _FIX_REEXPORT,
            )
        bits = np.unpackbits(p.numpy())
        if bits[length:].any():
            raise _err(
                path,
                f"mask {name!r} has non-zero pad bits beyond its {length} entries",
                "the file is corrupted; " + _FIX_REEXPORT,
            )
        masks[name] = torch.from_numpy(bits[:length].astype(bool)).reshape(shape)
        ordered_weights[name] = w
    return Ticket(masks=masks, weights=ordered_weights, state=state, meta=meta)


def _scatter_kept(
    path: Path, name: str, kept: torch.Tensor, packed: torch.Tensor | None, shape: list[int]
) -> torch.Tensor:
    """Version 2: the dense rewound weight from a parameter's kept values and packed mask."""
    if not _is_shape(shape):
        raise _err(path, f"param_shapes[{name!r}] = {_short(shape)} is not a shape", _FIX_REEXPORT)
    length = int(np.prod(shape, dtype=np.int64))
    if packed is None or packed.dtype != torch.uint8 or packed.dim() != 1:
        raise _err(path, f"mask {name!r} is missing or not packed bytes", _FIX_REEXPORT)
    if packed.numel() != (length + 7) // 8:
        raise _err(
            path,
            f"mask {name!r} holds {packed.numel()} bytes, expected {(length + 7) // 8} for shape "
            f"{shape}",
            "the file is corrupted; " + _FIX_REEXPORT,
        )
    bits = np.unpackbits(packed.numpy())[:length].astype(bool)
    if kept.dim() != 1 or not kept.is_floating_point():
        raise _err(
            path,
            f"kept values of {name!r} must be a 1-D float tensor, got {kept.dtype} "
            f"{list(kept.shape)}",
            "the file is corrupted; " + _FIX_REEXPORT,
        )
    if kept.numel() != int(bits.sum()):
        raise _err(
            path,
            f"{name!r} stores {kept.numel()} kept values but its mask keeps {int(bits.sum())}",
            "the file is corrupted; " + _FIX_REEXPORT,
        )
    dense = torch.zeros(length, dtype=kept.dtype)
    dense[torch.from_numpy(bits)] = kept
    return dense.reshape(shape)


def upgrade_ticket(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Verify ``src`` (any supported version) and write it as the current version to ``dst``."""
    return save_ticket(load_ticket(src), dst)


# ---------------------------------------------------------------------------------------- display


def describe(ticket: Ticket) -> list[dict[str, Any]]:
    """One row per masked parameter (layer, shape, kept, total, density, is_head) for a table."""
    heads = set(ticket.head_names)
    rows = []
    for name, m in ticket.masks.items():
        kept, total = int(torch.count_nonzero(m)), m.numel()
        rows.append(
            {
                "layer": name,
                "shape": list(m.shape),
                "kept": kept,
                "total": total,
                "density": kept / total if total else 1.0,
                "is_head": name in heads,
            }
        )
    return rows

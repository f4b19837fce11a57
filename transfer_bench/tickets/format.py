"""The portable ticket file: one safetensors file per ticket (suffix ``.ticket``), never pickle.

A ticket is a pruning mask plus the rewound weights it applies to, so that it can be retrained on
another dataset or optimizer, shared, and checked without running any code from the file.

Layout (format ``transfer-bench-ticket``, ``format_version`` 2; the README has the full spec):

- tensor ``mask/<param>``: ``np.packbits(mask.flatten())`` as uint8 (numpy's default big bit order),
  for every prunable parameter; pad bits after the recorded length are zero;
- tensor ``kept/<param>``: the rewound values of the kept weights only, 1-D, row-major mask order;
- tensor ``state/<name>``: every other entry of the rewound ``state_dict`` (biases, BN statistics,
  ``num_batches_tracked``...), dense, dtypes kept;
- metadata ``format``, ``format_version``, ``meta`` (a JSON object, see ``REQUIRED_META``) and
  ``sha256``: over every other metadata entry and then the tensors (``container.file_sha256``), so
  provenance is covered too; the header must be in canonical form, so no byte is free.

Version 1 (still read) stored dense ``weight/<param>`` values and a ``payload_sha256`` over the
tensors only.

Writing is byte-deterministic (equal tickets give equal files in any process): transfer-bench writes
the safetensors container itself, with the JSON header's keys sorted (``__metadata__`` and ``meta``
included), compact separators, the header space-padded to a multiple of 8, and the tensors laid out
by decreasing item size, then name (naturally aligned, no gaps). Any safetensors reader loads it.

``load_ticket`` verifies everything (header size, format, version, digest, metadata, mask/weight
agreement, pad bits, finite weights and state, zero pruned weights) and turns every problem into a one-line
``TicketError`` naming the file, the reason and the fix. Reading and checking is numpy-only
(:mod:`~transfer_bench.tickets.container`, :mod:`~transfer_bench.tickets.verify`); this module adds
the torch side: the ``Ticket`` of tensors, building one from a model's state, and writing.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as _st_save  # noqa: F401  (tests build raw files with it)

from transfer_bench import __version__
from transfer_bench.fileio import atomic_write_bytes
from transfer_bench.tickets.container import (
    FIX_REEXPORT,
    MAX_HEADER_BYTES,
    container,
    err,
    file_sha256,
    payload_sha256,
    short,
    split_blob,
)
from transfer_bench.tickets.verify import (
    FORMAT_NAME,
    FORMAT_VERSION,
    KEPT_PREFIX,
    MASK_PREFIX,
    REQUIRED_META,
    STATE_PREFIX,
    SUPPORTED_VERSIONS,
    WEIGHT_PREFIX,
    TicketArrays,
    check_arrays,
    density,
    read_ticket_arrays,
)
from transfer_bench.tickets.verify import derived_meta as _derived_meta
from transfer_bench.tickets.verify import describe as _describe

TICKET_SUFFIX = ".ticket"

# Old private names, used by tests and interop (one implementation each, in container/verify).
_err, _short, _FIX_REEXPORT = err, short, FIX_REEXPORT
_container, _split_blob, _payload_sha256 = container, split_blob, payload_sha256
__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KEPT_PREFIX",
    "MASK_PREFIX",
    "MAX_HEADER_BYTES",
    "REQUIRED_META",
    "STATE_PREFIX",
    "SUPPORTED_VERSIONS",
    "TICKET_SUFFIX",
    "WEIGHT_PREFIX",
    "Ticket",
    "check_ticket",
    "derived_meta",
    "describe",
    "load_ticket",
    "save_ticket",
    "ticket_bytes",
    "ticket_from_state",
    "upgrade_ticket",
    "verify_ticket",
]


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
        return density(self.masks.values())

    def layer_density(self) -> dict[str, float]:
        """Density of each masked parameter."""
        return {name: density([m]) for name, m in self.masks.items()}

    @property
    def head_density(self) -> float:
        """Density of the masked head parameters (1.0 when the head is not masked)."""
        heads = set(self.head_names)
        return density([m for name, m in self.masks.items() if name in heads])


def _created_by() -> dict[str, str]:
    return {"transfer_bench": __version__, "torch": torch.__version__}


def derived_meta(masks: Mapping[str, torch.Tensor], head_names: Iterable[str]) -> dict[str, Any]:
    """The metadata fields that follow from the masks (recomputed and checked on load)."""
    return _derived_meta({n: _np(m) for n, m in masks.items()}, head_names)


def _np(t: torch.Tensor) -> np.ndarray:
    """A CPU numpy view of a tensor; bfloat16 as its raw bits (as :mod:`container` reads it)."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def _arrays(ticket: Ticket, where: object) -> TicketArrays:
    """Numpy views of an in-memory ticket, for the one set of checks in :mod:`verify`."""
    dtypes: dict[str, str] = {}
    for prefix, tensors in ((WEIGHT_PREFIX, ticket.weights), (STATE_PREFIX, ticket.state)):
        for name, t in tensors.items():
            if not isinstance(t, torch.Tensor) or t.dtype not in _ST_DTYPES:
                what = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
                raise err(
                    where,
                    f"{prefix.rstrip('/')} {name!r} has type {what}, which a ticket cannot store",
                    "pass float, integer or bool tensors",
                )
            dtypes[prefix + name] = _ST_DTYPES[t.dtype]
    for name, m in ticket.masks.items():
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
            raise err(where, f"mask {name!r} is not boolean", FIX_REEXPORT)
    return TicketArrays(
        masks={n: _np(m) for n, m in ticket.masks.items()},
        weights={n: _np(w) for n, w in ticket.weights.items()},
        state={n: _np(v) for n, v in ticket.state.items()},
        dtypes=dtypes,
        meta=ticket.meta,
    )


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
        raise err(
            where,
            f"masks and prunable_names differ at {extra[0]!r}",
            "pass one mask per prunable parameter",
        )
    out_masks: dict[str, torch.Tensor] = {}
    weights: dict[str, torch.Tensor] = {}
    for name in names:
        if name not in state_dict:
            raise err(
                where,
                f"prunable parameter {name!r} is not in the state_dict",
                "pass the model's full state_dict",
            )
        w = state_dict[name].detach().cpu()
        m = masks[name].detach().cpu()
        if m.dtype != torch.bool:
            raise err(
                where,
                f"mask {name!r} has dtype {m.dtype}, expected torch.bool",
                "pass bool masks (True = kept)",
            )
        if m.shape != w.shape:
            raise err(
                where,
                f"mask {name!r} has shape {list(m.shape)} but the weight has {list(w.shape)}",
                "pass masks shaped like their parameters",
            )
        out_masks[name] = m.clone().contiguous()
        weights[name] = torch.where(m, w, torch.zeros((), dtype=w.dtype)).contiguous()
    for name in heads:
        if name not in state_dict:
            raise err(
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
        raise err(
            where,
            f"meta is not JSON-serializable ({e})",
            "pass plain dicts, lists, numbers and strings",
        ) from None
    ticket = Ticket(masks=out_masks, weights=weights, state=state, meta=full)
    check_ticket(ticket, where)
    return ticket


def check_ticket(ticket: Ticket, where: object) -> None:
    """Raise ``TicketError`` unless the ticket is internally consistent (as load guarantees)."""
    if not isinstance(ticket.meta, dict):
        raise err(where, "meta is not a JSON object", FIX_REEXPORT)
    check_arrays(_arrays(ticket, where), where)


# ---------------------------------------------------------------------------------------- writing


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
            raise err(
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


def _encode(
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    where: object = "ticket",
    version: int = FORMAT_VERSION,
) -> bytes:
    """The bytes of a ticket file holding ``tensors`` and ``meta`` (digest computed here)."""
    if sys.byteorder != "little":  # raw tensor bytes must be little-endian as the format says
        raise err(
            where,
            "saving tickets on a big-endian machine is not supported",
            "save on a little-endian machine",
        )
    entries, data = _layout(tensors, where)
    try:
        meta_json = json.dumps(meta, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise err(
            where, f"meta is not JSON-serializable ({e})", "pass plain JSON values in meta"
        ) from None
    metadata = {"format": FORMAT_NAME, "format_version": str(version), "meta": meta_json}
    if version == 1:
        metadata["payload_sha256"] = payload_sha256(entries, memoryview(data))
    else:
        metadata["sha256"] = file_sha256(metadata, entries, memoryview(data))
    return container(entries, data, metadata)


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


def _tensor(array: np.ndarray, dtype: str) -> torch.Tensor:
    t = torch.from_numpy(array.copy(order="C"))
    return t.view(torch.bfloat16) if dtype == "BF16" else t


def load_ticket(path: str | os.PathLike[str]) -> Ticket:
    """Read and fully verify a ``.ticket`` file; any problem is a one-line ``TicketError``."""
    arrays = read_ticket_arrays(path)
    d = arrays.dtypes
    return Ticket(
        masks={n: torch.from_numpy(m) for n, m in arrays.masks.items()},
        weights={n: _tensor(w, d[WEIGHT_PREFIX + n]) for n, w in arrays.weights.items()},
        state={n: _tensor(v, d[STATE_PREFIX + n]) for n, v in arrays.state.items()},
        meta=arrays.meta,
    )


def verify_ticket(path: str | os.PathLike[str]) -> Ticket:
    """Verify a ticket file (digest, metadata, masks, weights); return it or raise TicketError."""
    return load_ticket(path)


def upgrade_ticket(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Verify ``src`` (any supported version) and write it as the current version to ``dst``."""
    return save_ticket(load_ticket(src), dst)


def describe(ticket: Ticket) -> list[dict[str, Any]]:
    """One row per masked parameter (layer, shape, kept, total, density, is_head) for a table."""
    return _describe({n: _np(m) for n, m in ticket.masks.items()}, ticket.head_names)

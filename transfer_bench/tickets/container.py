"""The safetensors container of a ticket file, read and written with numpy only (no torch).

Kept free of torch on purpose: ``ticket verify`` and ``ticket inspect`` read, hash and check a
ticket through this module and :mod:`transfer_bench.tickets.verify` in a fraction of the time a
``import torch`` takes. Tensors come back as numpy arrays keyed by name; safetensors' ``BF16``
(which numpy lacks) comes back as its raw ``uint16`` bits, see :func:`as_float`.

Also the one place for the one-line ``TicketError`` helpers the ticket modules share.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from transfer_bench.errors import TicketError


def looks_like_torch_save(path: Path) -> bool:
    """True if ``path`` starts like a zip archive (``torch.save``) or a pickle (legacy format):
    a file of another tool, never unpickled here."""
    try:
        with path.open("rb") as f:
            head = f.read(2)
    except OSError:
        return False
    return head == b"PK" or (len(head) == 2 and head[0] == 0x80 and head[1] <= 5)


MAX_HEADER_BYTES = 100 * 1024 * 1024
FIX_REEXPORT = "re-export the ticket with transfer-bench"

#: Bytes per element of each safetensors dtype a ticket may hold.
ST_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1}
ST_SIZES |= {"U8": 1, "BOOL": 1}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})
#: numpy dtype of each safetensors dtype as stored (little-endian); BF16 as its raw bits.
NP_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def err(where: object, reason: str, fix: str) -> TicketError:
    """The one-line error every ticket problem becomes: ``WHERE: reason; fix``."""
    return TicketError(one_line(f"{where}: {reason}; {fix}"))


def short(value: object, limit: int = 60) -> str:
    """``repr`` of an untrusted value, cut to ``limit`` characters for a one-line message."""
    try:
        r = repr(value)
    except (RecursionError, ValueError):  # absurdly nested JSON, or an int too long to print
        r = f"<{type(value).__name__}>"
    return r if len(r) <= limit else r[: limit - 3] + "..."


def as_float(dtype: str, array: np.ndarray) -> np.ndarray:
    """Values of a float tensor as a numpy float array (BF16 widened exactly to float32)."""
    if dtype == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array


# ------------------------------------------------------------------------------------ container


def container(entries: Mapping[str, Any], data: bytes, metadata: Mapping[str, str]) -> bytes:
    """A safetensors file: u64le header length, JSON header (sorted keys, space-padded to a
    multiple of 8), data. Byte-identical for equal inputs, unlike safetensors' own writer, whose
    metadata order varies from call to call (a Rust hash map)."""
    header = {"__metadata__": dict(metadata), **entries}
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    return len(hb).to_bytes(8, "little") + hb + data


def split_blob(blob: bytes) -> tuple[dict[str, Any], memoryview]:
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + n]), memoryview(blob)[8 + n :]


def payload_sha256(header: Mapping[str, Any], data: memoryview) -> str:
    """Canonical digest of the tensors of a parsed safetensors file (format version 1): the
    tensors sorted by name, each fed as ``u64le(len(d)) + d`` with ``d = json([name, dtype,
    shape])`` (compact), then ``u64le(len(b)) + b`` with ``b`` its raw bytes."""
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


def file_sha256(metadata: Mapping[str, str], header: Mapping[str, Any], data: memoryview) -> str:
    """Version-2 digest of a whole ticket: every metadata entry but ``sha256`` itself (sorted by
    key, each as ``u64le(len) + bytes`` of key and value), then the payload as in version 1."""
    h = hashlib.sha256()
    for key in sorted(k for k in metadata if k != "sha256"):
        for part in (key.encode(), str(metadata[key]).encode()):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
    h.update(bytes.fromhex(payload_sha256(header, data)))
    return h.hexdigest()


def check_canonical(
    path: object, raw_header: bytes, header: Mapping[str, Any], block: Mapping[str, str]
) -> None:
    """Version 2: the header must be exactly what ``save_ticket`` writes for these tensors and
    metadata (sorted keys, canonical offsets, padding), so that no byte of the file is free:
    data and metadata are covered by ``sha256``, everything else by this check."""
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    order = sorted(tensors, key=lambda k: (-ST_SIZES[tensors[k]["dtype"]], k))
    entries: dict[str, Any] = {}
    offset = 0
    for name in order:
        e = tensors[name]
        size = ST_SIZES[e["dtype"]] * int(np.prod(e["shape"], dtype=np.int64))
        entries[name] = {"dtype": e["dtype"], "shape": list(e["shape"])}
        entries[name]["data_offsets"] = [offset, offset + size]
        offset += size
    if container(entries, b"", block) != raw_header:
        raise err(
            path,
            "header differs from its canonical form (edited outside transfer-bench)",
            "copy the original file again; " + FIX_REEXPORT,
        )


# -------------------------------------------------------------------------------------- reading


def _is_text(head: bytes) -> bool:
    """Whether ``head`` is printable ASCII or whitespace (the start of a text file)."""
    return all(32 <= b < 127 or b in b"\t\n\r" for b in head)


def read_file(path: Path) -> bytes:
    """The bytes of a ticket file, after the cheap checks (pickle/zip, header size, truncation)."""
    fix = "check the path (tickets are .ticket files written by transfer-bench)"
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise err(
                    path,
                    f"file is only {len(head)} bytes, too short for a safetensors ticket",
                    "it is truncated or not a ticket; " + fix,
                )
            if head.startswith(b"PK\x03\x04"):
                raise err(
                    path,
                    "is a zip archive (e.g. a torch.save file), not a safetensors ticket",
                    "tickets are never pickles; export it with transfer-bench",
                )
            if head[0] == 0x80 and 2 <= head[1] <= 5:
                raise err(
                    path,
                    "is a Python pickle, not a safetensors ticket",
                    "pickles are never loaded; export it with transfer-bench",
                )
            n = int.from_bytes(head, "little")
            size = os.fstat(f.fileno()).st_size
            if (n > MAX_HEADER_BYTES or 8 + n > size) and _is_text(head):
                # a real header length has zero high bytes; eight printable ones are text
                # (a result.json, a suite, a log) whose first letters read as a huge length
                raise err(
                    path,
                    f"is a text file (it begins {head.decode('ascii')!r}), not a ticket file",
                    "pass a .ticket file (search runs write level_<L>/ticket.ticket)",
                )
            if n > MAX_HEADER_BYTES:
                raise err(
                    path,
                    f"declares a {n}-byte header (limit {MAX_HEADER_BYTES} bytes)",
                    "it is corrupted or not a safetensors ticket; " + fix,
                )
            if 8 + n > size:
                raise err(
                    path,
                    f"is truncated: its header needs {8 + n} bytes but the file has {size}",
                    "copy the file again",
                )
            return head + f.read()
    except FileNotFoundError:
        raise err(path, "no such ticket file", fix) from None
    except IsADirectoryError:
        raise err(path, "is a directory, not a ticket file", fix) from None
    except OSError as e:
        raise err(path, f"cannot be read ({e.strerror})", "check the file's permissions") from None
    except ValueError as e:  # e.g. a NUL byte in the path
        raise err(path, f"is not a usable path ({e})", fix) from None


def parse_header(path: object, raw: bytes) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON header of a safetensors file and its ``__metadata__`` block (which must name the
    ticket format)."""
    n = int.from_bytes(raw[:8], "little")
    not_st = "it is not a safetensors ticket or is corrupted"
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise err(path, "header is not valid JSON", not_st) from None
    if not isinstance(header, dict):
        raise err(path, "header is not a JSON object", not_st)
    block = header.get("__metadata__")
    if not isinstance(block, dict) or "format" not in block:
        raise err(
            path,
            "has no 'format' metadata, so it is not a transfer-bench ticket",
            "pass a .ticket file written by transfer-bench",
        )
    return header, block


def tensor_arrays(path: object, raw: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor of a safetensors file as a numpy array (name -> array) plus its dtype name.

    The container is validated by safetensors' own parser (offsets in bounds, contiguous, sizes
    matching dtype x shape); the arrays are read-only views of ``raw``-sized copies.
    """
    from safetensors import deserialize

    try:
        items = deserialize(raw)
    except Exception as e:  # safetensors raises its own error types for malformed files
        raise err(
            path,
            f"is not a valid safetensors file ({e})",
            "it is truncated or corrupted; copy it again",
        ) from None
    arrays: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for name, spec in items:
        dtype = spec["dtype"]
        if dtype not in NP_DTYPES:
            raise err(
                path,
                f"tensor {short(name)} has dtype {dtype}, which a ticket cannot hold",
                FIX_REEXPORT,
            )
        arr = np.frombuffer(spec["data"], dtype=NP_DTYPES[dtype])
        arrays[name] = arr.reshape(spec["shape"])
        dtypes[name] = dtype
    return arrays, dtypes

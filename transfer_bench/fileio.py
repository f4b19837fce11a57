"""Atomic file writes: the one implementation every writer of results, tickets and caches uses.

Data goes to a temporary file in the target folder, is flushed and fsynced, made world-readable
(results are meant to be shared; ``mkstemp`` creates 0600), and renamed over the target, so a reader
or an interrupted run never sees a half-written file. A write the disk refuses (full, quota, no
permission, read-only) leaves the previous version of the target untouched, removes the temp file
and raises a one-line :class:`FileWriteError` naming the file and the fix, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from transfer_bench import faults
from transfer_bench.errors import TransferBenchError

_OS_ERROR_IN_TEXT = re.compile(r"os error (\d+)")  # how Rust (safetensors) formats an io::Error
_WRITABLE = "choose a writable --results folder (or --cache-dir, --out)"
_RESUME = "rerun the same command to resume"


class FileWriteError(TransferBenchError):
    """A file could not be written (disk full, quota, permission, read-only file system).

    ``path`` and ``errno`` (None if unknown) are set as attributes (no custom ``__init__``, so the
    error pickles across worker processes).
    """

    path: str = ""
    errno: int | None = None


def _errno_of(exc: BaseException) -> int | None:
    """The OS error number behind ``exc``: its own, a chained OSError's, or one named in its text.

    Serializers such as safetensors and torch.save report a failed write as their own exception
    types, so the number is also looked for in the message and the exception chain.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e.errno
        m = _OS_ERROR_IN_TEXT.search(str(e))
        if m:
            return int(m.group(1))
        e = e.__cause__ or e.__context__
    return None


def _disk_full(folder: Path) -> bool:
    """True if the file system holding ``folder`` has no block left for this user."""
    try:
        return os.statvfs(folder).f_bavail == 0
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return False


def write_error(path: Path, code: int | None, detail: str) -> FileWriteError:
    """The one-line error for a failed write of ``path`` with OS error number ``code``."""
    reason = os.strerror(code) if code is not None else detail
    if code == errno.ENOSPC:
        fix = f"disk full ({reason}); free space and {_RESUME}"
    elif code == getattr(errno, "EDQUOT", -1):
        fix = f"disk quota exceeded ({reason}); free space (or raise the quota) and {_RESUME}"
    elif code in (errno.EACCES, errno.EPERM):
        fix = f"no permission ({reason}); make the folder writable or {_WRITABLE}"
    elif code == errno.EROFS:
        fix = f"read-only file system ({reason}); {_WRITABLE}"
    else:
        fix = f"{reason}; check {path.parent} (space, permissions) and {_RESUME}"
    err = FileWriteError(" ".join(f"{path}: cannot write, {fix}".split()))
    err.path, err.errno = str(path), code
    return err


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` for a temp file next to ``path``, then rename it into place.

    Raises FileWriteError if the disk refuses any step (the temp file is removed, an existing
    ``path`` keeps its previous content); other exceptions from ``write`` pass through unchanged.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        faults.on_write(path)  # reliability tests kill the process here
        os.replace(tmp, path)
    except BaseException as e:
        # Ctrl-C and errors we raised on purpose pass through; so do bugs (no OS error behind).
        ours = isinstance(e, TransferBenchError) or not isinstance(e, Exception)
        code = None if ours else _errno_of(e)
        if code is None and not ours and not isinstance(e, OSError) and tmp is not None:
            code = errno.ENOSPC if _disk_full(path.parent) else None  # opaque serializer error
        if tmp is not None:
            with contextlib.suppress(OSError):
                Path(tmp).unlink(missing_ok=True)
        if ours or not (isinstance(e, OSError) or code is not None):
            raise
        raise write_error(path, code, getattr(e, "strerror", None) or str(e)) from None
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


SUITE_LOCK = ".suite.lock"  # held by whoever writes the files at a suite folder's top


@contextlib.contextmanager
def suite_folder_lock(suite_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the suite folder's lock while writing its own files (suite copy, plan, report, tables,
    figures), and first remove the temp files a killed writer of them left behind.

    Every writer of those files holds this lock, so no temp file it sweeps can belong to a live
    writer (two ``run`` commands on one folder used to lose a plan.json that way). Run folders
    have their own locks. Not reentrant: do not nest it for the same folder.
    """
    suite_dir = Path(suite_dir)
    try:
        suite_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(suite_dir / SUITE_LOCK))
        lock.acquire()
    except OSError as e:
        raise write_error(suite_dir / SUITE_LOCK, e.errno, e.strerror or str(e)) from None
    try:
        for folder in (suite_dir, suite_dir / "figures", suite_dir / "tables"):
            for stale in folder.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        yield suite_dir
    finally:
        lock.release()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

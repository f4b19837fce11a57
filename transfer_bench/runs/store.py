"""The results store: the one place that reads and writes run files.

Layout: ``<root>/<suite>/<run_id>/seed_<s>/`` holding ``config.json``, ``level_<L>/`` folders
(``result.json``, ``ticket.ticket``, ``trained.safetensors``, ``checkpoint.pt`` while running) and
``DONE.json`` (artifacts with sha256) once the run has finished every level it was asked for. Every
write goes to a temporary file in the same folder and is renamed into place, so an interrupted run
never leaves a half-written file behind; checkpoints let it resume mid-level.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from safetensors.torch import load_file, save_file

from transfer_bench.errors import TransferBenchError
from transfer_bench.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_with,
    sha256_file,
)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Atomically save a flat tensor dict as safetensors."""
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write_with(path, lambda tmp: save_file(flat, tmp))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Mid-training checkpoint (model, optimizer, step, history); loaded with ``weights_only``."""
    buf = io.BytesIO()  # serialize first: a failed disk write then reports its real cause
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None if missing or unreadable (then the level restarts)."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a corrupt checkpoint only costs the partial level
        return None


class RunDir:
    """One run's folder (``<suite dir>/<run_id>/seed_<s>``) with typed accessors."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def level(self, level: int) -> Path:
        return self.path / f"level_{level}"

    def ticket_path(self, level: int) -> Path:
        return self.level(level) / "ticket.ticket"

    def result_path(self, level: int) -> Path:
        return self.level(level) / "result.json"

    def trained_path(self, level: int) -> Path:
        return self.level(level) / "trained.safetensors"

    def checkpoint_path(self, level: int) -> Path:
        return self.level(level) / "checkpoint.pt"

    def has_result(self, level: int) -> bool:
        return self.result_path(level).exists()

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.path / "config.json", config)

    def write_result(self, level: int, record: dict[str, Any]) -> None:
        atomic_write_json(self.result_path(level), record)
        self.checkpoint_path(level).unlink(missing_ok=True)

    @property
    def done_path(self) -> Path:
        return self.path / "DONE.json"

    def done_levels(self) -> set[int]:
        if not self.done_path.exists():
            return set()
        try:
            return set(read_json(self.done_path)["levels"])
        except (ValueError, KeyError, OSError):
            return set()

    def mark_done(self, levels: list[int]) -> None:
        artifacts = {
            str(p.relative_to(self.path)): sha256_file(p)
            for p in sorted(self.path.rglob("*"))
            if p.is_file() and p.name not in {"DONE.json", ".lock"} and not p.name.endswith(".tmp")
        }
        atomic_write_json(self.done_path, {"levels": sorted(levels), "artifacts": artifacts})

    def tidy(self) -> bool:
        """Remove temporary files a killed writer left, if nobody holds the run's lock now (never
        waits); True if the folder was tidied. Used after stopping pool workers mid-write."""
        lock = FileLock(str(self.path / ".lock"), timeout=0)
        try:
            lock.acquire()
        except (Timeout, OSError):
            return False
        try:
            for stale in self.path.rglob(".*.tmp"):
                stale.unlink(missing_ok=True)
            return True
        finally:
            lock.release()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold this run's file lock (another process working on it makes us wait)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TransferBenchError(
                f"{self.path}: cannot create the results folder ({e.strerror}); "
                "choose a writable --results directory"
            ) from None
        lock = FileLock(str(self.path / ".lock"))
        try:
            lock.acquire()
        except OSError as e:
            raise TransferBenchError(
                f"{self.path}: cannot create the run lock ({e.strerror}); free space or choose "
                "a writable --results folder"
            ) from None
        try:
            # temporary files of a process killed mid-write; nobody else writes here while we
            # hold the lock
            for stale in self.path.rglob(".*.tmp"):
                stale.unlink(missing_ok=True)
            yield
        finally:
            lock.release()

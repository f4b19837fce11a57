"""Training devices: validating a device name, resolving ``auto``, GPUs per worker, determinism.

One place decides what a device string means, so ``plan``, ``run``, the pool and Ray agree:

- ``check_device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, else a one-line error (a
  typo such as ``gpu`` or a CUDA device on a machine without one never reaches torch).
- ``resolve_device``: ``auto`` is CUDA, then MPS, then the CPU; a CUDA device also gets the
  deterministic settings (``configure_determinism``) before anything runs on it.
- ``visible_gpus`` / ``gpu_slots``: which GPUs pool workers are pinned to (one GPU per worker
  through ``CUDA_VISIBLE_DEVICES``, ``runs_per_gpu`` workers per GPU).

Determinism on CUDA (``TRANSFER_BENCH_DETERMINISTIC``: ``on``, the default; ``warn``; ``off``):
cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` set before its first call, cuDNN must not benchmark and
pick algorithms by speed, and ``torch.use_deterministic_algorithms`` makes every other op take its
deterministic kernel or raise. ``warn`` only warns on ops without one; ``off`` lets cuDNN pick the
fastest (non-reproducible) algorithms. The CPU is left alone: its kernels are deterministic for a
fixed thread count already, and switching modes there could change committed results' last bits.
"""

from __future__ import annotations

import difflib
import os
import re

import torch

from transfer_bench.errors import TransferBenchError

DEVICE_NAMES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
DETERMINISM_ENV = "TRANSFER_BENCH_DETERMINISTIC"
DETERMINISM_MODES: tuple[str, ...] = ("on", "warn", "off")
CUBLAS_WORKSPACE = ":4096:8"


def check_device(name: str, where: str = "--device") -> str:
    """``name`` if it is a device this machine can train on, else a one-line error with the fix."""
    text = str(name).strip()
    base, _, index = text.partition(":")
    if base not in DEVICE_NAMES or (index and (base != "cuda" or not index.isdigit())):
        close = difflib.get_close_matches(base, DEVICE_NAMES, n=1)
        aliases = {"gpu": "cuda", "nvidia": "cuda", "cuda0": "cuda:0", "metal": "mps"}
        hint = aliases.get(base.lower()) or (close[0] if close else None)
        said = f"did you mean {hint!r}? " if hint else ""
        raise TransferBenchError(
            f"{where} {name!r} is not a device; {said}use auto, cpu, cuda, cuda:N or mps"
        )
    if base == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only"
            raise TransferBenchError(
                f"{where} {text}: no CUDA GPU is visible here (torch {torch.__version__}, "
                f"{build}; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}"
                "); use --device cpu or auto, or run where a GPU and its driver are"
            )
        if index and int(index) >= count:
            raise TransferBenchError(
                f"{where} {text}: this machine shows {count} GPU(s), cuda:0..cuda:{count - 1}"
            )
    if base == "mps":
        mps = getattr(torch.backends, "mps", None)
        if not (mps and mps.is_available()):
            raise TransferBenchError(
                f"{where} mps: Apple's Metal backend is not available here; use cpu or auto"
            )
    return text


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; a CUDA device is made deterministic first."""
    if name == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda")
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
    else:
        device = torch.device(check_device(name))
    if device.type == "cuda":
        configure_determinism()
    return device


def determinism_mode() -> str:
    """``$TRANSFER_BENCH_DETERMINISTIC`` (``on`` when unset), validated."""
    mode = os.environ.get(DETERMINISM_ENV, "").strip().lower() or "on"
    if mode not in DETERMINISM_MODES:
        raise TransferBenchError(
            f"{DETERMINISM_ENV}={mode!r}: use on (reproducible), warn or off (fastest)"
        )
    return mode


def configure_determinism(mode: str | None = None) -> str:
    """Set this process's CUDA determinism (see the module docstring); returns the mode.

    Call before the first CUDA computation: ``CUBLAS_WORKSPACE_CONFIG`` is read when cuBLAS starts.
    A value the user set is kept.
    """
    mode = determinism_mode() if mode is None else mode
    if mode == "off":
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True
        torch.use_deterministic_algorithms(False)
        return mode
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=mode == "warn")
    # the loop never reads memory it did not write; filling every new tensor costs time
    torch.utils.deterministic.fill_uninitialized_memory = False
    return mode


_NONDETERMINISTIC = re.compile(r"(\S+) does not have a deterministic implementation")


def nondeterministic_op(err: BaseException) -> str | None:
    """The op named by torch's "... does not have a deterministic implementation" error, if so."""
    found = _NONDETERMINISTIC.search(str(err))
    return found.group(1) if found else None


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (ids or UUIDs)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if not torch.cuda.is_available():
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_slots(device: str, gpus: list[str], runs_per_gpu: int = 1) -> list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` of each pool worker, or None when workers do not use GPUs.

    ``device`` is as asked (``auto``, ``cuda``, ``cuda:N``, ``cpu``): ``auto`` and ``cuda`` spread
    workers over all of ``gpus``, round-robin, ``runs_per_gpu`` per GPU; ``cuda:N`` puts them all
    on GPU N; ``auto`` on a machine without GPUs and ``cpu`` use none.
    """
    if isinstance(runs_per_gpu, bool) or not isinstance(runs_per_gpu, int) or runs_per_gpu < 1:
        raise TransferBenchError(f"--runs-per-gpu {runs_per_gpu!r}: use a whole number >= 1")
    base, _, index = device.partition(":")
    if base not in ("auto", "cuda") or not gpus:
        return None
    if index:
        chosen = [gpus[int(index)]] if int(index) < len(gpus) else []
        if not chosen:
            raise TransferBenchError(f"--device {device}: only {len(gpus)} GPU(s) are visible")
        return chosen * runs_per_gpu
    return [g for _ in range(runs_per_gpu) for g in gpus]

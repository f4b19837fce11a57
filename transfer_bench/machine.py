"""The machine a training ran on: CPU, cores, torch build, device and BLAS, as a small JSON record.

Float results differ between CPUs, thread counts and torch builds (different kernels, different
summation order), so every ``result.json`` carries this fingerprint (with the transfer-bench
version that trained it), reports show it, and comparisons of result folders warn when the builds
differ. ``BUILD_KEYS`` are the fields whose
difference changes the arithmetic; the rest describe the machine.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from transfer_bench import __version__

#: fields that change the floating-point arithmetic of a training when they differ
BUILD_KEYS: tuple[str, ...] = ("cpu", "torch", "build", "device", "blas", "threads")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _blas() -> str:
    """The BLAS/LAPACK torch was built with (from ``torch.__config__.show()``)."""
    config = torch.__config__.show()
    found = re.search(r"BLAS_INFO=([\w-]+)", config)
    name = found.group(1) if found else ""
    if torch.backends.mkl.is_available():
        name = name or "mkl"
    return name or "unknown"


@functools.cache
def _static() -> dict[str, Any]:
    cuda = torch.version.cuda
    return {
        "transfer_bench": __version__,
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "torch": torch.__version__,
        "build": f"cuda {cuda}" if cuda else "cpu",
        "blas": _blas(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def fingerprint(device: torch.device | str = "cpu") -> dict[str, Any]:
    """This process's machine record: static facts plus the device and current torch threads."""
    dev = torch.device(device)
    name = str(dev)
    if dev.type == "cuda" and torch.cuda.is_available():
        name = f"cuda ({torch.cuda.get_device_name(dev)})"
    record = {**_static(), "device": name, "threads": torch.get_num_threads()}
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:  # which GPU(s) a pool or Ray worker was given
        record["visible_gpus"] = visible
    return record


def build_of(record: Mapping[str, Any]) -> tuple:
    """The arithmetic-relevant part of a fingerprint (``BUILD_KEYS``)."""
    return tuple(record.get(k) for k in BUILD_KEYS)


def describe(record: Mapping[str, Any]) -> str:
    """One line: ``Intel Xeon ... (2 cores), 2 torch threads, torch 2.9.1 (cpu build), BLAS mkl``."""
    return (
        f"{record.get('cpu', '?')} ({record.get('cores', '?')} cores), "
        f"{record.get('threads', '?')} torch threads, device {record.get('device', '?')}, "
        f"torch {record.get('torch', '?')} ({record.get('build', '?')} build), "
        f"BLAS {record.get('blas', '?')}"
        + (f", transfer-bench {record['transfer_bench']}" if record.get("transfer_bench") else "")
    )


def differences(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The ``BUILD_KEYS`` on which the given fingerprints disagree (empty: one build)."""
    records = list(records)
    return [k for k in BUILD_KEYS if len({str(r.get(k)) for r in records}) > 1]

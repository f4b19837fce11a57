"""Which arithmetic a training uses: bf16 autocast only where the device has native bf16.

bf16 autocast pays only where the hardware multiplies bf16 natively. On CUDA that is compute
capability 8.0 and newer (A100, H100, RTX 30xx on); V100 and T4 emulate it, slowly, so ``auto``
trains them in fp32. On the CPU, oneDNN has native bf16 kernels with the AVX512_BF16 or AMX
instructions, and emulates bf16 elsewhere (AVX2, plain AVX-512). ``ONEDNN_MAX_CPU_ISA`` below
``AVX512_CORE_BF16`` (e.g. ``AVX2``) also makes it emulated.

``resolve_precision`` is the one place that turns a suite's ``train.precision`` into what is used;
results record its answer.
"""

from __future__ import annotations

import functools
import os
from typing import Literal

import torch

Precision = Literal["fp32", "bf16"]

#: oneDNN ISA caps (``ONEDNN_MAX_CPU_ISA``) that still allow its native bf16 kernels
_BF16_ISAS = frozenset(
    {
        "ALL",
        "AVX512_CORE_BF16",
        "AVX512_CORE_FP16",
        "AVX512_CORE_AMX",
        "AVX512_CORE_AMX_FP16",
        "AVX10_1_512",
        "AVX10_1_512_AMX",
        "AVX10_1_512_AMX_FP16",
        "AVX10_2_512",
        "AVX10_2_512_AMX_2",
    }
)


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_native_bf16(flags: frozenset[str] | None = None, isa_cap: str | None = None) -> bool:
    """True when oneDNN runs bf16 natively on this CPU (AVX512_BF16 or AMX, not capped below)."""
    flags = _cpu_flags() if flags is None else flags
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "") if isa_cap is None else isa_cap
    if cap and cap.upper() not in _BF16_ISAS:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def cuda_native_bf16(capability: tuple[int, int] | None = None) -> bool:
    """True on GPUs of compute capability >= 8.0 (Ampere on); ``capability`` defaults to the
    current device's."""
    if capability is None:
        if not torch.cuda.is_available():
            return False
        capability = torch.cuda.get_device_capability()
    return tuple(capability) >= (8, 0)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 natively (see the module docstring)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else None
        cap = torch.cuda.get_device_capability(index) if torch.cuda.is_available() else None
        return cap is not None and cuda_native_bf16(cap)
    if device.type == "cpu":
        return cpu_native_bf16()
    return False


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """``fp32`` and ``bf16`` as asked; ``auto`` is bf16 on a GPU with native bf16, else fp32.

    The CPU stays fp32 under ``auto`` even with native bf16: bf16 changes results well beyond
    their last bits, so a suite asks for it explicitly (``train.precision: bf16``).
    """
    if requested in ("fp32", "bf16"):
        return requested  # type: ignore[return-value]
    if requested != "auto":
        raise ValueError(f"train.precision {requested!r}: use auto, fp32 or bf16")
    return "bf16" if device.type == "cuda" and native_bf16(device) else "fp32"

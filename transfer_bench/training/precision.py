"""Which arithmetic a training uses: ``train.precision`` (``auto``, ``fp32``, ``bf16``) resolved.

bf16 autocast pays only where the hardware multiplies bf16 natively. On CUDA that is compute
capability 8.0 and newer (A100, H100, RTX 30xx on); V100 and T4 emulate it, slowly, so ``auto``
trains them in fp32. On the CPU, oneDNN has native bf16 kernels with the AVX512_BF16 or AMX
instructions, and emulates bf16 elsewhere (AVX2, plain AVX-512). ``ONEDNN_MAX_CPU_ISA`` below
``AVX512_CORE_BF16`` (e.g. ``AVX2``) also makes it emulated.

**The rule for ``auto``: bf16 on a GPU with native bf16, fp32 everywhere else, including CPUs with
native bf16.** Measured with ``benchmarks/cpu_precision.py`` (a training step of the ``cpu``-scale
nets with ``train()``, batch 64, 1 thread, speed-ups over fp32 NCHW within interleaved rounds; the
tables are in ``benchmarks/README.md``):

- With native bf16 (AMD EPYC Zen 5, AVX512_BF16) bf16 pays mainly together with channels_last, and
  for the width-8 nets the suites run it adds ~1.2x to channels_last alone: VGG19, ResNet-18 and
  ResNet-20 at width 8 train 1.25-1.40x faster with fp32 channels_last, 1.49-1.69x with bf16
  channels_last, 1.08-1.16x with bf16 in NCHW. Wider nets gain more: Conv-4 2.35x and ResNet-20
  at width 16 1.85x with bf16 channels_last (fp32 channels_last: 1.23x).
- Where bf16 is emulated it costs. With AVX-512 but no AVX512_BF16 (``ONEDNN_MAX_CPU_ISA=
  AVX512_CORE``) bf16 trains at 0.5-0.7x of fp32's speed (0.5-0.8x with channels_last). With AVX2
  (``ONEDNN_MAX_CPU_ISA=AVX2``, as on AVX2-only CPUs; torch then runs bf16 convolutions outside
  oneDNN) at 0.06-0.13x, i.e. 8-17x slower. A suite that says ``bf16`` is that slow on such hosts;
  :func:`resolve_precision` warns once.
- bf16 is a different computation: logits move by ~1e-3 (fp32 kernels that sum in another order:
  ~1e-7). In 8-epoch ``cpu``-recipe trainings on 4,000 CIFAR-10 images (VGG19 and ResNet-18 at
  width 8, 5 seeds) bf16 channels_last changed test accuracy by +0.4 and +0.5 points on average
  (per-seed differences' sd 1.9 and 1.3 points), no more than fp32 channels_last did to the same
  seeds (0.0 and +0.2, sd 1.6 and 0.7): both change every step's last bits, which grow into a
  different trajectory. No systematic effect was seen at n = 5, but results are not bit-comparable.
- Run ids hash the suite's ``train.precision`` (``auto``), not what it resolves to. An ``auto``
  that became bf16 on native-bf16 CPUs would give one run id different arithmetic on different
  hosts, and change the committed CPU results (all fp32) wherever they are re-run on such a host.

So bf16 on a CPU is asked for explicitly (``train.precision: bf16``), for nets wide enough to gain
on hosts with native bf16; the natural-image ``cpu`` scales state ``precision: fp32`` with
``channels_last: "on"``, which pays on every CPU measured (1.08-1.24x under AVX2). Every result
records the precision it was trained in (``TrainOutcome.precision``).

``resolve_precision`` is the one place that turns a suite's ``train.precision`` into what is used;
results record its answer.
"""

from __future__ import annotations

import functools
import os
import warnings
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


#: devices already warned about emulated bf16 (one warning per process and device type)
_warned: set[str] = set()


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """``fp32`` and ``bf16`` as asked; ``auto`` is bf16 on a GPU with native bf16, else fp32.

    The CPU stays fp32 under ``auto`` even with native bf16 (see the module docstring for the
    measurements): a suite asks for bf16 explicitly (``train.precision: bf16``). Asking for it
    where it is emulated is honoured, since the suite states its precision, with one warning.
    """
    if requested not in ("auto", "fp32", "bf16"):
        raise ValueError(f"train.precision {requested!r}: use auto, fp32 or bf16")
    if requested == "bf16":
        present = device.type == "cpu" or (device.type == "cuda" and torch.cuda.is_available())
        if present and device.type not in _warned and not native_bf16(device):
            _warned.add(device.type)
            warnings.warn(
                f"train.precision: bf16 on a {device.type} without native bf16 is emulated and "
                "slower than fp32 (on an AVX2 CPU 8-17x slower; benchmarks/cpu_precision.py); "
                "consider fp32",
                RuntimeWarning,
                stacklevel=2,
            )
        return "bf16"
    if requested == "fp32":
        return "fp32"
    return "bf16" if device.type == "cuda" and native_bf16(device) else "fp32"

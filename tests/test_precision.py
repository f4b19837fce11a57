"""``train.precision``: what ``auto`` resolves to, and when bf16 is native (precision.py)."""

from __future__ import annotations

import warnings

import pytest
import torch

from transfer_bench.training import precision
from transfer_bench.training.precision import cpu_native_bf16, resolve_precision

CPU = torch.device("cpu")
BF16_CPU = frozenset({"avx2", "avx512f", "avx512_bf16"})


def test_native_bf16_needs_the_flag_and_an_isa_cap_that_allows_it() -> None:
    assert cpu_native_bf16(BF16_CPU, isa_cap="")
    assert cpu_native_bf16(frozenset({"avx2", "amx_bf16", "amx_tile"}), isa_cap="")
    assert not cpu_native_bf16(frozenset({"avx2", "avx512f", "avx512_vnni"}), isa_cap="")
    assert not cpu_native_bf16(frozenset(), isa_cap="")
    for cap in ("AVX2", "avx2", "AVX512_CORE", "AVX512_CORE_VNNI", "SSE41"):
        assert not cpu_native_bf16(BF16_CPU, isa_cap=cap), cap
    for cap in ("ALL", "all", "AVX512_CORE_BF16", "AVX512_CORE_AMX"):
        assert cpu_native_bf16(BF16_CPU, isa_cap=cap), cap


def test_the_isa_cap_is_read_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not cpu_native_bf16(BF16_CPU)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert cpu_native_bf16(BF16_CPU)


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_fp32_on_every_cpu(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda *a, **k: native)
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("fp32", CPU) == "fp32"


def test_explicit_values_are_kept_and_unknown_ones_refused() -> None:
    assert resolve_precision("bf16", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        resolve_precision("fp16", CPU)


def test_auto_on_a_gpu_follows_its_compute_capability(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for capability, expected in (((7, 0), "fp32"), ((7, 5), "fp32"), ((8, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
        assert resolve_precision("auto", torch.device("cuda")) == expected
    assert resolve_precision("auto", torch.device("mps")) == "fp32"


def test_bf16_asked_on_a_cpu_that_emulates_it_warns_once(monkeypatch) -> None:
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda *a, **k: False)
    monkeypatch.setattr(precision, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_precision("bf16", CPU) == "bf16"  # as asked: the suite states it
        assert resolve_precision("bf16", CPU) == "bf16"
    assert len(caught) == 1 and "emulated" in str(caught[0].message)
    monkeypatch.setattr(precision, "cpu_native_bf16", lambda *a, **k: True)
    monkeypatch.setattr(precision, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve_precision("bf16", CPU)
    assert not caught

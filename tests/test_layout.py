"""channels_last on the CPU keeps the 1x1 convolutions oneDNN's AVX2 kernels corrupt in NCHW.

``benchmarks/channels_last_crash.py`` shows the bug: a channels_last 1x1 convolution with stride 2
and 2-7 input channels aborts or segfaults in backward under ``ONEDNN_MAX_CPU_ISA=AVX2`` (34 of 120
shapes here; 0 with the workaround). A narrow ResNet's first shortcut is such a convolution.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from transfer_bench.models import build_model
from transfer_bench.training.layout import corrupts_in_channels_last, to_channels_last


def resnet(width: int, seed: int = 0) -> nn.Module:
    return build_model(
        "resnet20",
        num_classes=10,
        in_channels=3,
        image_size=16,
        seed=seed,
        options={"width": width},
    )


def shortcut_convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]


def test_only_the_narrow_strided_shortcut_is_kept_nchw() -> None:
    narrow = [corrupts_in_channels_last(c) for c in shortcut_convs(resnet(4))]
    assert narrow == [True, False]  # 4 -> 8 (kept NCHW), 8 -> 16 (safe)
    assert not any(corrupts_in_channels_last(c) for c in shortcut_convs(resnet(8)))
    assert not corrupts_in_channels_last(nn.Conv2d(4, 8, 1, stride=1))
    assert not corrupts_in_channels_last(nn.Conv2d(4, 8, 3, stride=2))
    assert not corrupts_in_channels_last(nn.Conv2d(1, 8, 1, stride=2))


def test_layouts_and_gradients_match_nchw() -> None:
    ref, cl = resnet(4), resnet(4)
    handles = to_channels_last(cl, torch.device("cpu"))
    assert len(handles) == 1
    kept, safe = shortcut_convs(cl)
    assert kept.weight.stride() == (4, 1, 1, 1)  # standard strides, not channels_last's (4,1,4,4)
    assert safe.weight.stride() == (8, 1, 8, 8)
    first = next(m for m in cl.modules() if isinstance(m, nn.Conv2d))
    assert first.weight.is_contiguous(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, 16, 16, generator=g)
    y = torch.randint(0, 10, (12,), generator=g)
    F.cross_entropy(ref(x), y).backward()
    F.cross_entropy(cl(x.contiguous(memory_format=torch.channels_last)), y).backward()
    for (name, a), b in zip(ref.named_parameters(), cl.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)
    for h in handles:
        h.remove()
    assert not kept._forward_pre_hooks


def test_gpu_conversion_keeps_every_convolution_channels_last() -> None:
    model = resnet(4)
    assert to_channels_last(model, torch.device("cuda")) == []  # no CUDA needed: layout only
    assert shortcut_convs(model)[0].weight.stride() == (4, 1, 4, 4)


TRAIN = """
import torch
from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.models import build_model
from transfer_bench.training import TrainData, train
torch.set_num_threads(1)
m = build_model("resnet20", num_classes=10, in_channels=3, image_size=16, seed=0,
                options={"width": 4})
g = torch.Generator().manual_seed(0)
x, y = torch.randn(240, 3, 16, 16, generator=g), torch.randint(0, 10, (240,), generator=g)
spec = TrainSpec(optimizer="sgd", batch_size=60, epochs=2, channels_last="on")
out = train(m, TrainData(x, y, x[:60], y[:60]), spec, OptimizerSpec(name="sgd", lr=0.02,
            momentum=0.9), None, order_seed=0)
hooks = sum(len(c._forward_pre_hooks) for c in m.modules())
print("ok", out.iterations, hooks)
"""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="AVX2 is x86 only")
def test_channels_last_training_survives_onednn_avx2_kernels() -> None:
    """Without the workaround this aborts ("double free or corruption") or segfaults here."""
    proc = subprocess.run(
        [sys.executable, "-c", TRAIN],
        capture_output=True,
        text=True,
        env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ok", "8", "0"]  # trained 8 steps; hooks removed afterwards

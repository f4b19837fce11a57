"""Memory layout of conv nets: channels_last, minus the convolutions oneDNN's AVX2 kernels corrupt.

On CPUs where oneDNN runs its AVX2 kernels (AMD EPYC here; any x86 CPU with
``ONEDNN_MAX_CPU_ISA=AVX2``), the weight gradient of a channels_last 1x1 convolution with stride 2
and 2-7 input channels writes outside its buffers: the process aborts with "double free or
corruption", segfaults, or hangs in the kernel (``jit_avx2_1x1_convolution_bwd_weights_t``). That is
the shortcut of a narrow ResNet (width 4: 4 -> 8 channels). 1 or >= 8 input channels, stride 1, 3x3
kernels, NCHW and AVX-512 kernels were all fine in ``benchmarks/channels_last_crash.py``. So on the
CPU those convolutions keep the NCHW layout (their weight and their input), and all others go
channels_last; the cost is one layout copy of a small activation per affected layer.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def corrupts_in_channels_last(conv: nn.Module) -> bool:
    """True for a 2-d convolution of the shape oneDNN's AVX2 1x1 weight-gradient kernel breaks on."""
    return (
        isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (1, 1)
        and conv.stride != (1, 1)
        and 1 < conv.in_channels // conv.groups < 8
    )


def _nchw_input(_module: nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:])


def to_channels_last(model: nn.Module, device: torch.device) -> list[RemovableHandle]:
    """Convert ``model`` to channels_last in place; on the CPU keep the corrupting convolutions NCHW.

    Returns the forward pre-hooks that feed those convolutions NCHW inputs; remove them when done.
    """
    model.to(memory_format=torch.channels_last)
    if device.type != "cpu":
        return []
    handles = []
    for m in model.modules():
        if corrupts_in_channels_last(m):
            # clone, not contiguous(): a 1x1 kernel's channels_last strides already count as
            # contiguous, so contiguous() would return the same tensor
            m.weight.data = m.weight.data.clone(memory_format=torch.contiguous_format)
            handles.append(m.register_forward_pre_hook(_nchw_input))
    return handles

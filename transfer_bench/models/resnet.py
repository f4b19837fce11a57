"""CIFAR-style ResNet-20 (He et al. 2016) as used for lottery tickets in OpenLTH.

Three stages of three basic blocks with widths ``w, 2w, 4w`` (option ``width``, default 16),
BatchNorm, 1x1-conv projection shortcuts where the shape changes, global average pooling and a
``Linear`` head ``fc``. Init follows OpenLTH's defaults (``kaiming_normal`` + ``bn_uniform``):
Kaiming-normal (fan-in, ReLU gain) for every conv and linear weight, BatchNorm scales ~ U(0, 1),
zero BatchNorm shifts; the head bias starts at zero. Parameter names match OpenLTH's
``cifar_resnet_20`` (``conv``, ``bn``, ``blocks.<i>.conv1`` ..., ``fc``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from transfer_bench.errors import ModelError
from transfer_bench.models.registry import check_options, register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (projection when the shape changes)."""

    def __init__(self, f_in: int, f_out: int, downsample: bool) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(f_in, f_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(f_out)
        self.conv2 = nn.Conv2d(f_out, f_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(f_out)
        self.shortcut: nn.Module
        if downsample or f_in != f_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(f_in, f_out, 1, stride=stride, bias=False), nn.BatchNorm2d(f_out)
            )
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images; ``plan`` is ``[(width, num_blocks), ...]`` per stage."""

    def __init__(self, plan: list[tuple[int, int]], in_channels: int, num_classes: int) -> None:
        super().__init__()
        current = plan[0][0]
        self.conv = nn.Conv2d(in_channels, current, 3, stride=1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(current)
        blocks: list[nn.Module] = []
        for stage, (width, num_blocks) in enumerate(plan):
            for index in range(num_blocks):
                blocks.append(BasicBlock(current, width, downsample=stage > 0 and index == 0))
                current = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(current, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(x)))
        out = self.blocks(out)
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def _kaiming(shape: torch.Size, generator: torch.Generator | None) -> torch.Tensor:
    w = torch.empty(shape)
    nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator)
    return w


def openlth_init(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """OpenLTH ``kaiming_normal`` + ``bn_uniform`` init; linear biases zero."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(_kaiming(m.weight.shape, generator))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=generator))
                m.bias.zero_()


def resnet_head_init(model: nn.Module, generator: torch.Generator) -> None:
    """Re-draw the ``fc`` head: Kaiming-normal weight, zero bias."""
    openlth_init(model.fc, generator)


@register_model("resnet20", head_init=resnet_head_init)
def resnet20(
    name: str, *, num_classes: int, in_channels: int, image_size: int, options: dict[str, Any]
) -> tuple[nn.Module, tuple[str, ...]]:
    """ResNet-20: 3 stages x 3 basic blocks, widths ``width``/2x/4x (0.27M params at width 16)."""
    opts = check_options(name, options, {"width": 16})
    width = opts["width"]
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ModelError(
            f"model {name!r} option 'width' must be a positive integer, got {width!r}; "
            "fix model.options.width"
        )
    model = CifarResNet([(width, 3), (2 * width, 3), (4 * width, 3)], in_channels, num_classes)
    openlth_init(model)
    return model, ("fc",)

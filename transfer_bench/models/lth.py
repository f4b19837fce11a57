"""The lottery-ticket zoo of Frankle & Carbin (2019): LeNet-300-100 and Conv-2/4/6.

Weights use Gaussian Glorot init (``xavier_normal_``), biases start at zero, as in the paper. The
classifier head is always the last ``Linear``, named ``fc``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from transfer_bench.errors import ModelError
from transfer_bench.models.registry import check_options, register_model


def glorot_init(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """Gaussian Glorot weights and zero biases for every Conv2d / Linear in ``model``."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w = torch.empty(m.weight.shape, dtype=m.weight.dtype)
                nn.init.xavier_normal_(w, generator=generator)
                m.weight.copy_(w)
                if m.bias is not None:
                    m.bias.zero_()


def glorot_head_init(model: nn.Module, generator: torch.Generator) -> None:
    """Re-draw the ``fc`` head with the zoo's own init (Gaussian Glorot, zero bias)."""
    glorot_init(model.fc, generator)


class LeNet300100(nn.Module):
    """Fully connected 300-100 network on flattened inputs."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x.flatten(1)))
        x = torch.relu(self.fc2(x))
        return self.fc(x)


class ConvNet(nn.Module):
    """VGG-style Conv-2/4/6: pairs of 3x3 convs each followed by 2x2 max-pooling, then FC 256-256."""

    def __init__(
        self, widths: tuple[int, ...], in_channels: int, image_size: int, num_classes: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = in_channels, image_size
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels, size = width, size // 2
        self.features = nn.Sequential(*layers)
        self.fc1 = nn.Linear(channels * size * size, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc(x)


@register_model("lenet_300_100", head_init=glorot_head_init)
def lenet_300_100(
    name: str, *, num_classes: int, in_channels: int, image_size: int, options: dict[str, Any]
) -> tuple[nn.Module, tuple[str, ...]]:
    """LeNet-300-100 (266,610 parameters for 1x28x28 inputs and 10 classes)."""
    check_options(name, options, {})
    model = LeNet300100(in_channels * image_size * image_size, num_classes)
    glorot_init(model)
    return model, ("fc",)


def _conv_builder(widths: tuple[int, ...]):
    def build(
        name: str, *, num_classes: int, in_channels: int, image_size: int, options: dict[str, Any]
    ) -> tuple[nn.Module, tuple[str, ...]]:
        check_options(name, options, {})
        if image_size < 2 ** len(widths):
            raise ModelError(
                f"model {name!r} needs image_size >= {2 ** len(widths)} "
                f"({len(widths)} max-pools), got {image_size}; fix input.image_size"
            )
        model = ConvNet(widths, in_channels, image_size, num_classes)
        glorot_init(model)
        return model, ("fc",)

    return build


conv2 = register_model("conv2", head_init=glorot_head_init)(_conv_builder((64,)))
conv4 = register_model("conv4", head_init=glorot_head_init)(_conv_builder((64, 128)))
conv6 = register_model("conv6", head_init=glorot_head_init)(_conv_builder((64, 128, 256)))

"""Paper-scale CIFAR networks: VGG-11/16/19 (OpenLTH ``cifar_vgg``), ResNet-56 and CIFAR-stem
ResNet-18/50.

- ``vgg11``/``vgg16``/``vgg19``: OpenLTH / Frankle & Carbin CIFAR VGG. 3x3 conv (with bias) + BatchNorm
  + ReLU modules, 2x2 max-pooling between stages (four pools, none after the last stage), global
  average pooling of the 512 final channels (= OpenLTH's ``AvgPool2d(2)`` at 32 px) and one
  ``Linear(512, num_classes)`` head ``fc``. VGG-19 has 20.0M parameters (Frankle & Carbin, Fig. 2).
  Parameter names follow OpenLTH (``layers.<i>.conv.weight``, ``fc.weight``). Option ``width``
  (default 64) scales every stage by ``width / 64`` (``width: 8``: 8-16-32-64-64 channels, 1/64 of
  the FLOPs, the paper's depth and pooling; used by the CPU scales).
- ``resnet56``: the ResNet-20 code of :mod:`transfer_bench.models.resnet` with 9 basic blocks per
  stage (0.85M parameters at width 16).
- ``resnet18``/``resnet50``: torchvision-style ``BasicBlock``/``Bottleneck`` (stride on the 3x3 conv,
  "v1.5") ResNets with the CIFAR stem used for small images: a 3x3 stride-1 conv and no max-pool.
  Names follow torchvision (``conv1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc``);
  11.2M / 23.5M parameters for 10 classes.

All use OpenLTH's init (``kaiming_normal`` conv/linear weights, BatchNorm scales ~ U(0, 1), zero
shifts and biases), which OpenLTH applies to its ImageNet ResNets as well; the head is re-drawn the
same way by ``reset_head``. Every network accepts any ``in_channels`` and runs at 28 and 32 px.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from transfer_bench.errors import ModelError
from transfer_bench.models.registry import check_options, register_model
from transfer_bench.models.resnet import CifarResNet, resnet_head_init


def build_initialized(factory: Callable[[], nn.Module]) -> nn.Module:
    """``factory()`` built on the meta device, then materialized with OpenLTH's init in place.

    Same distribution as :func:`transfer_bench.models.resnet.openlth_init` (Kaiming-normal conv and
    linear weights, zero biases, BatchNorm scales ~ U(0, 1), zero shifts, fresh running stats) but
    skips PyTorch's default init, which would be drawn and thrown away: this halves the build time
    of the 20M-parameter nets. Draws from the global RNG, which ``build_model`` forks and seeds.
    """
    with torch.device("meta"):
        model = factory()
    model = model.to_empty(device="cpu")
    done: set[int] = set()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                done.add(id(m.weight))
                if m.bias is not None:
                    m.bias.zero_()
                    done.add(id(m.bias))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.0, 1.0)
                m.bias.zero_()
                m.reset_running_stats()
                done.update((id(m.weight), id(m.bias)))
    missed = [n for n, p in model.named_parameters() if id(p) not in done]
    if missed:  # pragma: no cover - guards against adding a layer type without an init
        raise ModelError(f"internal: parameters {missed} have no initializer")
    return model


# --------------------------------------------------------------------------- VGG

#: OpenLTH ``cifar_vgg`` plans (Simonyan & Zisserman configurations A, D, E without the last pool).
VGG_PLANS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512),
    "vgg19": (
        *(64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"),
        *(512, 512, 512, 512, "M", 512, 512, 512, 512),
    ),
}


class ConvModule(nn.Module):
    """3x3 conv (with bias, as OpenLTH) + BatchNorm + ReLU."""

    def __init__(self, f_in: int, f_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(f_in, f_out, 3, padding=1)
        self.bn = nn.BatchNorm2d(f_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class CifarVGG(nn.Module):
    """VGG for small images: ``plan`` entries are conv widths or ``"M"`` (2x2 max-pool)."""

    def __init__(self, plan: tuple[int | str, ...], in_channels: int, num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for spec in plan:
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(ConvModule(channels, int(spec)))
                channels = int(spec)
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def scale_plan(plan: tuple[int | str, ...], width: int) -> tuple[int | str, ...]:
    """A VGG plan with every conv width scaled by ``width / 64`` (at least 1 channel each).

    Why: narrow VGGs (``width: 8`` has 1/64 of the FLOPs) keep the depth and the pooling layout of
    the paper's networks while fitting a CPU budget.
    """
    return tuple(s if s == "M" else max(1, int(s) * width // 64) for s in plan)


def _vgg_builder(plan_name: str):
    plan = VGG_PLANS[plan_name]
    pools = sum(1 for s in plan if s == "M")

    def build(
        name: str, *, num_classes: int, in_channels: int, image_size: int, options: dict[str, Any]
    ) -> tuple[nn.Module, tuple[str, ...]]:
        width = _width_option(name, check_options(name, options, {"width": 64}))
        if image_size < 2**pools:
            raise ModelError(
                f"model {name!r} needs image_size >= {2**pools} ({pools} max-pools), "
                f"got {image_size}; fix input.size"
            )
        scaled = scale_plan(plan, width)
        return build_initialized(lambda: CifarVGG(scaled, in_channels, num_classes)), ("fc",)

    build.__doc__ = (
        f"OpenLTH CIFAR {plan_name.upper()} with BatchNorm and a Linear(512, k) head; option "
        "``width`` (default 64) sets the first stage's width, every stage scales with it."
    )
    return build


vgg11 = register_model("vgg11", head_init=resnet_head_init)(_vgg_builder("vgg11"))
vgg16 = register_model("vgg16", head_init=resnet_head_init)(_vgg_builder("vgg16"))
vgg19 = register_model("vgg19", head_init=resnet_head_init)(_vgg_builder("vgg19"))


# --------------------------------------------------------------------------- ResNet-56


def _width_option(name: str, opts: dict[str, Any]) -> int:
    width = opts["width"]
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ModelError(
            f"model {name!r} option 'width' must be a positive integer, got {width!r}; "
            "fix model.options.width"
        )
    return width


@register_model("resnet56", head_init=resnet_head_init)
def resnet56(
    name: str, *, num_classes: int, in_channels: int, image_size: int, options: dict[str, Any]
) -> tuple[nn.Module, tuple[str, ...]]:
    """ResNet-56: 3 stages x 9 basic blocks, widths ``width``/2x/4x (0.85M params at width 16)."""
    width = _width_option(name, check_options(name, options, {"width": 16}))
    plan = [(width, 9), (2 * width, 9), (4 * width, 9)]
    return build_initialized(lambda: CifarResNet(plan, in_channels, num_classes)), ("fc",)


# --------------------------------------------------------------------------- ResNet-18 / 50


def _downsample(f_in: int, f_out: int, stride: int) -> nn.Module | None:
    if stride == 1 and f_in == f_out:
        return None
    return nn.Sequential(
        nn.Conv2d(f_in, f_out, 1, stride=stride, bias=False), nn.BatchNorm2d(f_out)
    )


class BasicBlock(nn.Module):
    """torchvision ``BasicBlock``: two 3x3 conv-BN layers plus the (projected) input."""

    expansion = 1

    def __init__(self, f_in: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(f_in, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(f_in, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision ``Bottleneck`` (v1.5: stride on the 3x3 conv), expansion 4."""

    expansion = 4

    def __init__(self, f_in: int, planes: int, stride: int) -> None:
        super().__init__()
        f_out = planes * self.expansion
        self.conv1 = nn.Conv2d(f_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, f_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(f_out)
        self.downsample = _downsample(f_in, f_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class StemResNet(nn.Module):
    """torchvision ResNet layout with a CIFAR stem (3x3 stride-1 conv, no max-pool)."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks_per_stage: tuple[int, ...],
        width: int,
        in_channels: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        channels = width
        for stage, count in enumerate(blocks_per_stage):
            planes = width * 2**stage
            blocks: list[nn.Module] = []
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(block(channels, planes, stride))
                channels = planes * block.expansion
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.num_stages = len(blocks_per_stage)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        for stage in range(self.num_stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def _stem_resnet_builder(block: type[BasicBlock] | type[Bottleneck], counts: tuple[int, ...]):
    def build(
        name: str, *, num_classes: int, in_channels: int, image_size: int, options: dict[str, Any]
    ) -> tuple[nn.Module, tuple[str, ...]]:
        width = _width_option(name, check_options(name, options, {"width": 64}))
        model = build_initialized(
            lambda: StemResNet(block, counts, width, in_channels, num_classes)
        )
        return model, ("fc",)

    build.__doc__ = (
        f"CIFAR-stem ResNet with {block.__name__} stages {counts}; option ``width`` (default 64) "
        "sets the first stage's width."
    )
    return build


resnet18 = register_model("resnet18", head_init=resnet_head_init)(
    _stem_resnet_builder(BasicBlock, (2, 2, 2, 2))
)
resnet50 = register_model("resnet50", head_init=resnet_head_init)(
    _stem_resnet_builder(Bottleneck, (3, 4, 6, 3))
)

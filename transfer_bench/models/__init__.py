"""Model registry: the lottery-ticket zoo (``lenet_300_100``, ``conv2/4/6``, ``resnet20``), the
paper-scale CIFAR nets (``vgg11/16/19``, ``resnet56``, ``resnet18/50``) and ``timm:<name>``, all
built deterministically from a seed with contract attributes attached."""

from __future__ import annotations

from transfer_bench.models import cifar, lth, resnet, timm_models  # noqa: F401  (register builders)
from transfer_bench.models.registry import (
    build_model,
    count_flops,
    head_parameters,
    list_models,
    prunable_parameters,
    register_model,
    reset_head,
)

__all__ = [
    "build_model",
    "count_flops",
    "head_parameters",
    "list_models",
    "prunable_parameters",
    "register_model",
    "reset_head",
]

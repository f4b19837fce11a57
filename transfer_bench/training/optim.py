"""Optimizer registry and learning-rate schedules.

Adam uses the fused implementation where torch offers it (about 4x cheaper per step than the default
foreach Adam on CPU, see the README's performance section). Schedules are pure functions of the
iteration, so resuming at any step reproduces the same learning rates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from transfer_bench.config import OptimizerSpec, TrainSpec

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter], OptimizerSpec], torch.optim.Optimizer]
OPTIMIZERS: dict[str, OptimizerFactory] = {}


def register_optimizer(name: str) -> Callable[[OptimizerFactory], OptimizerFactory]:
    def deco(fn: OptimizerFactory) -> OptimizerFactory:
        OPTIMIZERS[name] = fn
        return fn

    return deco


@register_optimizer("sgd")
def _sgd(params: Iterable[torch.nn.Parameter], s: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov, weight_decay=s.weight_decay
    )


@register_optimizer("adam")
def _adam(params: Iterable[torch.nn.Parameter], s: OptimizerSpec) -> torch.optim.Optimizer:
    params = list(params)
    try:
        return torch.optim.Adam(
            params, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay, fused=True
        )
    except (RuntimeError, TypeError):  # fused not available for this device/build
        return torch.optim.Adam(params, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)


def build_optimizer(
    params: Iterable[torch.nn.Parameter], spec: OptimizerSpec
) -> torch.optim.Optimizer:
    """Build the optimizer named by ``spec.name``."""
    return OPTIMIZERS[spec.name](params, spec)


def lr_factor(spec: TrainSpec, iteration: int, steps_per_epoch: int) -> float:
    """Multiplier of the base LR at ``iteration`` (0-based): linear warmup times the schedule."""
    warm = min(1.0, (iteration + 1) / spec.warmup_steps) if spec.warmup_steps else 1.0
    if spec.schedule == "constant":
        sched = 1.0
    elif spec.schedule == "step":
        epoch = iteration // steps_per_epoch
        sched = spec.gamma ** sum(1 for m in spec.milestones if epoch >= m)
    else:  # cosine over the whole run
        total = spec.total_iterations(steps_per_epoch)
        sched = 0.5 * (1.0 + math.cos(math.pi * min(iteration, total) / total))
    return warm * sched

"""Optimizer registry and learning-rate schedules.

Adam uses the fused implementation where torch offers it (about 4x cheaper per step than the default
foreach Adam on CPU, see the README's performance section), through :class:`FusedAdam`, which also
skips ``Adam.step``'s per-step Python bookkeeping. Schedules are pure functions of the iteration, so
resuming at any step reproduces the same learning rates.

Every registered optimizer is element-wise (a weight's update depends only on its own gradient and
state), which the training loop relies on: it need not mask gradients, only re-zero pruned weights
after each step (``ELEMENTWISE``; an optimizer with per-layer norms, such as LARS, must not be in it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from transfer_bench.config import OptimizerSpec, TrainSpec

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter], OptimizerSpec], torch.optim.Optimizer]
OPTIMIZERS: dict[str, OptimizerFactory] = {}
#: Optimizers whose update of each weight depends on that weight's gradient and state only.
ELEMENTWISE: set[str] = set()


def register_optimizer(
    name: str, *, elementwise: bool
) -> Callable[[OptimizerFactory], OptimizerFactory]:
    """Register a factory under ``name``; ``elementwise`` says whether the training loop may skip
    masking gradients (see the module docstring)."""

    def deco(fn: OptimizerFactory) -> OptimizerFactory:
        OPTIMIZERS[name] = fn
        if elementwise:
            ELEMENTWISE.add(name)
        return fn

    return deco


# ``Optimizer.add_param_group``, ``state_dict`` and ``load_state_dict`` are wrapped in
# ``torch._disable_dynamo``, whose first call imports torch._dynamo: 1.5-2.3 s of every process's
# first training on this CPU (the loop keeps an epoch-end state for interruptions), for a guard
# that only matters inside torch.compile (optimizers are built and saved outside compiled code).
# The undecorated methods are the same code.
def _undecorated(name: str) -> Callable:
    method = getattr(torch.optim.Optimizer, name)
    return getattr(method, "__wrapped__", method)


_ADD_PARAM_GROUP = _undecorated("add_param_group")
_STATE_DICT = _undecorated("state_dict")
_LOAD_STATE_DICT = _undecorated("load_state_dict")


class _EagerInit:
    """Mixin: build, save and load the optimizer without importing torch._dynamo (see above)."""

    def add_param_group(self, param_group) -> None:
        _ADD_PARAM_GROUP(self, param_group)

    def state_dict(self) -> dict:
        return _STATE_DICT(self)

    def load_state_dict(self, state_dict) -> None:
        _LOAD_STATE_DICT(self, state_dict)
        match_param_layouts(self)


def match_param_layouts(opt: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (moments, momentum) its parameter's memory layout.

    ``load_state_dict`` casts state to the parameter's device and dtype but keeps the layout it was
    saved in. A checkpoint written in NCHW and resumed into a channels_last model would then pair
    a weight with moments in another element order: fused Adam (``torch._fused_adam_``) walks both
    as flat memory and updates each weight with another weight's moments. Copying into
    ``empty_like(param)`` fixes the order; values are unchanged, so a resume stays bit-identical.
    """
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p)
            if not state:
                continue
            for key, value in state.items():
                if (
                    isinstance(value, torch.Tensor)
                    and value.shape == p.shape
                    and value.stride() != p.stride()
                ):
                    state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


# ``SGD.step`` is wrapped in ``_use_grad_for_differentiable``, which imports torch._dynamo on every
# call (cached after the first) to place a graph break, and runs the step with gradients off.
_SGD_STEP = getattr(torch.optim.SGD.step, "__wrapped__", None)


class SGD(_EagerInit, torch.optim.SGD):
    """``torch.optim.SGD`` without importing torch._dynamo: built through ``_EagerInit``, stepped
    through the undecorated ``SGD.step`` under ``no_grad`` (what the decorator does in eager mode
    for a non-differentiable optimizer; bit-identical, tested)."""

    def step(self, closure=None):
        if _SGD_STEP is None or self.defaults.get("differentiable", False):
            return super().step(closure)
        with torch.no_grad():
            return _SGD_STEP(self, closure)


class Adam(_EagerInit, torch.optim.Adam):
    """``torch.optim.Adam``, built without importing torch._dynamo."""


class FusedAdam(Adam):
    """``torch.optim.Adam(fused=True)`` with the per-step Python work hoisted out of ``step``.

    ``Adam.step`` regroups parameters, gradients and state by device and dtype on every call: about
    0.15-0.2 ms on this CPU, 6-8% of a LeNet-300-100 step at batch 60. This ``step`` makes the
    stock state on the first call and then calls the same kernel (``torch._fused_adam_``) on
    cached lists, which gives bit-identical results (tested). Anything unusual (several groups or
    devices, a missing gradient, amsgrad, grad scaling, a tensor learning rate, a closure) takes
    the stock ``Adam.step``; ``load_state_dict`` and ``add_param_group`` drop the cache.
    """

    def __init__(self, params, **kw) -> None:
        super().__init__(params, fused=True, **kw)
        self._cached: tuple[list, list, list, list] | None = None

    def load_state_dict(self, state_dict) -> None:
        self._cached = None
        super().load_state_dict(state_dict)

    def add_param_group(self, param_group) -> None:
        self._cached = None
        super().add_param_group(param_group)  # _EagerInit's

    def _fast_lists(self):
        if self._cached is not None:
            return self._cached
        if len(self.param_groups) != 1:
            return None
        group = self.param_groups[0]
        params = list(group["params"])
        if (
            not params
            or group["amsgrad"]
            or group["maximize"]
            or group.get("decoupled_weight_decay", False)
            or isinstance(group["lr"], torch.Tensor)
            or group.get("differentiable", False)
            or group.get("capturable", False)
            or len({(p.device, p.dtype) for p in params}) != 1
            or not params[0].is_floating_point()
        ):
            return None
        if not self.state and all(p.grad is not None for p in params):
            self._init_state(params)
        if any(p not in self.state for p in params):
            return None
        state = [self.state[p] for p in params]
        self._cached = (
            params,
            [s["exp_avg"] for s in state],
            [s["exp_avg_sq"] for s in state],
            [s["step"] for s in state],
        )
        return self._cached

    def _init_state(self, params: list) -> None:
        """The state ``Adam._init_group`` creates for fused Adam on the first step (zero moments,
        a float32 step count on the parameter's device), made here so that the first step also takes
        the fast path: the stock first step imports torch._dynamo (1.5-2.3 s per process here)."""
        for p in params:
            self.state[p] = {
                "step": torch.zeros((), dtype=torch.float32, device=p.device),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }

    def step(self, closure=None):
        lists = None
        if (
            closure is None
            and getattr(self, "grad_scale", None) is getattr(self, "found_inf", None) is None
        ):
            lists = self._fast_lists()
        grads = [p.grad for p in lists[0]] if lists is not None else None
        if lists is None or any(g is None for g in grads):
            return super().step(closure)
        params, exp_avgs, exp_avg_sqs, steps = lists
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        with torch.no_grad():
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                amsgrad=False,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=False,
                grad_scale=None,
                found_inf=None,
            )
        return None


@register_optimizer("sgd", elementwise=True)
def _sgd(params: Iterable[torch.nn.Parameter], s: OptimizerSpec) -> torch.optim.Optimizer:
    return SGD(
        params, lr=s.lr, momentum=s.momentum, nesterov=s.nesterov, weight_decay=s.weight_decay
    )


@register_optimizer("adam", elementwise=True)
def _adam(params: Iterable[torch.nn.Parameter], s: OptimizerSpec) -> torch.optim.Optimizer:
    params = list(params)
    try:
        return FusedAdam(params, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)
    except (RuntimeError, TypeError):  # fused not available for this device/build
        return Adam(params, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)


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

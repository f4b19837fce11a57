"""Pruning-at-initialization saliency scores, in a registry by name.

Every scorer has the signature ``score(model, masks, data, *, generator) -> {name: Tensor}`` and
returns one score tensor per key of ``masks`` (the prunable weights), shaped like the weight.
Convention for ALL scorers: a higher score means more important; selection
(:func:`transfer_bench.pruning.select.select_top`) keeps the highest scores.

Scorers are pure with respect to the model: they work on a deep copy in eval mode, so the model's
parameters, buffers, ``.grad`` fields and train/eval flags are unchanged afterwards, and they never
touch the global RNG (``random_init`` draws from the given ``torch.Generator``). The current
``masks`` are applied to the copy (pruned weights are zero), so iterative re-scoring sees the pruned
network. Eval mode follows Synaptic-Flow's ``prune_loop`` (``model.eval()`` for every method).

Methods (scores of already-pruned entries are zero and ignored by selection):

- ``magnitude_init``: ``|w|``.
- ``random_init``: i.i.d. U(0, 1) scores from ``generator`` (a random mask baseline).
- ``snip`` - Lee, Ajanthan, Torr, "SNIP: Single-shot Network Pruning based on Connection
  Sensitivity", ICLR 2019 (arXiv 1810.02340). Connection sensitivity ``|dL/dc_j|`` at ``c = 1``
  for the gates ``c`` of ``w * c``, which equals ``|w_j * dL/dw_j|``, normalized by its sum over
  all prunable entries; ``L`` is the summed mean cross-entropy over the data batches.
- ``grasp`` - Wang, Zhang, Grosse, "Picking Winning Tickets Before Training by Preserving Gradient
  Flow", ICLR 2020 (arXiv 2002.07376). The paper's score is ``S(-w) = -w * (H g)`` and the weights
  with the HIGHEST ``S`` are removed. We return ``+w * (H g) = -S`` (as Synaptic-Flow's
  ``pruners.py GraSP`` does), so keeping the highest returned scores removes the highest ``S``.
  ``g`` is the gradient of the cross-entropy of the logits divided by temperature 200, computed
  without graph (first pass); ``H g`` is the gradient of ``g_stop . grad L`` (double backprop,
  second pass with the same temperature, as in both the GraSP and Synaptic-Flow code). Scores are
  normalized by ``|sum| + 1e-10``.
- ``synflow`` - Tanaka, Kunin, Yamins, Ganguli, "Pruning neural networks without any data by
  iteratively conserving synaptic flow", NeurIPS 2020 (arXiv 2006.05467). Every floating entry of
  the state dict (weights, biases, BatchNorm affine and running statistics) is replaced by its
  absolute value, an all-ones input of shape ``(1, C, H, W)`` is fed, ``R = sum(outputs)`` and the
  score is ``|w * dR/dw|``. No data is used. Computed in float64 so deep nets do not overflow.
  Meant to be applied iteratively (see :func:`transfer_bench.pruning.at_init.prune_at_init`).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from transfer_bench.errors import ConfigError, ModelError
from transfer_bench.pruning.masks import Masks, full_masks

Batch = tuple[torch.Tensor, torch.Tensor]
#: One ``(x, y)`` batch (float ``[N, C, H, W]`` inputs, int64 labels) or a sequence of them.
Data = Batch | Sequence[Batch]
Scores = dict[str, torch.Tensor]
ScoreFn = Callable[..., Scores]

GRASP_TEMPERATURE = 200.0
GRASP_EPS = 1e-10


@dataclass(frozen=True)
class Scorer:
    """A registered scoring method.

    ``needs_data``: the method uses labelled batches; ``default_rounds``: pruning rounds used by
    :func:`~transfer_bench.pruning.at_init.prune_at_init` when none are given (100 for SynFlow).
    """

    name: str
    fn: ScoreFn
    needs_data: bool
    default_rounds: int
    reference: str


_SCORERS: dict[str, Scorer] = {}


def register_scorer(
    name: str, *, needs_data: bool, default_rounds: int = 1, reference: str = ""
) -> Callable[[ScoreFn], ScoreFn]:
    """Decorator registering a scoring function under ``name``."""

    def decorate(fn: ScoreFn) -> ScoreFn:
        if name in _SCORERS:
            raise ValueError(f"scorer {name!r} is registered twice")
        _SCORERS[name] = Scorer(name, fn, needs_data, default_rounds, reference)
        return fn

    return decorate


def list_scorers() -> list[str]:
    """Registered scoring method names, sorted."""
    return sorted(_SCORERS)


def get_scorer(name: str) -> Scorer:
    """The scorer registered as ``name``; unknown names raise ConfigError with suggestions."""
    if name in _SCORERS:
        return _SCORERS[name]
    close = difflib.get_close_matches(str(name), list(_SCORERS), n=2)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise ConfigError(
        f"pruning method {name!r} is unknown; {hint}known methods: {', '.join(list_scorers())}"
    )


def compute_scores(
    method: str,
    model: nn.Module,
    masks: Masks | None = None,
    data: Data | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Scores:
    """Run the scorer ``method`` (checks that data-dependent methods get data)."""
    scorer = get_scorer(method)
    if scorer.needs_data and data is None:
        raise ConfigError(
            f"pruning method {method!r} needs labelled data; pass data=(x, y) "
            "(Synaptic-Flow uses 10 x num_classes training examples)"
        )
    return scorer.fn(model, masks, data, generator=generator)


# ---------------------------------------------------------------------------------------------
# helpers


def as_batches(data: Data | None) -> list[Batch]:
    """Normalize ``data`` (one ``(x, y)`` pair or a sequence of pairs) to a list of pairs."""
    if data is None:
        return []
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[0], torch.Tensor)
        and isinstance(data[1], torch.Tensor)
    ):
        batches = [(data[0], data[1])]
    else:
        batches = [tuple(b) for b in data]  # type: ignore[misc]
    if not batches:
        raise ValueError("pruning data is empty; pass at least one (x, y) batch")
    for x, y in batches:
        if not (isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() >= 2):
            raise ValueError("pruning data x must be a float tensor [N, C, H, W]")
        if not (isinstance(y, torch.Tensor) and not y.is_floating_point() and y.dim() == 1):
            raise ValueError("pruning data y must be a 1-D integer label tensor")
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(f"pruning data: x has {x.shape[0]} rows but y has {y.shape[0]} labels")
    return batches  # type: ignore[return-value]


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _check_masks(model: nn.Module, masks: Masks | None) -> Masks:
    if masks is None:
        if not hasattr(model, "prunable_names"):
            raise ModelError(
                "model has no 'prunable_names'; build it with transfer_bench.models.build_model"
            )
        return full_masks(model)
    params = dict(model.named_parameters())
    for n, m in masks.items():
        if n not in params:
            raise ValueError(f"mask {n!r} names no parameter of the model")
        if m.shape != params[n].shape:
            raise ValueError(
                f"mask {n!r} has shape {tuple(m.shape)}, parameter has {tuple(params[n].shape)}"
            )
    return masks


def _eval_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with gradients off (the original is never touched)."""
    work = copy.deepcopy(model)
    work.eval()
    work.requires_grad_(False)
    for p in work.parameters():
        p.grad = None
    return work


def _float_masks(masks: Masks, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: m.to(device=like[n].device, dtype=like[n].dtype) for n, m in masks.items()}


class _Setup(NamedTuple):
    """What SNIP and GraSP work on: an eval-mode copy of the model, the masked weights' names and
    their float masks on the copy's parameters, and the labelled batches."""

    work: nn.Module
    device: torch.device
    params: dict[str, torch.Tensor]
    names: list[str]
    fm: dict[str, torch.Tensor]
    batches: list[Batch]


def _labelled_setup(
    model: nn.Module, masks: Masks | None, data: Data | None, method: str
) -> _Setup:
    """Check ``masks`` and ``data`` (at least one batch) and make the working copy (in this order)."""
    masks = _check_masks(model, masks)
    batches = as_batches(data)
    if not batches:
        raise ConfigError(f"pruning method {method!r} needs labelled data; pass data=(x, y)")
    work = _eval_copy(model)
    params = dict(work.named_parameters())
    return _Setup(work, _device(work), params, list(masks), _float_masks(masks, params), batches)


def _masked_leaves(
    params: dict[str, torch.Tensor], fm: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``theta = w * m`` for every masked weight, each a fresh leaf that requires grad."""
    return {n: (params[n].detach() * fm[n]).requires_grad_(True) for n in fm}


def _grads_or_zeros(
    output: torch.Tensor, leaves: list[torch.Tensor], **kwargs: bool
) -> list[torch.Tensor]:
    """``d output / d leaves``, with zeros for a leaf the output does not depend on."""
    grads = torch.autograd.grad(output, leaves, allow_unused=True, **kwargs)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(leaves, grads, strict=True)]


def _cross_entropy(
    work: nn.Module,
    weights: dict[str, torch.Tensor],
    batches: list[Batch],
    device: torch.device,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Sum over batches of the mean cross-entropy of ``logits / temperature``."""
    total = torch.zeros((), device=device)
    for x, y in batches:
        logits = functional_call(work, weights, (x.to(device),))
        total = total + F.cross_entropy(logits / temperature, y.to(device).long())
    return total


# ---------------------------------------------------------------------------------------------
# scorers


@register_scorer("magnitude_init", needs_data=False, reference="magnitude at initialization")
def magnitude_init(
    model: nn.Module,
    masks: Masks | None = None,
    data: Data | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Scores:
    """``|w|`` (pruned entries score 0)."""
    masks = _check_masks(model, masks)
    params = dict(model.named_parameters())
    fm = _float_masks(masks, params)
    return {n: (params[n].detach() * fm[n]).abs() for n in masks}


@register_scorer("random_init", needs_data=False, reference="random pruning baseline")
def random_init(
    model: nn.Module,
    masks: Masks | None = None,
    data: Data | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Scores:
    """I.i.d. U(0, 1) scores drawn on CPU from ``generator`` in sorted-name order."""
    if not isinstance(generator, torch.Generator):
        raise ValueError("random_init scores need a torch.Generator (pass generator=...)")
    masks = _check_masks(model, masks)
    drawn = {
        n: torch.rand(masks[n].shape, generator=generator, dtype=torch.float64)
        for n in sorted(masks)
    }
    return {n: drawn[n].to(masks[n].device) for n in masks}


@register_scorer(
    "snip", needs_data=True, reference="Lee, Ajanthan, Torr 2019, SNIP (arXiv 1810.02340)"
)
def snip(
    model: nn.Module,
    masks: Masks | None = None,
    data: Data | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Scores:
    """``|dL/dc|`` at the gates ``c`` (= ``|w * dL/dw|``), normalized by the sum over all entries."""
    work, device, params, names, fm, batches = _labelled_setup(model, masks, data, "snip")
    gates = {n: m.detach().clone().requires_grad_(True) for n, m in fm.items()}
    weights = {n: params[n].detach() * gates[n] for n in names}
    loss = _cross_entropy(work, weights, batches, device)
    grads = _grads_or_zeros(loss, [gates[n] for n in names])
    scores = {n: (g.abs() * gates[n].detach()).detach() for n, g in zip(names, grads, strict=True)}
    norm = sum(float(s.double().sum()) for s in scores.values())
    if norm > 0:
        scores = {n: s / norm for n, s in scores.items()}
    return scores


def grasp_hessian_gradient(
    model: nn.Module,
    masks: Masks | None,
    data: Data,
    *,
    temperature: float = GRASP_TEMPERATURE,
) -> tuple[Scores, Scores]:
    """``(theta, H g)`` for GraSP over the prunable weights (masked: pruned entries are zero).

    ``L = sum_b CE(f(x_b) / temperature, y_b)`` with weights ``theta * m``; ``g = dL/dtheta``
    detached (first pass), ``H g = d(g . dL/dtheta)/dtheta`` by double backprop (second pass).
    """
    work, device, params, names, fm, batches = _labelled_setup(model, masks, data, "grasp")
    theta = _masked_leaves(params, fm)
    leaves = [theta[n] for n in names]
    stopped = [torch.zeros_like(t) for t in leaves]
    for batch in batches:
        loss = _cross_entropy(
            work, {n: theta[n] * fm[n] for n in names}, [batch], device, temperature
        )
        gs = _grads_or_zeros(loss, leaves)
        stopped = [s + g.detach() for s, g in zip(stopped, gs, strict=True)]
    hg = [torch.zeros_like(t) for t in leaves]
    for batch in batches:
        loss = _cross_entropy(
            work, {n: theta[n] * fm[n] for n in names}, [batch], device, temperature
        )
        gs = _grads_or_zeros(loss, leaves, create_graph=True)
        z = sum((s * g).sum() for s, g in zip(stopped, gs, strict=True))
        if not z.requires_grad:  # the loss does not depend on the weights at second order
            continue
        hs = _grads_or_zeros(z, leaves)
        hg = [a + h.detach() for a, h in zip(hg, hs, strict=True)]
    return {n: theta[n].detach() for n in names}, dict(zip(names, hg, strict=True))


@register_scorer(
    "grasp",
    needs_data=True,
    reference="Wang, Zhang, Grosse 2020, GraSP (arXiv 2002.07376)",
)
def grasp(
    model: nn.Module,
    masks: Masks | None = None,
    data: Data | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Scores:
    """``theta * (H g) / (|sum| + eps)`` = minus GraSP's ``S(-theta)``: keep the highest."""
    if data is None:
        raise ConfigError("pruning method 'grasp' needs labelled data; pass data=(x, y)")
    theta, hg = grasp_hessian_gradient(model, masks, data)
    scores = {n: theta[n] * hg[n] for n in theta}
    norm = abs(sum(float(s.double().sum()) for s in scores.values())) + GRASP_EPS
    return {n: s / norm for n, s in scores.items()}


def synflow_input_shape(model: nn.Module, data: Data | None = None) -> tuple[int, ...]:
    """``(1, C, H, W)``: from the model's ``model_spec`` or else from the first data batch."""
    spec = getattr(model, "model_spec", None)
    if isinstance(spec, dict) and "in_channels" in spec and "image_size" in spec:
        size = int(spec["image_size"])
        return (1, int(spec["in_channels"]), size, size)
    batches = as_batches(data)
    if batches:
        return (1, *batches[0][0].shape[1:])
    raise ModelError(
        "synflow needs the input shape: build the model with build_model or pass data=(x, y)"
    )


@register_scorer(
    "synflow",
    needs_data=False,
    default_rounds=100,
    reference="Tanaka, Kunin, Yamins, Ganguli 2020, SynFlow (arXiv 2006.05467)",
)
def synflow(
    model: nn.Module,
    masks: Masks | None = None,
    data: Data | None = None,
    *,
    generator: torch.Generator | None = None,
) -> Scores:
    """``|theta * dR/dtheta|`` with ``R = 1^T f_|theta|(1)`` in float64 (no data used)."""
    masks = _check_masks(model, masks)
    shape = synflow_input_shape(model, data)
    work = _eval_copy(model).double()
    device = _device(work)
    with torch.no_grad():
        for t in work.state_dict().values():  # linearize: |.| of every floating state entry
            if t.is_floating_point():
                t.abs_()
    params = dict(work.named_parameters())
    names = list(masks)
    theta = _masked_leaves(params, _float_masks(masks, params))
    ones = torch.ones(shape, dtype=torch.float64, device=device)
    r = functional_call(work, theta, (ones,)).sum()
    grads = torch.autograd.grad(r, [theta[n] for n in names], allow_unused=True)
    return {
        n: torch.zeros_like(theta[n]) if g is None else (g * theta[n]).detach().abs()
        for n, g in zip(names, grads, strict=True)
    }

"""Instability analysis (Frankle, Dziugaite, Roy, Carbin 2020, "Linear Mode Connectivity and the
Lottery Ticket Hypothesis", ICML 2020, arXiv 1912.05671).

Two copies of a (sub)network are trained from the same weights W_k with different SGD noise (here:
different data orders) to W1 and W2. Along the linear path E(alpha) = error(alpha*W1 + (1-alpha)*W2),
evaluated at 30 evenly spaced alphas, the *error barrier height* is
``sup_alpha E(alpha) - (E(W1) + E(W2)) / 2``. A network is *stable* when the barrier is below 2 %
(``STABLE_THRESHOLD``), the paper's threshold. Errors are fractions in [0, 1] (1 - accuracy).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.errors import ConfigError, ModelError
from transfer_bench.pruning.masks import Masks, apply_masks_
from transfer_bench.training.loop import TrainData, evaluate, train

STABLE_THRESHOLD = 0.02
"""Barrier height (error fraction) below which a network counts as stable (Frankle et al. 2020)."""

State = dict[str, torch.Tensor]


def _load(model: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """``load_state_dict`` with a one-line ModelError instead of torch's multi-line RuntimeError."""
    try:
        missing, unexpected = model.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise ModelError(
            f"{where}: the state does not fit {type(model).__name__} ({detail}); "
            "pass a state dict of the same model"
        ) from None
    if missing or unexpected:
        keys = ", ".join(
            [*(f"missing {k}" for k in missing[:2]), *(f"unexpected {k}" for k in unexpected[:2])]
        )
        raise ModelError(
            f"{where}: the state does not fit {type(model).__name__} ({keys}); "
            "pass a state dict of the same model"
        )


def interpolate_state(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], alpha: float
) -> State:
    """``alpha * a + (1 - alpha) * b`` for floating-point entries; other entries (e.g. BatchNorm's
    integer ``num_batches_tracked``) are copied from ``a``. alpha 1 / 0 return exact copies of a / b.
    """
    if set(a) != set(b):
        diff = sorted(set(a) ^ set(b))
        raise ModelError(
            f"interpolate_state: state dicts differ in keys ({', '.join(diff[:3])}); "
            "interpolate states of the same model"
        )
    out: State = {}
    for k, ta in a.items():
        tb = b[k]
        if ta.shape != tb.shape:
            raise ModelError(
                f"interpolate_state: {k!r} has shapes {tuple(ta.shape)} and {tuple(tb.shape)}; "
                "interpolate states of the same model"
            )
        if not ta.is_floating_point():
            out[k] = ta.detach().clone()
        elif alpha == 1.0:
            out[k] = ta.detach().clone()
        elif alpha == 0.0:
            out[k] = tb.detach().to(ta.device, ta.dtype).clone()
        else:
            out[k] = ta.detach() * alpha + tb.detach().to(ta.device, ta.dtype) * (1.0 - alpha)
    return out


def error_barrier(
    errors_along_path: Sequence[float] | Sequence[tuple[float, float]],
    end_errors: Sequence[float] | None = None,
) -> float:
    """Error barrier height: ``max(path errors) - mean(end errors)``.

    ``errors_along_path`` is either plain errors ordered along the path or ``(alpha, error)`` pairs
    as returned by ``linear_path_errors``. The end errors default to the first and last entries (the
    smallest and largest alpha for pairs, i.e. alpha 0 and 1). With the default ends the barrier is
    never negative; note that it is positive whenever the two end errors differ (half their gap),
    exactly as in the paper's definition.
    """
    items = list(errors_along_path)
    if not items:
        raise ValueError("error_barrier: the path has no points")
    if isinstance(items[0], Sequence):
        pairs = sorted((float(a), float(e)) for a, e in items)  # type: ignore[misc]
        errors = [e for _, e in pairs]
    else:
        errors = [float(e) for e in items]  # type: ignore[arg-type]
    ends = [errors[0], errors[-1]] if end_errors is None else [float(e) for e in end_errors]
    if len(ends) != 2:
        raise ValueError("error_barrier: end_errors must hold exactly two errors")
    return max(errors) - (ends[0] + ends[1]) / 2.0


def _alphas(points: int) -> list[float]:
    if points < 2:
        raise ConfigError(f"instability points={points!r} must be >= 2 (the two ends included)")
    return [i / (points - 1) for i in range(points)]


@torch.no_grad()
def linear_path_errors(
    model: nn.Module,
    state_a: Mapping[str, torch.Tensor],
    state_b: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    points: int = 30,
    masks: Masks | None = None,
    batch_size: int = 1000,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> list[tuple[float, float]]:
    """``[(alpha, error)]`` for ``points`` evenly spaced alphas in [0, 1] (ends included) of the
    network ``alpha * state_a + (1 - alpha) * state_b`` on ``x``, ``y``.

    ``masks`` (if given) are multiplied into the interpolated weights; for two masked endpoints with
    the same mask this changes nothing. ``prepare`` turns slices of ``x`` into model input
    (:meth:`TrainData.prepare` for uint8 images). ``model`` is only a container: its own state is restored
    afterwards. For BatchNorm models the running statistics are interpolated like every other float
    buffer and used as is (evaluation mode) -- a known approximation; recomputing them at each alpha
    on training data would be exact but is not done here.
    """
    alphas = _alphas(points)
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    path: list[tuple[float, float]] = []
    try:
        for alpha in alphas:
            _load(model, interpolate_state(state_a, state_b, alpha), "linear_path_errors")
            if masks:
                apply_masks_(model, masks)
            _, acc = evaluate(model, x, y, batch_size, prepare)
            path.append((alpha, 1.0 - acc))
    finally:
        model.load_state_dict(saved)
    return path


def instability(
    model_factory: Callable[[], nn.Module],
    start_state: Mapping[str, torch.Tensor],
    masks: Masks | None,
    data: TrainData,
    train_spec: TrainSpec,
    optimizer_spec: OptimizerSpec,
    *,
    seeds: tuple[int, int] = (0, 1),
    start_iteration: int = 0,
    points: int = 30,
) -> dict[str, Any]:
    """Instability analysis of the (masked) network at ``start_state`` (Frankle et al., Alg. 1).

    Two fresh models from ``model_factory`` are loaded with ``start_state`` and trained with
    ``transfer_bench.training.train`` from ``start_iteration`` to the end of ``train_spec`` (masks
    enforced, a fresh optimizer each, as in IMP rewinding), using the data-order seeds ``seeds``.
    The error path between them is evaluated on the test split. Returns a JSON-able dict:
    ``barrier``, ``stable`` (barrier < ``STABLE_THRESHOLD`` and no copy diverged), ``path``
    (``[[alpha, error], ...]``, alpha 1 = copy 0, alpha 0 = copy 1), ``end_errors`` (test error of
    copy 0 and copy 1, in ``seeds`` order), ``copies`` (each copy's training metrics), ``seeds``,
    ``start_iteration``, ``points``. Pass seeds from ``seeding.derive_seed`` for independent runs.
    """
    if len(seeds) != 2 or seeds[0] == seeds[1]:
        raise ConfigError(
            f"instability seeds={tuple(seeds)!r} must be two different data-order seeds"
        )
    _alphas(points)  # validate before training
    device = data.x_train.device
    trained: list[State] = []
    copies: list[dict[str, Any]] = []
    model: nn.Module | None = None
    for seed in seeds:
        model = model_factory().to(device)
        _load(model, start_state, "instability start_state")
        out = train(
            model,
            data,
            train_spec,
            optimizer_spec,
            masks,
            order_seed=int(seed),
            start_iteration=start_iteration,
        )
        trained.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        copies.append(
            {
                "order_seed": int(seed),
                "test_accuracy": out.test_accuracy,
                "best_test_accuracy": out.best_test_accuracy,
                "final_train_loss": out.final_train_loss,
                "final_test_loss": out.final_test_loss,
                "iterations": out.iterations,
                "seconds": round(out.seconds, 3),
                "diverged_at": out.diverged_at,
            }
        )
    assert model is not None
    path = linear_path_errors(
        model,
        trained[0],
        trained[1],
        data.x_test,
        data.y_test,
        points=points,
        masks=masks,
        batch_size=train_spec.eval_batch_size,
        prepare=data.prepare,
    )
    end_errors = [path[-1][1], path[0][1]]  # copy 0 is alpha = 1, copy 1 is alpha = 0
    barrier = error_barrier(path)
    diverged = any(c["diverged_at"] is not None for c in copies)
    return {
        "barrier": barrier,
        "stable": bool(barrier < STABLE_THRESHOLD and not diverged),
        "path": [[a, e] for a, e in path],
        "end_errors": end_errors,
        "copies": copies,
        "seeds": [int(s) for s in seeds],
        "start_iteration": int(start_iteration),
        "points": int(points),
    }

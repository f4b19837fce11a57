"""The training loop: in-memory tensors, no DataLoader, masks enforced in one place.

Mask invariant (one mechanism, no forward hooks): after every optimizer step the pruned weights are
multiplied by their masks, so they are exactly zero in every forward pass. Gradients are masked too
only for optimizers that are not element-wise (none registered today): with SGD, momentum, weight
decay and Adam a kept weight's update depends on its own gradient and state alone, so the gradients
and optimizer state of pruned weights cannot reach it, and masking them cost ~10% of a LeNet step
(fresh gradient buffers every step). Parameters whose mask keeps everything (level 0) are skipped.

Data order is a pure function of ``order_seed`` and the epoch, so a run resumed at any iteration
sees exactly the batches it would have seen without interruption. Images stay in their stored
uint8 form; each batch is gathered, normalized, augmented and put in the model's memory layout on
the training device (:class:`TrainData`), so a process holds one compact copy of each split.

Checkpoints (``on_epoch``) are taken at epoch ends, at most one per ``checkpoint_every`` seconds:
writing one costs ~19 ms for LeNet (model + Adam state, fsynced), 8% of a quickstart training when
done every epoch. The state of the latest epoch end is kept in memory and handed to ``on_epoch``
when the training is interrupted (Ctrl-C, SIGTERM), so an interrupted run loses nothing it could
resume from; only a hard kill loses up to ``checkpoint_every`` seconds.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from transfer_bench import faults
from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.devices import DETERMINISM_ENV, nondeterministic_op
from transfer_bench.errors import TransferBenchError
from transfer_bench.pruning.masks import Masks
from transfer_bench.training.augment import AUGMENTATIONS
from transfer_bench.training.fold_bn import fold_batchnorm
from transfer_bench.training.layout import to_channels_last
from transfer_bench.training.optim import ELEMENTWISE, build_optimizer, lr_factor
from transfer_bench.training.precision import resolve_precision


@dataclass(frozen=True)
class TrainData:
    """A training and a test split on the training device, normalized batch by batch.

    Images are stored as they were loaded: uint8 ``[N, C, H, W]`` with the per-channel ``mean`` and
    ``std`` of the train split (in [0, 1] units), so a 32x32x3 image takes 3,072 bytes, not the
    12,288 of a normalized float32 copy, and no split is ever copied whole. ``train_images(rows)``
    gathers rows and normalizes only them, with the same arithmetic as :func:`normalize`
    (``(x / 255 - mean) / std``), so results equal those of normalizing whole splits up front. Float
    images (``mean``/``std`` None) are used as they are (benchmarks, tests).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.y_train) / batch_size)

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    @functools.cached_property
    def _stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean`` and ``std`` as ``[C, 1, 1]`` float32 tensors on the data's device."""
        c = self.x_train.shape[-3]
        mean = self.mean if self.mean is not None else (0.0,) * c
        std = self.std if self.std is not None else (1.0,) * c
        as_t = lambda v: torch.tensor(v, dtype=torch.float32, device=self.device).view(c, 1, 1)  # noqa: E731
        return as_t(mean), as_t(std)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (rows of either split) as the model sees it: float32, normalized with exactly
        :func:`normalize`'s operations, in place on the new float tensor (no temporaries)."""
        if x.dtype != torch.uint8:
            return x
        mean, std = self._stats
        return x.to(torch.float32).div_(255.0).sub_(mean).div_(std)

    def train_images(self, rows: torch.Tensor) -> torch.Tensor:
        """Training images ``rows`` (an index tensor on any device), prepared."""
        return self.prepare(self.x_train.index_select(0, rows.to(self.x_train.device)))

    def nbytes(self) -> int:
        """Bytes held by the four tensors (what a process keeps per dataset)."""
        return sum(t.numel() * t.element_size() for t in self._tensors())

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.x_train, self.y_train, self.x_test, self.y_test)


@dataclass
class TrainOutcome:
    """Final and best test metrics plus the per-evaluation history of one training."""

    test_accuracy: float
    best_test_accuracy: float
    final_train_loss: float
    final_test_loss: float
    early_stop_iteration: int
    iterations: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    diverged_at: int | None = None
    precision: str = "fp32"  # the arithmetic used: "fp32" or "bf16" (autocast)
    channels_last: bool = False


class MaskEnforcer:
    """Holds each parameter that has pruned entries with its float mask and applies the invariant
    with foreach ops; ``grads`` says whether gradients are masked too (see the module docstring)."""

    def __init__(self, model: nn.Module, masks: Masks | None, *, grads: bool = True) -> None:
        params = dict(model.named_parameters())
        names = sorted(n for n in masks if not bool(masks[n].all())) if masks else []
        self.params = [params[n] for n in names]
        # each mask takes its parameter's device, dtype and memory layout (channels_last), so the
        # foreach multiplies stay on their fast path
        self.masks = [
            torch.empty_like(params[n]).copy_(masks[n].to(params[n].device)) for n in names
        ]
        self.grads = grads

    @torch.no_grad()
    def mask_grads(self) -> None:
        if not self.params or not self.grads:
            return
        grads = [p.grad for p in self.params]
        if None not in grads:
            torch._foreach_mul_(grads, self.masks)
        else:
            for g, m in zip(grads, self.masks, strict=True):
                if g is not None:
                    g.mul_(m)

    @torch.no_grad()
    def mask_weights(self) -> None:
        if self.params:
            torch._foreach_mul_(self.params, self.masks)


def augment_batch(
    name: str, x: torch.Tensor, padding: int, order_seed: int, iteration: int
) -> torch.Tensor:
    """Augment one batch on its device; the randomness is a pure function of seed and iteration."""
    g = torch.Generator()
    g.manual_seed((order_seed * 2_654_435_761 + iteration) % (2**63 - 1))
    return AUGMENTATIONS[name](x, padding=padding, generator=g)


def _uses_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 1000,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of ``model`` on ``x``, ``y``; ``prepare`` turns each
    slice of ``x`` into model input (:meth:`TrainData.prepare` for uint8 images)."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(y), batch_size):
        xb = x[i : i + batch_size]
        out = model(prepare(xb) if prepare is not None else xb)
        loss_sum += float(F.cross_entropy(out, y[i : i + batch_size], reduction="sum"))
        correct += int((out.argmax(1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    n = max(1, len(y))
    return loss_sum / n, correct / n


def _copied(state: Any) -> Any:
    """A deep copy of a checkpoint dict (tensors cloned; lists, dicts and numbers rebuilt)."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        return {k: _copied(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_copied(v) for v in state]
    return state


def epoch_order(order_seed: int, epoch: int, n: int, device: torch.device) -> torch.Tensor:
    """The permutation of the training set used in ``epoch`` (pure function of seed and epoch)."""
    g = torch.Generator()
    g.manual_seed((order_seed * 1_000_003 + epoch) % (2**63 - 1))
    return torch.randperm(n, generator=g).to(device)


def train(
    model: nn.Module,
    data: TrainData,
    spec: TrainSpec,
    optimizer: OptimizerSpec,
    masks: Masks | None,
    *,
    order_seed: int,
    start_iteration: int = 0,
    resume: dict[str, Any] | None = None,
    snapshot_at: int | None = None,
    on_snapshot: Callable[[dict[str, torch.Tensor]], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_progress: Callable[[int, float | None], None] | None = None,
    after_backward: Callable[[nn.Module], None] | None = None,
    checkpoint_every: float = 0.0,
) -> TrainOutcome:
    """Train ``model`` in place for ``spec.epochs`` epochs (iterations ``start_iteration``..end).

    ``masks`` (or None for dense) are enforced throughout. ``snapshot_at`` calls ``on_snapshot`` with
    a copy of the state dict when that iteration is reached (used for late rewinding). ``on_epoch``
    receives a resumable checkpoint dict at epoch ends, at most once per ``checkpoint_every``
    seconds (0: every epoch) and on interruption; pass one back as ``resume`` to continue.
    ``on_progress(epoch, test_accuracy)`` is for progress display only. ``after_backward(model)``
    runs between backward and the gradient masking (e.g. Early-Bird's L1 penalty on BN scales).
    """
    t0 = time.perf_counter()
    device = data.x_train.device
    bs = spec.batch_size
    n = len(data.y_train)
    spe = data.steps_per_epoch(bs)
    total = spec.total_iterations(spe)
    conv = _uses_conv(model) and (
        spec.channels_last == "on" or (spec.channels_last == "auto" and device.type == "cuda")
    )
    layout_hooks = to_channels_last(model, device) if conv else []
    enforcer = MaskEnforcer(model, masks, grads=optimizer.name not in ELEMENTWISE)
    enforcer.mask_weights()
    precision = resolve_precision(spec.precision, device)
    use_bf16 = precision == "bf16"
    forward = torch.compile(model) if spec.compile else model
    params = list(model.parameters())
    opt = build_optimizer(params, optimizer)
    base_lrs = [g["lr"] for g in opt.param_groups]
    history: list[dict[str, float]] = []
    it = start_iteration
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        history = list(resume["history"])
        it = int(resume["iteration"])
    if snapshot_at is not None and snapshot_at == it and on_snapshot is not None:
        on_snapshot({k: v.detach().clone() for k, v in model.state_dict().items()})
    model.train()
    # per-step losses of the current epoch stay on the device (no sync per step); the first
    # non-finite one, if any, gives the exact step a diverged run blew up at
    epoch_losses = torch.zeros(spe, device=device)
    train_loss_count = 0
    epoch_first_it = it
    fail = faults.step_limit()
    fail_at = int(fail.arg) if fail is not None else -1
    last_train_loss = float("nan")
    diverged_at: int | None = None
    current_factor = None
    last_checkpoint = time.perf_counter()
    pending: dict[str, Any] | None = None  # latest epoch-end state not yet handed to on_epoch
    try:
        while it < total:
            epoch, offset = divmod(it, spe)
            order = epoch_order(order_seed, epoch, n, device)
            for step in range(offset, min(spe, offset + total - it)):
                # each batch is gathered from the stored (uint8) split and normalized on its own:
                # no copy of the whole set per epoch (see TrainData)
                rows = order[step * bs : (step + 1) * bs]
                xb = data.train_images(rows)
                yb = data.y_train.index_select(0, rows)
                f = lr_factor(spec, it, spe)
                if f != current_factor:
                    for g, lr in zip(opt.param_groups, base_lrs, strict=True):
                        g["lr"] = lr * f
                    current_factor = f
                if spec.augment != "none":
                    xb = augment_batch(spec.augment, xb, spec.padding, order_seed, it)
                if conv:  # after augmentation, whose gathers return the default layout
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss = F.cross_entropy(forward(xb), yb)
                for p in params:  # opt.zero_grad(set_to_none=True) without its per-call overhead
                    p.grad = None
                loss.backward()
                if after_backward is not None:
                    after_backward(model)
                enforcer.mask_grads()
                opt.step()
                enforcer.mask_weights()
                epoch_losses[train_loss_count] = loss.detach()
                train_loss_count += 1
                it += 1
                if it == fail_at:
                    fail.fire()
                if snapshot_at is not None and it == snapshot_at and on_snapshot is not None:
                    on_snapshot({k: v.detach().clone() for k, v in model.state_dict().items()})
            epoch_done = it // spe
            losses = epoch_losses[:train_loss_count]
            last_train_loss = float(losses.sum()) / max(1, train_loss_count)
            train_loss_count = 0
            if not math.isfinite(last_train_loss):
                bad = (~torch.isfinite(losses)).nonzero()
                diverged_at = epoch_first_it + int(bad[0]) + 1 if len(bad) else it
                break
            epoch_first_it = it
            if (it % spe == 0 and epoch_done % spec.eval_every == 0) or it >= total:
                # on the CPU in channels_last, BatchNorm folded into the convolutions evaluates
                # 1.27-1.41x faster and changed no prediction (training/fold_bn.py)
                scored = fold_batchnorm(model) if conv and device.type == "cpu" else model
                test_loss, test_acc = evaluate(
                    scored, data.x_test, data.y_test, spec.eval_batch_size, data.prepare
                )
                model.train()
                history.append(
                    {
                        "iteration": it,
                        "epoch": epoch_done,
                        "train_loss": last_train_loss,
                        "test_loss": test_loss,
                        "test_accuracy": test_acc,
                    }
                )
                if on_progress is not None:
                    on_progress(epoch_done, test_acc)
            if on_epoch is not None and it < total:
                state = {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "history": history,
                    "iteration": it,
                }
                if time.perf_counter() - last_checkpoint >= checkpoint_every:
                    on_epoch(state)
                    last_checkpoint, pending = time.perf_counter(), None
                else:  # a copy: the live tensors change with the next step
                    pending = _copied(state)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: keep the latest resumable state
        if pending is not None and on_epoch is not None:
            on_epoch(pending)
        raise
    except RuntimeError as e:  # torch's error for an op without a deterministic CUDA kernel
        op = nondeterministic_op(e)
        if op is None:
            raise
        raise TransferBenchError(
            f"{op} has no deterministic CUDA kernel, and CUDA runs are made reproducible "
            f"({DETERMINISM_ENV}=on); set {DETERMINISM_ENV}=warn to run it anyway (its results "
            "will not repeat bit for bit), or use a model without that operation"
        ) from None
    finally:
        for h in layout_hooks:
            h.remove()
    if history:
        best = max(history, key=lambda h: h["test_accuracy"])
        early = min(history, key=lambda h: h["test_loss"])
        final = history[-1]
    else:
        best = early = final = {
            "test_accuracy": float("nan"),
            "test_loss": float("nan"),
            "iteration": it,
        }
    return TrainOutcome(
        test_accuracy=final["test_accuracy"],
        best_test_accuracy=best["test_accuracy"],
        final_train_loss=last_train_loss,
        final_test_loss=final["test_loss"],
        early_stop_iteration=int(early["iteration"]),
        iterations=it,
        seconds=time.perf_counter() - t0,
        history=history,
        diverged_at=diverged_at,
        precision=precision,
        channels_last=conv,
    )

"""Early-Bird ticket detection (You et al. 2020, "Drawing Early-Bird Tickets: Towards More Efficient
Training of Deep Networks", ICLR 2020, arXiv 1909.11957; code ``GATECH-EIC/Early-Bird-Tickets``).

After every epoch a pruning mask is drawn from the current weights and pushed into a FIFO of the last
``window`` (5) masks. Once the FIFO is full, the normalized Hamming distance between the newest mask
and each of the ``window - 1`` older ones is computed; an Early-Bird ticket is declared when none of
them exceeds ``threshold`` (0.1), exactly as in the reference ``EarlyBird.early_bird_emerge``
(``if dist > 0.1: return False``).

The paper's masks are structured *channel* masks from the |gamma| of BatchNorm scaling factors with
one global threshold (network slimming, Liu et al. 2017), trained with an L1 sub-gradient on gamma
(``l1_bn_penalty``, coefficient ``--s`` = 1e-4). ``magnitude_mask`` gives the unstructured variant
for models without BatchNorm (our extension, not in the paper). Everything here is pure apart from
``l1_bn_penalty``, which edits gradients in place; no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from transfer_bench.errors import ConfigError, ModelError, TicketError
from transfer_bench.pruning.magnitude import magnitude_prune
from transfer_bench.pruning.masks import Masks

MaskLike = torch.Tensor | Mapping[str, torch.Tensor]


def _flat_pair(a: MaskLike, b: MaskLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Both masks as flat bool CPU vectors, pooled over layers in sorted-name order."""
    if isinstance(a, torch.Tensor) != isinstance(b, torch.Tensor):
        raise TicketError(
            "mask comparison: one mask is a tensor, the other a dict; pass the same kind"
        )
    if isinstance(a, torch.Tensor):
        if a.shape != b.shape:
            raise TicketError(
                f"mask comparison: shapes {tuple(a.shape)} and {tuple(b.shape)} differ; "
                "compare masks of the same model"
            )
        return a.detach().flatten().bool().cpu(), b.detach().flatten().bool().cpu()
    if set(a) != set(b):
        diff = sorted(set(a) ^ set(b))
        raise TicketError(
            f"mask comparison: layer names differ ({', '.join(diff[:3])}); "
            "compare masks of the same model"
        )
    for k in a:
        if a[k].shape != b[k].shape:
            raise TicketError(
                f"mask comparison: layer {k!r} has shapes {tuple(a[k].shape)} and "
                f"{tuple(b[k].shape)}; compare masks of the same model"
            )
    names = sorted(a)
    if not names:
        empty = torch.zeros(0, dtype=torch.bool)
        return empty, empty
    fa = torch.cat([a[k].detach().flatten().bool().cpu() for k in names])
    fb = torch.cat([b[k].detach().flatten().bool().cpu() for k in names])
    return fa, fb


def hamming_distance(a: MaskLike, b: MaskLike) -> float:
    """Normalized Hamming distance: 1 - (equal bits / mask length), pooled over all layers.

    0.0 for identical masks, 1.0 for complementary ones (and 0.0 for two empty masks).
    """
    fa, fb = _flat_pair(a, b)
    if fa.numel() == 0:
        return 0.0
    return 1.0 - int((fa == fb).sum()) / fa.numel()


def jaccard(a: MaskLike, b: MaskLike) -> float:
    """Intersection over union of the kept entries, pooled over all layers; 1.0 when both keep none."""
    fa, fb = _flat_pair(a, b)
    union = int((fa | fb).sum())
    if union == 0:
        return 1.0
    return int((fa & fb).sum()) / union


def _check_fraction(prune_fraction: float) -> None:
    if not 0.0 <= prune_fraction < 1.0:
        raise ConfigError(
            f"early-bird prune_fraction={prune_fraction!r} must be in [0, 1) (fraction pruned)"
        )


def _bn_gammas(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{name}.weight" if name else "weight": m.weight
        for name, m in model.named_modules()
        if isinstance(m, nn.BatchNorm2d) and m.weight is not None
    }


@torch.no_grad()
def bn_channel_mask(model: nn.Module, prune_fraction: float) -> Masks:
    """Network-slimming channel masks: keep the top ``round(C * (1 - prune_fraction))`` of all C
    BatchNorm2d channels by |gamma|, ranked globally across layers.

    Keys are the gamma parameter names (``"<bn module>.weight"``), values bool ``[channels]``.
    Ties are broken deterministically (lower position first, layers in sorted-name order). The
    reference code keeps channels strictly above the value at index ``int(C * p)``, i.e. one channel
    fewer when there are no ties; we keep the exact requested count instead.
    """
    _check_fraction(prune_fraction)
    gammas = _bn_gammas(model)
    if not gammas:
        raise ModelError(
            f"early-bird bn_channel_mask: {type(model).__name__} has no affine BatchNorm2d layer; "
            "use a BN model or the magnitude criterion"
        )
    full = {n: torch.ones_like(g, dtype=torch.bool) for n, g in gammas.items()}
    order = sorted(gammas)
    masks = magnitude_prune(
        {n: gammas[n] for n in order},
        {n: full[n] for n in order},
        level=1,
        rate=prune_fraction,
        head_rate=0.0,
        head_names=(),
        scope="global",
    )
    return {n: masks[n] for n in gammas}


@torch.no_grad()
def magnitude_mask(
    model: nn.Module,
    prune_fraction: float,
    prunable_names: Sequence[str] | None = None,
    scope: Literal["global", "layerwise"] = "global",
) -> Masks:
    """Unstructured magnitude masks of the current weights keeping ``(1 - prune_fraction)`` of
    ``prunable_names`` (default ``model.prunable_names``), globally or per layer.

    Exact top-k with deterministic tie-breaking (``transfer_bench.pruning.magnitude``).
    """
    _check_fraction(prune_fraction)
    names = list(model.prunable_names if prunable_names is None else prunable_names)
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ModelError(
            f"early-bird magnitude_mask: {missing[0]!r} is not a parameter of "
            f"{type(model).__name__}; pass names from model.prunable_names"
        )
    if not names:
        return {}
    full = {n: torch.ones_like(params[n], dtype=torch.bool) for n in names}
    return magnitude_prune(
        {n: params[n] for n in names},
        full,
        level=1,
        rate=prune_fraction,
        head_rate=0.0,
        head_names=(),
        scope=scope,
    )


@torch.no_grad()
def l1_bn_penalty(model: nn.Module, coefficient: float = 1e-4) -> None:
    """Add the network-slimming L1 sub-gradient ``coefficient * sign(gamma)`` to every BatchNorm2d
    gamma's gradient. Call after ``loss.backward()`` and before ``optimizer.step()``.

    A gamma without a gradient gets the penalty as its gradient. No-op for models without BN.
    """
    if coefficient == 0.0:
        return
    for gamma in _bn_gammas(model).values():
        step = torch.sign(gamma) * coefficient
        if gamma.grad is None:
            gamma.grad = step
        else:
            gamma.grad.add_(step)


class EarlyBirdDetector:
    """FIFO mask-distance test of You et al. (2020); feed it one mask per epoch via ``update``.

    ``update`` returns True when the FIFO holds ``window`` masks and every normalized Hamming
    distance between the newest mask and the ``window - 1`` older ones is ``<= threshold``. The first
    such epoch is kept in ``detected_epoch`` (it is never overwritten; later calls still report the
    test's result). ``epochs[i]`` and ``distances[i]`` record each call for plotting; ``distances[i]``
    is empty while the FIFO is filling, else ordered from the oldest mask to the second newest.
    """

    def __init__(self, window: int = 5, threshold: float = 0.1) -> None:
        if window < 2:
            raise ConfigError(f"early-bird window={window!r} must be >= 2 masks")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"early-bird threshold={threshold!r} must be in [0, 1]")
        self.window = window
        self.threshold = threshold
        self.masks: deque[MaskLike] = deque(maxlen=window)
        self.epochs: list[int] = []
        self.distances: list[tuple[float, ...]] = []
        self.detected_epoch: int | None = None

    def update(self, mask: MaskLike, epoch: int | None = None) -> bool:
        """Push ``mask`` (of ``epoch``; default: the number of masks seen, 1-based) and test."""
        epoch = len(self.epochs) + 1 if epoch is None else int(epoch)
        if isinstance(mask, torch.Tensor):
            stored: MaskLike = mask.detach().bool().cpu().clone()
        else:
            stored = {k: v.detach().bool().cpu().clone() for k, v in mask.items()}
        self.masks.append(stored)
        self.epochs.append(epoch)
        if len(self.masks) < self.window:
            self.distances.append(())
            return False
        newest = self.masks[-1]
        dists = tuple(hamming_distance(newest, self.masks[i]) for i in range(self.window - 1))
        self.distances.append(dists)
        if any(d > self.threshold for d in dists):
            return False
        if self.detected_epoch is None:
            self.detected_epoch = epoch
        return True

    @property
    def detected(self) -> bool:
        return self.detected_epoch is not None

    @property
    def max_distances(self) -> list[float | None]:
        """Largest distance per call (None while the FIFO was filling), for a single-curve plot."""
        return [max(d) if d else None for d in self.distances]

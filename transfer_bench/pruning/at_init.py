"""Pruning at initialization: score, select, and (for SynFlow) iterate.

:func:`prune_at_init` turns a registered scorer (``pruning.scores``) into masks at one or more target
densities. Every method is single-shot (one scoring on the dense network, then exact top-k per
density) except SynFlow, which Tanaka et al. (NeurIPS 2020, arXiv 2006.05467) apply iteratively:
100 rounds by default, re-scoring the network with the current masks applied (pruned weights zero)
and pruning to density ``d ** (k / n)`` after round ``k`` of ``n`` (exponential schedule, as
Synaptic-Flow's ``prune.py``). Iterative, positive, conservative scoring avoids layer collapse, the
premature pruning of a whole layer (see :func:`layer_collapse`).

Vocabulary: density = kept / prunable (what Synaptic-Flow calls "sparsity"), sparsity = 1 - density,
compression = prunable / kept = 1 / density (Synaptic-Flow's ``--compression c`` is density 10^-c).
The prunable weights are ``model.prunable_names``, the head's weight included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from transfer_bench.errors import ConfigError
from transfer_bench.pruning.masks import Masks, full_masks
from transfer_bench.pruning.scores import Data, compute_scores, get_scorer
from transfer_bench.pruning.select import Scope, check_density, check_scope, select_top

Schedule = Literal["exponential", "linear"]
SCHEDULES: tuple[str, ...] = ("exponential", "linear")


def schedule_densities(
    density: float, rounds: int, schedule: Schedule = "exponential"
) -> list[float]:
    """Density after each of ``rounds`` rounds, ending exactly at ``density``.

    ``exponential``: ``density ** (k / rounds)``; ``linear``: ``1 - (1 - density) * k / rounds``.
    """
    if schedule not in SCHEDULES:
        raise ConfigError(f"pruning schedule must be 'exponential' or 'linear', got {schedule!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"pruning rounds must be a positive integer, got {rounds!r}")
    out = []
    for k in range(1, rounds + 1):
        if schedule == "exponential":
            out.append(density ** (k / rounds))
        else:
            out.append(1.0 - (1.0 - density) * k / rounds)
    out[-1] = density
    return out


def prune_at_init(
    model: nn.Module,
    method: str,
    densities: Sequence[float],
    *,
    data: Data | None = None,
    scope: Scope = "global",
    rounds: int | None = None,
    schedule: Schedule = "exponential",
    generator: torch.Generator | None = None,
) -> dict[float, Masks]:
    """Masks of ``model`` at each target density, from scoring method ``method``.

    ``rounds=None`` uses the method's default (100 for ``synflow``, 1 otherwise). With one round the
    dense network is scored once and every density is an exact top-k of the same scores (so the
    masks are nested). With more rounds each density is reached on its own schedule from the dense
    network, re-scoring with the current masks each round. ``data`` is an ``(x, y)`` batch (or a
    list of them) for ``snip``/``grasp``; ``generator`` feeds ``random_init``. The model is not
    modified. Returns ``{float(density): masks}`` in the order given.
    """
    scorer = get_scorer(method)
    if isinstance(densities, (int, float)) or not densities:
        raise ConfigError(f"pruning densities must be a non-empty list, got {densities!r}")
    targets = [check_density(d, "pruning density") for d in densities]
    for d in targets:
        if d <= 0.0:
            raise ConfigError(f"pruning density must be > 0 (0 keeps no weight), got {d!r}")
    check_scope(scope)
    n_rounds = scorer.default_rounds if rounds is None else rounds
    schedule_densities(1.0, n_rounds, schedule)  # validates rounds and schedule
    if scorer.needs_data and data is None:
        raise ConfigError(
            f"pruning method {method!r} needs labelled data; pass data=(x, y) "
            "(Synaptic-Flow uses 10 x num_classes training examples)"
        )

    dense = full_masks(model)
    out: dict[float, Masks] = {}
    if n_rounds == 1:
        scores = compute_scores(method, model, dense, data, generator=generator)
        for d in targets:
            out[d] = select_top(scores, dense, d, scope)
        return out
    for d in targets:
        masks = dense
        for step in schedule_densities(d, n_rounds, schedule):
            scores = compute_scores(method, model, masks, data, generator=generator)
            masks = select_top(scores, masks, step, scope)
        out[d] = masks
    return out


def layer_collapse(masks: Masks) -> list[str]:
    """Names of the masked tensors with no kept weight (a collapsed layer cuts the network)."""
    return [n for n, m in masks.items() if not bool(m.any())]


def compression(density: float) -> float:
    """Compression ratio prunable / kept = ``1 / density`` (``inf`` for density 0)."""
    density = check_density(density)
    return math.inf if density == 0.0 else 1.0 / density


def density_from_log_compression(c: float) -> float:
    """Density ``10 ** -c`` for Synaptic-Flow's ``--compression c`` (their "sparsity" = kept)."""
    if isinstance(c, bool) or not isinstance(c, (int, float)) or c < 0:
        raise ConfigError(f"log10 compression must be a number >= 0, got {c!r}")
    return 10.0 ** (-float(c))

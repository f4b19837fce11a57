"""Where tickets are retrained: ``TransferSpec`` and the controls trained next to the tickets."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from transfer_bench.config.base import _distinct, _Model

CONTROLS = ("random_reinit", "shuffle_layerwise", "random_global", "own_ticket", "dense")


Control = Literal["random_reinit", "shuffle_layerwise", "random_global", "own_ticket", "dense"]


class TransferSpec(_Model):
    """Which tickets are retrained where, with which optimizers, next to which controls.

    ``sources`` are search sources and tickets found elsewhere (``tickets``); by default all of
    them. ``levels`` picks levels of the search (tickets are transferred at their own levels).

    ``head`` (the output layer of a transferred ticket): ``auto`` (default) keeps the source's head
    only when the target has the source's labels (same ``source``, ``label`` column and
    ``classes``: the own ticket, or another subset of the same dataset) and re-initializes it for
    every other target, even with an equal class count, because another dataset's class 3 is not
    the source's class 3 (with late rewinding the head already carries source labels);
    ``reinit`` always re-initializes; ``keep`` always keeps (class counts must match); ``match``
    keeps whenever the class counts match (the behaviour of ``auto`` before version 0.2). A
    re-initialized head is drawn from a seeded generator and pruned at random to the ticket's head
    density. Controls (all seeded from the suite):
    ``random_reinit`` same mask, fresh init; ``shuffle_layerwise`` each layer's mask permuted (per-layer
    counts kept), fresh init; ``random_global`` one permutation over all masked weights (only the
    overall density kept; Morcos' random ticket), fresh init; ``own_ticket`` the target's own IMP
    ticket at the same level (the target must be a search source; for a ticket found elsewhere,
    at that ticket's level, so the two have the same density only when the search's schedule
    matches the ticket's); ``dense`` the unpruned network. Controls of a ticket found elsewhere
    derive from its mask and init exactly as for a searched one.
    """

    sources: tuple[str, ...] | None = None
    targets: tuple[str, ...] = Field(min_length=1)
    optimizers: tuple[str, ...] | None = None
    controls: tuple[Control, ...] = ("random_reinit", "dense")
    head: Literal["auto", "reinit", "keep", "match"] = "auto"
    levels: tuple[int, ...] | None = None

    @field_validator("sources", "targets", "optimizers", "controls", "levels")
    @classmethod
    def _distinct_entries(cls, v: tuple[Any, ...] | None, info: ValidationInfo) -> Any:
        _distinct(v or (), (info.field_name or "entry").removesuffix("s"))
        return v

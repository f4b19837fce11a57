"""How tickets are found: the search (IMP, Early-Bird, pruning at init) and stability analysis.

``SearchSpec`` (method, sources, pruning rates or densities, rewinding, per-source overrides),
``EarlyBirdSpec`` (the Early-Bird settings of a search) and ``StabilitySpec`` (instability analysis
of the search's tickets), with ``PRUNE_AT_INIT`` and ``SearchMethod``, the method names.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from transfer_bench.config.base import Fraction01, _At, _distinct, _Model
from transfer_bench.suite_yaml import short as _short

_REWIND_RE = re.compile(r"^(\d+)(it|ep)$")


PRUNE_AT_INIT = ("synflow", "snip", "grasp", "magnitude_init", "random_init")
SearchMethod = Literal[
    "imp", "early_bird", "synflow", "snip", "grasp", "magnitude_init", "random_init"
]


class EarlyBirdSpec(_Model):
    """Early-Bird detection (You et al. 2020): a mask per epoch, FIFO of ``window`` masks, ticket
    drawn when every normalized Hamming distance to the newest mask is <= ``threshold``.

    ``mask``: ``magnitude`` (unstructured, global over prunable weights) or ``bn_channel``
    (network slimming: |BN scale| channels, L1 penalty ``l1`` on BN scales during training; the
    conv filters feeding pruned channels are masked). One ticket per entry of ``prune_fractions``.
    """

    mask: Literal["magnitude", "bn_channel"] = "magnitude"
    prune_fractions: tuple[Fraction01, ...] = Field((0.3, 0.5, 0.7), min_length=1)
    window: int = Field(5, ge=2)
    threshold: float = Field(0.1, gt=0.0, lt=1.0)
    l1: float = Field(1e-4, ge=0.0)

    @field_validator("prune_fractions")
    @classmethod
    def _distinct_fractions(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        _distinct(v, "prune fraction")
        return v


class StabilitySpec(_Model):
    """Instability analysis (Frankle et al. 2020): from the weights at each ``rewind_points`` entry
    (iterations, ``"<n>it"`` or ``"<n>ep"``) with each level's mask, train two copies with different
    data orders and record the error barrier on ``points`` evenly spaced points of the linear path."""

    levels: tuple[int, ...] = Field((0,), min_length=1)
    rewind_points: tuple[int | str, ...] = Field((0,), min_length=1)
    points: int = Field(30, ge=3, le=200)

    @field_validator("rewind_points")
    @classmethod
    def _forms(cls, v: tuple[int | str, ...]) -> tuple[int | str, ...]:
        for i, r in enumerate(v):
            if isinstance(r, int) and r < 0 or isinstance(r, str) and not _REWIND_RE.match(r):
                raise _At(
                    (i,), f"rewind point {_short(r)} must be an integer >= 0, '<n>it' or '<n>ep'"
                )
        _distinct(v, "rewind point")
        return v

    @field_validator("levels")
    @classmethod
    def _distinct_levels(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        _distinct(v, "level")
        return v


class SearchSpec(_Model):
    """Iterative magnitude pruning (Frankle & Carbin 2019; rewinding as in Frankle et al. 2020).

    ``method``: ``imp`` (below), ``early_bird`` (see ``EarlyBirdSpec``), or pruning at init:
    ``synflow`` (``rounds`` iterative rounds, exponential schedule; Tanaka et al. 2020), ``snip``
    (Lee et al. 2019), ``grasp`` (Wang et al. 2020), ``magnitude_init``, ``random_init``, each
    single-shot to ``densities`` (level i = densities[i-1]) with ``scope`` global or layerwise and
    ``samples_per_class`` scoring samples. ``train_levels`` trains every ticket on the source too.
    ``optimizer`` names the optimizer tickets are searched with (default ``train.optimizer``).
    ``per_source`` overrides any of these settings for one source (e.g. two names for the same
    dataset, one reset and one rewound, or one per pruning-at-init method); every source must end up
    with the same number of levels.

    IMP: each level prunes ``rate`` of the remaining non-head weights (``conv_rate`` / ``linear_rate``
    override it for conv / linear layers, e.g. Conv-6: conv 0.15, fc 0.2; ``head_rate`` for the
    head, 0 keeps the head dense), ``layerwise`` or ``global``; survivors are rewound to the weights at ``rewind``
    (0 = reset to init, an integer or ``"500it"`` = iterations, ``"1ep"`` = epochs).
    """

    method: SearchMethod = "imp"
    sources: tuple[str, ...] = Field(min_length=1)
    scope: Literal["layerwise", "global"] = "layerwise"
    rate: Fraction01 = 0.2
    conv_rate: Fraction01 | None = None
    linear_rate: Fraction01 | None = None
    head_rate: float = Field(0.1, ge=0.0, lt=1.0)
    levels: int = Field(5, ge=1, le=100)
    rewind: int | str = 0
    densities: tuple[Annotated[float, Field(gt=0.0, le=1.0)], ...] | None = None
    rounds: int = Field(100, ge=1, le=10000)
    samples_per_class: int = Field(10, ge=1)
    early_bird: EarlyBirdSpec = EarlyBirdSpec()
    train_levels: bool = True
    optimizer: str | None = None
    per_source: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _method_fields(self) -> SearchSpec:
        pai = self.method in PRUNE_AT_INIT
        if pai and not self.densities:
            raise _At(
                ("densities",),
                f"method {self.method!r} prunes at init to a list of densities; "
                "give e.g. densities: [0.5, 0.1, 0.01]",
            )
        if not pai and self.densities is not None:
            raise _At(
                ("densities",),
                f"only for pruning at init, not for method {self.method!r}; drop densities",
            )
        if pai and self.rewind not in (0, "0it", "0ep"):
            raise _At(("rewind",), f"pruning at init ({self.method}) keeps the init; use rewind: 0")
        return self

    @field_validator("sources", "densities")
    @classmethod
    def _distinct_entries(cls, v: tuple[Any, ...] | None, info: ValidationInfo) -> Any:
        _distinct(v or (), "source" if info.field_name == "sources" else "density")
        return v

    @property
    def num_levels(self) -> int:
        """Tickets beyond the dense level 0: IMP levels, PAI densities or Early-Bird fractions."""
        if self.method in PRUNE_AT_INIT:
            return len(self.densities or ())
        if self.method == "early_bird":
            return len(self.early_bird.prune_fractions)
        return self.levels

    @field_validator("rewind")
    @classmethod
    def _rewind_form(cls, v: int | str) -> int | str:
        if isinstance(v, int):
            if v < 0:
                raise ValueError("rewind must be >= 0 iterations")
            return v
        if not _REWIND_RE.match(v):
            raise ValueError(f"rewind {_short(v)} must be an integer, '<n>it' or '<n>ep'")
        return v

    def layer_rates(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, float]:
        """The rate of every (non-head) tensor: conv weights are 4-d, linear weights 2-d."""
        out = {}
        for name, shape in shapes.items():
            typed = self.conv_rate if len(shape) == 4 else self.linear_rate
            out[name] = typed if typed is not None else self.rate
        return out

    def rewind_iterations(self, steps_per_epoch: int) -> int:
        """The rewind point in iterations for a dataset with ``steps_per_epoch`` batches per epoch."""
        if isinstance(self.rewind, int):
            return self.rewind
        n, unit = _REWIND_RE.match(self.rewind).groups()  # type: ignore[union-attr]
        return int(n) * (steps_per_epoch if unit == "ep" else 1)

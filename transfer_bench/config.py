"""Typed suite schema: the single source of configuration.

Suite files are untrusted input. A suite YAML file is read with a size limit, parsed by a safe
loader that rejects duplicate keys, non-text keys, deep nesting and alias bombs, and validated into
frozen pydantic models with ``extra="forbid"``, so every problem (unknown key, wrong type, value out
of range, reference to something undefined, duplicate entry) is one ``ConfigError`` line naming the
file, the line, the dotted key path and the fix. Everything downstream (planning, hashing,
training) reads these models only.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from transfer_bench.errors import ConfigError
from transfer_bench.suite_yaml import Loc, line_finder, read_suite_text, read_yaml
from transfer_bench.suite_yaml import format_loc as _format_loc
from transfer_bench.suite_yaml import one_line as _one_line
from transfer_bench.suite_yaml import short as _short

Fraction01 = Annotated[float, Field(gt=0.0, lt=1.0)]


class _At(ValueError):
    """A validator's problem at ``path`` (relative to the model being validated)."""

    def __init__(self, path: Loc, msg: str) -> None:
        super().__init__(msg)
        self.path = tuple(path)
        self.msg = msg


def _distinct(items: Iterable[Any], what: str = "entry") -> None:
    """Reject a list with a repeated entry, naming the index of the repeat."""
    seen: dict[Any, int] = {}
    for i, x in enumerate(items):
        if x in seen:
            raise _At(
                (i,), f"{what} {_short(x)} is listed twice (also at [{seen[x]}]); list it once"
            )
        seen[x] = i


def _unwrap(ann: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` from an annotation (a real union is kept)."""
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(ann) if a is not type(None)]
            if len(members) != 1:
                return ann
            ann = members[0]
        else:
            return ann


def _admits_bool(ann: Any) -> bool:
    ann = _unwrap(ann)
    origin = get_origin(ann)
    if ann is bool or ann is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_admits_bool(a) for a in get_args(ann))
    if origin is Literal:
        return any(isinstance(a, bool) for a in get_args(ann))
    return False


def _element_type(ann: Any, i: int) -> Any:
    """The annotation of item ``i`` of a tuple/list annotation (``None`` if not a sequence)."""
    ann = _unwrap(ann)
    origin, args = get_origin(ann), get_args(ann)
    if origin is list and args:
        return args[0]
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        return args[i] if i < len(args) else None
    return None


_BOOL_FIX = "YAML reads true/false/yes/no/on/off as booleans; write a value of the right type"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_stray_booleans(cls, v: Any, info: ValidationInfo) -> Any:
        """Pydantic's lax mode reads ``true`` as 1 for numbers; a suite must say what it means."""
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return v
        if isinstance(v, bool) and not _admits_bool(field.annotation):
            raise ValueError(f"got the boolean {str(v).lower()}; {_BOOL_FIX}")
        if isinstance(v, list | tuple):
            for i, x in enumerate(v):
                elem = _element_type(field.annotation, i)
                if isinstance(x, bool) and elem is not None and not _admits_bool(elem):
                    raise _At((i,), f"got the boolean {str(x).lower()}; {_BOOL_FIX}")
        return v


class InputSpec(_Model):
    """What every dataset is adapted to: square images of ``size`` pixels with ``channels`` channels."""

    size: int = Field(28, ge=4, le=512)
    channels: Literal[1, 3] = 1
    normalize: Literal["dataset", "none"] = "dataset"


class DatasetSpec(_Model):
    """Where a dataset comes from and how it is split.

    ``source`` is ``builtin:digits``, ``builtin:mnist-5k``, ``catalog:<name>`` (a named hub dataset
    with known columns and splits: mnist, fashion_mnist, kmnist, svhn, cifar10, cifar100, places365,
    imagenet32, imagenet64), ``synthetic:<name>``, ``hf:<hub id[:config] or local dir>`` or
    ``local:<path.parquet|path.npz>``. ``image``/``label`` name the columns of ``hf:``
    and parquet sources. Sources without a test split are split (stratified, seeded by the suite's
    ``data_seed``) with ``test_fraction`` held out.

    Subsets: ``classes`` keeps only the listed classes (label ids, or class names where the source
    has them, e.g. ``[airplane, automobile, ship, truck]`` for CIFAR-10), relabelled 0..k-1 in the
    listed order; ``train_size`` / ``test_size`` keep exactly that many images of each split,
    stratified by class and seeded by ``data_seed`` (a smaller size selects a subset of a larger
    one). ``max_train`` / ``max_test`` are the older "at most" form (kept for existing suites).
    """

    source: str
    image: str = "image"
    label: str = "label"
    train_split: str = "train"
    test_split: str | None = "test"
    test_fraction: Fraction01 = 0.2
    max_train: int | None = Field(None, ge=1)
    max_test: int | None = Field(None, ge=1)
    train_size: int | None = Field(None, ge=2)
    test_size: int | None = Field(None, ge=2)
    classes: tuple[int | str, ...] | None = Field(None, min_length=2, max_length=100_000)
    num_classes: int | None = Field(None, ge=2)
    samples: int | None = Field(None, ge=2, le=10_000_000)

    @field_validator("classes")
    @classmethod
    def _distinct_classes(cls, v: tuple[int | str, ...] | None) -> tuple[int | str, ...] | None:
        _distinct(v or (), "class")
        for i, c in enumerate(v or ()):
            if isinstance(c, int) and c < 0:
                raise _At((i,), f"class {c} is negative; give a label id >= 0 or a class name")
        return v

    @model_validator(mode="after")
    def _one_size_form(self) -> DatasetSpec:
        for exact, legacy in (("train_size", "max_train"), ("test_size", "max_test")):
            if getattr(self, exact) is not None and getattr(self, legacy) is not None:
                raise _At(
                    (legacy,),
                    f"give either {exact} (exactly that many) or {legacy} (at most), not both; "
                    f"drop {legacy}",
                )
        if self.classes is not None and self.num_classes is not None:
            if self.num_classes != len(self.classes):
                raise _At(
                    ("num_classes",),
                    f"num_classes is {self.num_classes} but classes lists {len(self.classes)}; "
                    "drop num_classes (classes sets the count)",
                )
        return self

    @field_validator("source")
    @classmethod
    def _known_prefix(cls, v: str) -> str:
        prefix = v.split(":", 1)[0]
        if ":" not in v or prefix not in {"builtin", "synthetic", "hf", "local", "catalog"}:
            raise ValueError(
                f"unknown dataset source {_short(v)}; use builtin:digits, builtin:mnist-5k, "
                "catalog:<name>, synthetic:<name>, hf:<hub id> or local:<path>"
            )
        return v


class ModelSpec(_Model):
    """A model from the registry by name (``lenet_300_100``, ``conv4``, ``resnet20``, ``timm:<name>``)."""

    name: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _registered(cls, v: str) -> str:
        """The name must be in the model registry (families such as ``timm:`` take any suffix)."""
        from transfer_bench.models import list_models  # lazy: the registry imports torch

        names = list_models()
        exact = [n for n in names if not n.endswith("<name>")]
        families = [n.removesuffix("<name>") for n in names if n.endswith("<name>")]
        if v in exact or any(v.startswith(f) and len(v) > len(f) for f in families):
            return v
        hint = difflib.get_close_matches(v, exact, n=1)
        extra = f"did you mean {hint[0]!r}? " if hint else ""
        raise ValueError(f"unknown model {_short(v)}; {extra}use one of: {_names(names, 30)}")


class OptimizerSpec(_Model):
    """Optimizer hyperparameters. ``momentum``/``nesterov`` apply to SGD, ``betas`` to Adam."""

    name: Literal["sgd", "adam"]
    lr: float = Field(gt=0.0, le=10.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0, lt=1.0)
    betas: tuple[
        Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]
    ] = (0.9, 0.999)


def _default_optimizers() -> dict[str, OptimizerSpec]:
    return {
        "adam": OptimizerSpec(name="adam", lr=1.2e-3),
        "sgd": OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4),
    }


class TrainSpec(_Model):
    """How every network in the suite is trained (source search and target retraining alike).

    ``iterations``, when set, fixes the length of every training in iterations instead of
    ``epochs`` (Frankle & Carbin count iterations). ``milestones`` are epochs at which a ``step``
    schedule multiplies the LR by ``gamma``; ``warmup_steps`` ramps the LR linearly from 0 over that
    many iterations (Frankle & Carbin's warmup for VGG/ResNet). ``augment``: random crops with
    ``padding`` (and horizontal flips for ``crop_flip``) done in batches on the device.
    ``precision: auto`` trains in bf16 autocast on CUDA and fp32 elsewhere; ``channels_last: auto``
    uses the channels-last layout for conv nets on CUDA only (on this project's CPU torch build,
    channels_last ResNets with BatchNorm hung in backward after some runs in one process, and it
    gained only ~1.15x for Conv-4; ``on`` forces it); ``compile`` wraps the
    model in ``torch.compile`` (off by default: ~20 s of compile for <= 8% on CPU).
    """

    def total_iterations(self, steps_per_epoch: int) -> int:
        return self.iterations if self.iterations is not None else self.epochs * steps_per_epoch

    optimizer: str = "adam"
    batch_size: int = Field(60, ge=1)
    epochs: int = Field(10, ge=1)
    iterations: int | None = Field(None, ge=1)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "step", "cosine"] = "constant"
    milestones: tuple[Annotated[int, Field(ge=1)], ...] = ()
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    eval_batch_size: int = Field(1000, ge=1)
    eval_every: int = Field(1, ge=1)
    augment: Literal["none", "crop_flip", "crop"] = "none"
    padding: int = Field(4, ge=0, le=64)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = False

    @model_validator(mode="after")
    def _schedule_fields(self) -> TrainSpec:
        if self.schedule == "step" and not self.milestones:
            raise _At(
                ("milestones",), "schedule: step needs milestones, e.g. milestones: [80, 120]"
            )
        if self.milestones and self.schedule != "step":
            raise _At(
                ("milestones",),
                f"milestones are only used by schedule: step (schedule is {self.schedule!r}); "
                "set schedule: step or drop milestones",
            )
        for i in range(1, len(self.milestones)):
            if self.milestones[i] <= self.milestones[i - 1]:
                raise _At(("milestones", i), "milestones must be strictly increasing epochs")
        return self


_REWIND_RE = re.compile(r"^(\d+)(it|ep)$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

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


CONTROLS = ("random_reinit", "shuffle_layerwise", "random_global", "own_ticket", "dense")
#: Experiment trackers a suite may log to (``tracking.py`` implements each).
TrackerName = Literal["tensorboard", "mlflow", "wandb"]

Control = Literal["random_reinit", "shuffle_layerwise", "random_global", "own_ticket", "dense"]


class TransferSpec(_Model):
    """Which tickets are retrained where, with which optimizers, next to which controls.

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
    ticket at the same level (the target must be a search source); ``dense`` the unpruned network.
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


PlotKind = Literal[
    "sparsity_curve",
    "transfer_matrix",
    "optimizer_transfer",
    "mask_overlap",
    "layer_density",
    "training_curves",
    "stability",
]


class AnalysisSpec(_Model):
    """How the report compares tickets (and other controls) with the ``baseline`` control.

    ``test`` is the primary test whose p-values are corrected (``holm`` family-wise, ``bh`` false
    discovery rate) over the comparison table; every table also reports Welch, Mann-Whitney, paired
    tests when seeds pair, BCa bootstrap CIs (``n_resamples``, 0 = none) and effect sizes. ``plots``
    are drawn when the results have what they need (e.g. ``optimizer_transfer`` needs two optimizers).
    ``diverged``: how trainings whose loss became non-finite count: at ``chance`` accuracy (default;
    dropping them would flatter the arm that failed), ``exclude`` (n shrinks) or ``keep``.
    """

    metric: Literal["test_accuracy", "best_test_accuracy"] = "test_accuracy"
    baseline: Control = "random_reinit"
    test: Literal["welch", "mannwhitney", "paired_t", "wilcoxon"] = "welch"
    correction: Literal["holm", "bh", "none"] = "holm"
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    n_resamples: int = Field(9999, ge=0, le=1_000_000)
    plots: tuple[PlotKind, ...] = get_args(PlotKind)
    width: Literal["single", "double"] | None = None
    diverged: Literal["chance", "exclude", "keep"] = "chance"

    @field_validator("plots")
    @classmethod
    def _distinct_plots(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        _distinct(v, "plot")
        return v


class ArmSelector(_Model):
    """Which result rows form one arm of a claim check (every given field must match).

    ``density`` is an inclusive range of the fraction of weights kept, ``[low, high]``; a seed's
    value is the mean of the metric over its rows in the selection.
    """

    kind: Literal["search", "transfer", "stability", "ticket"] | None = None
    control: str | None = None
    source: str | None = None
    target: str | None = None
    optimizer: str | None = None
    level: int | None = Field(None, ge=0)
    rewind: int | None = Field(None, ge=0)
    density: tuple[float, float] | None = None

    @field_validator("density")
    @classmethod
    def _range(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not 0.0 < v[0] <= v[1] <= 1.0:
            raise ValueError(f"density range {list(v)} must satisfy 0 < low <= high <= 1")
        return v


ClaimExpectation = Literal["greater", "less", "equivalent", "not_less", "below", "above"]


class ClaimCheck(_Model):
    """One pre-registered test of a claim: ``treatment`` vs ``baseline`` paired by seed, or the
    treatment alone vs ``threshold``.

    ``expect``: ``greater``/``less`` (two-sided test, right sign; ``min_effect`` is the smallest
    effect the paper predicts: a CI entirely short of it means "not reproduced"), ``equivalent``
    (TOST within ``margin``), ``not_less`` (non-inferiority: above ``-margin``), ``below``/``above``
    (one-sample against ``threshold``). ``test``: ``t`` (paired or one-sample t-test) or ``sign``
    (exact sign test, for discrete per-seed values such as collapse counts). ``scale`` converts the
    metric for display (100: fractions to points).
    """

    name: str = Field(min_length=1, max_length=200)
    metric: str = "test_accuracy"
    treatment: ArmSelector
    baseline: ArmSelector | None = None
    expect: ClaimExpectation
    min_effect: float = Field(0.0, ge=0.0)
    margin: float | None = Field(None, gt=0.0)
    threshold: float | None = None
    test: Literal["t", "sign"] = "t"
    scale: float = Field(100.0, gt=0.0)
    unit: str = "points"

    @model_validator(mode="after")
    def _consistent(self) -> ClaimCheck:
        one_sample = self.expect in ("below", "above")
        if one_sample and (self.threshold is None or self.baseline is not None):
            raise ValueError(f"expect: {self.expect} needs a threshold and no baseline")
        if not one_sample and self.baseline is None:
            raise ValueError(f"expect: {self.expect} compares two arms; add a baseline")
        if self.expect in ("equivalent", "not_less") and self.margin is None:
            raise ValueError(f"expect: {self.expect} needs a margin (in metric units)")
        return self


class ClaimSpec(_Model):
    """A checkable claim from a paper, with its checks fixed before the suite is run."""

    title: str = Field(min_length=1)
    paper: str = Field(min_length=1)
    expected: str = Field(min_length=1)
    scaling: str = ""
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    n_resamples: int = Field(9999, ge=0, le=1_000_000)
    checks: tuple[ClaimCheck, ...] = Field(min_length=1)


class Suite(_Model):
    """A whole benchmark suite. See ``suites/quickstart.yaml`` for a commented example."""

    name: str = Field(max_length=100)
    group: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seeds: tuple[Annotated[int, Field(ge=0, lt=2**31)], ...] = Field(min_length=1)
    data_seed: int = Field(0, ge=0, lt=2**31)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    model: ModelSpec
    input: InputSpec = InputSpec()
    datasets: dict[str, DatasetSpec] = Field(min_length=1)
    optimizers: dict[str, OptimizerSpec] = Field(default_factory=_default_optimizers)
    train: TrainSpec = TrainSpec()
    search: SearchSpec
    transfer: TransferSpec | None = None
    stability: StabilitySpec | None = None
    analysis: AnalysisSpec = AnalysisSpec()
    claim: ClaimSpec | None = None
    scales: dict[str, dict[str, Any]] = Field(default_factory=dict)
    track: tuple[TrackerName, ...] = ()

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        """The name is the results folder: no path separators, no leading dot."""
        if not _NAME_RE.match(v):
            raise ValueError(
                f"{_short(v)} is not a valid suite name; start with a letter or digit and use only "
                "letters, digits, '_', '.' and '-' (it names the results folder)"
            )
        return v

    @field_validator("track", mode="before")
    @classmethod
    def _tracker_list(cls, v: Any) -> Any:
        """``track: mlflow`` or ``track: "mlflow, wandb"`` mean the list of those names."""
        if isinstance(v, str):
            return tuple(x.strip() for x in v.split(",") if x.strip())
        return v

    @field_validator("track")
    @classmethod
    def _unique_trackers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        _distinct(v, "tracker")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        _distinct(v, "seed")
        return v

    @model_validator(mode="after")
    def _references(self) -> Suite:
        def check(path: Loc, names: Any, pool: Iterable[str], what: str, fix: str) -> None:
            """Every name (a list, or one name for a scalar key) must be a key of ``pool``."""
            pool = list(pool)
            items = enumerate(names) if isinstance(names, tuple) else [(None, names)]
            for i, n in items:
                if n not in pool:
                    hint = difflib.get_close_matches(str(n), pool, n=1)
                    extra = f"did you mean {hint[0]!r}? " if hint else ""
                    raise _At(
                        path if i is None else (*path, i),
                        f"{_short(n)} is not {what} of this suite; {extra}{fix} "
                        f"(defined: {_names(sorted(pool))})",
                    )

        sources = self.search.sources
        check(
            ("search", "sources"), sources, self.datasets, "a dataset", "define it under datasets"
        )
        for src in self.search.per_source:
            if src not in sources:
                hint = difflib.get_close_matches(src, list(sources), n=1)
                extra = f"did you mean {hint[0]!r}? " if hint else ""
                raise _At(
                    ("search", "per_source", src),
                    f"{_short(src)} is not in search.sources; {extra}add it there or drop this override",
                )
        counts = {}
        for src in sources:
            try:
                counts[src] = self.search_for(src).num_levels
            except ValidationError as e:
                loc, msg = _problem(_first_error(e), SearchSpec)
                raise _At(("search", "per_source", src, *loc), msg) from None
        if len(set(counts.values())) > 1:
            raise _At(
                ("search", "per_source"),
                f"every source needs the same number of levels, got {counts}; "
                "make levels / densities / early_bird.prune_fractions agree",
            )
        fix = "define it under optimizers"
        check(("train", "optimizer"), self.train.optimizer, self.optimizers, "an optimizer", fix)
        if self.search.optimizer is not None:
            check(
                ("search", "optimizer"), self.search.optimizer, self.optimizers, "an optimizer", fix
            )
        for src, over in self.search.per_source.items():
            if "optimizer" in over and over["optimizer"] is not None:
                path = ("search", "per_source", src, "optimizer")
                check(path, over["optimizer"], self.optimizers, "an optimizer", fix)
        n = self.search.num_levels
        if self.stability is not None:
            for i, lv in enumerate(self.stability.levels):
                if not 0 <= lv <= n:
                    raise _At(
                        ("stability", "levels", i),
                        f"level {lv} is outside 0..{n} (the search's levels); pick one in range",
                    )
        if self.transfer is None:  # a search-only suite (tickets, stability, Early-Bird)
            return self
        tr = self.transfer
        if tr.sources is not None:
            check(
                ("transfer", "sources"),
                tr.sources,
                sources,
                "a search source",
                "add it to search.sources",
            )
        check(
            ("transfer", "targets"),
            tr.targets,
            self.datasets,
            "a dataset",
            "define it under datasets",
        )
        if tr.optimizers is not None:
            check(("transfer", "optimizers"), tr.optimizers, self.optimizers, "an optimizer", fix)
        if "own_ticket" in tr.controls:
            missing = [t for t in tr.targets if t not in sources]
            if missing:
                raise _At(
                    ("transfer", "controls", tr.controls.index("own_ticket")),
                    f"own_ticket needs a search on every target, but {', '.join(missing)} is "
                    "not in search.sources; add it there or drop own_ticket",
                )
        if tr.levels is not None:
            for i, lv in enumerate(tr.levels):
                if not 0 <= lv <= n:
                    raise _At(
                        ("transfer", "levels", i),
                        f"level {lv} is outside 0..{n} (the search's levels); pick one in range",
                    )
        base = self.analysis.baseline
        own = base == "own_ticket" and set(tr.targets) & set(self.transfer_sources)
        if "baseline" in self.analysis.model_fields_set and base not in tr.controls and not own:
            raise _At(
                ("analysis", "baseline"),
                f"{base!r} is not among transfer.controls ({', '.join(tr.controls) or 'none'}), "
                "so there is nothing to compare with; add it to transfer.controls or pick one",
            )
        return self

    @property
    def results_subdir(self) -> Path:
        """Where the results go below the results root: ``<group>/<name>`` or ``<name>``."""
        return Path(self.group) / self.name if self.group else Path(self.name)

    def search_for(self, source: str) -> SearchSpec:
        """The search settings of one source: ``search`` with its ``per_source`` overrides."""
        over = self.search.per_source.get(source)
        if not over:
            return self.search
        for key in ("sources", "per_source"):
            if key in over:
                raise _At(
                    ("search", "per_source", source, key),
                    "cannot be overridden per source; set it in search",
                )
        base = self.search.model_dump(exclude={"per_source"})
        return SearchSpec.model_validate({**base, **over})

    def search_optimizer(self, source: str) -> str:
        """The optimizer key a source's tickets are searched with."""
        return self.search_for(source).optimizer or self.train.optimizer

    @property
    def transfer_sources(self) -> tuple[str, ...]:
        return (self.transfer.sources if self.transfer else None) or self.search.sources

    @property
    def transfer_optimizers(self) -> tuple[str, ...]:
        return (self.transfer.optimizers if self.transfer else None) or (self.train.optimizer,)

    @property
    def transfer_levels(self) -> tuple[int, ...]:
        given = self.transfer.levels if self.transfer else None
        return given or tuple(range(self.search.num_levels + 1))


# --- error formatting ------------------------------------------------------------------------


def _names(names: Iterable[Any], limit: int = 12) -> str:
    """A bounded, comma-separated list of names for a message."""
    names = [str(n) for n in names]
    shown = ", ".join(names[:limit]) or "none"
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _clean_loc(loc: tuple[Any, ...], root: type[BaseModel]) -> tuple[Loc, type[BaseModel] | None]:
    """Pydantic's error location as the user's key path, and the model holding its last key.

    Union member tags (``'int'``, ``'str'``) and ``'[key]'`` markers are dropped; mapping keys become
    text, so only list indices stay integers.
    """
    ann: Any = root
    out: list[str | int] = []
    parent: type[BaseModel] | None = None
    for part in loc:
        ann = _unwrap(ann)
        origin = get_origin(ann)
        parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if part == "[key]":
            continue
        if origin in (Union, types.UnionType):  # pydantic names the union member tried
            ann = None
            continue
        if parent is not None:
            out.append(str(part))
            field = parent.model_fields.get(part) if isinstance(part, str) else None
            ann = field.annotation if field is not None else None
        elif origin is dict:
            out.append(str(part))
            ann = get_args(ann)[1] if get_args(ann) else None
        elif origin in (tuple, list) and isinstance(part, int):
            out.append(part)
            ann = _element_type(ann, part)
        else:
            out.append(part if isinstance(part, int) else str(part))
            ann = None
    return tuple(out), parent


def _kind(value: Any) -> str:
    """What YAML made of a value, in the user's words."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def _problem(error: Any, root: type[BaseModel]) -> tuple[Loc, str]:
    """The key path and a one-line message (with the fix) for one pydantic error."""
    loc, parent = _clean_loc(tuple(error["loc"]), root)
    kind, msg = error["type"], error["msg"]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, _At):
        return loc + cause.path, cause.msg
    got = f" (got {_short(error['input'])})" if "input" in error else ""
    if kind == "extra_forbidden":
        allowed = list(parent.model_fields) if parent is not None else []
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        msg = f"unknown key {_short(loc[-1])}; " + (
            f"did you mean {hint[0]!r}?"
            if hint
            else f"remove it (allowed here: {_names(allowed, 30)})"
        )
    elif kind == "missing":
        msg = "required key is missing; add it"
    elif "[key]" in error["loc"]:
        msg = f"keys must be text, got {_kind(error.get('input'))}{got}; quote the key"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        inp = error.get("input")
        msg = f"expected a mapping (key: value), got {_kind(inp)}: {_short(inp)}"
    elif kind in ("tuple_type", "list_type"):
        inp = error.get("input")
        msg = f"expected a list such as [a, b], got {_kind(inp)}: {_short(inp)}"
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    else:
        msg = re.sub(r"^(Tuple|List)\b", "list", msg).replace(" after validation", "")
        msg = re.sub(r"^Dictionary\b", "mapping", msg) + got
        if kind == "literal_error":
            options = re.findall(r"'([^']*)'", (error.get("ctx") or {}).get("expected", ""))
            hint = difflib.get_close_matches(str(error.get("input")), options, n=1)
            msg += f"; did you mean {hint[0]!r}?" if hint else ""
    return loc, msg


def _first_error(err: ValidationError) -> Any:
    """The error to show: an unknown key first (a misspelt key also makes a required one missing)."""
    errors = err.errors()
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def _consequence(other: Loc, other_type: str, shown: Loc) -> bool:
    """Whether an error at ``other`` is the shown one or follows from it: a failed list item also
    makes its list too short, a misspelt key also leaves a required key missing."""
    n = min(len(other), len(shown))
    return other[:n] == shown[:n] or (other_type == "missing" and other[:-1] == shown[:-1])


def format_validation_error(
    err: ValidationError,
    where: str,
    root: type[BaseModel] | None = None,
    line_of: Callable[[Loc], int | None] | None = None,
) -> str:
    """One line ``<file>[: line N]: <key path>: <problem; fix>`` for the first error (+ a count).

    ``root`` is the model ``err`` came from (paths and "did you mean" hints are relative to it;
    by default the model named in the error); ``line_of`` maps a key path to its line in the YAML
    file, when known.
    """
    if root is None:
        models = {m.__name__: m for m in _Model.__subclasses__()}
        root = models.get(err.title, Suite)
    first = _first_error(err)
    loc, msg = _problem(first, root)
    line = line_of(loc) if line_of is not None else None
    at = f"{where}: line {line}" if line else where
    others = [(_clean_loc(tuple(e["loc"]), root)[0], e["type"]) for e in err.errors()]
    more = len({o for o, kind in others if not _consequence(o, kind, loc)})
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return _one_line(f"{at}: {_format_loc(loc)}: {msg}{tail}")


def _not_a_mapping(data: Any) -> str:
    """Why a document that is not a mapping is no suite, and what a suite looks like."""
    what = "the file is empty" if data is None else f"the document is {_kind(data)}, not a mapping"
    return (
        f"{what}; a suite is a mapping of keys (name, seeds, model, datasets, search, ...); "
        "see suites/quickstart.yaml"
    )


def parse_suite(
    data: Any, where: str = "suite", line_of: Callable[[Loc], int | None] | None = None
) -> Suite:
    """Validate an already-parsed YAML document into a ``Suite`` or raise a one-line ``ConfigError``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {_not_a_mapping(data)}")
    try:
        return Suite.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, where, Suite, line_of)) from None
    except RecursionError:  # a self-referencing structure built in Python
        raise ConfigError(f"{where}: the suite refers to itself (a cycle); write it out") from None


def apply_scale(data: dict[str, Any], scale: str, where: str) -> dict[str, Any]:
    """Apply the overrides of ``scales.<scale>`` (dotted keys -> values) to a raw suite document.

    The scaled suite is named ``<name>-<scale>`` (unless the scale sets ``name``), so its results
    and report never mix with the full-scale ones.
    """
    scales = data.get("scales") or {}
    if not isinstance(scales, dict):
        raise ConfigError(f"{where}: scales: expected a mapping of scale names to overrides")
    if scale not in scales:
        known = _names(sorted(map(str, scales)))
        raise ConfigError(f"{where}: --scale {scale!r} is not in the suite's scales ({known})")
    out = copy.deepcopy(data)
    overrides = scales[scale] or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: scales.{scale}: must map dotted keys to values")
    for dotted, value in overrides.items():
        cur = out
        *parents, last = str(dotted).split(".")
        for part in parents:
            nxt = cur.get(part)
            if nxt is None:
                nxt = cur[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(
                    f"{where}: scales.{scale}.{dotted}: {part!r} is not a mapping; "
                    "override the whole value instead"
                )
            cur = nxt
        cur[last] = value
    if "name" not in overrides:
        out["name"] = f"{data.get('name', 'suite')}-{scale}"
    return out


def load_suite(path: str | Path, scale: str | None = None) -> Suite:
    """Read and validate a suite YAML file (optionally at one of its ``scales``).

    Every problem is a one-line ``ConfigError`` naming the file, the line when known, the key path
    and the fix.
    """
    p = Path(path)
    where = str(p)
    data, root = read_yaml(read_suite_text(p), where)
    if not isinstance(data, dict):
        line = f": line {root.start_mark.line + 1}" if root is not None and data is not None else ""
        raise ConfigError(f"{where}{line}: {_not_a_mapping(data)}")
    if scale is not None:
        data = apply_scale(data, scale, where)
    return parse_suite(data, where, line_finder(root, scale))

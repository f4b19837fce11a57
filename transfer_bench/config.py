"""Typed suite schema: the single source of configuration.

A suite YAML file is loaded with ``yaml.safe_load`` and validated into frozen pydantic models with
``extra="forbid"``, so an unknown or ill-typed key is rejected with its dotted path (and a "did you
mean" suggestion). Everything downstream (planning, hashing, training) reads these models only.
"""

from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from transfer_bench.errors import ConfigError

Fraction01 = Annotated[float, Field(gt=0.0, lt=1.0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


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
    """

    source: str
    image: str = "image"
    label: str = "label"
    train_split: str = "train"
    test_split: str | None = "test"
    test_fraction: Fraction01 = 0.2
    max_train: int | None = Field(None, ge=1)
    max_test: int | None = Field(None, ge=1)
    num_classes: int | None = Field(None, ge=2)
    samples: int | None = Field(None, ge=2)

    @field_validator("source")
    @classmethod
    def _known_prefix(cls, v: str) -> str:
        prefix = v.split(":", 1)[0]
        if ":" not in v or prefix not in {"builtin", "synthetic", "hf", "local", "catalog"}:
            raise ValueError(
                f"unknown dataset source {v!r}; use builtin:digits, builtin:mnist-5k, "
                "catalog:<name>, synthetic:<name>, hf:<hub id> or local:<path>"
            )
        return v


class ModelSpec(_Model):
    """A model from the registry by name (``lenet_300_100``, ``conv4``, ``resnet20``, ``timm:<name>``)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class OptimizerSpec(_Model):
    """Optimizer hyperparameters. ``momentum``/``nesterov`` apply to SGD, ``betas`` to Adam."""

    name: Literal["sgd", "adam"]
    lr: float = Field(gt=0.0, le=10.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0, lt=1.0)
    betas: tuple[float, float] = (0.9, 0.999)


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
    milestones: tuple[int, ...] = ()
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    eval_batch_size: int = Field(1000, ge=1)
    eval_every: int = Field(1, ge=1)
    augment: Literal["none", "crop_flip", "crop"] = "none"
    padding: int = Field(4, ge=0, le=64)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = False


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
        for r in v:
            if isinstance(r, int) and r < 0 or isinstance(r, str) and not _REWIND_RE.match(r):
                raise ValueError(f"rewind point {r!r} must be >= 0, '<n>it' or '<n>ep'")
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
            raise ValueError(
                f"search.densities: method {self.method!r} prunes at init to a list of densities; "
                "give e.g. densities: [0.5, 0.1, 0.01]"
            )
        if not pai and self.densities is not None:
            raise ValueError(
                f"search.densities: only for pruning at init, not for method {self.method!r}"
            )
        if pai and self.rewind not in (0, "0it", "0ep"):
            raise ValueError(
                f"search.rewind: pruning at init ({self.method}) keeps the init; use rewind: 0"
            )
        return self

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
            raise ValueError(f"rewind {v!r} must be an integer, '<n>it' or '<n>ep'")
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
Control = Literal["random_reinit", "shuffle_layerwise", "random_global", "own_ticket", "dense"]


class TransferSpec(_Model):
    """Which tickets are retrained where, with which optimizers, next to which controls.

    ``head``: ``auto`` re-initializes the head only when the class count differs, ``reinit`` always
    does, ``keep`` requires equal class counts. Controls (all seeded from the suite):
    ``random_reinit`` same mask, fresh init; ``shuffle_layerwise`` each layer's mask permuted (per-layer
    counts kept), fresh init; ``random_global`` one permutation over all masked weights (only the
    overall density kept; Morcos' random ticket), fresh init; ``own_ticket`` the target's own IMP
    ticket at the same level (the target must be a search source); ``dense`` the unpruned network.
    """

    sources: tuple[str, ...] | None = None
    targets: tuple[str, ...] = Field(min_length=1)
    optimizers: tuple[str, ...] | None = None
    controls: tuple[Control, ...] = ("random_reinit", "dense")
    head: Literal["auto", "reinit", "keep"] = "auto"
    levels: tuple[int, ...] | None = None


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
    """

    metric: Literal["test_accuracy", "best_test_accuracy"] = "test_accuracy"
    baseline: Control = "random_reinit"
    test: Literal["welch", "mannwhitney", "paired_t", "wilcoxon"] = "welch"
    correction: Literal["holm", "bh", "none"] = "holm"
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    n_resamples: int = Field(9999, ge=0, le=1_000_000)
    plots: tuple[PlotKind, ...] = get_args(PlotKind)
    width: Literal["single", "double"] | None = None


class Suite(_Model):
    """A whole benchmark suite. See ``suites/quickstart.yaml`` for a commented example."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seeds: tuple[Annotated[int, Field(ge=0, lt=2**31)], ...] = Field(min_length=1)
    data_seed: int = Field(0, ge=0)
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
    scales: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @model_validator(mode="after")
    def _references(self) -> Suite:
        def check(path: str, names: tuple[str, ...] | list[str], pool: dict, what: str) -> None:
            for i, n in enumerate(names):
                if n not in pool:
                    hint = difflib.get_close_matches(n, list(pool), n=1)
                    extra = f"; did you mean {hint[0]!r}?" if hint else ""
                    raise ValueError(
                        f"{path}[{i}]: {n!r} is not a {what} defined in this suite "
                        f"(known: {', '.join(sorted(pool))}){extra}"
                    )

        check("search.sources", self.search.sources, self.datasets, "dataset")
        check(
            "search.per_source",
            list(self.search.per_source),
            {s: 1 for s in self.search.sources},
            "search source",
        )
        counts = {}
        for src in self.search.sources:
            try:
                counts[src] = self.search_for(src).num_levels
            except ValidationError as e:
                first = e.errors()[0]
                loc = ".".join(str(x) for x in first["loc"])
                raise ValueError(f"search.per_source.{src}.{loc}: {first['msg']}") from None
        if len(set(counts.values())) > 1:
            raise ValueError(
                f"search.per_source: every source needs the same number of levels, got {counts}"
            )
        check("train.optimizer", [self.train.optimizer], self.optimizers, "optimizer")
        for src in self.search.sources:
            check(
                f"search.per_source.{src}.optimizer",
                [self.search_optimizer(src)],
                self.optimizers,
                "optimizer",
            )
        n = self.search.num_levels
        if self.stability is not None:
            bad = [lv for lv in self.stability.levels if not 0 <= lv <= n]
            if bad:
                raise ValueError(f"stability.levels: {bad} outside 0..{n} (the search's levels)")
        if self.transfer is None:
            if self.stability is None:
                raise ValueError("transfer: required unless the suite has a stability section")
            return self
        check(
            "transfer.sources",
            self.transfer_sources,
            {s: 1 for s in self.search.sources},
            "search source",
        )
        check("transfer.targets", self.transfer.targets, self.datasets, "dataset")
        check("transfer.optimizers", self.transfer_optimizers, self.optimizers, "optimizer")
        if len(set(self.transfer.controls)) != len(self.transfer.controls):
            raise ValueError("transfer.controls: each control may appear once")
        if "own_ticket" in self.transfer.controls:
            missing = [t for t in self.transfer.targets if t not in self.search.sources]
            if missing:
                raise ValueError(
                    f"transfer.controls: own_ticket needs a search on every target, but "
                    f"{', '.join(missing)} is not in search.sources; add it there or drop own_ticket"
                )
        if self.transfer.levels is not None:
            bad = [lv for lv in self.transfer.levels if not 0 <= lv <= n]
            if bad:
                raise ValueError(f"transfer.levels: {bad} outside 0..{n} (the search's levels)")
        return self

    def search_for(self, source: str) -> SearchSpec:
        """The search settings of one source: ``search`` with its ``per_source`` overrides."""
        over = self.search.per_source.get(source)
        if not over:
            return self.search
        if {"sources", "per_source"} & set(over):
            raise ValueError(f"search.per_source.{source}: cannot override sources or per_source")
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


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at the parent of ``loc`` (for did-you-mean hints)."""
    model: Any = Suite
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part) if isinstance(part, str) else None
        if field is None:
            ann = None
        else:
            ann = field.annotation
        # dict[str, Spec] levels: the key is a user name, skip into the value type
        if ann is not None and getattr(ann, "__origin__", None) is dict:
            ann = ann.__args__[1]
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif field is None and isinstance(model, type) and issubclass(model, BaseModel):
            continue
        else:
            return []
    return list(getattr(model, "model_fields", {}))


def format_validation_error(err: ValidationError, where: str) -> str:
    """One line: ``<file>: <key path>: <problem>`` for the first error, plus a count of the rest."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        hint = difflib.get_close_matches(str(loc[-1]), _allowed_keys(loc), n=1)
        msg = f"unknown key {loc[-1]!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
        allowed = _allowed_keys(loc)
        if allowed and not hint:
            msg += f" (allowed: {', '.join(allowed)})"
    elif first["type"] == "missing":
        msg = "required key is missing"
    elif "input" in first and first["type"] not in ("value_error",):
        msg = f"{msg} (got {first['input']!r})"
    msg = msg.removeprefix("Value error, ")
    more = len(err.errors()) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{where}: {_format_loc(loc)}: {msg}{tail}"


def parse_suite(data: Any, where: str = "suite") -> Suite:
    """Validate an already-parsed YAML document into a ``Suite`` or raise a one-line ``ConfigError``."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: the document must be a mapping of keys (name, seeds, model, ...)"
        )
    try:
        return Suite.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, where)) from None


def apply_scale(data: dict[str, Any], scale: str, where: str) -> dict[str, Any]:
    """Apply the overrides of ``scales.<scale>`` (dotted keys -> values) to a raw suite document.

    The scaled suite is named ``<name>-<scale>`` (unless the scale sets ``name``), so its results
    and report never mix with the full-scale ones.
    """
    scales = data.get("scales") or {}
    if scale not in scales:
        known = ", ".join(sorted(scales)) or "none defined"
        raise ConfigError(f"{where}: --scale {scale!r} is not in the suite's scales ({known})")
    out = copy.deepcopy(data)
    overrides = scales[scale] or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: scales.{scale} must map dotted keys to values")
    for dotted, value in overrides.items():
        cur = out
        *parents, last = str(dotted).split(".")
        for part in parents:
            nxt = cur.get(part) if isinstance(cur, dict) else None
            if nxt is None:
                nxt = cur[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"{where}: scales.{scale}.{dotted}: {part!r} is not a mapping")
            cur = nxt
        cur[last] = value
    if "name" not in overrides:
        out["name"] = f"{data.get('name', 'suite')}-{scale}"
    return out


def load_suite(path: str | Path, scale: str | None = None) -> Suite:
    """Read and validate a suite YAML file (optionally at one of its ``scales``)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read suite file ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{p}:{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if scale is not None:
        if not isinstance(data, dict):
            raise ConfigError(
                f"{p}: the document must be a mapping of keys (name, seeds, model, ...)"
            )
        data = apply_scale(data, scale, str(p))
    return parse_suite(data, str(p))

"""What is trained on what, and how: input format, datasets, model, optimizers, training.

``InputSpec`` (the image format every dataset is adapted to), ``DatasetSpec`` (where a dataset
comes from, its split and subset), ``ModelSpec`` (a model of the registry), ``OptimizerSpec`` (with
the default optimizers of a suite) and ``TrainSpec`` (length, batch sizes, LR schedule,
augmentation, precision), shared by the ticket search and the retraining on targets.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from transfer_bench.config.base import Fraction01, _At, _distinct, _Model
from transfer_bench.config.messages import _names
from transfer_bench.suite_yaml import short as _short


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
    uses the channels-last layout for conv nets on CUDA only; ``on`` uses it on the CPU too, where it
    trains the narrow ``cpu``-scale nets 1.17-1.30x faster (``benchmarks/cpu_scale.py
    --channels-last both``) but is not the default, so existing CPU results keep their numbers
    (oneDNN's AVX2 kernels corrupt the heap on strided 1x1 convolutions with 2-7 input channels in
    this layout; :mod:`transfer_bench.training.layout` keeps those NCHW); ``compile`` wraps the
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

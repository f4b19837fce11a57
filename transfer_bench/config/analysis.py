"""How results are compared: the report's ``AnalysisSpec`` and a paper claim's ``ClaimSpec``.

``AnalysisSpec`` (metric, baseline control, test and correction, the primary comparisons,
bootstrap, figures, diverged trainings); ``PrimaryComparison`` names cells of the per-level table
that a suite exists for; ``check_primaries`` checks those names against the suite. ``ClaimSpec`` is
a pre-registered claim: ``ClaimCheck`` tests, each comparing the arms that ``ArmSelector`` picks
from the result rows.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from transfer_bench.config.base import _At, _distinct, _Model
from transfer_bench.config.transfer import Control
from transfer_bench.suite_yaml import short as _short

PlotKind = Literal[
    "sparsity_curve",
    "transfer_matrix",
    "optimizer_transfer",
    "mask_overlap",
    "layer_density",
    "training_curves",
    "stability",
]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class PrimaryComparison(_Model):
    """One comparison a suite exists for: ``arm`` vs the suite's ``analysis.baseline`` in the
    per-level table. A field left out matches every value, so ``{arm: ticket, level: 3}`` names
    every ticket cell at level 3 and ``{source: cifar10, target: fashion_mnist}`` the CIFAR-10
    ticket on Fashion-MNIST at every transferred level.
    """

    arm: str = Field("ticket", min_length=1)
    source: str | None = None
    target: str | None = None
    optimizer: str | None = None
    level: int | None = Field(None, ge=0)

    def matches(self, row: Mapping[str, Any]) -> bool:
        """Whether a table row (``control``, ``source``, ``target``, ``optimizer``, ``level``)
        is one of the comparisons this entry names."""
        if row.get("control") != self.arm:
            return False
        for field in ("source", "target", "optimizer"):
            want = getattr(self, field)
            if want is not None and (_missing(row.get(field)) or str(row.get(field)) != want):
                return False
        return self.level is None or int(row.get("level", -1)) == self.level

    def label(self) -> str:
        """ "ticket from cifar10 on fashion_mnist (sgd) at level 3", "any" for omitted fields."""
        text = f"{self.arm} from {self.source or 'any source'} on {self.target or 'any target'}"
        if self.optimizer is not None:
            text += f" ({self.optimizer})"
        return text + (f" at level {self.level}" if self.level is not None else " at every level")


def check_primaries(
    primary: Iterable[PrimaryComparison],
    *,
    baseline: str,
    arms: Iterable[str],
    sources: Iterable[str],
    targets: Iterable[str],
    optimizers: Iterable[str],
    levels: Iterable[int] | None,
) -> None:
    """Every name in ``analysis.primary`` must exist in the suite (an ``_At`` error naming the
    entry, the field and the fix otherwise): the arm is the ticket or a trained control other than
    the baseline and ``dense``, the rest are the suite's transfer sources, targets, optimizers and
    levels (``levels=None``: not known yet, as for tickets whose files record their levels)."""
    allowed = {
        "arm": [a for a in dict.fromkeys(arms) if a not in (baseline, "dense")],
        "source": list(sources),
        "target": list(targets),
        "optimizer": list(optimizers),
    }
    if levels is not None:
        allowed["level"] = list(levels)
    what = {
        "arm": "an arm compared with the baseline",
        "source": "a transfer source",
        "target": "a transfer target",
        "optimizer": "a transfer optimizer",
        "level": "a transferred level",
    }
    for i, entry in enumerate(primary):
        for field, pool in allowed.items():
            value = getattr(entry, field)
            if value is None or value in pool:
                continue
            hint = difflib.get_close_matches(str(value), [str(x) for x in pool], n=1)
            extra = f"did you mean {hint[0]!r}? " if hint else ""
            if field == "arm" and value == baseline:
                msg = f"{_short(value)} is the analysis.baseline; name an arm compared with it"
            else:
                msg = f"{_short(value)} is not {what[field]} of this suite; {extra}use one of"
            listed = ", ".join(str(x) for x in pool) or "none"
            raise _At(("analysis", "primary", i, field), f"{msg} ({listed})")


class AnalysisSpec(_Model):
    """How the report compares tickets (and other controls) with the ``baseline`` control.

    ``test`` is the primary test (default ``paired_t``: the paired t-test on arms that share their
    seeds, Welch's test where the seeds differ) whose p-values are corrected (``holm``
    family-wise, ``bh`` false discovery rate) over the ``primary`` comparisons: the cells of the
    per-level table the suite exists for (``PrimaryComparison``). Every other cell is secondary,
    corrected among the secondary cells of its table and marked so; without ``primary`` (and
    without a ``claim``, whose checks are then the primaries) every cell of the per-level table
    is primary. Every table also reports Welch, Mann-Whitney, paired tests when seeds pair, BCa
    bootstrap CIs (``n_resamples``, 0 = none) and effect sizes. ``plots``
    are drawn when the results have what they need (e.g. ``optimizer_transfer`` needs two optimizers).
    ``diverged``: how trainings whose loss became non-finite count: at ``chance`` accuracy (default;
    dropping them would flatter the arm that failed), ``exclude`` (n shrinks) or ``keep``.
    """

    metric: Literal["test_accuracy", "best_test_accuracy"] = "test_accuracy"
    baseline: Control = "random_reinit"
    test: Literal["welch", "mannwhitney", "paired_t", "wilcoxon"] = "paired_t"
    correction: Literal["holm", "bh", "none"] = "holm"
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    primary: tuple[PrimaryComparison, ...] = ()
    n_resamples: int = Field(9999, ge=0, le=1_000_000)
    plots: tuple[PlotKind, ...] = get_args(PlotKind)
    width: Literal["single", "double"] | None = None
    diverged: Literal["chance", "exclude", "keep"] = "chance"

    @field_validator("plots")
    @classmethod
    def _distinct_plots(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        _distinct(v, "plot")
        return v

    @field_validator("primary")
    @classmethod
    def _distinct_primaries(cls, v: tuple[PrimaryComparison, ...]) -> tuple[PrimaryComparison, ...]:
        seen: dict[PrimaryComparison, int] = {}
        for i, entry in enumerate(v):
            if entry in seen:
                raise _At(
                    (i,),
                    f"{entry.label()} is listed twice (also at [{seen[entry]}]); list it once",
                )
            seen[entry] = i
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

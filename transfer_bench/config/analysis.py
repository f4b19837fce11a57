"""How results are compared: the report's ``AnalysisSpec`` and a paper claim's ``ClaimSpec``.

``AnalysisSpec`` (metric, baseline control, test and correction, bootstrap, figures, diverged
trainings); ``ClaimSpec`` is a pre-registered claim: ``ClaimCheck`` tests, each comparing the arms
that ``ArmSelector`` picks from the result rows.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator

from transfer_bench.config.base import _distinct, _Model
from transfer_bench.config.transfer import Control

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

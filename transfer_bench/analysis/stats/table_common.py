"""What the ticket-vs-control tables share: settings, corrected p-values and the MDE.

``comparison``, ``auc`` and ``sources`` build rows with ``compare_samples``; this module holds
their settings (``TableSettings``: checked with one ``ConfigError`` message per mistake, passed on
to ``compare_samples``, recorded in the table's ``.attrs``), turns their notes into warnings, and
finishes their tables (``_finish_table``): the columns every table ends with (``STAT_COLUMNS``),
each row's ``role`` (``primary``: a comparison the suite exists for; ``secondary``: everything
else), ``p_adj`` (``corrections``, applied within each role, so secondary cells never dilute the
primaries' correction), ``significant`` and the minimum detectable effect ``mde`` at ``mde_alpha``
(``analysis.power``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from transfer_bench.analysis import power as pw
from transfer_bench.analysis.stats.corrections import CORRECTIONS, adjust_pvalues
from transfer_bench.analysis.stats.pairing import DEFAULT_TEST
from transfer_bench.analysis.stats.selection import _transfer
from transfer_bench.analysis.stats.significance import TESTS
from transfer_bench.analysis.stats.two_sample import SAMPLE_COLUMNS
from transfer_bench.errors import ConfigError

BASELINES: tuple[str, ...] = ("random_reinit", "dense")
ROLES: tuple[str, ...] = ("primary", "secondary")

# The columns every table ends with: the statistics of ``compare_samples``, what
# ``_apply_correction`` adds, and the row's notes.
STAT_COLUMNS: tuple[str, ...] = (
    *SAMPLE_COLUMNS,
    "role",
    "p_adj",
    "significant",
    "mde",
    "mde_alpha",
    "note",
)


def _check_args(
    df: pd.DataFrame,
    metric: str,
    baseline: str | None,
    correction: str,
    alpha: float,
    *,
    test: str = DEFAULT_TEST,
    treatment: tuple[str, ...] = ("ticket",),
    n_resamples: int = 0,
) -> None:
    if metric not in df.columns:
        known = ", ".join(c for c in ("test_accuracy", "best_test_accuracy") if c in df.columns)
        raise ConfigError(
            f"analysis.metric: {metric!r} is not a result field (use one of: {known})"
        )
    if baseline is not None:
        present = set(_transfer(df)["control"].dropna()) if "control" in df.columns else set()
        known = list(dict.fromkeys([*BASELINES, *sorted(present - set(treatment))]))
        if baseline not in known:
            raise ConfigError(
                f"analysis.baseline: unknown baseline {baseline!r}; use one of {', '.join(known)}"
            )
        if baseline in treatment:
            raise ConfigError(
                f"analysis.baseline: {baseline!r} is also a compared arm; pick another control"
            )
    if correction not in CORRECTIONS:
        raise ConfigError(
            f"analysis.correction: unknown correction {correction!r}; use 'holm', 'bh' or 'none'"
        )
    if test not in TESTS:
        raise ConfigError(f"analysis.test: unknown test {test!r}; use one of {', '.join(TESTS)}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"analysis.alpha: {alpha} must be between 0 and 1 (e.g. 0.05)")
    if not (isinstance(n_resamples, int | np.integer) and n_resamples >= 0):
        raise ConfigError(
            f"analysis.n_resamples: {n_resamples!r} must be a whole number >= 0 (e.g. 9999)"
        )


def _warn_note(context: str, where: str, note: str) -> None:
    if note:
        warnings.warn(f"{context}: {where}: {note}", stacklevel=4)


def _groups(out: pd.DataFrame, family: Sequence[str] | None) -> list[pd.Index]:
    """The correction families of a table: its rows by ``role``, then by the ``family`` columns."""
    keys = ["role", *(family or ())]
    by = keys[0] if len(keys) == 1 else keys
    return list(out.groupby(by, dropna=False, sort=False).groups.values())


def _apply_correction(
    out: pd.DataFrame,
    correction: str,
    alpha: float,
    family: Sequence[str] | None,
    span: float | None = None,
) -> pd.DataFrame:
    """Fill ``p_adj``: corrected within each role (primary, secondary) of the table, and within
    groups of the ``family`` columns when given; then the MDEs (bounded by the metric's
    ``span``)."""
    if out.empty:
        out["p_adj"] = pd.Series(dtype=float)
    else:
        out["p_adj"] = np.nan
        for idx in _groups(out, family):
            out.loc[idx, "p_adj"] = adjust_pvalues(out.loc[idx, "p"].to_numpy(float), correction)
    out["significant"] = (out["p_adj"] < alpha).fillna(False).astype(bool)
    return _add_mde(out, correction, alpha, family, span=span)


def row_design(row: pd.Series | dict) -> pw.Design:
    """The power-analysis design of one table row: paired when its primary test was paired."""
    return pw.Design(
        sd_a=float(row["ticket_std"]),
        sd_b=float(row["baseline_std"]),
        n_a=int(row["ticket_n"]),
        n_b=int(row["baseline_n"]),
        paired=row["test"] in ("paired_t", "wilcoxon"),
        sd_diff=float(row.get("diff_std", math.nan)),
    )


def _add_mde(
    out: pd.DataFrame,
    correction: str,
    alpha: float,
    family: Sequence[str] | None,
    power: float = pw.DEFAULT_POWER,
    span: float | None = None,
) -> pd.DataFrame:
    """``mde``: the smallest true difference (metric units) each row's primary test would detect
    with ``power`` at ``mde_alpha``, the per-cell level of its correction family (its role and
    ``family`` group; ``power.cell_alpha``); infinite where no difference within the metric's
    ``span`` would be (``power.mde``)."""
    out["mde"] = np.nan
    out["mde_alpha"] = np.nan
    if out.empty:
        return out
    for idx in _groups(out, family):
        m = int(out.loc[idx, "p"].notna().sum())
        level = pw.cell_alpha(alpha, correction, m)
        for i in idx:
            row = out.loc[i]
            if not math.isfinite(float(row["p"])):
                continue
            out.loc[i, "mde_alpha"] = level
            out.loc[i, "mde"] = pw.mde(
                row_design(row), level, power=power, test=str(row["test"]), span=span
            )
    out.attrs["power"] = power
    return out


# ------------------------------------------------------------------------ set-up and finish


@dataclass(frozen=True)
class TableSettings:
    """The settings every ticket-vs-control table takes (its function's keywords but the arms).

    ``check`` validates them against a results frame, ``stats_kw`` passes them on to
    ``compare_samples``, and ``attrs`` records them on the table, with the same keys in the same
    order in every table.
    """

    metric: str
    test: str
    correction: str
    alpha: float
    n_resamples: int
    seed: int
    confidence_level: float

    def check(
        self, df: pd.DataFrame, baseline: str | None, treatment: tuple[str, ...] = ("ticket",)
    ) -> None:
        """``ConfigError`` when ``df`` cannot be tabulated with these settings (``_check_args``)."""
        _check_args(
            df,
            self.metric,
            baseline,
            self.correction,
            self.alpha,
            test=self.test,
            treatment=treatment,
            n_resamples=self.n_resamples,
        )

    @property
    def stats_kw(self) -> dict[str, Any]:
        """The keywords of ``compare_samples``."""
        return dict(
            test=self.test,
            n_resamples=self.n_resamples,
            seed=self.seed,
            confidence_level=self.confidence_level,
        )

    def attrs(
        self, table: str, baseline: str | None, treatment: tuple[str, ...], **extra: Any
    ) -> dict[str, Any]:
        """A table's ``.attrs``: its kind, baseline, treatment arms and settings, then ``extra``."""
        return dict(
            table=table,
            metric=self.metric,
            baseline=baseline,
            treatment=treatment,
            test=self.test,
            correction=self.correction,
            alpha=self.alpha,
            n_resamples=self.n_resamples,
            seed=self.seed,
            confidence_level=self.confidence_level,
            **extra,
        )


def _treatment_arms(
    df: pd.DataFrame, treatments: tuple[str, ...]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The transfer runs of ``df`` and, among them, the runs of the ``treatments`` controls."""
    transfer = _transfer(df)
    return transfer, transfer[transfer["control"].isin(treatments)]


def _finish_table(
    rows: list[dict],
    columns: Sequence[str],
    *,
    correction: str,
    alpha: float,
    attrs: dict,
    family: Sequence[str] | None = None,
    sort_by: Sequence[str] = (),
    role: str = "primary",
) -> pd.DataFrame:
    """Rows of ``compare_samples`` statistics -> the table.

    ``role`` for rows that do not carry one; ``p_adj``, ``significant`` and ``mde``
    (``_apply_correction``), rows sorted by ``sort_by`` (missing values first; no sorting when
    empty), cut to ``columns``, settings in ``.attrs``. No rows give an empty table with
    ``columns``.
    """
    if not rows:
        out = pd.DataFrame(columns=list(columns))
    else:
        rows = [{"role": role, **r} for r in rows]
        span = pw.metric_span(attrs.get("metric", ""))
        out = _apply_correction(pd.DataFrame(rows), correction, alpha, family, span)
        if sort_by:
            out = out.sort_values(list(sort_by), na_position="first")
        out = out.reset_index(drop=True)[list(columns)]
    out.attrs.update(attrs)
    return out

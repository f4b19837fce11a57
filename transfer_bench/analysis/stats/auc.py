"""Sparsity-integrated tables: per seed, mean accuracy over log10(density), then the same tests.

``normalized_auc`` is the trapezoid area under accuracy vs log10(density) divided by the span;
``auc_table`` integrates every treatment arm over the levels it shares with its counterpart (a
control, or every other source of the same arm) and compares the per-seed areas with
``compare_samples``. Columns: ``AUC_COLUMNS``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import integrate

from transfer_bench.analysis.stats.pairing import DEFAULT_TEST
from transfer_bench.analysis.stats.samples import Samples
from transfer_bench.analysis.stats.selection import (
    _as_tuple,
    _baseline_rows,
    _name,
    _sources,
    seed_values,
)
from transfer_bench.analysis.stats.table_common import (
    STAT_COLUMNS,
    TableSettings,
    _finish_table,
    _treatment_arms,
    _warn_note,
)
from transfer_bench.analysis.stats.two_sample import compare_samples

AUC_COLUMNS: tuple[str, ...] = (
    "source",
    "target",
    "optimizer",
    "control",
    "baseline",
    "baseline_source",
    "n_levels",
    "levels",
    "density_min",
    "density_max",
    *STAT_COLUMNS,
)


def normalized_auc(density: Samples, values: Samples) -> float:
    """Mean of ``values`` over log10(density): trapezoid area divided by the log-density span.

    Points are sorted by density; NaN when fewer than 2 distinct densities (zero span).
    """
    x = np.log10(np.asarray(density, dtype=float))
    y = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="stable")
    span = float(x.max() - x.min()) if x.size else 0.0
    if x.size < 2 or span <= 0:
        return math.nan
    return float(integrate.trapezoid(y[order], x[order]) / span)


def _auc_series(
    rows: pd.DataFrame, metric: str, levels: Sequence[int], where: str
) -> tuple[pd.Series, list[str]]:
    """Per-seed normalised AUC over ``levels``; seeds lacking a level are dropped (with a note)."""
    rows = rows[rows["level"].isin(levels)]
    rows = rows[rows[metric].notna()]
    if rows[["seed", "level"]].duplicated().any():
        warnings.warn(
            f"{where}: several runs share a seed and level; averaged per seed and level",
            stacklevel=4,
        )
    cell = rows.groupby(["seed", "level"])[[metric, "density"]].mean()
    acc = cell[metric].unstack("level").reindex(columns=list(levels))
    dens = cell["density"].unstack("level").reindex(columns=list(levels))
    complete = acc.notna().all(axis=1)
    notes = []
    if not complete.all():
        dropped = ", ".join(str(s) for s in acc.index[~complete])
        notes.append(f"{where}: seed(s) {dropped} lack some shared levels and were dropped")
    aucs = {
        s: normalized_auc(dens.loc[s].to_numpy(), acc.loc[s].to_numpy())
        for s in acc.index[complete]
    }
    return pd.Series(aucs, dtype=float, name=metric).rename_axis("seed"), notes


def _is_flat(rows: pd.DataFrame) -> bool:
    """A control trained only at density 1 (dense) has a flat curve: its AUC is its accuracy."""
    return len(rows) > 0 and bool((rows["density"] >= 1.0).all())


def _auc_row(
    arm: pd.DataFrame,
    base_rows: pd.DataFrame,
    *,
    key: dict,
    baseline: str,
    baseline_name: str,
    metric: str,
    stats_kw: dict,
    context: str,
    keep_empty: bool = False,
) -> dict | None:
    """One sparsity-integrated comparison row (without ``p_adj``/``significant``). With fewer
    than 2 shared levels there is nothing to integrate: None (with a warning when the arm itself
    has more levels than it shares), or with ``keep_empty`` a row of NaN statistics and the
    reason in its note."""
    where = (
        f"{key['control']} from {_name(key['source'])} on {key['target']}/{key['optimizer']} "
        f"(AUC) vs {baseline_name}"
    )
    levels_a = set(arm["level"].astype(int))
    flat = _is_flat(base_rows)
    levels_b = levels_a if flat else set(base_rows["level"].astype(int))
    shared = sorted(levels_a & levels_b)
    notes = []
    if levels_a != levels_b and len(base_rows):
        only = ", ".join(str(v) for v in sorted(levels_a ^ levels_b))
        notes.append(f"level(s) {only} lack one arm; AUC over the {len(shared)} shared levels")
    names = (key["control"], baseline_name)
    if len(shared) < 2:
        why = f"no {baseline_name} runs" if not len(base_rows) else "fewer than 2 shared levels"
        why += f" ({len(shared)} shared); no AUC"
        if keep_empty:
            row = compare_samples(pd.Series(dtype=float), pd.Series(dtype=float), names=names)
            row.update(key, baseline=baseline, baseline_source="", n_levels=len(shared))
            row.update(levels="", density_min=math.nan, density_max=math.nan, note=why)
            _warn_note(context, where, why)
            return row
        if len(levels_a) >= 2:  # one level (a single-level suite) has nothing to integrate
            _warn_note(context, where, why)
        return None
    a, notes_a = _auc_series(arm, metric, shared, key["control"])
    if flat:
        b, notes_b = seed_values(base_rows, metric, f"{where} ({baseline})"), []
    else:
        b, notes_b = _auc_series(base_rows, metric, shared, baseline_name)
    notes += notes_a + notes_b
    row = compare_samples(a, b, names=names, **stats_kw)
    a_rows = arm[arm["level"].isin(shared)]
    notes.append(row["note"])
    row.update(
        key,
        baseline=baseline,
        baseline_source=_sources(base_rows) if len(base_rows) else "",
        n_levels=len(shared),
        levels=",".join(str(v) for v in shared),
        density_min=float(a_rows["density"].min()) if len(a_rows) else math.nan,
        density_max=float(a_rows["density"].max()) if len(a_rows) else math.nan,
        note="; ".join(dict.fromkeys(n for n in notes if n)),
    )
    _warn_note(context, where, row["note"])
    return row


def _finish_auc(
    rows: list[dict], correction: str, alpha: float, attrs: dict, role: str = "secondary"
) -> pd.DataFrame:
    order = ("target", "optimizer", "control", "source", "baseline_source")
    return _finish_table(
        rows, AUC_COLUMNS, correction=correction, alpha=alpha, attrs=attrs, sort_by=order, role=role
    )


def auc_table(
    df: pd.DataFrame,
    *,
    metric: str = "test_accuracy",
    baseline: str | None = "random_reinit",
    treatment: str | Sequence[str] = "ticket",
    test: str = DEFAULT_TEST,
    correction: str = "holm",
    alpha: float = 0.05,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence_level: float = 0.95,
    role: str = "secondary",
) -> pd.DataFrame:
    """Sparsity-integrated comparisons: per seed, mean accuracy over log10(density), then tests.

    Each treatment arm (control, source, target, optimizer) is integrated over the levels it shares
    with its counterpart (``normalized_auc``). With ``baseline`` a control name the counterpart is
    that control's runs (``select_baseline`` rules; a dense baseline is a flat line, so its AUC is
    its accuracy). With ``baseline=None`` every pair of sources of the same treatment control on the
    same target and optimizer is compared (A = ``source``, B = ``baseline_source``, sorted by name;
    ``diff`` = A - B). Statistics as in ``comparison_table`` (``ticket_*`` = arm A, ``baseline_*`` =
    arm B); ``p_adj`` is corrected over all rows, which share one ``role`` (default
    "secondary": an integral summarises the per-level cells, where the primaries are named).
    Arms that share fewer than 2 levels with their counterpart get no row (a single-level suite
    gives an empty table). Columns: ``AUC_COLUMNS``.
    """
    treatments = _as_tuple(treatment)
    settings = TableSettings(metric, test, correction, alpha, n_resamples, seed, confidence_level)
    settings.check(df, baseline, treatments)
    transfer, arms = _treatment_arms(df, treatments)
    attrs = settings.attrs("auc", baseline, treatments)
    if arms.empty:
        warnings.warn(f"auc: no transfer {'/'.join(treatments)} results to compare", stacklevel=2)
        return _finish_auc([], correction, alpha, attrs, role)
    cols = ["control", "source", "target", "optimizer"]
    groups = {tuple(values): group for values, group in arms.groupby(cols, dropna=False, sort=True)}
    rows = []
    for values, group in groups.items():
        key = dict(zip(cols, values, strict=True))
        # Each counterpart as (runs, baseline, baseline name): the baseline control's runs, or
        # every other source of the same control, target and optimizer that sorts after this one.
        if baseline is not None:
            counterparts = [(_baseline_rows(transfer, key, baseline, None), baseline, baseline)]
        else:
            counterparts = [
                (other_rows, str(key["control"]), f"{key['control']} from {_name(other[1])}")
                for other, other_rows in groups.items()
                if (other[0], *other[2:]) == (values[0], *values[2:])
                and _name(other[1]) > _name(values[1])
            ]
        for base_rows, base, base_name in counterparts:
            row = _auc_row(
                group,
                base_rows,
                key=key,
                baseline=base,
                baseline_name=base_name,
                metric=metric,
                stats_kw=settings.stats_kw,
                context="auc",
            )
            if row is not None:
                rows.append(row)
    return _finish_auc(rows, correction, alpha, attrs, role)

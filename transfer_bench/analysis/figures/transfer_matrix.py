"""The ``transfer_matrix`` figure: a source x target heatmap of ticket transfer.

At one pruning level (or integrated over sparsity), each cell is coloured and annotated by the
difference to a reference (the target's own ticket or a control), with significance stars from a
``stats.compare`` table (Morcos et al. 2019). ``MatrixPanel`` holds one panel's numbers;
``default_reference`` picks the reference when none is given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from scipy.integrate import trapezoid

from transfer_bench.analysis.figures.common import (
    MISSING,
    _axis_label,
    _check_metric,
    _filter,
    _is_fraction,
    _suptitle,
    _text_color,
    _transfer_rows,
    _warn,
    interval_phrase,
    message_figure,
    metric_label,
    register_figure,
)
from transfer_bench.analysis.style import (
    StyleMap,
    new_figure,
    paper_style,
)
from transfer_bench.errors import ConfigError

STARS: tuple[tuple[float, str], ...] = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


@dataclass(frozen=True)
class MatrixPanel:
    """One optimizer's source x target matrices (percent / points) and what they are taken at."""

    optimizer: str
    value: pd.DataFrame
    diff: pd.DataFrame
    n: pd.DataFrame
    stars: pd.DataFrame
    where: str  # "at level 3 (51.2% weights remaining)" or "integrated over log density (...)"


def _seed_series(rows: pd.DataFrame, metric: str) -> pd.Series:
    return rows.groupby("seed")[metric].mean().dropna()


def _integrated_series(rows: pd.DataFrame, metric: str, levels: Sequence[int]) -> pd.Series:
    """Per seed: the metric averaged over log density (trapezoid over ``levels``).

    Seeds that lack one of the levels are dropped so every value covers the same density range.
    """
    rows = rows[rows["level"].isin(levels)]
    out = {}
    for seed, g in rows.groupby("seed"):
        per = g.groupby("level").agg(d=("density", "mean"), v=(metric, "mean")).dropna()
        if len(per) < len(levels):
            continue
        x = np.log10(per["d"].to_numpy(dtype=float))
        y = per["v"].to_numpy(dtype=float)
        order = np.argsort(x)
        span = float(x.max() - x.min())
        out[seed] = float(trapezoid(y[order], x[order]) / span) if span > 0 else float(y.mean())
    return pd.Series(out, dtype=float)


def _cell_series(
    rows: pd.DataFrame, metric: str, level: int | None, levels: Sequence[int] | None
) -> pd.Series:
    if rows.empty:
        return pd.Series(dtype=float)
    if (rows["control"] == "dense").all():  # dense has one level: constant over sparsity
        return _seed_series(rows, metric)
    if levels is not None:
        return _integrated_series(rows, metric, levels)
    return _seed_series(rows[rows["level"] == level], metric)


def _reference_rows(
    transfer: pd.DataFrame, reference: str, source: str, target: str, optimizer: str
) -> pd.DataFrame:
    same = transfer[(transfer["target"] == target) & (transfer["optimizer"] == optimizer)]
    if reference == "own_ticket":  # the ticket arm with source == target, else own_ticket runs
        own = same[(same["control"] == "ticket") & (same["source"] == target)]
        return own if not own.empty else same[same["control"] == "own_ticket"]
    if reference == "dense":
        return same[same["control"] == "dense"]
    return same[(same["control"] == reference) & (same["source"] == source)]


def default_reference(df: pd.DataFrame, metric: str = "test_accuracy") -> str:
    """The transfer matrix's default reference: of ``own_ticket`` (the target's own ticket),
    ``random_reinit`` and ``dense``, the first that covers the most source x target cells."""
    rows = _transfer_rows(df, metric)
    tickets = rows[(rows["control"] == "ticket") & rows["source"].notna()] if len(rows) else rows
    if tickets.empty:
        return "random_reinit"
    cells = tickets[["source", "target", "optimizer"]].drop_duplicates()
    best, best_cover = "own_ticket", -1
    for ref in ("own_ticket", "random_reinit", "dense"):
        cover = sum(
            not _reference_rows(rows, ref, s, t, o).empty
            for s, t, o in cells.itertuples(index=False)
        )
        if cover > best_cover:
            best, best_cover = ref, cover
    return best


def _common_levels(tickets: pd.DataFrame) -> set[int]:
    sets = [set(g["level"]) for _, g in tickets.groupby(["source", "target"])]
    return set.intersection(*sets) if sets else set()


def _choose_level(tickets: pd.DataFrame, level: int | None, density: float | None) -> int | None:
    kind = "transfer_matrix"
    mean_density = tickets.groupby("level")["density"].mean()
    if level is not None:
        if int(level) not in mean_density.index:
            levels = ", ".join(str(v) for v in mean_density.index)
            _warn(kind, f"no ticket transfers at level {level} (levels: {levels})")
            return None
        return int(level)
    if density is not None:
        gap = (np.log(mean_density) - math.log(density)).abs()
        return int(gap.idxmin())
    common = _common_levels(tickets)
    if common:
        return int(mean_density[sorted(common)].idxmin())
    _warn(kind, "no level is present in every source x target cell; using the best-covered level")
    cells = tickets.drop_duplicates(["source", "target", "level"]).groupby("level").size()
    best = cells[cells == cells.max()].index
    return int(mean_density[best].idxmin())


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return next((s for threshold, s in STARS if p < threshold), "")


def _comparison_baselines(comparison: pd.DataFrame) -> set[str]:
    if "baseline" in comparison.columns:
        return set(comparison["baseline"].dropna().astype(str))
    base = comparison.attrs.get("baseline")
    return {str(base)} if base else set()


def _comparison_p(
    comparison: pd.DataFrame | None, reference: str, optimizer: str, level: int | None
) -> dict[tuple[str, str], float]:
    if comparison is None or comparison.empty or level is None:
        return {}
    rows = comparison
    if "control" in rows.columns:  # stats.comparison_table: one row per treatment arm
        rows = rows[rows["control"] == "ticket"]
    if "baseline" in rows.columns:
        rows = rows[rows["baseline"] == reference]
    elif comparison.attrs.get("baseline") != reference:
        return {}
    opt = rows["optimizer"].astype(object).where(rows["optimizer"].notna(), MISSING)
    rows = rows[(opt == optimizer) & (rows["level"] == level)]
    return {(str(r.source), str(r.target)): float(r.p_adj) for r in rows.itertuples()}


def _matrix_panel(
    transfer: pd.DataFrame,
    tickets: pd.DataFrame,
    optimizer: str,
    *,
    metric: str,
    level: int | None,
    density: float | None,
    integrated: bool,
    reference: str,
    comparison: pd.DataFrame | None,
    sources: list[str],
    targets: list[str],
) -> MatrixPanel | None:
    kind = "transfer_matrix"
    levels: list[int] | None = None
    lv: int | None = None
    if integrated:
        levels = sorted(_common_levels(tickets))
        if len(levels) < 2:
            _warn(kind, f"{optimizer}: fewer than two levels shared by all cells; cannot integrate")
            return None
        where = f"integrated over log density (levels {levels[0]}–{levels[-1]})"
    else:
        lv = _choose_level(tickets, level, density)
        if lv is None:
            return None
        pct = 100.0 * float(tickets.loc[tickets["level"] == lv, "density"].mean())
        where = f"at level {lv} ({pct:.3g}% weights remaining)"
    scale = 100.0 if _is_fraction(metric) else 1.0
    value = pd.DataFrame(np.nan, index=sources, columns=targets, dtype=float)
    diff = value.copy()
    n = pd.DataFrame(0, index=sources, columns=targets, dtype=int)
    stars = pd.DataFrame("", index=sources, columns=targets, dtype=object)
    pvals = _comparison_p(comparison, reference, optimizer, lv)
    no_ref = []
    for (source, target), cell in tickets.groupby(["source", "target"]):
        s = _cell_series(cell, metric, lv, levels)
        if s.empty:
            continue
        source, target = str(source), str(target)
        value.loc[source, target] = scale * s.mean()
        n.loc[source, target] = len(s)
        ref = _cell_series(
            _reference_rows(transfer, reference, source, target, optimizer), metric, lv, levels
        )
        if ref.empty:
            no_ref.append(f"{source}->{target}")
        else:
            diff.loc[source, target] = scale * (s.mean() - ref.mean())
        stars.loc[source, target] = _stars(pvals.get((source, target), math.nan))
    if no_ref:
        _warn(kind, f"{optimizer}: no {reference} reference for {', '.join(no_ref)}")
    return MatrixPanel(optimizer, value, diff, n, stars, where)


def _cell_text(panel: MatrixPanel, source: str, target: str, reference: str, annotate: str) -> str:
    value, diff = panel.value.loc[source, target], panel.diff.loc[source, target]
    if not np.isfinite(value):
        return ""
    if reference == "own_ticket" and source == target:
        d = "ref"
    elif np.isfinite(diff):
        d = f"{diff:+.1f}{panel.stars.loc[source, target]}"
    else:
        d = "–"
    v = f"{value:.1f}"
    return {"diff": d, "value": v}.get(annotate, f"{d}\n{v}")


def _draw_matrix(
    ax: Axes,
    panel: MatrixPanel,
    data: pd.DataFrame,
    cmap: Any,
    norm: Normalize,
    *,
    reference: str,
    annotate: str,
    style: StyleMap,
) -> Any:
    im = ax.imshow(data.to_numpy(dtype=float), cmap=cmap, norm=norm, aspect="auto")
    sources, targets = list(data.index), list(data.columns)
    ax.set_xticks(range(len(targets)), targets, rotation=30, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(sources)), sources)
    for label in ax.get_yticklabels():
        label.set_color(style.color(label.get_text()))
    ax.set_xlabel("target")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    size = 6.0 if annotate != "both" else 5.5
    for i, source in enumerate(sources):
        for j, target in enumerate(targets):
            text = _cell_text(panel, source, target, reference, annotate)
            if not text:
                continue
            v = data.iloc[i, j]
            color = _text_color(cmap(norm(v))) if np.isfinite(v) else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=size, color=color)
    return im


@register_figure(
    "transfer_matrix",
    data="results",
    width="single",
    summary="source x target heatmap: difference to a reference at one level, with stars",
)
def transfer_matrix_figure(
    df: pd.DataFrame,
    *,
    comparison: pd.DataFrame | None = None,
    metric: str = "test_accuracy",
    level: int | None = None,
    density: float | None = None,
    integrated: bool = False,
    reference: str | None = None,
    optimizer: object = None,
    annotate: str = "both",
    width: str | float = "single",
    style: StyleMap | None = None,
) -> Figure:
    """Heatmap of transferred tickets, rows = source (where the ticket was found), cols = target.

    Cells are coloured by the difference (percentage points) of the ticket's mean ``metric`` to
    ``reference``: ``"own_ticket"`` (the target's own ticket, source == target, or
    ``control == "own_ticket"`` runs) or a control (``"random_reinit"``, ``"dense"``, ...); default:
    the baseline of ``comparison`` when it has one, else ``default_reference(df)``. The level is ``level``, the level nearest ``density`` (fraction
    kept) or, by default, the lowest density every cell has; ``integrated=True`` averages the metric
    over log density across the levels all cells share. Stars come from ``comparison``
    (``stats.compare`` columns; rows whose ``baseline`` is the reference): Holm-adjusted
    ``p_adj`` < .05 / .01 / .001. ``annotate``: ``"both"`` (diff and value), ``"diff"``, ``"value"``.
    One panel per optimizer (or only ``optimizer``).
    """
    with paper_style():
        return _transfer_matrix(
            df,
            comparison=comparison,
            metric=metric,
            level=level,
            density=density,
            integrated=integrated,
            reference=reference,
            optimizer=optimizer,
            annotate=annotate,
            width=width,
            style=style or StyleMap.from_frame(df),
        )


def _transfer_matrix(
    df: pd.DataFrame,
    *,
    comparison: pd.DataFrame | None,
    metric: str,
    level: int | None,
    density: float | None,
    integrated: bool,
    reference: str | None,
    optimizer: object,
    annotate: str,
    width: str | float,
    style: StyleMap,
) -> Figure:
    kind = "transfer_matrix"
    _check_metric(df, metric, kind)
    if annotate not in ("both", "diff", "value"):
        raise ConfigError(
            f"transfer_matrix annotate: unknown value {annotate!r}; use 'both', 'diff' or 'value'"
        )
    if density is not None and not 0.0 < float(density) <= 1.0:
        raise ConfigError(
            f"transfer_matrix density: {density} is not a fraction of weights kept in (0, 1]; "
            "e.g. 0.1 for 10% weights remaining"
        )
    if level is not None and density is not None:
        raise ConfigError("transfer_matrix: give either level or density, not both")
    transfer = _transfer_rows(df, metric)
    tickets = (
        transfer[(transfer["control"] == "ticket") & transfer["source"].notna()]
        if not transfer.empty
        else transfer
    )
    tickets = _filter(tickets, optimizer=optimizer)
    if tickets.empty:
        _warn(kind, "no ticket transfers to show")
        return message_figure("no ticket transfers", width=width)
    if reference is None and comparison is not None and not comparison.empty:
        bases = _comparison_baselines(comparison)
        reference = bases.pop() if len(bases) == 1 else None  # show what the table tested
    reference = reference or default_reference(df, metric)
    if comparison is not None and not comparison.empty:
        bases = _comparison_baselines(comparison)
        if reference not in bases:
            _warn(
                kind,
                f"the comparison table tests baseline(s) {', '.join(sorted(bases)) or '?'}, not "
                f"the reference {reference}; no significance stars",
            )
            comparison = None
        elif integrated:
            _warn(kind, "significance stars are per level; none on the integrated matrix")
            comparison = None
    sources = sorted(tickets["source"].astype(str).unique())
    targets = sorted(tickets["target"].astype(str).unique())
    panels = []
    for opt in sorted(tickets["optimizer"].astype(str).unique()):
        panel = _matrix_panel(
            transfer,
            tickets[tickets["optimizer"] == opt],
            opt,
            metric=metric,
            level=level,
            density=density,
            integrated=integrated,
            reference=reference,
            comparison=comparison,
            sources=sources,
            targets=targets,
        )
        if panel is not None:
            panels.append(panel)
    if not panels:
        return message_figure("no level to show (see warnings)", width=width)
    return _matrix_figure(panels, metric, reference, annotate, width, style, comparison)


def _matrix_figure(
    panels: list[MatrixPanel],
    metric: str,
    reference: str,
    annotate: str,
    width: str | float,
    style: StyleMap,
    comparison: pd.DataFrame | None,
) -> Figure:
    kind = "transfer_matrix"
    diffs = np.concatenate([p.diff.to_numpy(dtype=float).ravel() for p in panels])
    ref_name = "the target's own ticket" if reference == "own_ticket" else reference
    if np.isfinite(diffs).any():
        span = float(np.nanmax(np.abs(diffs))) or 1.0
        cmap = sns.color_palette("vlag", as_cmap=True).with_extremes(bad="0.92")
        norm = Normalize(-span, span)
        data = [p.diff for p in panels]
        bar_label = f"diff to {reference} (points)"
        below = ", value (%) below" if annotate == "both" else ""
        what = f"cells: diff to {ref_name} (points){below}"
    else:
        _warn(kind, f"no {reference} runs at all; cells show {metric_label(metric)} only")
        values = np.concatenate([p.value.to_numpy(dtype=float).ravel() for p in panels])
        cmap = sns.color_palette("viridis", as_cmap=True).with_extremes(bad="0.92")
        norm = Normalize(float(np.nanmin(values)), float(np.nanmax(values)))
        data = [p.value for p in panels]
        bar_label = _axis_label(metric)
        what = f"cells: {metric_label(metric)}; no {reference} runs for a difference"
    nrows = len(panels[0].value.index)
    fig = new_figure(width, max(2.0, 0.32 * nrows + 1.5))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    im = None
    same_where = len({p.where for p in panels}) == 1
    for ax, panel, mat in zip(axes, panels, data, strict=True):
        im = _draw_matrix(
            ax, panel, mat, cmap, norm, reference=reference, annotate=annotate, style=style
        )
        if not same_where:
            ax.set_title(f"{panel.optimizer}\n{panel.where}")
        elif len(panels) > 1:
            ax.set_title(panel.optimizer)
    axes[0].set_ylabel("source (ticket found on)")
    fig.colorbar(im, ax=list(axes), shrink=0.9, label=bar_label)
    ns = np.concatenate([p.n.to_numpy().ravel() for p in panels])
    stars = (
        "* / ** / ***: adjusted p < .05 / .01 / .001; "
        if comparison is not None and any(p.stars.to_numpy().astype(bool).any() for p in panels)
        else ""
    )
    if ns.max() < 2:
        _warn(kind, "only one seed per cell; differences are not tested")
    _suptitle(
        fig,
        f"{metric_label(metric)} of transferred tickets"
        + (f" {panels[0].where}" if same_where else ""),
        what,
        f"{stars}{interval_phrase(ns[ns > 0], interval=False)}",
    )
    return fig

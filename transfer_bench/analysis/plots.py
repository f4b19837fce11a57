"""Paper figures of a suite, rendered headless (matplotlib ``Figure`` objects, no pyplot state).

Figure kinds (``FIGURE_KINDS``; ``plot(kind, results_dir_or_frames, out_base)`` writes png/pdf/svg):

- ``sparsity_curve``: accuracy vs percent of weights remaining on a reversed log axis (100 % on the
  left, as in Frankle & Carbin 2019), one panel per (optimizer, target), one line per source and
  control with a 95 % t-interval band over seeds, the dense network as a reference line with band;
- ``transfer_matrix``: source x target heatmap at one level (or integrated over sparsity), cells
  coloured and annotated by the difference to a reference (the target's own ticket or a control),
  with significance stars from a ``stats.compare`` table (Morcos et al. 2019);
- ``optimizer_transfer``: tickets found with one optimizer and retrained with another vs tickets
  retrained with the optimizer that found them;
- ``mask_overlap``: Jaccard index / normalized Hamming distance between ticket masks (heatmap over
  tickets of one level, plus per-layer bars against the random-mask chance level);
- ``layer_density``: weights remaining per layer, one bar per source (mean over seeds);
- ``training_curves``: a metric over training iterations, mean over seeds with band.

Every figure is drawn in ``style.paper_style`` with ``style.StyleMap`` colours (one fixed colour and
marker per source and control), states n (seeds) and the interval, and turns missing data (one seed,
no controls, no tickets) into a warning plus a note in the figure instead of an exception.
"""

from __future__ import annotations

import inspect
import io
import math
import textwrap
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)
from scipy import stats as sps
from scipy.integrate import trapezoid

from transfer_bench.analysis.frame import load_histories, load_results
from transfer_bench.analysis.masks import METRIC_LABELS as OVERLAP_LABELS
from transfer_bench.analysis.masks import (
    OVERALL,
    check_metric,
    collect_tickets,
    load_masks,
    matrix_from_pairs,
    pair_table,
    ticket_labels,
)
from transfer_bench.analysis.style import (
    CONTROL_ORDER,
    TICKET_CONTROLS,
    StyleMap,
    figure_width,
    new_figure,
    paper_style,
)
from transfer_bench.errors import ConfigError, TicketError
from transfer_bench.fileio import atomic_write_bytes
from transfer_bench.tickets import load_ticket

CI_LEVEL = 0.95
MAX_TICKS = 8
FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
CURVE_COLUMNS: tuple[str, ...] = (
    "target",
    "optimizer",
    "source",
    "control",
    "line",
    "level",
    "percent_remaining",
    "mean",
    "lo",
    "hi",
    "n",
)
METRIC_LABELS = {
    "test_accuracy": "test accuracy",
    "best_test_accuracy": "best test accuracy",
    "train_loss": "train loss",
    "test_loss": "test loss",
}
STARS: tuple[tuple[float, str], ...] = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
MISSING = "?"  # panel key for a missing optimizer/target value
BAND_ALPHA = 0.18
CROSS_LINESTYLES: tuple[Any, ...] = ("--", "-.", (0, (1, 1)), (0, (5, 1, 1, 1)))


# ---------------------------------------------------------------------------------------- helpers


def mean_ci(
    values: Sequence[float] | np.ndarray, level: float = CI_LEVEL
) -> tuple[float, float, float, int]:
    """Mean and Student-t confidence interval ``(mean, lo, hi, n)``; NaN bounds when n < 2."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(sps.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def interval_phrase(ns: Iterable[int], *, interval: bool = True) -> str:
    """ "mean and 95% t-interval over n = 3 seeds" (or the range of n, or "no interval" for n = 1)."""
    counts = [int(n) for n in ns if n == n and n > 0]
    if not counts:
        return "no seeds"
    lo, hi = min(counts), max(counts)
    n = f"n = {lo}" if lo == hi else f"n = {lo}–{hi}"
    seeds = "seed" if hi == 1 else "seeds"
    if not interval:
        return f"mean over {n} {seeds}"
    if hi < 2:
        return f"mean of {n} {seeds} (no interval)"
    tail = " (no interval where n = 1)" if lo < 2 else ""
    return f"mean and {CI_LEVEL:.0%} t-interval over {n} {seeds}{tail}"


def _warn(kind: str, message: str) -> None:
    warnings.warn(f"{kind}: {message}", UserWarning, stacklevel=3)


def _as_list(value: object) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def metric_label(metric: str) -> str:
    """Human name of a result metric ("test accuracy")."""
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def _is_fraction(metric: str) -> bool:
    return "accuracy" in metric


def _axis_label(metric: str) -> str:
    return f"{metric_label(metric)} (%)" if _is_fraction(metric) else metric_label(metric)


def _control_rank(control: object) -> int:
    c = str(control)
    if c in TICKET_CONTROLS:
        return 0
    if c in CONTROL_ORDER:
        return 1 + CONTROL_ORDER.index(c)
    return len(CONTROL_ORDER) + 1


def _line_order(key: tuple) -> tuple:
    control, source = key[0], key[1]
    return (_control_rank(control), "" if pd.isna(source) else str(source), *map(str, key[2:]))


def _check_metric(df: pd.DataFrame, metric: str, kind: str, what: str = "results") -> None:
    if metric in df.columns or df.empty:
        return
    skip = {"level", "seed", "density", "percent_remaining", "iteration", "epoch"}
    known = [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]
    raise ConfigError(
        f"{kind} metric: {metric!r} is not a column of the {what}; use one of: {', '.join(known)}"
    )


def _transfer_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``kind == "transfer"`` rows with a value of ``metric``, optimizer/target as strings."""
    if df.empty or "kind" not in df.columns or metric not in df.columns:
        return df.iloc[0:0]
    rows = df[(df["kind"] == "transfer") & df[metric].notna()]
    return rows.assign(
        optimizer=rows["optimizer"].astype(object).where(rows["optimizer"].notna(), MISSING),
        target=rows["target"].astype(object).where(rows["target"].notna(), MISSING),
    )


def _filter(df: pd.DataFrame, **filters: object) -> pd.DataFrame:
    """Keep rows whose column is in the given value(s); a source filter keeps the dense rows."""
    for column, value in filters.items():
        values = _as_list(value)
        if values is None or column not in df.columns:
            continue
        keep = df[column].isin(values)
        if column == "source" and "control" in df.columns:
            keep |= df["control"] == "dense"
        df = df[keep]
    return df


def message_figure(text: str, *, width: str | float = "single", title: str | None = None) -> Figure:
    """A figure that only says why there is nothing to draw (used instead of raising)."""
    with paper_style():
        fig = new_figure(width, 1.5)
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
        ax.set_axis_off()
        if title:
            fig.suptitle(title)
    return fig


def _empty_panel(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])


def _figure_legend(fig: Figure, axes: Iterable[Axes], *, ncols: int | None = None) -> None:
    """One legend for all panels below the figure, each label once (in drawing order)."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if not handles:
        return
    item_width = 0.5 + 0.055 * max(len(label) for label in handles)  # inches at 7 pt
    per_row = max(1, int(fig.get_figwidth() / item_width))
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="outside lower center",
        ncols=ncols or min(len(handles), per_row),
    )


def _suptitle(fig: Figure, *lines: str) -> None:
    """Figure title from ``lines``, each wrapped to the figure's width."""
    chars = max(30, int(fig.get_figwidth() * 17))
    wrapped = [textwrap.fill(line, chars, break_long_words=False) for line in lines if line]
    fig.suptitle("\n".join(wrapped))


def _short_layer(name: str) -> str:
    return name.removesuffix(".weight")


def _grid(
    width: str | float, nrows: int, ncols: int, *, sharey: bool = True, extra: float = 1.0
) -> tuple[Figure, np.ndarray]:
    w = figure_width(width)
    panel_h = min(2.4, max(1.5, 0.8 * w / ncols))
    fig = new_figure(width, panel_h * nrows + extra)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    return fig, axes


def _seed_values(group: pd.DataFrame, metric: str) -> np.ndarray:
    """One value per seed (duplicates averaged) so a seed never counts twice in a CI."""
    return group.groupby("seed")[metric].mean().dropna().to_numpy(dtype=float)


def _draw_dense(ax: Axes, pts: pd.DataFrame, kw: Mapping[str, Any], label: str) -> None:
    row = pts.iloc[0]
    ax.axhline(row["mean"], color=kw["color"], linestyle=kw["linestyle"], label=label)
    if np.isfinite(row["lo"]) and np.isfinite(row["hi"]):
        ax.axhspan(row["lo"], row["hi"], color=kw["color"], alpha=BAND_ALPHA, linewidth=0)


def _draw_curve(
    ax: Axes, pts: pd.DataFrame, kw: Mapping[str, Any], label: str, x: str = "percent_remaining"
) -> None:
    pts = pts.sort_values(x, ascending=False)
    ax.plot(pts[x], pts["mean"], label=label, **kw)
    band = pts[np.isfinite(pts["lo"]) & np.isfinite(pts["hi"])]
    if not band.empty:
        ax.fill_between(
            band[x], band["lo"], band["hi"], color=kw["color"], alpha=BAND_ALPHA, linewidth=0
        )


def _format_x(ax: Axes, percents: np.ndarray) -> None:
    """Log x-axis, 100 % on the left, ticks at the densities that were run."""
    ax.set_xscale("log")
    percents = percents[np.isfinite(percents)]
    ticks = np.unique(percents)[::-1]
    if ticks.size == 0:
        ticks = np.array([100.0])
    if ticks.size > MAX_TICKS:
        ticks = ticks[:: math.ceil(ticks.size / MAX_TICKS)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    lo, hi = float(np.min(percents, initial=100.0)), float(np.max(percents, initial=100.0))
    ax.set_xlim(hi * 1.15, lo / 1.15)  # left > right: reversed like the papers
    ax.set_xlabel("weights remaining (%)")


# -------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class FigureKind:
    """A registered figure: its builder, the frame it needs and its default width."""

    name: str
    build: Callable[..., Figure]
    data: str  # "results" | "histories" | "tickets"
    width: str
    summary: str

    def options(self) -> tuple[str, ...]:
        """Keyword options the builder accepts (besides the frame, ``width`` and ``style``)."""
        params = inspect.signature(self.build).parameters
        return tuple(p for p in params if p not in {"df", "histories", "tickets", "width", "style"})


FIGURE_KINDS: dict[str, FigureKind] = {}


def register_figure(
    name: str, *, data: str, width: str, summary: str
) -> Callable[[Callable[..., Figure]], Callable[..., Figure]]:
    """Decorator: register a ``<kind>_figure(frame, *, width, style, **options)`` builder."""

    def deco(fn: Callable[..., Figure]) -> Callable[..., Figure]:
        FIGURE_KINDS[name] = FigureKind(name, fn, data, width, summary)
        return fn

    return deco


def figure_kind(kind: str) -> FigureKind:
    """The registered kind, or a ConfigError listing the known kinds."""
    try:
        return FIGURE_KINDS[kind]
    except KeyError:
        raise ConfigError(
            f"plot --kind: unknown figure kind {kind!r}; use one of: {', '.join(FIGURE_KINDS)}"
        ) from None


# ------------------------------------------------------------------------------- sparsity curve


def line_name(
    control: str,
    source: object,
    optimizer: object = None,
    *,
    multi_source: bool,
    multi_optimizer: bool = False,
) -> str:
    """Legend name of a curve: "ticket from mnist5k", "random_reinit", "dense" (+ qualifiers)."""
    has_source = not pd.isna(source)
    if control == "ticket":
        name = f"ticket from {source}"
    elif control == "imp" and has_source:
        name = f"IMP search on {source}"
    elif control != "dense" and multi_source and has_source:
        name = f"{control} ({source})"
    else:
        name = str(control)
    return f"{name} [{optimizer}]" if multi_optimizer else name


def curve_table(df: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Points to draw: one row per (target, optimizer, source, control, level), metric in percent.

    Only transfer rows; dense rows are pooled over sources (one reference per target and
    optimizer). Columns ``CURVE_COLUMNS``; ``n`` is the number of seeds behind each point.
    """
    transfer = _transfer_rows(df, metric)
    if transfer.empty:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    multi_source = transfer["source"].dropna().nunique() > 1
    dense = transfer["control"] == "dense"
    transfer = transfer.assign(
        source=transfer["source"].astype(object).where(~dense, None),
        level=transfer["level"].where(~dense, 0),
    )
    scale = 100.0 if _is_fraction(metric) else 1.0
    rows = []
    keys = ["target", "optimizer", "source", "control", "level"]
    for values, group in transfer.groupby(keys, dropna=False, sort=True):
        key = dict(zip(keys, values, strict=True))
        mean, lo, hi, n = mean_ci(_seed_values(group, metric))
        rows.append(
            {
                **key,
                "line": line_name(key["control"], key["source"], multi_source=multi_source),
                "percent_remaining": float(group["percent_remaining"].mean()),
                "mean": scale * mean,
                "lo": scale * lo,
                "hi": scale * hi,
                "n": n,
            }
        )
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def _draw_sparsity_panel(ax: Axes, pts: pd.DataFrame, style: StyleMap) -> None:
    groups = pts.groupby(["control", "source"], dropna=False, sort=False)
    for (control, source), line in sorted(groups, key=lambda item: _line_order(item[0])):
        kw = style.line_kwargs(source, control)
        label = str(line["line"].iloc[0])
        if control == "dense":
            _draw_dense(ax, line, kw, label)
        else:
            _draw_curve(ax, line, kw, label)
    _format_x(ax, pts["percent_remaining"].to_numpy(dtype=float))
    ax.grid(True, which="major")


@register_figure(
    "sparsity_curve",
    data="results",
    width="double",
    summary="accuracy vs % weights remaining; panel per (optimizer, target), line per source/control",
)
def sparsity_figure(
    df: pd.DataFrame,
    *,
    metric: str = "test_accuracy",
    width: str | float = "double",
    style: StyleMap | None = None,
    targets: object = None,
    optimizers: object = None,
    sources: object = None,
    controls: object = None,
) -> Figure:
    """The sparsity-curve ``Figure`` of a ``load_results`` frame (rows: optimizers, cols: targets).

    ``targets``/``optimizers``/``sources``/``controls`` restrict what is drawn (a name or a list);
    the dense reference stays whatever the source filter.
    """
    with paper_style():
        return _sparsity_figure(
            df,
            metric,
            width,
            style or StyleMap.from_frame(df),
            {"target": targets, "optimizer": optimizers, "source": sources, "control": controls},
        )


sparsity_curve_figure = sparsity_figure


def _sparsity_figure(
    df: pd.DataFrame, metric: str, width: str | float, style: StyleMap, filters: dict
) -> Figure:
    kind = "sparsity_curve"
    _check_metric(df, metric, kind)
    pts = _filter(curve_table(df, metric), **filters)
    if pts.empty:
        _warn(kind, "no transfer results to plot")
        return message_figure("no transfer results", width=width)
    optimizers = sorted(pts["optimizer"].astype(str).unique())
    targets = sorted(pts["target"].astype(str).unique())
    fig, axes = _grid(width, len(optimizers), len(targets))
    multi_opt = len(optimizers) > 1
    for r, opt in enumerate(optimizers):
        for c, target in enumerate(targets):
            ax = axes[r, c]
            ax.set_title(f"{target} ({opt})" if multi_opt else str(target))
            sub = pts[(pts["optimizer"] == opt) & (pts["target"] == target)]
            if sub.empty:
                _warn(kind, f"no runs for target {target} with optimizer {opt}; panel left empty")
                _empty_panel(ax, "no runs")
                continue
            _draw_sparsity_panel(ax, sub, style)
            if not (sub["control"] == "dense").any():
                _warn(kind, f"no dense reference for target {target} ({opt})")
            if not (~sub["control"].isin(["ticket", "dense"])).any():
                _warn(
                    kind,
                    f"no control runs (e.g. random_reinit) for target {target} ({opt}); "
                    "tickets drawn without a control",
                )
            if r < len(optimizers) - 1:
                ax.set_xlabel("")
            if c == 0:
                ax.set_ylabel(_axis_label(metric))
    if pts["n"].max() < 2:
        _warn(kind, "only one seed per point; no confidence bands (run more seeds)")
    _figure_legend(fig, axes.ravel())
    _suptitle(
        fig,
        f"{metric_label(metric)} vs weights remaining",
        f"{interval_phrase(pts['n'])} per point",
    )
    return fig


# ------------------------------------------------------------------------------ transfer matrix


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


def _text_color(rgba: Sequence[float]) -> str:
    r, g, b = rgba[:3]
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"


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


# --------------------------------------------------------------------------- optimizer transfer


def _level_curve(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    scale = 100.0 if _is_fraction(metric) else 1.0
    out = []
    for level, g in rows.groupby("level"):
        mean, lo, hi, n = mean_ci(_seed_values(g, metric))
        out.append(
            {
                "level": level,
                "percent_remaining": float(g["percent_remaining"].mean()),
                "mean": scale * mean,
                "lo": scale * lo,
                "hi": scale * hi,
                "n": n,
            }
        )
    return pd.DataFrame(out, columns=["level", "percent_remaining", "mean", "lo", "hi", "n"])


@register_figure(
    "optimizer_transfer",
    data="results",
    width="double",
    summary="tickets found with optimizer A retrained with B vs same-optimizer tickets",
)
def optimizer_transfer_figure(
    df: pd.DataFrame,
    *,
    metric: str = "test_accuracy",
    width: str | float = "double",
    style: StyleMap | None = None,
    targets: object = None,
    sources: object = None,
) -> Figure:
    """Accuracy vs weights remaining of tickets found with ``source_optimizer`` A and retrained
    with ``optimizer`` B (dashed, hollow) against tickets retrained with their own optimizer
    (solid), one panel per (target, training optimizer), dense reference per panel."""
    with paper_style():
        return _optimizer_transfer(
            df, metric, width, style or StyleMap.from_frame(df), targets, sources
        )


def _optimizer_transfer(
    df: pd.DataFrame,
    metric: str,
    width: str | float,
    style: StyleMap,
    targets: object,
    sources: object,
) -> Figure:
    kind = "optimizer_transfer"
    _check_metric(df, metric, kind)
    transfer = _filter(_transfer_rows(df, metric), target=targets, source=sources)
    if "source_optimizer" not in transfer.columns or transfer.empty:
        _warn(kind, "no transfer results with a source_optimizer field")
        return message_figure("no transfer results with a source_optimizer", width=width)
    tickets = transfer[(transfer["control"] == "ticket") & transfer["source_optimizer"].notna()]
    tickets = tickets.assign(source_optimizer=tickets["source_optimizer"].astype(str))
    if (tickets["source_optimizer"] == tickets["optimizer"]).all():
        _warn(
            kind,
            "every ticket was retrained with the optimizer that found it; "
            "no cross-optimizer transfers to show (add optimizers to the transfer section)",
        )
        return message_figure("no cross-optimizer ticket transfers", width=width)
    optimizers = sorted(tickets["optimizer"].unique())
    target_names = sorted(tickets["target"].unique())
    found_with = sorted(tickets["source_optimizer"].unique())
    fig, axes = _grid(width, len(target_names), len(optimizers))
    ns: list[int] = []
    for r, target in enumerate(target_names):
        for c, opt in enumerate(optimizers):
            ax = axes[r, c]
            ax.set_title(f"{target}, trained with {opt}" if len(target_names) > 1 else opt)
            sub = tickets[(tickets["target"] == target) & (tickets["optimizer"] == opt)]
            if sub.empty:
                _warn(kind, f"no ticket transfers to {target} trained with {opt}")
                _empty_panel(ax, "no runs")
                continue
            dense = transfer[
                (transfer["control"] == "dense")
                & (transfer["target"] == target)
                & (transfer["optimizer"] == opt)
            ]
            if not dense.empty:
                pts = _level_curve(dense, metric)
                _draw_dense(ax, pts, style.line_kwargs(None, "dense"), "dense")
                ns += pts["n"].tolist()
            keys = ["source", "source_optimizer"]
            for (source, found), g in sorted(sub.groupby(keys), key=lambda t: t[0]):
                pts = _level_curve(g, metric)
                ns += pts["n"].tolist()
                kw = style.line_kwargs(source, "ticket")
                if found == opt:
                    label = f"ticket from {source}, same optimizer"
                else:
                    i = found_with.index(found)
                    kw = {
                        **kw,
                        "linestyle": CROSS_LINESTYLES[i % len(CROSS_LINESTYLES)],
                        "markerfacecolor": "none",
                    }
                    label = f"ticket from {source}, found with {found}"
                _draw_curve(ax, pts, kw, label)
            if not (sub["source_optimizer"] == opt).any():  # usual: searches use one optimizer
                ax.text(
                    0.02,
                    0.02,
                    "no same-optimizer tickets",
                    transform=ax.transAxes,
                    fontsize=6,
                    color="0.4",
                )
            _format_x(ax, sub["percent_remaining"].to_numpy(dtype=float))
            ax.grid(True, which="major")
            if r < len(target_names) - 1:
                ax.set_xlabel("")
            if c == 0:
                ax.set_ylabel(_axis_label(metric))
    _figure_legend(fig, axes.ravel())
    _suptitle(
        fig,
        f"{metric_label(metric)} of tickets retrained with another optimizer "
        "(panels: training optimizer)",
        f"{interval_phrase(ns)} per point",
    )
    return fig


# ---------------------------------------------------------------------------------- mask overlap


def _pick_level(tickets: pd.DataFrame, level: int | None, kind: str) -> int | None:
    levels = sorted(int(v) for v in tickets["level"].unique())
    if level is None:
        return levels[-1]
    if int(level) not in levels:
        _warn(kind, f"no tickets at level {level} (levels: {', '.join(map(str, levels))})")
        return None
    return int(level)


def _seeds_phrase(tickets: pd.DataFrame) -> str:
    per = tickets.groupby("source")["seed"].nunique()
    lo, hi = int(per.min()), int(per.max())
    return f"n = {lo} seed{'s' if hi > 1 else ''} per source" if lo == hi else f"n = {lo}–{hi}"


@register_figure(
    "mask_overlap",
    data="tickets",
    width="double",
    summary="Jaccard / Hamming between ticket masks of one level, plus per-layer bars",
)
def mask_overlap_figure(
    tickets: pd.DataFrame,
    *,
    metric: str = "jaccard",
    level: int | None = None,
    width: str | float = "double",
    style: StyleMap | None = None,
    annotate_max: int = 12,
) -> Figure:
    """Overlap of ticket masks (``masks.collect_tickets`` frame) at ``level`` (default: deepest).

    Left: ticket x ticket heatmap of ``metric`` ("jaccard" or "hamming", pooled over layers),
    labelled "source/seed" (source names in their colour; values written when at most
    ``annotate_max`` tickets). Right: per layer, the mean over pairs of tickets from the same source
    (different seeds) and from different sources, whiskers min–max, with the value expected for
    independent random masks of the same densities.
    """
    with paper_style():
        return _mask_overlap(
            tickets, metric, level, width, style or StyleMap.from_frame(tickets), annotate_max
        )


def _mask_overlap(
    tickets: pd.DataFrame,
    metric: str,
    level: int | None,
    width: str | float,
    style: StyleMap,
    annotate_max: int,
) -> Figure:
    kind = "mask_overlap"
    check_metric(metric)
    if tickets is None or tickets.empty:
        _warn(kind, "no tickets found (run a search first)")
        return message_figure("no tickets", width=width)
    lv = _pick_level(tickets, level, kind)
    if lv is None:
        return message_figure(f"no tickets at level {level}", width=width)
    sub = tickets[tickets["level"] == lv].sort_values(["source", "seed", "path"])
    source_of = dict(zip(ticket_labels(sub), sub["source"].astype(str), strict=True))
    masks = load_masks(sub)
    if len(masks) < 2:
        _warn(kind, f"fewer than two readable tickets at level {lv}; nothing to compare")
        return message_figure(f"fewer than two tickets at level {lv}", width=width)
    labels = list(masks)
    pairs = pair_table(masks, metric)
    if figure_width(width) >= 5.0:  # side by side
        fig = new_figure(width, max(2.6, 0.16 * len(labels) + 1.9))
        gs = fig.add_gridspec(1, 2, width_ratios=[1.15, 1.0])
    else:  # one column: stacked
        fig = new_figure(width, max(4.6, 0.16 * len(labels) + 3.6))
        gs = fig.add_gridspec(2, 1, height_ratios=[1.2, 1.0])
    ax_m, ax_b = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
    _draw_overlap_heatmap(
        ax_m,
        matrix_from_pairs(pairs, labels),
        metric,
        source_of,
        style,
        len(labels) <= annotate_max,
    )
    _draw_layer_bars(ax_b, pairs, metric, source_of)
    pct = 100.0 * float(sub["density"].mean())
    _suptitle(
        fig,
        f"{OVERLAP_LABELS[metric]} between ticket masks at level {lv} "
        f"({pct:.3g}% weights remaining)",
        f"{len(labels)} tickets, {_seeds_phrase(sub)}; bars: mean over ticket pairs (number "
        "of pairs), whiskers min–max",
    )
    return fig


def _draw_overlap_heatmap(
    ax: Axes,
    mat: pd.DataFrame,
    metric: str,
    source_of: Mapping[str, str],
    style: StyleMap,
    annotate: bool,
) -> None:
    values = mat.to_numpy(dtype=float).copy()
    np.fill_diagonal(values, np.nan)  # a ticket with itself is trivially 1 (or 0): shown blank
    off = values[np.isfinite(values)]
    hi = float(off.max()) if off.size and off.max() > 0 else 1.0  # scale from 0: honest contrast
    decimals = min(4, max(2, 1 - math.floor(math.log10(hi))))
    cmap = sns.color_palette("viridis", as_cmap=True).with_extremes(bad="0.92")
    norm = Normalize(0.0, hi)
    im = ax.imshow(values, cmap=cmap, norm=norm, aspect="auto")
    labels = list(mat.index)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    for tick in [*ax.get_xticklabels(), *ax.get_yticklabels()]:
        tick.set_color(style.color(source_of.get(tick.get_text(), tick.get_text())))
    ax.tick_params(length=0, labelsize=6)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if annotate:
        for i in range(len(labels)):
            for j in range(len(labels)):
                v = values[i, j]
                if np.isfinite(v):
                    color = _text_color(cmap(norm(v)))
                    text = f"{v:.{decimals}f}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=5, color=color)
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=OVERLAP_LABELS[metric] + " (all layers)")


def _draw_layer_bars(
    ax: Axes, pairs: pd.DataFrame, metric: str, source_of: Mapping[str, str]
) -> None:
    kind = "mask_overlap"
    off = pairs[pairs["a"] != pairs["b"]].copy()
    same = off["a"].map(source_of) == off["b"].map(source_of)
    off["relation"] = np.where(same, "same source", "different sources")
    layers = [v for v in pd.unique(off["layer"]) if v != OVERALL] + [OVERALL]
    x = np.arange(len(layers))
    bar_w = 0.38
    for j, (relation, color) in enumerate((("same source", "0.35"), ("different sources", "0.72"))):
        rows = off[off["relation"] == relation]
        if rows.empty:
            what = (
                "no same-source pairs (one seed per source)"
                if relation == "same source"
                else "no pairs from different sources (one source)"
            )
            _warn(kind, f"{what}; those bars are left out")
            continue
        agg = rows.groupby("layer")["value"].agg(["mean", "min", "max"]).reindex(layers)
        ok = np.isfinite(agg["mean"].to_numpy(dtype=float))
        mean = agg["mean"].to_numpy(dtype=float)[ok]
        err = np.vstack([mean - agg["min"].to_numpy()[ok], agg["max"].to_numpy()[ok] - mean])
        n_pairs = rows.drop_duplicates(["a", "b"]).shape[0]
        ax.bar(
            x[ok] + (j - 0.5) * bar_w,
            mean,
            bar_w,
            yerr=err,
            color=color,
            error_kw={"elinewidth": 0.5, "ecolor": "0.15"},
            label=f"{relation} ({n_pairs})",
        )
    rand = off.groupby("layer")["expected_random"].mean().reindex(layers).to_numpy(dtype=float)
    ax.scatter(
        x, rand, marker="_", s=60, color="black", linewidths=1.0, zorder=3, label="random masks"
    )
    ax.set_xticks(x, [_short_layer(v) for v in layers], rotation=45, ha="right")
    ax.set_ylabel(OVERLAP_LABELS[metric])
    top = np.nanmax([off["value"].max(), np.nanmax(rand) if np.isfinite(rand).any() else 0.0])
    ax.set_ylim(0, 1.4 * float(top) if np.isfinite(top) and top > 0 else 1.0)
    ax.legend(loc="upper left", ncols=2)


# --------------------------------------------------------------------------------- layer density


def _layer_rows(tickets: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in tickets.itertuples():
        ld = getattr(r, "layer_density", None)
        if not isinstance(ld, Mapping) or not ld:
            try:
                ld = load_ticket(r.path).layer_density()
            except TicketError as e:
                _warn("layer_density", f"skipped {e}")
                continue
        rows += [(str(r.source), int(r.seed), str(k), float(v)) for k, v in ld.items()]
    return pd.DataFrame(rows, columns=["source", "seed", "layer", "density"])


@register_figure(
    "layer_density",
    data="tickets",
    width="double",
    summary="per-layer weights remaining of the tickets of one level, one bar per source",
)
def layer_density_figure(
    tickets: pd.DataFrame,
    *,
    level: int | None = None,
    width: str | float = "double",
    style: StyleMap | None = None,
    log: bool = True,
) -> Figure:
    """Grouped bars: weights remaining (%) per layer at ``level`` (default: deepest), one bar per
    source (its fixed colour), mean over seeds with a 95 % t-interval; log y axis unless
    ``log=False``."""
    with paper_style():
        return _layer_density(tickets, level, width, style or StyleMap.from_frame(tickets), log)


def _layer_density(
    tickets: pd.DataFrame, level: int | None, width: str | float, style: StyleMap, log: bool
) -> Figure:
    kind = "layer_density"
    if tickets is None or tickets.empty:
        _warn(kind, "no tickets found (run a search first)")
        return message_figure("no tickets", width=width)
    lv = _pick_level(tickets, level, kind)
    if lv is None:
        return message_figure(f"no tickets at level {level}", width=width)
    sub = tickets[tickets["level"] == lv]
    rows = _layer_rows(sub)
    if rows.empty:
        return message_figure(f"no readable tickets at level {lv}", width=width)
    layers = list(pd.unique(rows["layer"]))
    sources = sorted(rows["source"].unique())
    fig = new_figure(width, 2.6)
    ax = fig.add_subplot()
    x = np.arange(len(layers))
    bar_w = 0.8 / len(sources)
    ns: list[int] = []
    for k, source in enumerate(sources):
        stats = []
        for layer in layers:
            vals = rows[(rows["source"] == source) & (rows["layer"] == layer)]
            stats.append(mean_ci(100.0 * vals.groupby("seed")["density"].mean().to_numpy()))
        mean = np.array([s[0] for s in stats])
        lo = np.array([s[1] for s in stats])
        hi = np.minimum(np.array([s[2] for s in stats]), 100.0)  # no layer keeps over 100 %
        ns += [s[3] for s in stats]
        err = np.nan_to_num(np.vstack([mean - lo, hi - mean]), nan=0.0)
        overall = 100.0 * float(sub.loc[sub["source"].astype(str) == source, "density"].mean())
        ax.bar(
            x + (k - (len(sources) - 1) / 2) * bar_w,
            mean,
            bar_w,
            yerr=err,
            color=style.color(source),
            error_kw={"elinewidth": 0.5, "ecolor": "0.15"},
            label=f"{source} ({overall:.3g}% overall)",
        )
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(x, [_short_layer(v) for v in layers], rotation=30, ha="right")
    ax.set_ylabel("weights remaining (%)")
    ax.grid(True, axis="y", which="major")
    fig.legend(
        *ax.get_legend_handles_labels(),
        loc="outside lower center",
        ncols=min(len(sources), max(1, int(fig.get_figwidth() / 1.5))),
        title="ticket found on",
    )
    if max(ns, default=0) < 2:
        _warn(kind, "one seed per source; no intervals")
    _suptitle(fig, f"weights remaining per layer at level {lv}", interval_phrase(ns))
    return fig


# ------------------------------------------------------------------------------- training curves


@register_figure(
    "training_curves",
    data="histories",
    width="double",
    summary="a metric over training iterations, mean over seeds with band",
)
def training_curves_figure(
    histories: pd.DataFrame,
    *,
    metric: str = "test_accuracy",
    target: object = None,
    source: object = None,
    control: object = None,
    level: object = None,
    optimizer: object = None,
    kind: object = "transfer",
    width: str | float = "double",
    style: StyleMap | None = None,
) -> Figure:
    """``metric`` over iterations from a ``load_histories`` frame, one panel per (optimizer,
    target), one line per (source, control, level): mean over seeds with a 95 % t-interval band.

    Filters take a value or a list; ``kind`` is "transfer" (default), "search" or None (both).
    ``level`` defaults to the deepest level present; dense runs are always kept (level 0).
    """
    with paper_style():
        return _training_curves(
            histories,
            metric,
            width,
            style or StyleMap.from_frame(histories),
            {"target": target, "source": source, "control": control, "optimizer": optimizer},
            level,
            kind,
        )


def _training_curves(
    histories: pd.DataFrame,
    metric: str,
    width: str | float,
    style: StyleMap,
    filters: dict,
    level: object,
    run_kind: object,
) -> Figure:
    kind = "training_curves"
    if histories is None or histories.empty or "iteration" not in histories.columns:
        _warn(kind, "no training histories found")
        return message_figure("no training histories", width=width)
    _check_metric(histories, metric, kind, "training histories")
    h = histories
    if run_kind is not None and "kind" in h.columns:
        h = h[h["kind"].isin(_as_list(run_kind))]
    h = _filter(h, **filters)
    h = h[h[metric].notna() & h["iteration"].notna()]
    sparse = h["control"] != "dense"
    levels = _as_list(level)
    if levels is None and sparse.any():
        levels = [int(h.loc[sparse, "level"].max())]
    if levels is not None:
        h = h[~sparse | h["level"].isin(levels)]
    if h.empty:
        shown = {k: v for k, v in filters.items() if v is not None}
        _warn(kind, f"no histories match the filters {shown or ''} (level {level})")
        return message_figure("no histories match the filters", width=width)
    h = h.assign(
        optimizer=h["optimizer"].astype(object).where(h["optimizer"].notna(), MISSING),
        target=h["target"].astype(object).where(h["target"].notna(), MISSING),
        source=h["source"].astype(object).where(h["control"] != "dense", None),
    )
    optimizers = sorted(h["optimizer"].astype(str).unique())
    targets = sorted(h["target"].astype(str).unique())
    fig, axes = _grid(width, len(optimizers), len(targets))
    shown_levels = sorted(h.loc[h["control"] != "dense", "level"].unique())
    multi_level = len(shown_levels) > 1
    multi_source = h["source"].dropna().nunique() > 1
    scale = 100.0 if _is_fraction(metric) else 1.0
    ns: list[int] = []
    for r, opt in enumerate(optimizers):
        for c, target in enumerate(targets):
            ax = axes[r, c]
            ax.set_title(f"{target} ({opt})" if len(optimizers) > 1 else str(target))
            sub = h[(h["optimizer"] == opt) & (h["target"] == target)]
            if sub.empty:
                _warn(kind, f"no histories for target {target} with optimizer {opt}")
                _empty_panel(ax, "no runs")
                continue
            groups = sub.groupby(["control", "source", "level"], dropna=False, sort=False)
            for (ctrl, src, lv), g in sorted(groups, key=lambda t: _line_order(t[0])):
                per = g.groupby(["seed", "iteration"])[metric].mean().reset_index()
                stats = [(it, *mean_ci(v[metric].to_numpy())) for it, v in per.groupby("iteration")]
                pts = pd.DataFrame(stats, columns=["iteration", "mean", "lo", "hi", "n"])
                ns += pts["n"].tolist()
                pts[["mean", "lo", "hi"]] *= scale
                kw = dict(style.line_kwargs(src, ctrl))
                kw["markevery"] = max(1, len(pts) // 6)
                label = line_name(str(ctrl), src, multi_source=multi_source)
                if multi_level and ctrl != "dense":
                    label += f", level {lv}"
                    rank = shown_levels.index(lv) / max(1, len(shown_levels) - 1)
                    kw["alpha"] = 0.45 + 0.55 * rank
                ax.plot(pts["iteration"], pts["mean"], label=label, **kw)
                band = pts[np.isfinite(pts["lo"]) & np.isfinite(pts["hi"])]
                if not band.empty:
                    ax.fill_between(
                        band["iteration"],
                        band["lo"],
                        band["hi"],
                        color=kw["color"],
                        alpha=BAND_ALPHA,
                        linewidth=0,
                    )
            ax.grid(True, which="major")
            if r == len(optimizers) - 1:
                ax.set_xlabel("iteration")
            if c == 0:
                ax.set_ylabel(_axis_label(metric))
    if max(ns, default=0) < 2:
        _warn(kind, "one seed per curve; no bands")
    where = f" at level {shown_levels[0]}" if len(shown_levels) == 1 else ""
    _figure_legend(fig, axes.ravel())
    _suptitle(fig, f"{metric_label(metric)} during training{where}", interval_phrase(ns))
    return fig


# ------------------------------------------------------------------------------------ dispatcher


@dataclass(frozen=True)
class PlotData:
    """Inputs of the figures: frames given directly, else loaded from ``suite_dir`` when needed."""

    results: pd.DataFrame | None = None
    histories: pd.DataFrame | None = None
    tickets: pd.DataFrame | None = None
    comparison: pd.DataFrame | None = None
    suite_dir: Path | None = None

    def frame(self, name: str) -> pd.DataFrame:
        """The ``results`` / ``histories`` / ``tickets`` frame (empty when unavailable)."""
        given = getattr(self, name)
        if given is not None:
            return given
        if self.suite_dir is None:
            return pd.DataFrame()
        loader = {
            "results": load_results,
            "histories": load_histories,
            "tickets": collect_tickets,
        }[name]
        return loader(self.suite_dir)


def plot_data(data: object) -> PlotData:
    """Normalize ``plot``'s input: a results directory, a frame, a mapping of frames or PlotData.

    A single frame counts as histories when it has an ``iteration`` column, as tickets when it has
    ``path`` and ``layer_density`` columns, else as results.
    """
    if isinstance(data, PlotData):
        return data
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_dir():
            raise ConfigError(
                f"{path}: no such results directory; pass a suite's results folder "
                "(results/<suite name>)"
            )
        return PlotData(suite_dir=path)
    if isinstance(data, pd.DataFrame):
        if "iteration" in data.columns:
            return PlotData(histories=data)
        if {"path", "layer_density"} <= set(data.columns):
            return PlotData(tickets=data)
        return PlotData(results=data)
    if isinstance(data, Mapping):
        fields = ("results", "histories", "tickets", "comparison", "suite_dir")
        unknown = [k for k in data if k not in fields]
        if unknown:
            raise ConfigError(f"plot data: unknown key {unknown[0]!r}; use {', '.join(fields)}")
        values = dict(data)
        if values.get("suite_dir") is not None:
            values["suite_dir"] = Path(values["suite_dir"])
        return PlotData(**values)
    raise ConfigError(
        f"plot data: expected a results directory or pandas frames, got {type(data).__name__}"
    )


def _auto_comparison(results: pd.DataFrame, options: Mapping[str, Any]) -> pd.DataFrame | None:
    """``stats.compare`` against the matrix's reference, or None when it cannot test that."""
    from transfer_bench.analysis.stats import compare

    if results.empty or options.get("integrated"):
        return None
    metric = options.get("metric", "test_accuracy")
    reference = options.get("reference") or default_reference(results, metric)
    try:
        return compare(results, metric=metric, baseline=reference)
    except ConfigError:  # e.g. a reference that stats cannot test (own_ticket)
        return None


def make_figure(
    kind: str,
    data: object,
    *,
    width: str | float | None = None,
    style: StyleMap | None = None,
    **options: Any,
) -> Figure:
    """Build the ``kind`` figure from ``data`` (see ``plot_data``); options go to its builder.

    The ``StyleMap`` defaults to one built from the kind's whole input frame, so that a source keeps
    its colour in every figure of a suite. ``transfer_matrix`` gets ``stats.compare`` stars
    automatically when no ``comparison`` is given and the reference is a testable control.
    """
    spec = figure_kind(kind)
    allowed = spec.options()
    for key in options:
        if key not in allowed:
            raise ConfigError(f"plot {kind}: unknown option {key!r}; options: {', '.join(allowed)}")
    inputs = plot_data(data)
    frame = inputs.frame(spec.data)
    if kind == "transfer_matrix" and options.get("comparison") is None:
        options["comparison"] = (
            inputs.comparison if inputs.comparison is not None else _auto_comparison(frame, options)
        )
    return spec.build(
        frame, width=width or spec.width, style=style or StyleMap.from_frame(frame), **options
    )


def save_figure(
    fig: Figure,
    out_base: Path,
    formats: Sequence[str] = ("png", "pdf"),
    *,
    dpi: int = 300,
) -> list[Path]:
    """Write ``fig`` as ``out_base.<fmt>`` for each format, atomically; returns the written paths.

    Metadata dates are left out so that re-rendering the same data gives the same files.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError(f"plot formats: unknown format {bad[0]!r}; use {', '.join(FORMATS)}")
    out_base = Path(out_base)
    if out_base.suffix.lower() in {f".{f}" for f in FORMATS}:
        out_base = out_base.with_suffix("")
    metadata = {"png": {"Software": None}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}
    written = []
    with paper_style():
        for fmt in formats:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata.get(fmt))
            path = out_base.with_name(f"{out_base.name}.{fmt}")
            written.append(atomic_write_bytes(path, buf.getvalue()))
    return written


def plot(
    kind: str,
    data: object,
    out_base: Path,
    *,
    formats: Sequence[str] = FORMATS,
    width: str | float | None = None,
    style: StyleMap | None = None,
    dpi: int = 300,
    **options: Any,
) -> list[Path]:
    """Render figure ``kind`` from a results directory or frames to ``out_base.<fmt>`` files.

    ``kind`` is a key of ``FIGURE_KINDS`` (unknown -> ConfigError listing them); ``width`` is
    "single", "double" or inches (default: the kind's); ``dpi`` applies to png; ``options`` are the
    builder's keywords.
    """
    figure_kind(kind)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ConfigError(f"plot formats: unknown format {bad[0]!r}; use {', '.join(FORMATS)}")
    fig = make_figure(kind, data, width=width, style=style, **options)
    return save_figure(fig, out_base, formats, dpi=dpi)


def sparsity_curve(
    df: pd.DataFrame, out_base: Path, *, metric: str = "test_accuracy"
) -> list[Path]:
    """Render the sparsity curve of ``df`` (a ``load_results`` frame) to ``out_base.png``/``.pdf``."""
    return save_figure(sparsity_figure(df, metric=metric), out_base)

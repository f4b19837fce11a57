"""Shared pieces of the paper figures: constants, statistics and drawing helpers, and the registry.

Holds what more than one figure kind uses: the confidence interval (``mean_ci``) and its wording,
metric labels, row filters, the panel grid, legend and title helpers, the dense reference line and
curve-with-band drawing, the reversed log axis of weights remaining, the grid of weights-remaining
panels of the sparsity and optimizer-transfer figures (``_density_panels``, ``_finish_panels``),
the points of the sparsity and training curves (``curve_table``, ``line_name``), and the figure
registry (``FigureKind``, ``FIGURE_KINDS``, ``register_figure``, ``figure_kind``) that every kind
module registers into. It imports nothing from the kind modules.
"""

from __future__ import annotations

import inspect
import math
import textwrap
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    NullLocator,
)
from scipy import stats as sps

from transfer_bench.analysis.style import (
    CONTROL_ORDER,
    TICKET_CONTROLS,
    figure_width,
    new_figure,
    paper_style,
)
from transfer_bench.errors import ConfigError

CI_LEVEL = 0.95
MAX_TICKS = 8

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

MISSING = "?"  # panel key for a missing optimizer/target value
BAND_ALPHA = 0.18

# ---------------------------------------------------------------------------------------- helpers


def mean_ci(
    values: Sequence[float] | np.ndarray,
    level: float = CI_LEVEL,
    bounds: tuple[float, float] | None = None,
) -> tuple[float, float, float, int]:
    """Mean and Student-t confidence interval ``(mean, lo, hi, n)``; NaN bounds when n < 2.

    ``bounds``: the metric's range (``metric_bounds``); the interval is clipped to it, since a
    t-interval of few seeds can reach past what the metric allows (accuracy above 100%)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(sps.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return mean, lo, hi, n


def metric_bounds(metric: str) -> tuple[float, float] | None:
    """The range a metric's values can take: [0, 1] for accuracies (fractions), [0, inf) for
    losses, None when unknown."""
    if _is_fraction(metric):
        return (0.0, 1.0)
    if "loss" in metric:
        return (0.0, math.inf)
    return None


def clipped_phrase(metric: str) -> str:
    """How a figure's bands are bounded, for its caption ("" for metrics without a range)."""
    if _is_fraction(metric):
        return "; intervals clipped to 0–100%"
    if "loss" in metric:
        return "; intervals clipped at 0"
    return ""


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
    if len(band) == 1:  # one level: a band of one point has no width; draw its interval as a bar
        row = band.iloc[0]
        ax.errorbar(
            [row[x]],
            [row["mean"]],
            yerr=[[row["mean"] - row["lo"]], [row["hi"] - row["mean"]]],
            color=kw["color"],
            capsize=3,
            linewidth=0.8,
        )
    elif not band.empty:
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


def _density_panels(
    width: str | float,
    rows: Sequence[Any],
    cols: Sequence[Any],
    metric: str,
    draw: Callable[[Axes, Any, Any], pd.DataFrame | None],
) -> tuple[Figure, np.ndarray]:
    """A grid of accuracy-vs-weights-remaining panels, one per (row key, column key).

    ``draw(ax, row, col)`` titles and fills one panel and returns the rows it drew (their
    ``percent_remaining`` set the x ticks), or None when it had none (after warning why): that
    panel says "no runs". Every drawn panel gets the reversed log x-axis (``_format_x``) and a
    major grid; only the bottom row keeps the x label and only the left column gets the y label.
    """
    fig, axes = _grid(width, len(rows), len(cols))
    for r, row in enumerate(rows):
        for c, col in enumerate(cols):
            ax = axes[r, c]
            drawn = draw(ax, row, col)
            if drawn is None:
                _empty_panel(ax, "no runs")
                continue
            _format_x(ax, drawn["percent_remaining"].to_numpy(dtype=float))
            ax.grid(True, which="major")
            if r < len(rows) - 1:
                ax.set_xlabel("")
            if c == 0:
                ax.set_ylabel(_axis_label(metric))
    return fig, axes


def _finish_panels(
    fig: Figure, axes: np.ndarray, title: str, ns: Iterable[int], metric: str = ""
) -> Figure:
    """One legend below the panels and the title, with the interval per point (and how it is
    clipped to the ``metric``'s range) as second line."""
    ns = list(ns)
    _figure_legend(fig, axes.ravel())
    clip = clipped_phrase(metric) if max(ns, default=0) >= 2 else ""
    _suptitle(fig, title, f"{interval_phrase(ns)} per point{clip}")
    return fig


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


# ----------------------------------------------------------------------------------- curve points


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

    ``lo``/``hi``: the 95% t-interval over seeds, clipped to the metric's range. Only transfer
    rows; dense rows are pooled over sources (one reference per target and
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
        mean, lo, hi, n = mean_ci(_seed_values(group, metric), bounds=metric_bounds(metric))
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


# ------------------------------------------------------------------------- used by several kinds


def _text_color(rgba: Sequence[float]) -> str:
    r, g, b = rgba[:3]
    return "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "black"


def _pick_level(tickets: pd.DataFrame, level: int | None, kind: str) -> int | None:
    levels = sorted(int(v) for v in tickets["level"].unique())
    if level is None:
        return levels[-1]
    if int(level) not in levels:
        _warn(kind, f"no tickets at level {level} (levels: {', '.join(map(str, levels))})")
        return None
    return int(level)

"""Figures for suite reports, rendered headless (matplotlib ``Figure`` objects, no pyplot state).

``sparsity_curve`` draws the classic lottery-ticket plot: accuracy against the percent of weights
remaining on a reversed log axis (100 % on the left, as in Frankle & Carbin 2019), one panel per
target, one line per (source, control) with mean and a 95 % t-interval over seeds, and the dense
control as a horizontal dashed line with its band.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
from scipy import stats as sps

from transfer_bench.analysis.frame import atomic_write_bytes

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
METRIC_LABELS = {"test_accuracy": "test accuracy", "best_test_accuracy": "best test accuracy"}


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


def line_name(
    control: str, source: object, optimizer: object, *, multi_source: bool, multi_optimizer: bool
) -> str:
    """Legend name of a curve: "ticket from mnist5k", "random_reinit", "dense" (+ qualifiers when needed)."""
    if control == "ticket":
        name = f"ticket from {source}"
    elif control != "dense" and multi_source and not pd.isna(source):
        name = f"{control} ({source})"
    else:
        name = str(control)
    return f"{name} [{optimizer}]" if multi_optimizer else name


def _seed_values(group: pd.DataFrame, metric: str) -> np.ndarray:
    """One value per seed (duplicates averaged) so a seed never counts twice in a CI."""
    return group.groupby("seed")[metric].mean().dropna().to_numpy(dtype=float)


def curve_table(df: pd.DataFrame, metric: str = "test_accuracy") -> pd.DataFrame:
    """Points to draw: one row per (target, optimizer, source, control, level), metric in percent.

    Dense rows are pooled over sources (one curve per target and optimizer).
    """
    transfer = df[df["kind"] == "transfer"] if "kind" in df.columns else df.iloc[0:0]
    transfer = (
        transfer[transfer[metric].notna()] if metric in transfer.columns else transfer.iloc[0:0]
    )
    if transfer.empty:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    multi_source = transfer["source"].dropna().nunique() > 1
    multi_optimizer = transfer["optimizer"].nunique(dropna=False) > 1
    transfer = transfer.assign(
        source=transfer["source"].where(transfer["control"] != "dense", None),
        level=transfer["level"].where(transfer["control"] != "dense", 0),
    )
    rows = []
    keys = ["target", "optimizer", "source", "control", "level"]
    for values, group in transfer.groupby(keys, dropna=False, sort=True):
        key = dict(zip(keys, values, strict=True))
        mean, lo, hi, n = mean_ci(_seed_values(group, metric))
        name = line_name(
            key["control"],
            key["source"],
            key["optimizer"],
            multi_source=multi_source,
            multi_optimizer=multi_optimizer,
        )
        rows.append(
            {
                **key,
                "line": name,
                "percent_remaining": float(group["percent_remaining"].mean()),
                "mean": 100.0 * mean,
                "lo": 100.0 * lo,
                "hi": 100.0 * hi,
                "n": n,
            }
        )
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def line_colors(names: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """Fixed colour per line name (sorted names onto seaborn's colour-blind-safe palette)."""
    unique = sorted(set(names))
    palette = sns.color_palette("colorblind", max(len(unique), 1))
    return {name: tuple(palette[i % len(palette)]) for i, name in enumerate(unique)}


def _n_label(ns: pd.Series) -> str:
    lo, hi = int(ns.min()), int(ns.max())
    return f"n={lo}" if lo == hi else f"n={lo}-{hi}"


def _draw_dense(ax: Axes, pts: pd.DataFrame, color: tuple) -> None:
    row = pts.iloc[0]
    label = f"{row['line']} ({_n_label(pts['n'])})"
    ax.axhline(row["mean"], color=color, linestyle="--", linewidth=1.4, label=label)
    if np.isfinite(row["lo"]) and np.isfinite(row["hi"]):
        ax.axhspan(row["lo"], row["hi"], color=color, alpha=0.15, linewidth=0)


def _draw_curve(ax: Axes, pts: pd.DataFrame, color: tuple) -> None:
    pts = pts.sort_values("percent_remaining", ascending=False)
    ticket = (pts["control"] == "ticket").all()
    label = f"{pts['line'].iloc[0]} ({_n_label(pts['n'])})"
    ax.plot(
        pts["percent_remaining"],
        pts["mean"],
        color=color,
        label=label,
        linestyle="-" if ticket else ":",
        marker="o" if ticket else "s",
        markersize=4,
    )
    band = pts[np.isfinite(pts["lo"]) & np.isfinite(pts["hi"])]
    if not band.empty:
        ax.fill_between(
            band["percent_remaining"], band["lo"], band["hi"], color=color, alpha=0.2, linewidth=0
        )


def _format_x(ax: Axes, percents: np.ndarray) -> None:
    """Log x-axis, 100 % on the left, ticks at the densities that were run."""
    ax.set_xscale("log")
    ticks = np.unique(percents[np.isfinite(percents)])[::-1]
    if ticks.size == 0:
        ticks = np.array([100.0])
    if ticks.size > MAX_TICKS:
        ticks = ticks[:: math.ceil(ticks.size / MAX_TICKS)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    lo, hi = float(np.nanmin(percents, initial=100.0)), float(np.nanmax(percents, initial=100.0))
    ax.set_xlim(hi * 1.15, lo / 1.15)  # left > right: reversed like the papers
    ax.set_xlabel("weights remaining (%)")


def _draw_panel(ax: Axes, pts: pd.DataFrame, target: str, colors: dict, metric: str) -> None:
    for name, line in pts.groupby("line", sort=True):
        if (line["control"] == "dense").all():
            _draw_dense(ax, line, colors[name])
        else:
            _draw_curve(ax, line, colors[name])
    _format_x(ax, pts["percent_remaining"].to_numpy(dtype=float))
    ax.set_title(f"target: {target}")
    ax.set_ylabel(f"{METRIC_LABELS.get(metric, metric)} (%)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small", loc="best")


def sparsity_figure(df: pd.DataFrame, *, metric: str = "test_accuracy") -> Figure:
    """The sparsity-curve ``Figure``: one axes per target (an explanatory text when there is no data)."""
    pts = curve_table(df, metric)
    targets = sorted(pts["target"].dropna().unique())
    ncols = max(1, min(3, len(targets)))
    nrows = max(1, math.ceil(len(targets) / ncols))
    fig = Figure(figsize=(5.0 * ncols, 3.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    if not targets:
        axes[0].text(0.5, 0.5, "no transfer results", ha="center", va="center")
        axes[0].set_axis_off()
        return fig
    colors = line_colors(pts["line"].tolist())
    for ax, target in zip(axes, targets, strict=False):
        _draw_panel(ax, pts[pts["target"] == target], target, colors, metric)
        ax.yaxis.set_tick_params(labelleft=True)
    for ax in axes[len(targets) :]:
        fig.delaxes(ax)
    fig.suptitle(
        f"{METRIC_LABELS.get(metric, metric)} vs weights remaining "
        f"(mean and {CI_LEVEL:.0%} t-interval over seeds; n = seeds)"
    )
    return fig


def save_figure(fig: Figure, out_base: Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write ``fig`` as ``out_base.<fmt>`` for each format, atomically; returns the written paths."""
    out_base = Path(out_base)
    if out_base.suffix.lower() in {".png", ".pdf", ".svg"}:
        out_base = out_base.with_suffix("")
    metadata = {"png": {"Software": None}, "pdf": {"CreationDate": None}}
    written = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=150, metadata=metadata.get(fmt))
        written.append(
            atomic_write_bytes(out_base.with_name(f"{out_base.name}.{fmt}"), buf.getvalue())
        )
    return written


def sparsity_curve(
    df: pd.DataFrame, out_base: Path, *, metric: str = "test_accuracy"
) -> list[Path]:
    """Render the sparsity curve of ``df`` (a ``load_results`` frame) to ``out_base.png`` and ``.pdf``."""
    return save_figure(sparsity_figure(df, metric=metric), out_base)

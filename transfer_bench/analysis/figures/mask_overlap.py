"""The ``mask_overlap`` figure: how similar the masks of different tickets are.

A heatmap of the Jaccard index or normalized Hamming distance between the ticket masks of one
level, plus per-layer bars of the mean over ticket pairs against the random-mask chance level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from transfer_bench.analysis.figures.common import (
    _pick_level,
    _short_layer,
    _suptitle,
    _text_color,
    _warn,
    message_figure,
    register_figure,
)
from transfer_bench.analysis.masks import METRIC_LABELS as OVERLAP_LABELS
from transfer_bench.analysis.masks import (
    OVERALL,
    check_metric,
    load_masks,
    matrix_from_pairs,
    pair_table,
    ticket_labels,
)
from transfer_bench.analysis.style import (
    StyleMap,
    figure_width,
    new_figure,
    paper_style,
)


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

"""The ``optimizer_transfer`` figure: tickets retrained with an optimizer other than their own.

Accuracy vs percent of weights remaining of tickets found with one optimizer and retrained with
another (dashed, hollow) against tickets retrained with the optimizer that found them (solid), one
panel per (target, training optimizer), mean and 95 % t-interval over seeds, dense reference per
panel.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from transfer_bench.analysis.figures.common import (
    _check_metric,
    _density_panels,
    _draw_curve,
    _draw_dense,
    _filter,
    _finish_panels,
    _is_fraction,
    _seed_values,
    _transfer_rows,
    _warn,
    mean_ci,
    message_figure,
    metric_bounds,
    metric_label,
    register_figure,
)
from transfer_bench.analysis.style import (
    StyleMap,
    paper_style,
)

CROSS_LINESTYLES: tuple[Any, ...] = ("--", "-.", (0, (1, 1)), (0, (5, 1, 1, 1)))


def _level_curve(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    scale = 100.0 if _is_fraction(metric) else 1.0
    out = []
    for level, g in rows.groupby("level"):
        mean, lo, hi, n = mean_ci(_seed_values(g, metric), bounds=metric_bounds(metric))
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
    ns: list[int] = []

    def draw(ax: Axes, target: str, opt: str) -> pd.DataFrame | None:
        ax.set_title(f"{target}, trained with {opt}" if len(target_names) > 1 else opt)
        sub = tickets[(tickets["target"] == target) & (tickets["optimizer"] == opt)]
        if sub.empty:
            _warn(kind, f"no ticket transfers to {target} trained with {opt}")
            return None
        dense = transfer[
            (transfer["control"] == "dense")
            & (transfer["target"] == target)
            & (transfer["optimizer"] == opt)
        ]
        if not dense.empty:
            pts = _level_curve(dense, metric)
            _draw_dense(ax, pts, style.line_kwargs(None, "dense"), "dense")
            ns.extend(pts["n"].tolist())
        keys = ["source", "source_optimizer"]
        for (source, found), g in sorted(sub.groupby(keys), key=lambda t: t[0]):
            pts = _level_curve(g, metric)
            ns.extend(pts["n"].tolist())
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
        return sub

    fig, axes = _density_panels(width, target_names, optimizers, metric, draw)
    title = (
        f"{metric_label(metric)} of tickets retrained with another optimizer "
        "(panels: training optimizer)"
    )
    return _finish_panels(fig, axes, title, ns, metric)

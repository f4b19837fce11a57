"""The ``sparsity_curve`` figure: accuracy vs percent of weights remaining.

A reversed log x-axis (100 % on the left, as in Frankle & Carbin 2019), one panel per (optimizer,
target), one line per source and control with a 95 % t-interval band over seeds (clipped to
0-100%), and the dense network as a reference line with its band. ``sparsity_curve_figure`` is an alias of
``sparsity_figure``.
"""

from __future__ import annotations

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
    _line_order,
    _warn,
    curve_table,
    message_figure,
    metric_label,
    register_figure,
)
from transfer_bench.analysis.style import (
    StyleMap,
    paper_style,
)


def _draw_sparsity_panel(ax: Axes, pts: pd.DataFrame, style: StyleMap) -> None:
    groups = pts.groupby(["control", "source"], dropna=False, sort=False)
    for (control, source), line in sorted(groups, key=lambda item: _line_order(item[0])):
        kw = style.line_kwargs(source, control)
        label = str(line["line"].iloc[0])
        if control == "dense":
            _draw_dense(ax, line, kw, label)
        else:
            _draw_curve(ax, line, kw, label)


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
    multi_opt = len(optimizers) > 1

    def draw(ax: Axes, opt: str, target: str) -> pd.DataFrame | None:
        ax.set_title(f"{target} ({opt})" if multi_opt else str(target))
        sub = pts[(pts["optimizer"] == opt) & (pts["target"] == target)]
        if sub.empty:
            _warn(kind, f"no runs for target {target} with optimizer {opt}; panel left empty")
            return None
        _draw_sparsity_panel(ax, sub, style)
        if not (sub["control"] == "dense").any():
            _warn(kind, f"no dense reference for target {target} ({opt})")
        if not (~sub["control"].isin(["ticket", "dense"])).any():
            _warn(
                kind,
                f"no control runs (e.g. random_reinit) for target {target} ({opt}); "
                "tickets drawn without a control",
            )
        return sub

    fig, axes = _density_panels(width, optimizers, targets, metric, draw)
    if pts["n"].max() < 2:
        _warn(kind, "only one seed per point; no confidence bands (run more seeds)")
    title = f"{metric_label(metric)} vs weights remaining"
    return _finish_panels(fig, axes, title, pts["n"], metric)

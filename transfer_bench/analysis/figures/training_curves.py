"""The ``training_curves`` figure: a metric over training iterations.

One line per source and control (mean over seeds with a 95 % t-interval band), one panel per
(optimizer, target), from the ``load_histories`` frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transfer_bench.analysis.figures.common import (
    BAND_ALPHA,
    MISSING,
    _as_list,
    _axis_label,
    _check_metric,
    _empty_panel,
    _figure_legend,
    _filter,
    _grid,
    _is_fraction,
    _line_order,
    _suptitle,
    _warn,
    clipped_phrase,
    interval_phrase,
    line_name,
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
                bounds = metric_bounds(metric)
                stats = [
                    (it, *mean_ci(v[metric].to_numpy(), bounds=bounds))
                    for it, v in per.groupby("iteration")
                ]
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
    clip = clipped_phrase(metric) if max(ns, default=0) >= 2 else ""
    _suptitle(fig, f"{metric_label(metric)} during training{where}", interval_phrase(ns) + clip)
    return fig

"""The ``stability`` figure (Frankle et al. 2020, instability analysis).

Left: error barrier height (max error on the linear path minus the mean of the end errors, in
points) against percent of weights remaining, one line per rewind point, mean and 95% t-interval
over seeds, with the 2% stability threshold. Right: test error along the path (alpha from one trained
copy to the other) for each level at the first rewind point, mean over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from transfer_bench.analysis.figures.common import (
    _format_x,
    _warn,
    mean_ci,
    message_figure,
    register_figure,
)
from transfer_bench.analysis.style import StyleMap, new_figure, palette, paper_style

STABLE_POINTS = 2.0


@register_figure(
    "stability",
    data="results",
    width="double",
    summary="error barrier vs weights remaining per rewind point, and the error along the path",
)
def stability_figure(
    df: pd.DataFrame, *, width: str | float = "double", style: StyleMap | None = None
) -> Figure:
    rows = df[df["kind"] == "stability"] if not df.empty and "kind" in df else pd.DataFrame()
    if rows.empty or "barrier" not in rows:
        _warn("stability", "no stability runs in these results (add a stability: section)")
        return message_figure("no stability runs in these results", width=width, title="stability")
    colors = palette()
    n_seeds = rows["seed"].nunique()
    with paper_style():
        fig = new_figure(width, 2.6)
        ax, ax2 = fig.subplots(1, 2)
        for i, (k, g) in enumerate(sorted(rows.groupby("rewind"), key=lambda t: t[0])):
            pts = []
            for pct, gg in g.groupby("percent_remaining"):
                m, lo, hi, _ = mean_ci(100 * gg["barrier"].to_numpy(float))
                pts.append((pct, m, lo, hi))
            pts.sort(reverse=True)
            x = np.array([p[0] for p in pts])
            c = colors[i % len(colors)]
            ax.plot(x, [p[1] for p in pts], marker="o", color=c, label=f"rewind to iteration {k}")
            ax.fill_between(x, [p[2] for p in pts], [p[3] for p in pts], color=c, alpha=0.2, lw=0)
        ax.axhline(STABLE_POINTS, color="0.4", ls="--", lw=0.8, label="stable below 2%")
        _format_x(ax, rows["percent_remaining"].to_numpy(float))
        ax.set_ylabel("error barrier (points)")
        ax.legend(frameon=False)
        first = rows[rows["rewind"] == rows["rewind"].min()]
        for i, (_level, g) in enumerate(sorted(first.groupby("level"), key=lambda t: t[0])):
            curves = [
                np.array(p, dtype=float) for p in g["interpolation"] if isinstance(p, list) and p
            ]
            if not curves:
                continue
            alphas = curves[0][:, 0]
            errs = np.mean([100 * c[:, 1] for c in curves if len(c) == len(alphas)], axis=0)
            pct = float(g["percent_remaining"].iloc[0])
            ax2.plot(alphas, errs, color=colors[i % len(colors)], label=f"{pct:.3g}% remaining")
        ax2.set_xlabel("interpolation alpha")
        ax2.set_ylabel("test error (%)")
        ax2.set_title(f"rewind to iteration {int(first['rewind'].min())}")
        ax2.legend(frameon=False)
        fig.suptitle(f"instability analysis: mean and 95% t-interval over n = {n_seeds} seeds")
    return fig

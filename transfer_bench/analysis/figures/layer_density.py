"""The ``layer_density`` figure: weights remaining per layer.

One bar per source in each layer (mean over seeds, with its interval) for the tickets of one
pruning level.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import (
    FuncFormatter,
    LogLocator,
    NullFormatter,
)

from transfer_bench.analysis.figures.common import (
    _pick_level,
    _short_layer,
    _suptitle,
    _warn,
    interval_phrase,
    mean_ci,
    message_figure,
    register_figure,
)
from transfer_bench.analysis.style import (
    StyleMap,
    new_figure,
    paper_style,
)
from transfer_bench.errors import TicketError
from transfer_bench.tickets import load_ticket


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
            per_seed = 100.0 * vals.groupby("seed")["density"].mean().to_numpy()
            stats.append(mean_ci(per_seed, bounds=(0.0, 100.0)))
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

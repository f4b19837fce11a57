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

The figure kinds are drawn in ``transfer_bench.analysis.figures`` (one module per kind, shared
helpers and the registry in ``figures.common``); this module is the public entry point: it
re-exports their names and loads the frames, builds and saves a figure.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from transfer_bench.analysis.figures.common import (
    BAND_ALPHA,
    CI_LEVEL,
    CURVE_COLUMNS,
    FIGURE_KINDS,
    MAX_TICKS,
    METRIC_LABELS,
    MISSING,
    FigureKind,
    _format_x,
    _warn,
    curve_table,
    figure_kind,
    interval_phrase,
    line_name,
    mean_ci,
    message_figure,
    metric_label,
    register_figure,
)
from transfer_bench.analysis.figures.layer_density import layer_density_figure
from transfer_bench.analysis.figures.mask_overlap import mask_overlap_figure
from transfer_bench.analysis.figures.optimizer_transfer import optimizer_transfer_figure
from transfer_bench.analysis.figures.sparsity import sparsity_curve_figure, sparsity_figure
from transfer_bench.analysis.figures.training_curves import training_curves_figure
from transfer_bench.analysis.figures.transfer_matrix import (
    MatrixPanel,
    default_reference,
    transfer_matrix_figure,
)
from transfer_bench.analysis.frame import load_histories, load_results
from transfer_bench.analysis.masks import collect_tickets
from transfer_bench.analysis.style import StyleMap, paper_style
from transfer_bench.errors import ConfigError
from transfer_bench.fileio import atomic_write_bytes

FORMATS: tuple[str, ...] = ("png", "pdf", "svg")

__all__ = [
    "BAND_ALPHA",
    "CI_LEVEL",
    "CURVE_COLUMNS",
    "FIGURE_KINDS",
    "FORMATS",
    "MAX_TICKS",
    "METRIC_LABELS",
    "MISSING",
    "FigureKind",
    "MatrixPanel",
    "PlotData",
    "_format_x",
    "_warn",
    "curve_table",
    "default_reference",
    "figure_kind",
    "interval_phrase",
    "layer_density_figure",
    "line_name",
    "make_figure",
    "mask_overlap_figure",
    "mean_ci",
    "message_figure",
    "metric_label",
    "optimizer_transfer_figure",
    "plot",
    "plot_data",
    "register_figure",
    "save_figure",
    "sparsity_curve",
    "sparsity_curve_figure",
    "sparsity_figure",
    "training_curves_figure",
    "transfer_matrix_figure",
]


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
    from transfer_bench.analysis.stats import compare  # lazy: scipy, for this figure kind only

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

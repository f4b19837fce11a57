"""Paper style for transfer-bench figures: fonts, widths and one fixed look per source and control.

Figures are meant to drop into a two-column paper: serif text at 7-8 pt, thin lines, widths of one
column (3.25 in) or the full page (6.75 in). The style is applied per figure through
``matplotlib.rc_context`` (``paper_style``), so global ``rcParams`` are never changed.

``StyleMap`` gives every source dataset and every control one colour (seaborn's colour-blind-safe
palette, ``palette()``) and one marker, assigned by sorted name, sources first and then the
controls in the fixed order ``CONTROL_ORDER``. Built once from a suite's results frame, it makes
the same source look the same in every figure of that suite.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import matplotlib as mpl
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from transfer_bench.errors import ConfigError

WIDTHS: Mapping[str, float] = MappingProxyType({"single": 3.25, "double": 6.75})
CONTROL_ORDER: tuple[str, ...] = (
    "dense",
    "random_reinit",
    "shuffle_layerwise",
    "random_global",
    "own_ticket",
)
# Values of the "control" column that are tickets, not controls (drawn in their source's look).
TICKET_CONTROLS: tuple[str, ...] = ("ticket", "imp")
PALETTE = "colorblind"
PALETTE_SIZE = 10
# blue, orange, green, pink, grey, brown, light blue, vermillion, yellow, light pink: orange and
# vermillion (hard to tell apart) are far apart in the assignment order.
PALETTE_ORDER: tuple[int, ...] = (0, 1, 2, 4, 7, 5, 9, 3, 8, 6)
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
CONTROL_LINESTYLES: Mapping[str, Any] = MappingProxyType(
    {
        "dense": "--",
        "random_reinit": ":",
        "shuffle_layerwise": "-.",
        "random_global": (0, (3, 1, 1, 1, 1, 1)),
        "own_ticket": (0, (5, 1.5)),
    }
)
FALLBACK_LINESTYLE: Any = (0, (1, 2))

PAPER_RC: Mapping[str, Any] = MappingProxyType(
    {
        "font.family": "serif",
        "font.serif": (
            "Times New Roman",
            "Times",
            "Nimbus Roman",
            "TeX Gyre Termes",
            "STIXGeneral",
            "DejaVu Serif",
        ),
        "mathtext.fontset": "stix",
        "font.size": 8.0,
        "axes.titlesize": 8.0,
        "axes.labelsize": 8.0,
        "xtick.labelsize": 7.0,
        "ytick.labelsize": 7.0,
        "legend.fontsize": 7.0,
        "legend.title_fontsize": 7.0,
        "figure.titlesize": 8.0,
        "lines.linewidth": 1.0,
        "lines.markersize": 3.5,
        "lines.markeredgewidth": 0.7,
        "patch.linewidth": 0.5,
        "hatch.linewidth": 0.5,
        "axes.linewidth": 0.6,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlepad": 3.0,
        "axes.labelpad": 2.0,
        "grid.linewidth": 0.4,
        "grid.alpha": 0.4,
        "xtick.major.width": 0.6,
        "ytick.major.width": 0.6,
        "xtick.minor.width": 0.4,
        "ytick.minor.width": 0.4,
        "xtick.major.size": 2.5,
        "ytick.major.size": 2.5,
        "xtick.minor.size": 1.5,
        "ytick.minor.size": 1.5,
        "xtick.major.pad": 2.0,
        "ytick.major.pad": 2.0,
        "legend.frameon": False,
        "legend.handlelength": 2.2,
        "legend.columnspacing": 1.2,
        "errorbar.capsize": 1.5,
        "figure.dpi": 150,
        "savefig.dpi": 300,
        "pdf.fonttype": 42,  # TrueType: text stays text (venues reject Type 3 fonts)
        "ps.fonttype": 42,
        "svg.fonttype": "path",
        "svg.hashsalt": "transfer-bench",  # stable ids, reproducible SVG files
    }
)


@contextmanager
def paper_style(rc: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Apply ``PAPER_RC`` (plus ``rc`` overrides) inside the block; rcParams are restored after."""
    with mpl.rc_context({**PAPER_RC, **(rc or {})}):
        yield


def figure_width(width: str | float) -> float:
    """Figure width in inches: ``"single"`` (3.25), ``"double"`` (6.75) or a number of inches."""
    if isinstance(width, str):
        if width in WIDTHS:
            return WIDTHS[width]
        raise ConfigError(
            f"plot width: unknown width {width!r}; use 'single', 'double' or a number of inches"
        )
    try:
        inches = float(width)
    except (TypeError, ValueError):
        raise ConfigError(
            f"plot width: {width!r} is not a width; use 'single', 'double' or a number of inches"
        ) from None
    if not 1.0 <= inches <= 30.0:
        raise ConfigError(f"plot width: {inches} in is out of range; use 1 to 30 inches")
    return inches


def new_figure(width: str | float, height: float) -> Figure:
    """A constrained-layout ``Figure`` (no pyplot) of the given width and ``height`` inches."""
    return Figure(figsize=(figure_width(width), max(1.2, float(height))), layout="constrained")


def palette() -> list[tuple[float, float, float]]:
    """seaborn's colour-blind-safe palette, reordered (``PALETTE_ORDER``) so that the first colours,
    handed to sources and the main controls, are the most distinct."""
    colors = sns.color_palette(PALETTE, PALETTE_SIZE)
    return [tuple(colors[i]) for i in PALETTE_ORDER]


@dataclass(frozen=True)
class Look:
    """How one source or control is drawn: an RGB colour and a marker."""

    color: tuple[float, float, float]
    marker: str


@dataclass(frozen=True)
class StyleMap:
    """One fixed ``Look`` per source and control (sorted sources first, then ``CONTROL_ORDER``).

    Names the map does not know (e.g. a source absent from the frame it was built from) get a
    deterministic look from a hash of the name, so they never crash a figure.
    """

    sources: tuple[str, ...]
    controls: tuple[str, ...]

    @classmethod
    def from_names(cls, sources: Iterable[object], controls: Iterable[object] = ()) -> StyleMap:
        """Map for the given source names (sorted) and all known controls plus ``controls``."""
        srcs = tuple(sorted({str(s) for s in sources if not _missing(s)}))
        extra = sorted(
            {str(c) for c in controls if not _missing(c)}
            - set(CONTROL_ORDER)
            - set(TICKET_CONTROLS)
            - set(srcs)
        )
        return cls(srcs, (*CONTROL_ORDER, *extra))

    @classmethod
    def from_frame(cls, *frames: pd.DataFrame | None) -> StyleMap:
        """Map from the ``source`` (and ``control``) columns of one or more frames of a suite."""
        sources: list[object] = []
        controls: list[object] = []
        for df in frames:
            if df is None or df.empty:
                continue
            if "source" in df.columns:
                sources += df["source"].dropna().unique().tolist()
            if "control" in df.columns:
                controls += df["control"].dropna().unique().tolist()
        return cls.from_names(sources, controls)

    def _index(self, name: str) -> int:
        order = (*self.sources, *self.controls)
        if name in order:
            return order.index(name)
        return len(order) + zlib.crc32(name.encode()) % PALETTE_SIZE

    def look(self, name: object) -> Look:
        """The colour and marker of a source or control name."""
        i = self._index(str(name))
        return Look(palette()[i % PALETTE_SIZE], MARKERS[i % len(MARKERS)])

    def color(self, name: object) -> tuple[float, float, float]:
        return self.look(name).color

    def marker(self, name: object) -> str:
        return self.look(name).marker

    def line_kwargs(self, source: object, control: object) -> dict[str, Any]:
        """``Axes.plot`` keywords for a curve of ``control`` runs with tickets from ``source``.

        Tickets: the source's colour and marker, solid. Controls without a source (dense): the
        control's colour and marker, dashed. Controls tied to a source (random_reinit of that
        source's mask): the control's colour, the source's marker hollow, the control's line style.
        """
        control = "ticket" if _missing(control) else str(control)
        if control in TICKET_CONTROLS:
            look = self.look(source)
            return {"color": look.color, "marker": look.marker, "linestyle": "-"}
        style = CONTROL_LINESTYLES.get(control, FALLBACK_LINESTYLE)
        if _missing(source):
            look = self.look(control)
            return {"color": look.color, "marker": look.marker, "linestyle": style}
        return {
            "color": self.color(control),
            "marker": self.marker(source),
            "markerfacecolor": "none",
            "linestyle": style,
        }


def _missing(value: object) -> bool:
    """None, NaN or pd.NA (the ways a frame spells a missing source)."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-like values are never "missing names"
        return False

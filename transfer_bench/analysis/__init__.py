"""Analysis of suite results: load ``result.json`` files, compare tickets with controls, plot, report.

- ``frame``: ``load_results`` / ``load_histories`` (tidy pandas frames; bad files skipped with a warning)
- ``stats``: ``compare`` (Welch t-test per ticket family, Holm-corrected), ``holm``, ``welch``
- ``plots``: ``sparsity_curve`` (accuracy vs % weights remaining, PNG + PDF)
- ``report``: ``write_report`` (``report.md`` with table, figure, findings and warnings)
"""

from __future__ import annotations

from transfer_bench.analysis.frame import load_histories, load_results
from transfer_bench.analysis.plots import sparsity_curve, sparsity_figure
from transfer_bench.analysis.report import write_report
from transfer_bench.analysis.stats import adjust_pvalues, compare, holm, welch

__all__ = [
    "adjust_pvalues",
    "compare",
    "holm",
    "load_histories",
    "load_results",
    "sparsity_curve",
    "sparsity_figure",
    "welch",
    "write_report",
]

"""Analysis of suite results: load ``result.json`` files, compare tickets with controls, plot, report.

- ``frame``: ``load_results`` / ``load_histories`` (tidy pandas frames; bad files skipped with a warning)
- ``stats``: ``comparison_table`` (tests, bootstrap CIs, effect sizes, corrections), ``auc_table``
- ``tables``: CSV, Markdown and LaTeX tables with captions
- ``style``/``plots``: paper style and the figure registry (``plot(kind, ...)``); ``stability_plot``
- ``masks``: Jaccard / Hamming mask similarity between tickets
- ``report``: ``write_report`` (``report.md`` and ``report.html``)
"""

from __future__ import annotations

from transfer_bench.analysis import stability_plot  # noqa: F401 (registers the figure)
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

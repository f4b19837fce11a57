"""Analysis of suite results: load ``result.json`` files, compare tickets with controls, plot, report.

- ``frame``: ``load_results`` / ``load_histories`` (tidy pandas frames; bad files skipped with a warning)
- ``stats``: ``comparison_table`` (tests, bootstrap CIs, effect sizes, corrections), ``auc_table``
- ``tables``: CSV, Markdown and LaTeX tables with captions
- ``style``/``plots``: paper style and the figure registry (``plot(kind, ...)``); ``figures/``: one
  module per figure kind
- ``masks``: Jaccard / Hamming mask similarity between tickets
- ``primaries``: which comparisons share the correction (``analysis.primary``, a claim's checks)
- ``precision``: the report's lines on pairing (arms' correlation) and test-set noise
- ``power``/``seed_advice``: minimal detectable effects, seeds needed (``transfer-bench power``)
- ``rounds``: the seed-adding rule of ``run --until-mde`` (an internal pilot)
- ``headline``: the report's opening: a short summary and one table row per primary comparison
  or claim check (effect, CI, p, MDE, verdict)
- ``report``: ``write_report`` (``report.md`` and ``report.html``)
"""

from __future__ import annotations

from transfer_bench.lazy import lazy_names

# Resolved on first use: loading a results frame needs pandas only, not matplotlib or scipy.
_HOMES = {
    "load_histories": "frame",
    "load_results": "frame",
    "sparsity_curve": "plots",
    "sparsity_figure": "plots",
    "write_report": "report",
    "adjust_pvalues": "stats",
    "compare": "stats",
    "comparison_test": "stats",
    "holm": "stats",
    "welch": "stats",
}

__getattr__, __dir__, __all__ = lazy_names(__name__, _HOMES)

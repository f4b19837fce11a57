"""Ticket-vs-control statistics for paper tables: tests, bootstrap CIs, effect sizes, corrections.

A transferred ticket is only interesting if it beats the matching control: the random
re-initialisation of the same mask (Frankle & Carbin 2019), the dense network trained on the target
(Morcos et al. 2019), or any other control present in the results (e.g. ``shuffle_layerwise``,
``random_global``, ``own_ticket``). ``comparison_table`` builds one row per (control arm, source,
target, optimizer, level) with per-seed summaries of both sides, 95 % bootstrap CIs
(``scipy.stats.bootstrap``, BCa), Welch / Mann-Whitney tests, paired t / Wilcoxon tests when both
sides share the same seeds (the primary test is paired by default: ``pairing``), effect sizes (Hedges' g, Cliff's delta, probability of improvement) and
Holm or Benjamini-Hochberg corrected p-values of a chosen primary test (Colas et al. 2018; Agarwal et
al. 2021). ``auc_table`` / ``compare_sources`` integrate over sparsity: per seed, the mean accuracy
over log10(density) (normalised trapezoid area), then the same tests between two arms.

Every case that cannot be tested (too few seeds, no variance, missing control, unpaired seeds for a
paired test) yields NaN and a ``note`` plus a ``UserWarning``, never an exception. ``compare`` is the
original Welch/Holm table and stays column-compatible (``COMPARISON_COLUMNS``).

One module per job; imports flow down this list only (a module uses those above it, never below):

- ``samples``: the ``Samples`` type, ``summarize``, ``binomial_se`` and quiet scipy calls;
- ``significance``: Welch, Mann-Whitney, paired t and Wilcoxon tests;
- ``pairing``: ``comparison_test``, the one decision which test compares two arms (paired when
  their seeds match) and the arms' correlation;
- ``effects``: Hedges' g, Cliff's delta, P(improvement) and the bootstrap CI;
- ``corrections``: Holm and Benjamini-Hochberg adjusted p-values;
- ``two_sample``: ``compare_samples``, all of the above for one pair of samples, as one row;
- ``selection``: which runs a table compares (baseline runs, one value per seed);
- ``table_common``: argument checks, roles (primary, secondary), corrected p-values and MDE
  columns the tables share;
- ``comparison``: the per-level tables (``comparison_table``, ``compare``);
- ``auc``: the sparsity-integrated table (``auc_table``);
- ``sources``: source vs source (``compare_sources``).

This package re-exports their public names, so ``from transfer_bench.analysis.stats import ...``
works for all of them.
"""

from __future__ import annotations

from transfer_bench.analysis.stats.auc import AUC_COLUMNS, auc_table, normalized_auc
from transfer_bench.analysis.stats.comparison import (
    COMPARISON_COLUMNS,
    DENSITY_RTOL,
    FAMILY_KEY,
    TABLE_COLUMNS,
    compare,
    compare_family,
    comparison_table,
)
from transfer_bench.analysis.stats.corrections import (
    CORRECTIONS,
    adjust_pvalues,
    benjamini_hochberg,
    holm,
)
from transfer_bench.analysis.stats.effects import (
    MIN_BOOTSTRAP_N,
    Interval,
    bootstrap_ci,
    cliffs_delta,
    hedges_g,
    probability_of_improvement,
)
from transfer_bench.analysis.stats.pairing import (
    DEFAULT_TEST,
    ComparisonTest,
    Pairing,
    comparison_test,
    pair_by_seed,
    pearson_r,
)
from transfer_bench.analysis.stats.samples import Samples, Summary, binomial_se, summarize
from transfer_bench.analysis.stats.selection import (
    SOURCE_AGNOSTIC,
    per_seed,
    seed_values,
    select_baseline,
)
from transfer_bench.analysis.stats.significance import (
    TESTS,
    UNPAIRED_FALLBACK,
    TestResult,
    WelchResult,
    mann_whitney,
    paired_t,
    welch,
    wilcoxon_signed_rank,
)
from transfer_bench.analysis.stats.sources import SourceComparison, compare_sources
from transfer_bench.analysis.stats.table_common import BASELINES, ROLES, row_design
from transfer_bench.analysis.stats.two_sample import SAMPLE_COLUMNS, compare_samples

__all__ = [
    "AUC_COLUMNS",
    "BASELINES",
    "COMPARISON_COLUMNS",
    "CORRECTIONS",
    "DEFAULT_TEST",
    "DENSITY_RTOL",
    "FAMILY_KEY",
    "MIN_BOOTSTRAP_N",
    "ROLES",
    "SAMPLE_COLUMNS",
    "SOURCE_AGNOSTIC",
    "TABLE_COLUMNS",
    "TESTS",
    "UNPAIRED_FALLBACK",
    "ComparisonTest",
    "Interval",
    "Pairing",
    "Samples",
    "SourceComparison",
    "Summary",
    "TestResult",
    "WelchResult",
    "adjust_pvalues",
    "auc_table",
    "benjamini_hochberg",
    "binomial_se",
    "bootstrap_ci",
    "cliffs_delta",
    "compare",
    "compare_family",
    "compare_samples",
    "compare_sources",
    "comparison_table",
    "comparison_test",
    "hedges_g",
    "holm",
    "mann_whitney",
    "normalized_auc",
    "pair_by_seed",
    "paired_t",
    "pearson_r",
    "per_seed",
    "probability_of_improvement",
    "row_design",
    "seed_values",
    "select_baseline",
    "summarize",
    "welch",
    "wilcoxon_signed_rank",
]

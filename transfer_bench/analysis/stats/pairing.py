"""Which test compares two arms, decided once: paired by seed when both arms hold the same seeds.

Arms trained with the same seed share their initialization (and, on the same dataset, their data
order and augmentation), so their accuracies are correlated and the per-seed differences are what
carries the comparison. ``comparison_test`` is the one function every comparison goes through (the
report's tables, ``transfer-bench compare``, the claims, the ``--until-mde`` rounds), so one
comparison gets one test and one p-value everywhere:

- ``paired_t`` (the default, ``DEFAULT_TEST``) or ``wilcoxon``: used when both arms hold exactly
  the same seeds; otherwise their unpaired counterpart (Welch, Mann-Whitney) runs, and the note
  says so;
- ``welch`` or ``mannwhitney``: run as asked, paired seeds or not.

``pair_by_seed`` also reports the Pearson correlation of the two arms over the paired seeds: a
positive r is the share of seed-to-seed variance that pairing removes from the comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from transfer_bench.analysis.stats.samples import Samples
from transfer_bench.analysis.stats.significance import (
    TESTS,
    UNPAIRED_FALLBACK,
    mann_whitney,
    paired_t,
    welch,
    wilcoxon_signed_rank,
)

DEFAULT_TEST = "paired_t"

# r from fewer pairs is either undefined (1 pair) or always +-1 (2 pairs)
MIN_PAIRS_FOR_R = 3


@dataclass(frozen=True, eq=False)  # arrays have no boolean equality
class Pairing:
    """How two seeded arms line up: ``paired`` when both hold exactly the same seeds (at least
    one); ``seeds`` in a common order and ``x``/``y`` the two arms' values in that order (empty
    when unpaired); ``correlation`` the Pearson r of the arms over those seeds (NaN when
    unpaired, with fewer than ``MIN_PAIRS_FOR_R`` pairs or a constant arm)."""

    paired: bool
    seeds: tuple
    correlation: float
    note: str = ""
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _seeded(values: Samples) -> pd.Series | None:
    return values.astype(float) if isinstance(values, pd.Series) else None


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two aligned samples; NaN for fewer than 3 pairs or a constant side."""
    if x.size < MIN_PAIRS_FOR_R or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def pair_by_seed(a: Samples, b: Samples) -> Pairing:
    """Pair ``a`` and ``b`` (``pd.Series`` indexed by seed) when they hold the same seeds.

    Arrays carry no seeds and never pair. Arms whose seeds differ are not paired on their
    overlap: the note names the seeds each arm lacks, and the caller runs the unpaired test.
    """
    sa, sb = _seeded(a), _seeded(b)
    if sa is None or sb is None:
        return Pairing(False, (), math.nan, "samples carry no seeds")
    if len(sa) == 0 or len(sb) == 0:
        return Pairing(False, (), math.nan, "an arm has no seeds")
    if set(sa.index) != set(sb.index):
        only_a = sorted(set(sa.index) - set(sb.index))
        only_b = sorted(set(sb.index) - set(sa.index))
        parts = [f"seeds {only_a} only in the first arm" if only_a else ""]
        parts.append(f"seeds {only_b} only in the second" if only_b else "")
        return Pairing(False, (), math.nan, "; ".join(p for p in parts if p))
    seeds = tuple(sa.index)
    x = sa.to_numpy()
    y = (sb if sb.index.equals(sa.index) else sb.reindex(sa.index)).to_numpy()
    return Pairing(True, seeds, pearson_r(x, y), x=x, y=y)


@dataclass(frozen=True)
class ComparisonTest:
    """The test that compared two arms: its name (after any fallback), statistic, two-sided
    p-value, the pairing, and a note joining every reason for a NaN or a fallback."""

    test: str
    statistic: float
    p: float
    paired: bool
    n_pairs: int
    correlation: float
    note: str = ""


def _run(test: str, x: np.ndarray, y: np.ndarray) -> tuple[float, float, str]:
    if test == "welch":
        w = welch(x, y)
        return w.t, w.p, w.note
    fn = {"mannwhitney": mann_whitney, "paired_t": paired_t, "wilcoxon": wilcoxon_signed_rank}
    r = fn[test](x, y)
    return r.statistic, r.p, r.note


def comparison_test(a: Samples, b: Samples, test: str = DEFAULT_TEST) -> ComparisonTest:
    """Compare treatment ``a`` with baseline ``b`` by ``test`` (module doc: paired tests run on
    arms with the same seeds, else their unpaired counterpart). ``a``/``b`` as ``pd.Series``
    indexed by seed; plain arrays are never paired."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; use one of {', '.join(TESTS)}")
    pairing = pair_by_seed(a, b)
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    notes: list[str] = []
    used = test
    if pairing.paired:
        x, y = pairing.x, pairing.y
    elif test in UNPAIRED_FALLBACK:
        used = UNPAIRED_FALLBACK[test]
        why = f" ({pairing.note})" if pairing.note and x.size and y.size else ""
        notes.append(f"seeds not paired; {used} used instead of {test}{why}")
    statistic, p, note = _run(used, x, y)
    notes.append(note)
    return ComparisonTest(
        test=used,
        statistic=statistic,
        p=p,
        paired=pairing.paired,
        n_pairs=len(pairing.seeds),
        correlation=pairing.correlation,
        note="; ".join(n for n in notes if n),
    )

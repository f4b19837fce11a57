"""Multiple-comparison corrections of a table's p-values: Holm and Benjamini-Hochberg.

A table tests one ticket family per row, so its p-values are corrected together: Holm (1979)
controls the family-wise error rate, Benjamini-Hochberg (1995) the false discovery rate.
``adjust_pvalues`` picks one by the name used in the suite file (``CORRECTIONS``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from transfer_bench.errors import ConfigError

CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input order.

    Sorted ascending, the i-th (0-based) of m p-values becomes ``max_{j<=i} min(1, (m - j) p_(j))``,
    which makes the adjusted values monotone in the rank. NaN entries are left NaN and do not count
    towards m.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    valid = p[ok]
    order = np.argsort(valid, kind="stable")
    scaled = (m - np.arange(m)) * valid[order]
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    result = np.empty(m)
    result[order] = adjusted
    out[ok] = result
    return out


def benjamini_hochberg(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg (1995) FDR-adjusted p-values (``scipy.stats.false_discovery_control``).

    NaN entries are left NaN and do not count towards m (scipy itself rejects NaN).
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = sps.false_discovery_control(p[ok], method="bh")
    return out


def adjust_pvalues(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Multiple-comparison correction: ``"holm"``, ``"bh"`` (Benjamini-Hochberg) or ``"none"``."""
    if method == "holm":
        return holm(pvalues)
    if method == "bh":
        return benjamini_hochberg(pvalues)
    if method == "none":
        return np.asarray(pvalues, dtype=float).copy()
    raise ConfigError(
        f"analysis.correction: unknown correction {method!r}; use 'holm', 'bh' or 'none'"
    )

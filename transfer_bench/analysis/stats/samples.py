"""What every statistic in this package takes and shares: the sample type and its summary.

``Samples`` is the input type of every test, effect size and interval (a sequence, an array or a
``pd.Series`` indexed by seed); ``summarize`` gives the mean, std and n that the tables report;
``binomial_se`` the test-set noise of one accuracy, to set next to the spread between seeds; and
``_quiet`` calls scipy without its numeric warnings, because the callers explain degenerate inputs
themselves (as notes). Kept apart so that the tests, effect sizes and intervals need not import
each other.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

Samples = Sequence[float] | np.ndarray | pd.Series


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof=1; NaN for n < 2, exactly 0 for constant) and count."""

    mean: float
    std: float
    n: int


def summarize(values: Samples) -> Summary:
    """Summary of a 1-D sample (an empty sample gives NaN mean and n = 0)."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    std = math.nan if n < 2 else 0.0 if np.ptp(x) == 0 else float(x.std(ddof=1))
    return Summary(mean, std, n)


def binomial_se(accuracies: Samples, n_test: float) -> float:
    """Binomial standard error of one seed's accuracy measured on ``n_test`` test images.

    sqrt(p(1-p)/n_test) with p(1-p) averaged over the seeds (the root mean square of each seed's
    own error): how precisely the test set measures one network, to compare with the spread
    between seeds. NaN without a test-set size or accuracies outside [0, 1].
    """
    p = np.asarray(accuracies, dtype=float)
    p = p[np.isfinite(p)]
    if not (p.size and math.isfinite(n_test) and n_test > 0) or p.min() < 0 or p.max() > 1:
        return math.nan
    return float(math.sqrt(float(np.mean(p * (1 - p))) / n_test))


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a scipy function without its numeric RuntimeWarnings / DegenerateDataWarnings.

    Degenerate inputs are detected and explained by the callers (as notes), so scipy's own messages
    ("Precision loss occurred", "invalid value encountered") would only duplicate them.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        return fn(*args, **kwargs)

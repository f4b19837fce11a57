"""What every statistic in this package takes and shares: the sample type and its summary.

``Samples`` is the input type of every test, effect size and interval (a sequence, an array or a
``pd.Series`` indexed by seed); ``summarize`` gives the mean, std and n that the tables report; and
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


def _quiet(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a scipy function without its numeric RuntimeWarnings / DegenerateDataWarnings.

    Degenerate inputs are detected and explained by the callers (as notes), so scipy's own messages
    ("Precision loss occurred", "invalid value encountered") would only duplicate them.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", sps.DegenerateDataWarning)
        return fn(*args, **kwargs)

"""Which runs a table compares: the baseline runs of a treatment arm, and one value per seed.

``select_baseline`` / ``_baseline_rows`` pick the control runs that stand in for a ticket family
(same source, target, optimizer and level; source-agnostic controls such as ``dense`` fall back to
runs with another source). ``seed_values`` reduces runs to one metric value per seed so that no
seed is counted twice. Also the small naming helpers the tables use in notes and warnings.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

# Controls that do not depend on the ticket's source mask: when no run of them was recorded with the
# ticket's source (nor without a source), runs recorded with any other source may stand in.
SOURCE_AGNOSTIC: tuple[str, ...] = ("dense", "random_global", "own_ticket")


def _eq(series: pd.Series, value: object) -> pd.Series:
    """Element-wise equality that treats missing == missing (for optional fields such as source)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return series.isna()
    return series == value


def _baseline_rows(
    transfer: pd.DataFrame, key: dict, baseline: str, level: int | None
) -> pd.DataFrame:
    """Runs of control ``baseline`` that stand in for the treatment arm of ``key`` (its source,
    target and optimizer) at ``level`` (all levels if None).

    Preference: the arm's source, then runs recorded without a source; source-agnostic controls
    (``SOURCE_AGNOSTIC``) finally accept any source. ``dense`` ignores the level.
    """
    rows = transfer[
        (transfer["control"] == baseline)
        & _eq(transfer["target"], key["target"])
        & _eq(transfer["optimizer"], key["optimizer"])
    ]
    if baseline != "dense" and level is not None:
        rows = rows[rows["level"] == level]
    subsets = [_eq(rows["source"], key["source"]), rows["source"].isna()]
    for subset in subsets:
        if subset.any():
            return rows[subset]
    return rows if baseline in SOURCE_AGNOSTIC else rows.iloc[0:0]


def select_baseline(transfer: pd.DataFrame, key: dict, baseline: str) -> pd.DataFrame:
    """Rows of ``transfer`` (kind == "transfer") that serve as ``baseline`` for a ticket family key.

    ``random_reinit`` and other mask-derived controls: same source, target, optimizer and level.
    ``dense``: dense rows of the same target and optimizer (level 0); those recorded with the
    ticket's source are preferred, then those without a source, then any source.
    """
    return _baseline_rows(transfer, key, baseline, key["level"])


def seed_values(rows: pd.DataFrame, metric: str, where: str) -> pd.Series:
    """One ``metric`` value per seed (index = seed, sorted), so that no seed is counted twice.

    Missing metric values are dropped and duplicate seeds averaged, each with a warning naming
    ``where``.
    """
    values = rows[["seed", metric]].astype({metric: float})
    nan = values[metric].isna()
    if nan.any():
        warnings.warn(f"{where}: dropped {int(nan.sum())} run(s) without {metric}", stacklevel=3)
        values = values[~nan]
    if values["seed"].duplicated().any():
        warnings.warn(
            f"{where}: several runs share a seed; averaged per seed to avoid counting one seed twice",
            stacklevel=3,
        )
    return values.groupby("seed", sort=True)[metric].mean()


def per_seed(rows: pd.DataFrame, metric: str, where: str) -> np.ndarray:
    """``seed_values`` as a plain array (sorted by seed)."""
    return seed_values(rows, metric, where).to_numpy(dtype=float)


def _name(value: object) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _sources(rows: pd.DataFrame) -> str:
    return ", ".join(sorted({_name(s) for s in rows["source"]}))


def _label(key: dict) -> str:
    control = key.get("control", "ticket")
    return (
        f"{control} from {_name(key['source'])} on {key['target']}/{key['optimizer']} "
        f"level {key['level']}"
    )


def _transfer(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["kind"] == "transfer"] if "kind" in df.columns else df.iloc[0:0]


def _as_tuple(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)

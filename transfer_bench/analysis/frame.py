"""Load run results (``result.json`` files) into tidy pandas frames.

The runner writes one flat JSON record per finished training somewhere below the suite's results
directory (see CONTRACT "Run results on disk"). Analysis must survive a suite that is still running
or was interrupted, so unreadable or partial files are skipped with a warning instead of failing.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from transfer_bench.runs.plan import PLAN_FILE as PLAN_FILE  # where the plan is recorded

RESULT_FILE = "result.json"

# Fields that identify a run; repeated on every history row.
ID_FIELDS: tuple[str, ...] = (
    "kind",
    "suite",
    "run_id",
    "source",
    "target",
    "optimizer",
    "source_optimizer",
    "control",
    "level",
    "density",
    "seed",
)

# Fields a record must have to be usable at all (anything else may be missing and becomes NaN).
REQUIRED_FIELDS: tuple[str, ...] = ("kind", "control", "target", "level", "density", "seed")

# Column order of ``load_results`` (extra fields found in the files follow these).
RESULT_COLUMNS: tuple[str, ...] = (
    *ID_FIELDS,
    "percent_remaining",
    "test_accuracy",
    "best_test_accuracy",
    "final_train_loss",
    "final_test_loss",
    "early_stop_iteration",
    "iterations",
    "seconds",
    "n_test",
    "path",
)


def planned_run_ids(suite_dir: Path) -> set[str] | None:
    """The run folders the suite plans now (``plan.json``), or None when the folder has no plan."""
    try:
        ids = json.loads((Path(suite_dir) / PLAN_FILE).read_text()).get("run_ids")
    except (OSError, ValueError, AttributeError):
        return None
    return set(map(str, ids)) if isinstance(ids, list) else None


def in_plan(paths: list[Path], suite_dir: Path, what: str) -> list[Path]:
    """``paths`` below run folders of the current plan; warns once naming the folders left out.

    Why: a run folder from an earlier version of the suite (or of transfer-bench: a changed
    default changes run ids) would otherwise be analysed next to its replacement, doubling n.
    """
    suite_dir = Path(suite_dir)
    ids = planned_run_ids(suite_dir)
    if ids is None:
        return paths
    kept, stale = [], set()
    for p in paths:
        run = p.relative_to(suite_dir).parts[0]
        (kept.append(p) if run in ids else stale.add(run))
    if stale:
        names = sorted(stale)
        shown = ", ".join(names[:4]) + (f", ... ({len(names)} in all)" if len(names) > 4 else "")
        warnings.warn(
            f"{suite_dir}: {what} of {len(names)} run folder(s) that the suite no longer plans "
            f"were left out ({shown}; made by an earlier version of the suite or of "
            "transfer-bench); delete those folders to silence this",
            stacklevel=2,
        )
    return kept


def result_files(suite_dir: Path) -> list[Path]:
    """All ``result.json`` files of planned runs below ``suite_dir``, sorted (see ``in_plan``)."""
    suite_dir = Path(suite_dir)
    if not suite_dir.is_dir():
        return []
    found = sorted(p for p in suite_dir.rglob(RESULT_FILE) if p.is_file())
    return in_plan(found, suite_dir, "results")


def _problem(record: Any) -> str | None:
    """Why a parsed JSON value is not a usable result record, or None if it is."""
    if not isinstance(record, dict):
        return f"top level is a {type(record).__name__}, expected an object"
    missing = [k for k in REQUIRED_FIELDS if record.get(k) is None]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    try:
        density = float(record["density"])
        int(record["level"])
        int(record["seed"])
    except (TypeError, ValueError):
        return "level/seed/density are not numbers"
    if not (math.isfinite(density) and 0.0 < density <= 1.0):
        return f"density {density} outside (0, 1]"
    return None


def iter_records(suite_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Yield ``(path, record)`` for every readable result file; warn about and skip the others."""
    for path in result_files(suite_dir):
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            warnings.warn(f"{path}: skipped unreadable result file ({e})", stacklevel=2)
            continue
        problem = _problem(record)
        if problem is not None:
            warnings.warn(f"{path}: skipped partial result file ({problem})", stacklevel=2)
            continue
        yield path, record


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _ordered(df: pd.DataFrame, first: tuple[str, ...]) -> pd.DataFrame:
    for col in first:
        if col not in df.columns:
            df[col] = None
    rest = [c for c in df.columns if c not in first]
    return df[[*first, *rest]]


def _fix_types(df: pd.DataFrame) -> pd.DataFrame:
    df["level"] = df["level"].astype("int64")
    df["seed"] = df["seed"].astype("int64")
    df["density"] = df["density"].astype("float64")
    return df


def _test_size(config: Path, cache: dict[Path, float]) -> float:
    """Test images of the dataset a run trained on (``data.sizes.test`` of its ``config.json``),
    NaN when the run did not record it."""
    if config not in cache:
        try:
            sizes = (json.loads(config.read_text()).get("data") or {}).get("sizes") or {}
            cache[config] = float(sizes.get("test", math.nan))
        except (OSError, ValueError, AttributeError, TypeError):
            cache[config] = math.nan
    return cache[config]


def load_results(suite_dir: str | Path) -> pd.DataFrame:
    """One row per finished training of a suite's results folder (``results/<suite>``).

    ============================  ==============================================================
    column                        meaning
    ============================  ==============================================================
    ``kind``                      ``search`` (a ticket search level), ``transfer`` or
                                  ``stability``
    ``suite``, ``run_id``         suite name; the run's content-hashed folder
    ``source``, ``target``        dataset the ticket came from / was trained on (a search's
                                  ``target`` is its source)
    ``optimizer``,                optimizer of this training / of the source's search
    ``source_optimizer``
    ``control``                   arm: ``ticket``, ``random_reinit``, ``shuffle_layerwise``,
                                  ``random_global``, ``own_ticket``, ``dense`` (``imp`` etc. for
                                  searches)
    ``level``, ``seed``           pruning level (0 = dense) and seed (int)
    ``density``,                  fraction / percent of prunable weights kept
    ``percent_remaining``
    ``test_accuracy``,            final and best test accuracy (fractions)
    ``best_test_accuracy``
    ``final_train_loss``,         losses at the end of training
    ``final_test_loss``
    ``early_stop_iteration``,     iteration of minimum test loss; iterations trained
    ``iterations``
    ``seconds``                   training time
    ``n_test``                    test images behind the accuracies (from the run's
                                  ``config.json``; NaN when not recorded)
    ``path``                      the ``result.json`` relative to ``suite_dir``
    ============================  ==============================================================

    Fields a record has beyond these (``diverged``, ``machine``, ``head``, ``method``,
    ``num_classes``, ...) follow as further columns; ``history`` is left to ``load_histories``.
    Unreadable or partial files are skipped with a warning; an empty frame with these columns is
    returned when nothing readable exists.
    """
    suite_dir = Path(suite_dir)
    rows = []
    sizes: dict[Path, float] = {}
    for path, record in iter_records(suite_dir):
        row = {k: v for k, v in record.items() if k != "history"}
        if row.get("n_test") is None:
            row["n_test"] = _test_size(path.parent.parent / "config.json", sizes)
        row["path"] = _relative(path, suite_dir)
        rows.append(row)
    df = pd.DataFrame(rows)
    df = _ordered(df, RESULT_COLUMNS)
    if df.empty:
        return df
    df = _fix_types(df)
    df["percent_remaining"] = 100.0 * df["density"]
    return df.reset_index(drop=True)


def load_histories(suite_dir: str | Path) -> pd.DataFrame:
    """Per-epoch curves in long format: one row per evaluation of every training.

    Columns: the identifying fields of ``load_results`` (``kind``, ``suite``, ``run_id``,
    ``source``, ``target``, ``optimizer``, ``source_optimizer``, ``control``, ``level``,
    ``density``, ``seed``), then ``iteration``, ``epoch``, ``train_loss``, ``test_loss`` and
    ``test_accuracy`` of that evaluation.
    """
    suite_dir = Path(suite_dir)
    rows = []
    for path, record in iter_records(suite_dir):
        history = record.get("history") or []
        if not isinstance(history, list):
            warnings.warn(f"{path}: ignored history (not a list)", stacklevel=2)
            continue
        ids = {k: record.get(k) for k in ID_FIELDS}
        bad = 0
        for entry in history:
            if isinstance(entry, dict):
                rows.append({**ids, **entry})
            else:
                bad += 1
        if bad:
            warnings.warn(f"{path}: ignored {bad} malformed history entr(y/ies)", stacklevel=2)
    df = _ordered(pd.DataFrame(rows), (*ID_FIELDS, "iteration", "epoch"))
    return df if df.empty else _fix_types(df).reset_index(drop=True)


def with_own_ticket_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``own_ticket`` rows derived from ``ticket`` rows whose source is the target.

    The plan does not retrain a target's own ticket as a separate control when the target is also a
    transfer source (its ``ticket`` arm is that computation); analysis sees it under both names.
    Derived rows carry ``derived = True``.
    """
    if df.empty or "control" not in df.columns:
        return df
    t = df[
        (df["kind"] == "transfer") & (df["control"] == "ticket") & (df["source"] == df["target"])
    ]
    if t.empty:
        return df
    have = df[df["control"] == "own_ticket"]
    keys = set(zip(have["target"], have["optimizer"], have["level"], have["seed"], strict=True))
    extra = t[[(r.target, r.optimizer, r.level, r.seed) not in keys for r in t.itertuples()]].copy()
    if extra.empty:
        return df
    extra["control"] = "own_ticket"
    extra["derived"] = True
    return pd.concat([df, extra], ignore_index=True)


DIVERGED_POLICIES: tuple[str, ...] = ("chance", "exclude", "keep")


def diverged_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Records of trainings whose loss became non-finite (``diverged`` true in ``result.json``)."""
    if df.empty or "diverged" not in df.columns:
        return df.iloc[0:0]
    return df[df["diverged"].fillna(False).astype(bool)]


def apply_diverged(df: pd.DataFrame, policy: str) -> pd.DataFrame:
    """Treat diverged trainings as the analysis is configured to.

    ``chance``: their accuracies count as chance level (1 / number of classes) — a ticket whose
    training blows up has failed, and dropping it would flatter its arm; ``exclude``: drop them
    (the arm's n shrinks, reported); ``keep``: use the accuracies last measured before the loss
    became non-finite.
    """
    if policy not in DIVERGED_POLICIES:
        raise ValueError(f"diverged policy {policy!r}: use one of {', '.join(DIVERGED_POLICIES)}")
    bad = diverged_rows(df)
    if bad.empty or policy == "keep":
        return df
    if policy == "exclude":
        return df.drop(index=bad.index).reset_index(drop=True)
    out = df.copy()
    if "num_classes" not in out.columns:  # records written before num_classes was recorded
        out["num_classes"] = float("nan")
    classes = pd.to_numeric(out.loc[bad.index, "num_classes"], errors="coerce")
    for col in ("test_accuracy", "best_test_accuracy"):
        if col in out.columns:
            out.loc[bad.index, col] = 1.0 / classes
    return out

"""The stages of a suite, side by side: each turns one planned run into result folders.

Searches find tickets on a source (``imp``, ``early_bird``, pruning at init); ``stability``
measures linear mode connectivity of a search's tickets; ``transfer`` retrains tickets and controls
on a target. Every stage has the same signature (:data:`StageFn`) and reads and writes only through
:mod:`transfer_bench.runs`; the executors in :mod:`transfer_bench.runner` pick one by name here.
"""

from __future__ import annotations

from collections.abc import Callable

from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import Run
from transfer_bench.runs.store import RunDir
from transfer_bench.stages.at_init import run_at_init
from transfer_bench.stages.early_bird import run_early_bird
from transfer_bench.stages.imp import run_imp
from transfer_bench.stages.stability import run_stability
from transfer_bench.stages.transfer import run_transfer

StageFn = Callable[[Context, Run, RunDir, Callable[[str], None]], list[int]]

#: Stages by name: the run kind for stability and transfer runs, the search method for searches
#: (every pruning-at-init method shares ``at_init``).
STAGES: dict[str, StageFn] = {
    "imp": run_imp,
    "early_bird": run_early_bird,
    "at_init": run_at_init,
    "stability": run_stability,
    "transfer": run_transfer,
}


def search_method(run: Run) -> str:
    """The search method of a run's config (``imp`` for runs without a search section)."""
    return run.config.get("search", {}).get("method", "imp")


def stage_name(run: Run) -> str:
    """The :data:`STAGES` key that executes ``run``."""
    if run.kind in ("transfer", "stability"):
        return run.kind
    method = search_method(run)
    return method if method in STAGES else "at_init"


def stage_for(run: Run) -> StageFn:
    """The function that executes ``run`` (by its kind and search method)."""
    return STAGES[stage_name(run)]


__all__ = ["STAGES", "StageFn", "search_method", "stage_for", "stage_name"]

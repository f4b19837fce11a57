"""transfer-bench: lottery-ticket transfer benchmarking.

Python API: ``run_suite(path_or_suite, results=..., executor=..., workers=...)`` runs a suite
as ``transfer-bench run`` does; ``load_results(dir)`` / ``load_histories(dir)`` give tidy pandas
frames of a results folder (one row per training / per evaluation), ``comparison_table(frame)`` and
``compare_samples(a, b)`` the report's statistics; ``load_suite(path)``, ``load_ticket(path)`` and
``apply_ticket(ticket, model)``, ``build_model(name, ...)``, ``load_dataset(spec, input, ...)``.

Every name is resolved lazily (PEP 562): ``import transfer_bench`` costs nothing, so the CLI starts
fast and ``ticket verify`` never imports torch or pydantic.
"""

from __future__ import annotations

import importlib
from typing import Any

from transfer_bench.errors import TransferBenchError as TransferBenchError

__version__ = "0.1.0"

_HOMES = {
    "Suite": "transfer_bench.config",
    "load_suite": "transfer_bench.config",
    "load_ticket": "transfer_bench.tickets",
    "save_ticket": "transfer_bench.tickets",
    "Ticket": "transfer_bench.tickets",
    "apply_ticket": "transfer_bench.tickets",
    "verify_ticket": "transfer_bench.tickets",
    "build_model": "transfer_bench.models",
    "load_dataset": "transfer_bench.data",
    "run_suite": "transfer_bench.api",
    "SuiteRunSummary": "transfer_bench.api",
    "load_results": "transfer_bench.analysis.frame",
    "load_histories": "transfer_bench.analysis.frame",
    "comparison_table": "transfer_bench.analysis.stats",
    "compare_samples": "transfer_bench.analysis.stats",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'transfer_bench' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted([*_HOMES, "TransferBenchError", "__version__"])


__all__ = sorted([*_HOMES, "TransferBenchError", "__version__"])

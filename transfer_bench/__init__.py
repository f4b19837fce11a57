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

from transfer_bench.errors import TransferBenchError as TransferBenchError
from transfer_bench.lazy import lazy_names

#: The one place the version is written: pyproject.toml reads it at build time (setuptools
#: ``dynamic``), so the package metadata, ``transfer-bench --version``, every ticket and every
#: result's machine record agree. 0.2: seeding rule 2, paired tests by default, the head policy.
__version__ = "0.2.0"

_HOMES = {
    "Suite": "config",
    "load_suite": "config",
    "load_ticket": "tickets",
    "save_ticket": "tickets",
    "Ticket": "tickets",
    "apply_ticket": "tickets",
    "verify_ticket": "tickets",
    "build_model": "models",
    "load_dataset": "data",
    "run_suite": "api",
    "SuiteRunSummary": "api",
    "load_results": "analysis.frame",
    "load_histories": "analysis.frame",
    "comparison_table": "analysis.stats",
    "compare_samples": "analysis.stats",
}


__getattr__, __dir__, __all__ = lazy_names(
    __name__, _HOMES, eager=("TransferBenchError", "__version__")
)

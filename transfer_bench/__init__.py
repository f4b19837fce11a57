"""transfer-bench: lottery-ticket transfer benchmarking.

Python API: ``load_suite(path)``, ``load_ticket(path)`` and ``Ticket.apply(model)``,
``build_model(name, ...)``, ``load_dataset(spec, input, ...)``.
"""

from transfer_bench.config import Suite, load_suite
from transfer_bench.errors import TransferBenchError

__version__ = "0.1.0"


def __getattr__(name: str):  # lazy: keep `import transfer_bench` cheap for the CLI's --help
    if name in {"load_ticket", "save_ticket", "Ticket", "verify_ticket"}:
        from transfer_bench import tickets

        return getattr(tickets, name)
    if name == "build_model":
        from transfer_bench.models import build_model

        return build_model
    if name == "load_dataset":
        from transfer_bench.data import load_dataset

        return load_dataset
    raise AttributeError(name)


__all__ = ["Suite", "TransferBenchError", "__version__", "load_suite"]

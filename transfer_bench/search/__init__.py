"""Ticket search methods (IMP for now)."""

from transfer_bench.search.imp import run_imp

__all__ = ["run_imp"]

"""Test-wide settings: runs default to the sequential executor (one process, the thread count of
the test), as before ``auto``; tests of the pool and of ``auto`` ask for them explicitly."""

import os

os.environ.setdefault("TRANSFER_BENCH_EXECUTOR", "sequential")

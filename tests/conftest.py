"""Test-wide settings: runs default to the sequential executor (one process, the thread count of
the test), as before ``auto``; tests of the pool and of ``auto`` ask for them explicitly."""

import os
import signal
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TRANSFER_BENCH_EXECUTOR", "sequential")

# A test run started in the background of a script (`cmd &`, nohup) inherits SIGINT ignored, and
# so would every `transfer-bench` process it starts: the Ctrl-C tests would see no Ctrl-C. A
# handler (unlike "ignored") is reset to the default in a started program.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def cifar_sized_npz(tmp_path: Path) -> Path:
    """A ``local:`` dataset of CIFAR-10's size (50,000 + 10,000 random 32x32x3 uint8 images), for
    the memory tests of the CPU and GPU paths."""
    rng = np.random.default_rng(0)
    path = tmp_path / "big.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (50_000, 3, 32, 32), dtype=np.uint8),
        y_train=rng.integers(0, 10, 50_000),
        x_test=rng.integers(0, 256, (10_000, 3, 32, 32), dtype=np.uint8),
        y_test=rng.integers(0, 10, 10_000),
    )
    return path

"""User-facing errors.

Every error a user can cause (bad YAML, bad ticket file, bad dataset, bad flag) is raised as a
``TransferBenchError`` subclass whose message is one line naming the place and the fix. The CLI prints
that line without a traceback; anything else is a bug in transfer-bench.
"""

from __future__ import annotations


class TransferBenchError(Exception):
    """Base class for errors caused by user input or environment, shown as one line."""


class ConfigError(TransferBenchError):
    """A suite file is invalid (unknown key, wrong type, value out of range)."""


class DatasetError(TransferBenchError):
    """A dataset cannot be found, read or adapted."""


class ModelError(TransferBenchError):
    """A model name is unknown or cannot be built for the requested input."""


class TicketError(TransferBenchError):
    """A ticket file is malformed, tampered with, or does not fit a model."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop like Ctrl-C (workers stopped, finished work kept), exit 143.

    A subclass of ``KeyboardInterrupt`` so that every place that cleans up after Ctrl-C (the
    process pool, Ray tasks, partial files) does the same for a polite kill from a scheduler.
    """

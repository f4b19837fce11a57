"""Results folders written without training: one ``result.json`` per planned transfer level, with
accuracies from a function, plus the suite copy the commands read. Reports made from them take
about a second, so tests of the analysis can cover many scenarios."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from transfer_bench.api import SUITE_COPY
from transfer_bench.config import parse_suite
from transfer_bench.runs.plan import plan

Accuracy = Callable[[str, str | None, int, int], float]


def write_results(root: Path, data: dict, accuracy: Accuracy) -> Path:
    """A results folder of the suite ``data`` under ``root`` with ``accuracy(control, source,
    seed, level)`` (a fraction) for every planned transfer training; returns the suite folder."""
    suite = parse_suite(data)
    suite_dir = root / suite.name
    for run in plan(suite):
        if run.kind != "transfer":
            continue
        control = run.config["control"]
        source = None if control == "dense" else run.config["source"]
        for level in run.levels:
            acc = float(accuracy(control, source, run.seed, level))
            record = {
                "kind": "transfer",
                "source": source,
                "target": "t",
                "control": control,
                "optimizer": "adam",
                "level": level,
                "seed": run.seed,
                "density": 0.5**level,
                "test_accuracy": acc,
                "best_test_accuracy": acc,
                "n_test": 200,
            }
            out = run.folder(suite_dir) / f"level_{level}"
            out.mkdir(parents=True, exist_ok=True)
            (out / "result.json").write_text(json.dumps(record))
    (suite_dir / SUITE_COPY).write_text(yaml.safe_dump(data))
    return suite_dir

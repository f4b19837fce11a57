"""``run --check-determinism``: retrain one finished level in a scratch folder and compare.

The cheapest finished level (fewest iterations; plan order breaks ties) of a transfer run or an IMP
search is retrained from the same inputs (its ticket, or for a search the ticket is rebuilt too) in
a temporary copy of the results, with the torch thread count it was first trained with (thread count
changes float summation order). Its metrics, history, trained weights and, for a search, its
ticket's tensors must equal the stored ones bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from transfer_bench.errors import TransferBenchError
from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import Run
from transfer_bench.runs.store import RunDir, load_tensors, read_json
from transfer_bench.stages import search_method, stage_for

IGNORED_FIELDS = frozenset({"seconds"})


@dataclass(frozen=True)
class DeterminismCheck:
    """What was retrained and every difference found (empty when bit-identical)."""

    label: str
    level: int
    iterations: int
    threads: int
    differences: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.differences


def _candidates(ctx: Context, runs: list[Run]) -> list[tuple[int, int, Run, int]]:
    out = []
    for index, run in enumerate(runs):
        if run.kind == "stability" or (run.kind == "search" and search_method(run) != "imp"):
            continue
        rd = RunDir(run.folder(ctx.suite_dir))
        for level in run.levels:
            if rd.has_result(level):
                rec = read_json(rd.result_path(level))
                out.append((int(rec.get("iterations") or 0), index, run, level))
    return out


def _scratch_copy(suite_dir: Path, scratch: Path, run: Run, level: int) -> RunDir:
    """Link every other run's folder into ``scratch``; copy this run's seed folder without the
    outputs of ``level`` (and, for a search, without its ticket, so it is rebuilt)."""
    scratch.mkdir(parents=True)
    own = run.folder(suite_dir)
    for entry in suite_dir.iterdir():
        if entry.name == run.run_id:
            (scratch / entry.name).mkdir()
            for seed_dir in entry.iterdir():
                if seed_dir != own:
                    (scratch / entry.name / seed_dir.name).symlink_to(seed_dir.resolve())
        elif entry.is_dir():
            (scratch / entry.name).symlink_to(entry.resolve())
    copy = run.folder(scratch)
    shutil.copytree(own, copy, ignore=shutil.ignore_patterns("DONE.json", ".lock", "*.tmp"))
    rd = RunDir(copy)
    drop = [rd.result_path(level), rd.trained_path(level), rd.checkpoint_path(level)]
    if run.kind == "search":
        drop.append(rd.ticket_path(level))
    for p in drop:
        p.unlink(missing_ok=True)
    return rd


def _diff_records(stored: dict[str, Any], rerun: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(stored) | set(rerun)):
        if key in IGNORED_FIELDS:
            continue
        a, b = stored.get(key), rerun.get(key)
        same = a == b or (
            isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
        )
        if not same:
            out.append(f"result.{key}: stored {_short(a)} vs rerun {_short(b)}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _diff_tensors(what: str, stored: dict[str, torch.Tensor], rerun: dict[str, torch.Tensor]):
    out = []
    for name in sorted(set(stored) | set(rerun)):
        a, b = stored.get(name), rerun.get(name)
        if a is None or b is None or a.dtype != b.dtype or a.shape != b.shape:
            out.append(f"{what} {name}: present/dtype/shape differ")
        elif not torch.equal(a, b):
            worst = (a.double() - b.double()).abs().max().item()
            out.append(f"{what} {name}: values differ (max |diff| {worst:.3g})")
    return out


def check_determinism(ctx: Context, runs: list[Run]) -> DeterminismCheck:
    """Retrain the cheapest finished level and compare it with what is stored."""
    found = _candidates(ctx, runs)
    if not found:
        raise TransferBenchError(
            f"{ctx.suite_dir}: no finished transfer or IMP level to check; run the suite first "
            "(transfer-bench run SUITE), then add --check-determinism"
        )
    iterations, _, run, level = min(found, key=lambda c: (c[0], c[1]))
    stored_rd = RunDir(run.folder(ctx.suite_dir))
    stored = read_json(stored_rd.result_path(level))
    threads = int(stored.get("torch_threads") or torch.get_num_threads())
    previous_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="tb-determinism-") as tmp:
        scratch = Path(tmp) / ctx.suite_dir.name
        rd = _scratch_copy(ctx.suite_dir, scratch, run, level)
        sub = dataclasses.replace(ctx, suite_dir=scratch)
        levels = tuple(lv for lv in run.levels if lv <= level) if run.kind == "search" else (level,)
        torch.set_num_threads(threads)
        try:
            stage_for(run)(sub, dataclasses.replace(run, levels=levels), rd, _quiet)
        finally:
            torch.set_num_threads(previous_threads)
        rerun = read_json(rd.result_path(level))
        diffs = _diff_records(stored, rerun)
        if stored_rd.trained_path(level).exists():  # searches keep trained weights
            diffs += _diff_tensors(
                "trained",
                load_tensors(stored_rd.trained_path(level)),
                load_tensors(rd.trained_path(level)),
            )
        if run.kind == "search":
            diffs += _diff_tensors(
                "ticket",
                load_tensors(stored_rd.ticket_path(level)),
                load_tensors(rd.ticket_path(level)),
            )
    return DeterminismCheck(
        label=f"{run.label()} seed {run.seed}",
        level=level,
        iterations=iterations,
        threads=threads,
        differences=tuple(diffs),
    )


def _quiet(_: str) -> None:
    pass

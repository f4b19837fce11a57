"""Parallel executors: a process pool and Ray give the sequential executor's results.

Results are bit-identical only for equal torch thread counts (float reductions split differently
across threads), so the sequential reference runs with the pool workers' thread count.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

from transfer_bench import faults
from transfer_bench.config import parse_suite
from transfer_bench.errors import DatasetError, TransferBenchError
from transfer_bench.runner.execute import execute
from transfer_bench.runner.outcomes import RunEvent
from transfer_bench.runner.pool import (
    available_cores,
    execute_pool,
    worker_context,
    worker_spec,
)
from transfer_bench.runner.processes import (
    START_METHOD_ENV,
    process_context,
    start_method,
    warm_up,
)
from transfer_bench.runner.ray_executor import RAY_MISSING, execute_ray, import_ray
from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import plan, suite_hash

SUITE = {
    "name": "tiny",
    "seeds": [0, 1],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "src": {"source": "synthetic:src", "num_classes": 4, "samples": 240},
        "tgt": {"source": "synthetic:tgt", "num_classes": 7, "samples": 210},
    },
    "train": {"batch_size": 30, "epochs": 2},
    "search": {"sources": ["src"], "rate": 0.5, "head_rate": 0.2, "levels": 2},
    "transfer": {"targets": ["tgt"], "controls": ["random_reinit", "dense"]},
}
WORKERS = 2
THREADS = max(1, available_cores() // WORKERS)  # what each pool worker uses


def metrics(suite_dir: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(suite_dir.rglob("result.json")):
        r = json.loads(p.read_text())
        r.pop("seconds")
        out[str(p.relative_to(suite_dir))] = r
    return out


def tickets(suite_dir: Path) -> dict[str, bytes]:
    """Every ticket file's bytes (ticket files are byte-deterministic, header included)."""
    return {
        str(p.relative_to(suite_dir)): p.read_bytes() for p in sorted(suite_dir.rglob("*.ticket"))
    }


@pytest.fixture(scope="module")
def sequential(tmp_path_factory) -> Path:
    """The suite run by the sequential executor with the pool workers' thread count."""
    tmp = tmp_path_factory.mktemp("seq")
    suite = parse_suite(SUITE)
    ctx = Context(
        suite=suite,
        suite_dir=tmp / "results" / suite.name,
        device=torch.device("cpu"),
        cache_dir=tmp / "cache",
        suite_hash=suite_hash(suite),
    )
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        execute(ctx, plan(suite))
    finally:
        torch.set_num_threads(before)
    return ctx.suite_dir


@pytest.fixture(scope="module")
def pooled(tmp_path_factory) -> tuple[Path, list[RunEvent], object]:
    tmp = tmp_path_factory.mktemp("pool")
    events: list[RunEvent] = []
    suite_dir = tmp / "results" / "tiny"
    summary = execute_pool(
        SUITE,
        suite_dir,
        plan(parse_suite(SUITE)),
        workers=WORKERS,
        device="cpu",
        cache_dir=tmp / "cache",
        on_event=events.append,
    )
    return suite_dir, events, summary


def test_pool_gives_sequential_results(sequential: Path, pooled):
    suite_dir, _, summary = pooled
    runs = plan(parse_suite(SUITE))
    assert sorted(summary.trained) == sorted(r.key for r in runs) and summary.skipped == []
    assert len(metrics(sequential)) == 2 * (3 + 3 + 3 + 1)  # search, ticket, reinit, dense
    assert metrics(suite_dir) == metrics(sequential)
    seq_tickets = tickets(sequential)
    assert seq_tickets and tickets(suite_dir) == seq_tickets


def test_pool_respects_dependencies(pooled):
    suite_dir, events, _ = pooled
    runs = plan(parse_suite(SUITE))
    order = [(e.kind, e.key) for e in events if e.kind in ("start", "finish")]
    for r in runs:
        assert order.count(("start", r.key)) == 1 and order.count(("finish", r.key)) == 1
        assert order.index(("start", r.key)) < order.index(("finish", r.key))
    dependent = [r for r in runs if r.depends_on]
    assert dependent
    for r in dependent:
        for dep in r.depends_on:
            assert order.index(("finish", dep)) < order.index(("start", r.key))
            # and on disk: the transfer's folder was created after the search was marked done
            done = (suite_dir / dep / "DONE.json").stat().st_mtime_ns
            assert (suite_dir / r.key / "config.json").stat().st_mtime_ns >= done
    assert any(e.kind == "status" for e in events)  # worker progress lines reach the parent


def test_second_pool_run_does_no_work(pooled):
    suite_dir, _, _ = pooled
    runs = plan(parse_suite(SUITE))
    before = {p: p.stat().st_mtime_ns for p in suite_dir.rglob("*") if p.is_file()}
    events: list[RunEvent] = []
    summary = execute_pool(
        SUITE,
        suite_dir,
        runs,
        workers=WORKERS,
        device="cpu",
        cache_dir=None,
        on_event=events.append,
    )
    assert summary.trained == [] and sorted(summary.skipped) == sorted(r.key for r in runs)
    assert {e.kind for e in events} == {"skip"}
    assert before == {p: p.stat().st_mtime_ns for p in suite_dir.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_worker_failure_is_raised_with_run_key(tmp_path: Path):
    data = copy.deepcopy(SUITE)
    data["seeds"] = [0]
    data["datasets"]["bad"] = {"source": "synthetic:bad", "num_classes": 4, "samples": 3}
    data["search"]["sources"] = ["src", "bad"]
    data["transfer"] = {"targets": ["tgt"], "controls": []}
    runs = plan(parse_suite(data))
    bad = next(r for r in runs if r.kind == "search" and r.config["dataset"]["name"] == "bad")
    good = next(r for r in runs if r.kind == "search" and r.config["dataset"]["name"] == "src")
    events: list[RunEvent] = []
    with pytest.raises(DatasetError) as err:
        execute_pool(
            data,
            tmp_path / "res",
            runs,
            workers=2,
            device="cpu",
            cache_dir=None,
            on_event=events.append,
        )
    msg = str(err.value)
    assert bad.key in msg and "samples=3" in msg and "\n" not in msg
    # the search running beside it finished; nothing new started after the failure
    assert (tmp_path / "res" / good.key / "DONE.json").exists()
    started = {e.key for e in events if e.kind == "start"}
    assert all(r.kind == "search" for r in runs if r.key in started)
    assert any(e.kind == "error" and e.key == bad.key for e in events)


def test_workers_take_the_environment_of_the_moment(tmp_path: Path, monkeypatch):
    """Workers are forked from a fork server started earlier, with the environment of that moment;
    they must see the parent's environment as it is when the pool starts, as spawned ones did."""
    warm_up()  # the fork server starts (or runs already) without the fail point below
    monkeypatch.setenv(faults.ENV, "step:2")  # each worker kills itself at its second step
    data = copy.deepcopy(SUITE)
    data["seeds"] = [0]
    runs = [r for r in plan(parse_suite(data)) if r.kind == "search"]
    with pytest.raises(TransferBenchError, match=runs[0].key) as err:
        execute_pool(data, tmp_path / "res", runs, workers=1, device="cpu", cache_dir=None)
    assert "worker process died" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "res" / runs[0].key / "DONE.json").exists()


def test_start_method_can_be_chosen_and_a_bad_one_is_one_line(monkeypatch):
    monkeypatch.setenv(START_METHOD_ENV, "spawn")
    assert start_method() == "spawn" and process_context().get_start_method() == "spawn"
    monkeypatch.setenv(START_METHOD_ENV, "fork")
    with pytest.raises(TransferBenchError, match=r"TRANSFER_BENCH_START_METHOD='fork': use spawn"):
        start_method()


def test_bad_workers_is_one_line(tmp_path: Path):
    with pytest.raises(TransferBenchError, match="--workers 0"):
        execute_pool(
            SUITE, tmp_path, plan(parse_suite(SUITE)), workers=0, device="cpu", cache_dir=None
        )


def test_worker_spec_rebuilds_the_same_suite(tmp_path: Path):
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(SUITE))
    suite = parse_suite(SUITE)
    for source in (SUITE, suite, path, str(path)):
        ctx = worker_context(worker_spec(source, "res", "cpu", None))
        assert ctx.suite == suite and ctx.suite_hash == suite_hash(suite)
        assert ctx.suite_dir.is_absolute() and ctx.cache_dir is None


def test_missing_ray_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(TransferBenchError) as err:
        import_ray()
    assert str(err.value) == RAY_MISSING


@pytest.mark.slow  # ~17 s here (Ray start-up + worker imports); keeps the default file < 60 s
def test_ray_gives_sequential_results(sequential: Path, tmp_path: Path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install ray)")
    ray.init(num_cpus=WORKERS * THREADS, include_dashboard=False)
    try:
        suite_dir = tmp_path / "results" / "tiny"
        runs = plan(parse_suite(SUITE))
        summary = execute_ray(
            SUITE,
            suite_dir,
            runs,
            device="cpu",
            cache_dir=tmp_path / "cache",
            num_cpus_per_run=THREADS,
        )
        assert sorted(summary.trained) == sorted(r.key for r in runs)
        assert metrics(suite_dir) == metrics(sequential)
        assert tickets(suite_dir) == tickets(sequential)
        again = execute_ray(SUITE, suite_dir, runs, device="cpu", num_cpus_per_run=THREADS)
        assert again.trained == [] and len(again.skipped) == len(runs)
    finally:
        ray.shutdown()

"""Interruption, concurrency and determinism of ``transfer-bench run``, as a user runs it.

Each scenario runs the real command in a subprocess. Faults are injected with the fail points of
``transfer_bench.faults`` (SIGKILL during training, while a ticket or a result is being written,
while the report is being written; SIGINT during training), then the same command is run again and
its results must equal an uninterrupted run's exactly, without redoing any run that had finished.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.reliability

SUITE = {
    "name": "tiny",
    "seeds": [0],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "src": {"source": "synthetic:src", "num_classes": 4, "samples": 240},
        "tgt": {"source": "synthetic:tgt", "num_classes": 5, "samples": 200},
    },
    "train": {"batch_size": 30, "epochs": 3},
    "search": {"sources": ["src"], "rate": 0.5, "head_rate": 0.2, "levels": 2},
    "transfer": {"targets": ["tgt"], "controls": ["random_reinit", "dense"]},
    "analysis": {"n_resamples": 200, "plots": ["sparsity_curve"]},
}
N_RUNS = 4  # 1 search + ticket, random_reinit and dense on tgt


def write_suite(tmp: Path, data: dict | None = None) -> Path:
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(data or SUITE))
    return path


def cli(
    tmp: Path, *args: str, failpoint: str | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """``transfer-bench ARGS`` in a subprocess with one thread (results depend on thread count)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TRANSFER_BENCH_CACHE": str(tmp / "cache"),
        "TRANSFER_BENCH_CHECKPOINT_SECONDS": "0",  # a checkpoint every epoch: resume is tested
    }
    env.pop("TRANSFER_BENCH_FAILPOINT", None)
    if failpoint:
        env["TRANSFER_BENCH_FAILPOINT"] = failpoint
    proc = subprocess.run(
        [sys.executable, "-m", "transfer_bench.cli", *args],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def run_suite(tmp: Path, results: str = "results", **kw) -> subprocess.CompletedProcess[str]:
    return cli(tmp, "run", str(tmp / "tiny.yaml"), "--results", results, **kw)


def snapshot(suite_dir: Path) -> dict[str, object]:
    """Everything a finished suite computed, minus wall-clock times."""
    out: dict[str, object] = {}
    for p in sorted(suite_dir.rglob("*")):
        rel = p.relative_to(suite_dir).as_posix()
        if p.name == "result.json":
            r = json.loads(p.read_text())
            r.pop("seconds")
            out[rel] = r
        elif p.suffix == ".ticket":  # byte-deterministic files
            out[rel] = p.read_bytes()
        elif p.suffix == ".safetensors":
            out[rel] = {k: v.tolist() for k, v in load_file(str(p)).items()}
        elif p.name == "config.json":
            out[rel] = json.loads(p.read_text())
    return out


def result_mtimes(suite_dir: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in suite_dir.rglob("result.json")}


def trained_count(proc: subprocess.CompletedProcess[str]) -> tuple[int, int]:
    """(runs trained, runs already complete) from the summary line."""
    line = next(ln for ln in proc.stdout.splitlines() if "runs trained" in ln)
    words = line.split()
    return int(words[0]), int(words[3])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("reference")
    write_suite(tmp)
    proc = run_suite(tmp, check=True)
    assert trained_count(proc) == (N_RUNS, 0)
    snap = snapshot(tmp / "results" / "tiny")
    assert sum(1 for k in snap if k.endswith("result.json")) == 3 + 3 * 3 - 2  # search 0..2
    return snap


@pytest.mark.parametrize(
    "failpoint",
    [
        "step:9",  # search level 0, epoch 2: a checkpoint of epoch 1 exists
        "write:level_2/ticket.ticket",  # the search writes its last ticket
        "write:level_1/result.json",  # a result file, after whole runs finished
        "write:report.md",  # every run finished, the report is being written
    ],
)
def test_sigkill_then_rerun_equals_uninterrupted(tmp_path, reference, failpoint):
    write_suite(tmp_path)
    killed = run_suite(tmp_path, failpoint=failpoint)
    assert killed.returncode == -9, killed.stderr[-2000:]
    suite_dir = tmp_path / "results" / "tiny"
    before = result_mtimes(suite_dir)
    rerun = run_suite(tmp_path, check=True)
    assert snapshot(suite_dir) == reference
    # nothing that had finished was written again
    after = result_mtimes(suite_dir)
    assert {p: after[p] for p in before} == before
    assert not list(suite_dir.rglob("*.tmp")), "stale temporary files left in run folders"
    assert not list(suite_dir.rglob("checkpoint.pt"))
    trained, skipped = trained_count(rerun)
    assert trained + skipped == N_RUNS
    if failpoint == "write:report.md":
        assert trained == 0
    assert (suite_dir / "report.md").read_text().rstrip().splitlines()[0] == "# Report: tiny"


def test_sigint_stops_cleanly_with_resume_hint(tmp_path, reference):
    write_suite(tmp_path)
    proc = run_suite(tmp_path, failpoint="step:9@interrupt")
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted:")
    assert "transfer-bench run" in lines[0] and "tiny.yaml" in lines[0]
    run_suite(tmp_path, check=True)
    assert snapshot(tmp_path / "results" / "tiny") == reference


def test_two_processes_on_one_results_folder(tmp_path, reference):
    write_suite(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFER_BENCH_CACHE": str(tmp_path / "cache")}
    env.pop("TRANSFER_BENCH_FAILPOINT", None)
    cmd = [sys.executable, "-m", "transfer_bench.cli", "run", "tiny.yaml"]
    procs = [
        subprocess.Popen(
            cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    counts = [trained_count(subprocess.CompletedProcess([], 0, out, err)) for out, err in outs]
    assert sum(t for t, _ in counts) == N_RUNS  # every run trained exactly once
    assert all(t + s == N_RUNS for t, s in counts)
    suite_dir = tmp_path / "results" / "tiny"
    assert snapshot(suite_dir) == reference
    assert (suite_dir / "report.md").read_text().startswith("# Report: tiny")


def test_check_determinism_reruns_a_run_and_agrees(tmp_path, reference):
    write_suite(tmp_path)
    run_suite(tmp_path, check=True)
    proc = cli(tmp_path, "run", "tiny.yaml", "--check-determinism", "--no-report")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "determinism: OK" in proc.stdout
    # tamper with the stored metrics: the check must notice
    for res in (tmp_path / "results" / "tiny").rglob("result.json"):
        rec = json.loads(res.read_text())
        rec["test_accuracy"] += 0.01
        res.write_text(json.dumps(rec))
    bad = cli(tmp_path, "run", "tiny.yaml", "--check-determinism", "--no-report")
    assert bad.returncode == 1
    assert "determinism: FAILED" in bad.stdout + bad.stderr

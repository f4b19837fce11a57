"""No process outlives its run: a pooled `transfer-bench run` killed by SIGKILL, SIGTERM or
Ctrl-C leaves no worker or helper behind, nothing is written after it stops, and a rerun gives
the results of an uninterrupted run. The soak test (slow) kills a second run of the same suite
again and again while a first one works."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from filelock import FileLock, Timeout
from test_reliability import snapshot

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc"),
]

SUITE = {
    "name": "pooled",
    "seeds": [0, 1],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "src": {"source": "synthetic:src", "num_classes": 4, "samples": 240},
        "tgt": {"source": "synthetic:tgt", "num_classes": 5, "samples": 200},
    },
    "train": {"batch_size": 30, "epochs": 3},
    "search": {"sources": ["src"], "rate": 0.5, "head_rate": 0.2, "levels": 1},
    "transfer": {"targets": ["tgt"], "controls": ["random_reinit"]},
    "analysis": {"n_resamples": 100, "plots": []},
}


def _env(tmp: Path) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFER_BENCH_CACHE": str(tmp / "cache")}
    env.pop("TRANSFER_BENCH_FAILPOINT", None)
    return env


def start(tmp: Path) -> subprocess.Popen:
    """`transfer-bench run` with two workers, in its own session (so its processes can be found).

    Output goes to files, not pipes: an orphaned worker would hold a pipe open and hang the test
    instead of failing it."""
    (tmp / "pooled.yaml").write_text(yaml.safe_dump(SUITE))
    cmd = [sys.executable, "-m", "transfer_bench.cli", "run", "pooled.yaml"]
    cmd += ["--executor", "local", "--workers", "2"]
    n = len(list(tmp.glob("out-*.txt")))
    with open(tmp / f"out-{n}.txt", "w") as out, open(tmp / f"err-{n}.txt", "w") as err:
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=_env(tmp), stdout=out, stderr=err, start_new_session=True
        )
    proc.stderr_path = tmp / f"err-{n}.txt"  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float) -> str:
    """Wait for the run's main process; its stderr."""
    proc.wait(timeout=timeout)
    return proc.stderr_path.read_text()  # type: ignore[attr-defined]


def session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``: the run, its workers and helpers."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) "
        state, session = fields[0], int(fields[3])
        if session == sid and state != "Z":
            found.append(int(entry.name))
    return found


def results_of(suite_dir: Path) -> set[str]:
    return {str(p) for p in suite_dir.rglob("result.json")}


def wait_for(predicate, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def assert_clean(suite_dir: Path) -> None:
    """No temporary file, no checkpoint of a finished run and no held lock."""
    assert not list(suite_dir.rglob("*.tmp")), "temporary files left behind"
    assert not list(suite_dir.rglob("checkpoint.pt")), "checkpoints of finished runs left"
    assert_unlocked(suite_dir)


def assert_unlocked(suite_dir: Path) -> None:
    """No run lock is held (lock files stay as empty files: deleting them would race)."""
    for lock in suite_dir.rglob(".lock"):
        try:
            FileLock(str(lock), timeout=0).acquire().lock.release()
        except Timeout:
            pytest.fail(f"{lock} is still held")


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("undisturbed")
    proc = start(tmp)
    err = finish(proc, timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return snapshot(tmp / "results" / "pooled")


@pytest.mark.parametrize(
    "how",
    ["SIGKILL", "SIGTERM", "SIGINT"],
    ids=["kill-9", "term", "ctrl-c"],
)
def test_stopping_a_pooled_run_stops_every_process(
    tmp_path: Path, undisturbed: dict[str, object], how: str
) -> None:
    suite_dir = tmp_path / "results" / "pooled"
    proc = start(tmp_path)
    # stop it while the workers are busy: after the first result, before the last
    assert wait_for(lambda: results_of(suite_dir), timeout=120), "the run never got going"
    assert len(session_processes(proc.pid)) >= 3, "expected the run and its two workers"
    if how == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    else:
        os.kill(proc.pid, getattr(signal, how))  # a scheduler or `kill` hits the main process
    err = finish(proc, timeout=60)
    expected = {"SIGKILL": -9, "SIGTERM": 143, "SIGINT": 130}[how]
    assert proc.returncode == expected, err[-2000:]
    if how != "SIGKILL":
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("warning")]
        assert lines and lines[-1].startswith(("terminated:", "interrupted:")), err[-2000:]
        assert "resume with: transfer-bench run pooled.yaml" in lines[-1]
        assert "Traceback" not in err
    # every worker and helper is gone within 10 s, and nothing is written afterwards
    assert wait_for(lambda: not session_processes(proc.pid), timeout=10), (
        f"processes left: {session_processes(proc.pid)}"
    )
    written = results_of(suite_dir)
    time.sleep(2)
    assert results_of(suite_dir) == written
    if how != "SIGKILL":  # a clean stop: no half-written file, no lock held
        assert not list(suite_dir.rglob("*.tmp"))
        assert_unlocked(suite_dir)
        return
    rerun = start(tmp_path)
    err = finish(rerun, timeout=300)
    assert rerun.returncode == 0, err[-2000:]
    assert snapshot(suite_dir) == undisturbed
    assert_clean(suite_dir)


@pytest.mark.slow
def test_soak_repeated_kills_of_a_second_run(
    tmp_path: Path, undisturbed: dict[str, object]
) -> None:
    """A first run works while a second run of the same suite is started and SIGKILLed five
    times at random moments; afterwards the results equal an undisturbed run's."""
    rng = random.Random(0)
    suite_dir = tmp_path / "results" / "pooled"
    first = start(tmp_path)
    kills, t0 = 0, time.monotonic()
    for _ in range(5):
        second = start(tmp_path)
        time.sleep(rng.uniform(2.0, 8.0))
        if second.poll() is None:
            os.kill(second.pid, signal.SIGKILL)
            kills += 1
        finish(second, timeout=60)
        assert wait_for(lambda s=second: not session_processes(s.pid), timeout=10)
    err = finish(first, timeout=600)
    assert first.returncode == 0, err[-2000:]
    last = start(tmp_path)  # whatever a killed second run left half-done is finished here
    err = finish(last, timeout=300)
    assert last.returncode == 0, err[-2000:]
    assert snapshot(suite_dir) == undisturbed
    assert_clean(suite_dir)
    assert not session_processes(first.pid)
    print(f"soak: {kills} kills in {time.monotonic() - t0:.0f} s")

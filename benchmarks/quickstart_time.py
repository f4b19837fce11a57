"""The README's main command, timed end to end, next to the host's matmul peak of the same moment.

The host's speed drifts (its 2-thread 1024^3 matmul read 173 GFLOP/s in one session and 322 in
the next), so a quickstart time means little without it: this measures the peak (1 and 2 threads)
before and after, runs ``transfer-bench run SUITE --results TMP`` ``--repeats`` times into fresh
folders, and records each run's wall time, its runs phase (the run's own "N runs trained, ..., S s")
and the rest (imports, planning, report), plus a digest of every training's history, so repeats can
be checked for bit-identical results. Goal (README "Performance"): <= 90 s on 2 cores. Writes
``benchmarks/out/quickstart_time.json``.

Usage: python benchmarks/quickstart_time.py [--repeats 3] [--suite suites/quickstart.yaml]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from train_throughput import matmul_peak


def peaks() -> dict[str, float]:
    out = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        out[f"matmul_gflops_{threads}_thread"] = round(matmul_peak(), 1)
    return out


def digest(folder: Path) -> str:
    """sha256 over every training's run id, test accuracy and history, in path order."""
    h = hashlib.sha256()
    for f in sorted(folder.rglob("result.json")):
        r = json.loads(f.read_text())
        h.update(
            json.dumps([str(f.relative_to(folder)), r["test_accuracy"], r["history"]]).encode()
        )
    return h.hexdigest()[:16]


def one_run(suite: str, results: Path) -> dict:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "transfer_bench.cli", "run", suite, "--results", str(results)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"transfer-bench run failed:\n{proc.stderr[-2000:]}")
    m = re.search(
        r"(\d+) runs trained, \d+ already complete, ([\d.]+) s", proc.stdout + proc.stderr
    )
    runs_s = float(m.group(2)) if m else float("nan")
    return {
        "wall_s": round(wall, 1),
        "runs_s": runs_s,
        "rest_s": round(wall - runs_s, 1),
        "digest": digest(results),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="suites/quickstart.yaml")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/quickstart_time.json"))
    args = ap.parse_args()
    before = peaks()
    print(f"before: {before}")
    runs = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            row = one_run(args.suite, Path(tmp))
        runs.append(row)
        print(
            f"run {i + 1}: {row['wall_s']:.1f} s (runs {row['runs_s']:.1f} s, rest "
            f"{row['rest_s']:.1f} s), results {row['digest']}"
        )
    after = peaks()
    print(f"after: {after}")
    walls = [r["wall_s"] for r in runs]
    summary = {
        "suite": args.suite,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "peaks_before": before,
        "peaks_after": after,
        "runs": runs,
        "wall_min_median_max_s": [min(walls), statistics.median(walls), max(walls)],
        "results_identical": len({r["digest"] for r in runs}) == 1,
        "goal_s": 90,
    }
    print(
        f"{args.suite}: {min(walls):.1f}-{max(walls):.1f} s (median {statistics.median(walls):.1f}, "
        f"n = {len(walls)}; goal <= 90 s), results identical across repeats: "
        f"{summary['results_identical']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Does ``plan``'s wall-time estimate match a real run? Estimate, run, compare (goal: within 30%).

Runs ``transfer-bench plan SUITE`` (which times a few steps of each model here, with the executor's
workers and threads; the calibration cache is cleared first so it is measured afresh), then
``transfer-bench run SUITE`` into a fresh results folder with the same executor and ``--no-report``,
and compares the estimate with the run's own "N runs trained, ... S s" figure. Writes
``benchmarks/out/plan_estimate.json``.

Usage: python benchmarks/plan_estimate.py [--suite suites/quickstart.yaml] [--executor local]
       [--workers 2] [--scale NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cli(*args: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "transfer_bench.cli", *args],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
    )
    if proc.returncode != 0:
        raise SystemExit(f"transfer-bench {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="suites/quickstart.yaml")
    ap.add_argument("--executor", default="local")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--scale", default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/plan_estimate.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TRANSFER_BENCH_CACHE": str(Path(tmp) / "cache")}
        common = ["--results", str(Path(tmp) / "results"), "--executor", args.executor]
        if args.workers:
            common += ["--workers", str(args.workers)]
        if args.scale:
            common += ["--scale", args.scale]
        t = time.perf_counter()
        out = cli("plan", args.suite, *common, env=env)
        plan_s = time.perf_counter() - t
        m = re.search(r"expected wall time: ([\d.,]+) (s|min|h|days)", out)
        if m is None:
            raise SystemExit(f"no estimate in plan's output:\n{out[-2000:]}")
        scale = {"s": 1, "min": 60, "h": 3600, "days": 86400}[m.group(2)]
        estimate = float(m.group(1).replace(",", "")) * scale
        t = time.perf_counter()
        out = cli("run", args.suite, *common, "--no-report", env=env)
        wall = time.perf_counter() - t
        m = re.search(r"runs trained, \d+ already complete, ([\d.]+) s", out)
        actual = float(m.group(1)) if m else wall
    row = {
        "suite": args.suite,
        "scale": args.scale,
        "executor": args.executor,
        "workers": args.workers,
        "cores": os.cpu_count(),
        "plan_command_s": plan_s,
        "estimate_s": estimate,
        "actual_run_s": actual,
        "command_wall_s": wall,
        "estimate_over_actual": estimate / actual,
    }
    print(
        f"{args.suite} ({args.executor}): estimate {estimate:.0f} s, run {actual:.1f} s "
        f"(command {wall:.1f} s): estimate/actual {estimate / actual:.2f} "
        f"(goal 0.70-1.30); plan took {plan_s:.1f} s"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

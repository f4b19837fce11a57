"""How long `transfer-bench plan` takes for every suite, with an empty calibration cache.

Why: `plan suites/morcos2019-vgg19.yaml` timed full-width VGG19 steps for more than 7 minutes
on a 2-core CPU before it printed the wall-time estimate. The goal is under 30 s for every suite in
``suites/`` (and ``suites/claims/``) on 2 cores with an empty calibration cache. Each suite is
planned in a fresh process (imports included) with an empty calibration cache. Datasets are
loaded into a dataset cache of the benchmark's first (untimed, ``plan --no-calibrate``), since
loading a dataset the first time is the dataset's cost, paid once per machine, not the plan's
(``--cold-datasets`` times that too; ``--empty-dataset-cache`` does not link the usual cache's
files in). Prints one line per suite and writes
``benchmarks/out/plan_time.json`` with the machine (``lscpu``'s model name, cores) and the load
average, since a busy machine inflates every time.

Usage: python benchmarks/plan_time.py [--suites suites/*.yaml suites/claims/*.yaml]
       [--empty-dataset-cache] [--cold-datasets] [--extra-args "--scale cpu"]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from transfer_bench.api import default_cache_dir
from transfer_bench.runner.calibrate import CALIBRATION_FILE

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 30.0


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def dataset_cache(path: Path, empty: bool) -> Path:
    """The dataset cache the plans share: the usual cache's dataset files linked in (none with
    ``empty``); datasets loaded meanwhile stay there."""
    path.mkdir(parents=True, exist_ok=True)
    usual = default_cache_dir()
    if not empty and usual.is_dir() and usual.resolve() != path.resolve():
        for f in usual.glob("dataset-*.safetensors"):
            if not (path / f.name).exists():
                (path / f.name).symlink_to(f)
    return path


def plan(
    suite: str, cache: Path, results: Path, extra: list[str]
) -> tuple[float, subprocess.CompletedProcess]:
    env = {**os.environ, "TRANSFER_BENCH_CACHE": str(cache)}
    cmd = [
        sys.executable,
        "-m",
        "transfer_bench.cli",
        "plan",
        suite,
        "--results",
        str(results),
        *extra,
    ]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - t, proc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suites", nargs="*", default=None)
    ap.add_argument("--empty-dataset-cache", action="store_true")
    ap.add_argument(
        "--cold-datasets", action="store_true", help="time the first load of datasets too"
    )
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks/out/plan-cache")
    ap.add_argument("--extra-args", default="")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/plan_time.json")
    args = ap.parse_args()
    suites = args.suites or sorted(
        str(p.relative_to(ROOT))
        for p in [*ROOT.glob("suites/*.yaml"), *ROOT.glob("suites/claims/*.yaml")]
    )
    cache = dataset_cache(args.cache, args.empty_dataset_cache)
    extra = shlex.split(args.extra_args)
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        if (
            not args.cold_datasets
        ):  # datasets loaded once, untimed: the timed plans find them cached
            for suite in suites:
                plan(suite, cache, Path(tmp) / "res", [*extra, "--no-calibrate"])
        for suite in suites:
            (cache / CALIBRATION_FILE).unlink(missing_ok=True)  # an empty calibration cache
            seconds, proc = plan(suite, cache, Path(tmp) / "res", extra)
            out = proc.stdout.splitlines()
            wall = next((ln for ln in out if ln.startswith("expected wall time")), "")
            scaled = sum(
                ln.startswith("  ") and "per step" in ln and ln.endswith(")") for ln in out
            )
            rows.append(
                {
                    "suite": suite,
                    "seconds": round(seconds, 2),
                    "exit": proc.returncode,
                    "estimate": wall,
                    "figures_extrapolated": scaled,
                }
            )
            flag = "ok" if seconds < GOAL_S else "OVER"
            print(
                f"{seconds:6.1f} s  {flag:4}  exit {proc.returncode}  {suite}: {wall[:100]}",
                flush=True,
            )
    record = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "empty_dataset_cache": args.empty_dataset_cache,
        "datasets_loaded_before_timing": not args.cold_datasets,
        "hf_mirror": os.environ.get("TRANSFER_BENCH_HF_MIRROR"),
        "goal_s": GOAL_S,
        "max_s": max(r["seconds"] for r in rows),
        "suites": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(
        f"slowest {record['max_s']:.1f} s (goal < {GOAL_S:g} s) on {record['cpu']}, {record['cores']} cores; load {load_before[0]:.2f} before; wrote {args.out}"
    )


if __name__ == "__main__":
    main()

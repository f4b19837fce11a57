"""The GPU path in one command: CUDA tests, epoch times, Morcos-scale memory, a natural-image suite.

Stages, each with its own time limit so that one slow stage cannot starve the others, each
appending to ``log.txt`` and ``summary.json`` in ``--out`` as it ends (a run stopped at any point
keeps what finished):

1. ``pytest`` of the CUDA tests (``tests/test_cuda.py``, the GPU augmentation test, and
   ``tests/test_gpu_path.py``, which must also pass there);
2. ``transfer-bench selftest --device cuda`` (its record: ``selftest.json``);
3. ``benchmarks/epoch_time.py --device cuda``;
4. ``benchmarks/morcos_scale.py --device cuda`` (peak memory and epoch time at Morcos data sizes);
5. with ``--cifar-npz FILE`` (CIFAR-10 as ``x_train, y_train, x_test, y_test`` arrays), a
   natural-image suite at full VGG19 width: tickets found on CIFAR-10's six animal classes,
   retrained on its four vehicle classes next to ``random_global``, ``random_reinit`` and the dense
   network, then the report. ``SIGTERM`` at its time limit; finished runs are kept and reported.

Usage: python benchmarks/gpu_check.py [--out DIR] [--cifar-npz FILE] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

ANIMALS = ["bird", "cat", "deer", "dog", "frog", "horse"]
VEHICLES = ["airplane", "automobile", "ship", "truck"]
CIFAR_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def natural_suite(npz: Path, seeds: int) -> dict:
    """VGG19 (full width) tickets from CIFAR-10 animals, transferred to CIFAR-10 vehicles."""
    ids = {n: i for i, n in enumerate(CIFAR_NAMES)}
    data = {"source": f"local:{npz}"}
    return {
        "name": "gpu-natural-vgg19",
        "seeds": list(range(seeds)),
        "model": {"name": "vgg19"},
        "input": {"size": 32, "channels": 3},
        "datasets": {
            "animals": {**data, "classes": [ids[n] for n in ANIMALS]},
            "vehicles": {**data, "classes": [ids[n] for n in VEHICLES]},
        },
        "optimizers": {"sgd": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}},
        "train": {
            "optimizer": "sgd",
            "batch_size": 128,
            "epochs": 15,
            "schedule": "cosine",
            "augment": "crop_flip",
            "padding": 4,
            "eval_every": 5,
        },
        "search": {
            "sources": ["animals"],
            "scope": "global",
            "rate": 0.8,
            "head_rate": 0.2,
            "levels": 2,
            "rewind": "1ep",
        },
        "transfer": {
            "targets": ["vehicles"],
            "controls": ["random_global", "random_reinit", "dense"],
            "head": "auto",
            "levels": [1, 2],
        },
        "analysis": {"baseline": "random_global"},
    }


class Check:
    """Runs stages with time limits, logging each and keeping a summary on disk."""

    def __init__(self, out: Path, budget: float) -> None:
        self.out = out
        self.deadline = time.monotonic() + budget
        self.summary: dict = {"stages": {}}
        out.mkdir(parents=True, exist_ok=True)
        self.log = (out / "log.txt").open("a", buffering=1)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def stage(self, name: str, cmd: list[str], limit: float, env: dict | None = None) -> int:
        limit = max(5.0, min(limit, self.left() - 5))
        self.log.write(f"\n===== {name}: {' '.join(cmd)} (limit {limit:.0f} s)\n")
        t = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # runs keep what finished
            try:
                rc = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                rc = proc.wait()
            rc = rc if rc else -15
        seconds = time.monotonic() - t
        self.summary["stages"][name] = {"rc": rc, "seconds": round(seconds, 1)}
        self.log.write(f"===== {name}: exit {rc} after {seconds:.1f} s\n")
        self.save()
        return rc

    def save(self) -> None:
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=2))


def environment() -> dict:
    import torch

    from transfer_bench.training.precision import native_bf16

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version}
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        p = torch.cuda.get_device_properties(dev)
        info.update(
            gpu=p.name,
            capability=list(torch.cuda.get_device_capability(dev)),
            memory_gib=round(p.total_memory / 2**30, 1),
            gpus=torch.cuda.device_count(),
            native_bf16=native_bf16(dev),
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/gpu_check")
    ap.add_argument("--cifar-npz", type=Path, default=None)
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for all stages")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to try the script itself")
    ap.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/gpu-check-work"),
        help="where the suite writes its results (only a digest goes to --out)",
    )
    args = ap.parse_args()
    check = Check(args.out.resolve(), args.budget)
    check.summary["environment"] = environment()
    check.save()
    py = sys.executable
    out = check.out
    check.stage(
        "cuda tests",
        [py, "-m", "pytest", "-q", "-s", "-rs", "-p", "no:cacheprovider",
         f"--junitxml={out / 'junit.xml'}", "tests/test_cuda.py", "tests/test_gpu_path.py",
         "tests/test_augment.py::test_same_result_on_gpu"],
        limit=200,
    )  # fmt: skip
    check.stage(
        "selftest",
        [py, "-m", "transfer_bench.cli", "selftest", "--device", args.device,
         "--out", str(out / "selftest.json")],
        limit=150,
    )  # fmt: skip
    check.stage(
        "epoch time",
        [py, "benchmarks/epoch_time.py", "--device", args.device, "--samples", "8192",
         "--out", str(out / "epoch_time.json")],
        limit=90,
    )  # fmt: skip
    check.stage(
        "morcos scale",
        [py, "benchmarks/morcos_scale.py", "--device", args.device,
         "--out", str(out / "morcos_scale.json")],
        limit=120,
    )  # fmt: skip
    if args.cifar_npz is not None:
        suite = out / "natural-suite.yaml"
        suite.write_text(yaml.safe_dump(natural_suite(args.cifar_npz.resolve(), args.seeds)))
        results = args.work.resolve() / "results"
        cli = [py, "-m", "transfer_bench.cli"]
        check.stage(
            "natural-image suite",
            [*cli, "run", str(suite), "--results", str(results), "--device", args.device,
             "--executor", "local", "--runs-per-gpu", "2", "--progress", "plain",
             "--no-report"],
            limit=check.left() - 40,
        )  # fmt: skip
        check.stage("report", [*cli, "report", str(results / "gpu-natural-vgg19")], limit=35)
        with tarfile.open(out / "natural-results.tar.gz", "w:gz") as tar:
            for p in sorted(results.rglob("*")):
                if p.is_file() and p.suffix in (".json", ".md", ".csv", ".png", ".yaml"):
                    tar.add(p, arcname=str(p.relative_to(results)))
    check.summary["seconds_left"] = round(check.left(), 1)
    check.save()


if __name__ == "__main__":
    main()

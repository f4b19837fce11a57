"""``transfer-bench selftest``: does the toolkit work on this machine's device, and how fast?

One command a user runs on new hardware, whose JSON record they can attach to a bug report:

1. **suite**: a tiny suite runs on the device through the toolkit's own stages: Conv-2 on
   scikit-learn's 8x8 digits (bundled, no download), IMP tickets found on digits 0-4 (2 levels),
   transferred to digits 5-9 next to ``random_reinit`` and the dense network: 8 trainings.
2. **learns**: the dense network on digits 5-9 and the level-0 search reach ``MIN_ACCURACY``
   (chance is 20%).
3. **determinism**: the suite runs again in another folder; every metric, every evaluation of
   every history and every ticket file must be identical, bit for bit.
4. **agreement with the CPU**: on another device the suite also runs on the CPU, and each
   training's final test accuracy and loss are compared within ``TOLERANCES``: fp32 on the device
   (the suite with ``train.precision: fp32``) and the device's default precision (``auto``: bf16
   where the GPU multiplies it natively) separately. On the CPU itself the reference is the
   repeat of step 3, which must be exact.
5. **speed**: one training step of each model family at its usual size, timed as ``plan`` times
   steps (``calibrate.measure``; a slow step is scaled from a sub-batch and says so).

Different kernels sum in other orders, and a training amplifies such differences, so the device
is compared with the CPU per training within stated margins, never bit for bit. The margins are
provisional until measured on more GPUs: the record keeps every difference, so a run on new
hardware documents itself.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from transfer_bench.config import parse_suite
from transfer_bench.devices import resolve_device
from transfer_bench.fileio import atomic_write_text
from transfer_bench.machine import fingerprint
from transfer_bench.runner.calibrate import Workload, measure
from transfer_bench.runner.execute import execute
from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import plan, suite_hash
from transfer_bench.runs.store import read_json
from transfer_bench.training.precision import resolve_precision

SELFTEST_FORMAT = 1
#: the dense network and the dense search level must reach this test accuracy (chance: 0.2)
MIN_ACCURACY = 0.8
#: fields of a result that differ between two identical trainings (wall time, the machine)
VOLATILE = frozenset({"seconds", "machine"})
#: per-training margins of the device against the CPU: the largest and the mean absolute
#: difference of final test accuracy (points) and of final test loss
TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"max_points": 3.0, "mean_points": 1.5, "max_loss": 0.05},
    "bf16": {"max_points": 6.0, "mean_points": 3.0, "max_loss": 0.15},
}
#: seconds of step timing for the model families at most (a timing already started finishes,
#: scaled from a cold step)
TIMING_BUDGET_S = 30.0

SUITE: dict[str, Any] = {
    "name": "selftest",
    "seeds": [0],
    "model": {"name": "conv2"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "low": {"source": "builtin:digits", "classes": [0, 1, 2, 3, 4]},
        "high": {"source": "builtin:digits", "classes": [5, 6, 7, 8, 9]},
    },
    "optimizers": {"sgd": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
    "train": {"optimizer": "sgd", "batch_size": 64, "epochs": 3},
    "search": {"sources": ["low"], "rate": 0.5, "head_rate": 0.2, "levels": 2},
    "transfer": {"targets": ["high"], "controls": ["random_reinit", "dense"], "levels": [1, 2]},
}

_SGD = (("lr", 0.05), ("momentum", 0.9), ("name", "sgd"))
#: one model of each family, at the size its papers train it (full width, 32x32 images)
FAMILIES: tuple[tuple[str, Workload], ...] = (
    ("LeNet", Workload("lenet_300_100", (), 10, 1, 28, 60, (("lr", 0.0012), ("name", "adam")))),
    ("Conv", Workload("conv4", (), 10, 3, 32, 60, (("lr", 0.0003), ("name", "adam")))),
    ("VGG", Workload("vgg19", (), 10, 3, 32, 128, _SGD)),
    ("CIFAR ResNet", Workload("resnet20", (), 10, 3, 32, 128, _SGD)),
    ("ResNet (torchvision)", Workload("resnet50", (), 10, 3, 32, 128, _SGD)),
    ("timm", Workload("timm:resnet18", (), 10, 3, 32, 128, _SGD)),
)


@dataclass
class Check:
    """One check's outcome: ``pass``, ``fail`` or ``skip``, what was found, and its numbers."""

    name: str
    status: str
    detail: str
    measured: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ the suite


def suite_for(precision: str = "auto") -> dict[str, Any]:
    """The self-test suite, with ``train.precision`` set."""
    return {**SUITE, "train": {**SUITE["train"], "precision": precision}}


def run_suite_on(device: str, folder: Path, cache: Path, precision: str = "auto") -> dict:
    """Run the self-test suite on ``device`` into ``folder``: {training key: result record}."""
    suite = parse_suite(suite_for(precision))
    ctx = Context(suite, folder / suite.name, resolve_device(device), cache, suite_hash(suite))
    execute(ctx, plan(suite))
    return results_of(ctx.suite_dir)


def training_key(record: dict[str, Any]) -> str:
    """A training by what it is (not by its folder, whose name holds the precision)."""
    parts = [record.get(k) for k in ("kind", "control", "source", "target", "seed", "level")]
    return " ".join(str(p) for p in parts)


def results_of(suite_dir: Path) -> dict[str, dict[str, Any]]:
    """Every ``result.json`` below ``suite_dir`` (with its ticket's bytes, for searches)."""
    out = {}
    for path in sorted(suite_dir.rglob("result.json")):
        record = read_json(path)
        ticket = path.parent / "ticket.ticket"
        if ticket.exists():
            record["ticket_bytes"] = ticket.read_bytes()
        out[training_key(record)] = record
    return out


# ------------------------------------------------------------------------------------ the checks


def check_learns(results: dict[str, dict[str, Any]]) -> Check:
    """The dense trainings (the level-0 search and the dense transfer) reach ``MIN_ACCURACY``."""
    dense = {
        k: r["test_accuracy"]
        for k, r in results.items()
        if r.get("control") == "dense" or (r.get("kind") == "search" and r.get("level") == 0)
    }
    low = min(dense.values(), default=math.nan)
    ok = bool(dense) and low >= MIN_ACCURACY
    words = ", ".join(f"{100 * v:.1f}% ({k.split()[0]})" for k, v in dense.items())
    return Check(
        "learns",
        "pass" if ok else "fail",
        f"dense networks reached {words} (at least {100 * MIN_ACCURACY:.0f}% needed; chance 20%)",
        {"dense_accuracy": dense, "min_accuracy": MIN_ACCURACY},
    )


def identical(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> list[str]:
    """Every difference between two runs of the suite (empty: bit for bit the same)."""
    out = []
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            out.append(f"{key}: only in one run")
            continue
        for name in sorted(set(a[key]) | set(b[key])):
            if name in VOLATILE:
                continue
            x, y = a[key].get(name), b[key].get(name)
            if x != y and not (_nan(x) and _nan(y)):
                out.append(f"{key}: {name} differs")
    return out


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def check_determinism(a: dict, b: dict, device: str) -> Check:
    diffs = identical(a, b)
    n = len(a)
    if not diffs:
        return Check(
            "determinism",
            "pass",
            f"the suite ran twice on {device}: all {n} trainings (metrics, every evaluation, "
            "tickets) identical bit for bit",
            {"trainings": n, "differences": []},
        )
    return Check(
        "determinism",
        "fail",
        f"the suite ran twice on {device}: {len(diffs)} difference(s), first: {diffs[0]}",
        {"trainings": n, "differences": diffs[:50]},
    )


def differences(device: dict, cpu: dict) -> list[dict[str, Any]]:
    """Per training: final test accuracy and loss on the device and on the CPU."""
    rows = []
    for key in sorted(set(device) & set(cpu)):
        d, c = device[key], cpu[key]
        rows.append(
            {
                "training": key,
                "accuracy": d["test_accuracy"],
                "cpu_accuracy": c["test_accuracy"],
                "points": 100 * (d["test_accuracy"] - c["test_accuracy"]),
                "loss": d.get("final_test_loss"),
                "cpu_loss": c.get("final_test_loss"),
                "loss_diff": _diff(d.get("final_test_loss"), c.get("final_test_loss")),
            }
        )
    return rows


def _diff(a: Any, b: Any) -> float:
    try:
        return float(a) - float(b)
    except (TypeError, ValueError):
        return math.nan


def check_agreement(rows: list[dict[str, Any]], precision: str, device: str) -> Check:
    """The device's trainings against the CPU's within ``TOLERANCES[precision]``."""
    tol = TOLERANCES[precision]
    name = f"agrees with the CPU ({precision})"
    if not rows:
        return Check(name, "fail", "no training in common with the CPU run")
    points = [abs(r["points"]) for r in rows]
    losses = [abs(r["loss_diff"]) for r in rows if not math.isnan(r["loss_diff"])]
    measured = {
        "max_points": max(points),
        "mean_points": sum(points) / len(points),
        "max_loss": max(losses, default=math.nan),
        "trainings": rows,
    }
    over = [
        f"{k} {measured[k]:.3g} > {v:g}"
        for k, v in tol.items()
        if not measured[k] <= v  # a NaN fails too
    ]
    detail = (
        f"{len(rows)} trainings on {device} ({precision}) vs the CPU (fp32): accuracy differs by "
        f"{measured['mean_points']:.2f} points on average, {measured['max_points']:.2f} at most; "
        f"test loss by {measured['max_loss']:.2g} at most (margins {tol['mean_points']:g} / "
        f"{tol['max_points']:g} points, {tol['max_loss']:g} loss)"
    )
    if over:
        detail += f"; over the margin: {', '.join(over)}"
    return Check(name, "fail" if over else "pass", detail, {**measured, "tolerance": tol})


def time_families(
    device: str, threads: int, budget_s: float, say: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One training step of each family in ``FAMILIES``, as ``plan`` times it."""
    deadline = time.time() + budget_s
    rows = []
    for family, w in FAMILIES:
        say(f"selftest: timing a step of {w.label()} on {device}")
        try:
            cost = measure(w, device, threads, 1, deadline=deadline)
        except Exception as e:  # one family failing is a finding, not the end of the test
            rows.append({"family": family, "model": w.model, "error": f"{type(e).__name__}: {e}"})
            continue
        rows.append(
            {
                "family": family,
                "model": w.model,
                "batch": w.batch_size,
                "input": f"{w.size}x{w.size}x{w.channels}",
                "ms_per_step": 1e3 * cost.step_s,
                "images_per_s": w.batch_size / cost.step_s,
                "how": cost.how or "timed",
            }
        )
    return rows


# ---------------------------------------------------------------------------------------- main


@dataclass
class SelfTest:
    """The record ``selftest`` prints and writes."""

    verdict: str
    line: str
    device: str
    precision: str
    checks: list[Check]
    timings: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    machine: dict[str, Any]
    settings: dict[str, Any]
    seconds: float
    suite: dict[str, Any]

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out["selftest_format"] = SELFTEST_FORMAT
        out["tolerances"] = TOLERANCES
        return _json_safe(out)

    def write(self, path: Path) -> Path:
        """The record as JSON (NaN as null, so any JSON reader takes it)."""
        return atomic_write_text(path, json.dumps(self.record(), indent=1, sort_keys=True) + "\n")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_selftest(
    device: str = "cpu",
    *,
    say: Callable[[str], None] = lambda _: None,
    timing_budget_s: float = TIMING_BUDGET_S,
    families: bool = True,
) -> SelfTest:
    """Run every check on ``device`` (see the module docstring); ``say`` gets progress lines."""
    t0 = time.perf_counter()
    dev = resolve_device(device)
    threads_before = torch.get_num_threads()
    try:
        # on the CPU one thread, as each worker of `--executor auto` (one per core) trains; two
        # threads with a busy second core wait on each other (10x slower steps, measured)
        torch.set_num_threads(1 if dev.type == "cpu" else threads_before)
        return _run(device, dev, say, timing_budget_s, families, t0)
    finally:
        torch.set_num_threads(threads_before)


def _run(device, dev, say, timing_budget_s, families, t0) -> SelfTest:
    name = fingerprint(dev)["device"]
    precision = resolve_precision("auto", dev)
    checks: list[Check] = []
    skipped: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="tb-selftest-") as tmp:
        root, cache = Path(tmp), Path(tmp) / "cache"
        say(f"selftest: the suite on {name} ({precision}): 8 trainings")
        first = run_suite_on(device, root / "a", cache)
        checks.append(check_learns(first))
        say(f"selftest: the suite again on {name}, to compare bit for bit")
        checks.append(check_determinism(first, run_suite_on(device, root / "b", cache), name))
        if dev.type == "cpu":
            skipped.append(
                {
                    "check": "agrees with the CPU",
                    "reason": "the device is the CPU: its reference is the repeat above (exact)",
                }
            )
        else:
            say("selftest: the suite on the CPU (fp32), the reference")
            cpu = run_suite_on("cpu", root / "cpu", cache, "fp32")
            if precision != "fp32":
                say(f"selftest: the suite on {name} in fp32")
                fp32 = run_suite_on(device, root / "fp32", cache, "fp32")
                checks.append(check_agreement(differences(fp32, cpu), "fp32", name))
            checks.append(check_agreement(differences(first, cpu), precision, name))
    if not torch.cuda.is_available():
        skipped.append({"check": "cuda", "reason": "no CUDA GPU is visible here"})
    threads = torch.get_num_threads()
    timings = time_families(device, threads, timing_budget_s, say) if families else []
    failed = [c for c in checks if c.status == "fail"] + [
        {"name": f"timing {t['family']}"} for t in timings if "error" in t
    ]
    verdict = "fail" if failed else "pass"
    seconds = time.perf_counter() - t0
    machine = fingerprint(dev)
    where = f"{name} ({machine.get('cpu', '?')}, torch {machine.get('torch', '?')})"
    return SelfTest(
        verdict=verdict,
        line=verdict_line(verdict, where, checks, timings, failed, seconds),
        device=name,
        precision=precision,
        checks=checks,
        timings=timings,
        skipped=skipped,
        machine=machine,
        settings=settings(dev),
        seconds=round(seconds, 1),
        suite=suite_for(),
    )


def settings(dev: torch.device) -> dict[str, Any]:
    """What shapes the numbers besides the machine: threads, determinism and TF32 switches."""
    out: dict[str, Any] = {
        "torch_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "TRANSFER_BENCH_DETERMINISTIC": os.environ.get("TRANSFER_BENCH_DETERMINISTIC", "on"),
    }
    if dev.type == "cuda":
        out.update(
            cudnn_deterministic=torch.backends.cudnn.deterministic,
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
            CUBLAS_WORKSPACE_CONFIG=os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        )
    return out


def verdict_line(verdict, device, checks, timings, failed, seconds) -> str:
    """``selftest: PASS on cpu (...): 3 checks passed ...; VGG19 ... images/s``."""
    if verdict == "pass":
        what = f"{len(checks)} checks passed ({', '.join(c.name for c in checks)})"
    else:
        names = [f.name if isinstance(f, Check) else f["name"] for f in failed]
        what = f"FAILED: {', '.join(names)}"
    speed = "; ".join(
        f"{t['model']} {t['images_per_s']:,.0f} img/s" for t in timings if "error" not in t
    )
    return (
        f"selftest: {verdict.upper()} on {device}: {what}"
        + (f"; training speed {speed}" if speed else "")
        + f" ({seconds:.0f} s)"
    )

"""`transfer-bench selftest`: the tiny suite learns and repeats bit for bit on the device, agrees
with the CPU within stated margins on another device, and a step of each model family is timed;
one verdict line and a JSON record. The CUDA branch runs where a GPU is present."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from transfer_bench.cli import app
from transfer_bench.runner import selftest as st


def record(acc: float, loss: float = 0.3, **extra) -> dict:
    return {"kind": "transfer", "control": "ticket", "test_accuracy": acc,
            "final_test_loss": loss, "seconds": 1.0, **extra}  # fmt: skip


def test_identical_ignores_wall_time_and_machine_only() -> None:
    a = {"t": record(0.9, machine={"cpu": "x"}, history=[{"test_loss": 0.5}])}
    b = {"t": record(0.9, machine={"cpu": "y"}, history=[{"test_loss": 0.5}], seconds=9.0)}
    assert st.identical(a, b) == []
    b["t"]["history"] = [{"test_loss": 0.5000001}]  # one evaluation's last bits
    assert st.identical(a, b) == ["t: history differs"]
    assert st.check_determinism(a, b, "cpu").status == "fail"
    assert st.identical(a, {}) == ["t: only in one run"]


def test_agreement_holds_the_stated_margins() -> None:
    cpu = {f"t{i}": record(0.90) for i in range(4)}
    close = {f"t{i}": record(0.90 + 0.01 * (i % 2), 0.3 + 0.01) for i in range(4)}
    rows = st.differences(close, cpu)
    check = st.check_agreement(rows, "fp32", "cuda (X)")
    assert check.status == "pass" and check.measured["max_points"] == pytest.approx(1.0)
    assert check.measured["mean_points"] == pytest.approx(0.5)
    far = {f"t{i}": record(0.90 + 0.05 * (i == 0)) for i in range(4)}  # one training 5 points off
    fp32 = st.check_agreement(st.differences(far, cpu), "fp32", "cuda (X)")
    bf16 = st.check_agreement(st.differences(far, cpu), "bf16", "cuda (X)")
    assert fp32.status == "fail" and "max_points 5 > 3" in fp32.detail
    assert bf16.status == "pass"  # bf16's margin is wider
    nan = {f"t{i}": record(0.9, math.nan) for i in range(4)}
    assert st.check_agreement(st.differences(nan, cpu), "bf16", "x").status == "fail"
    assert st.check_agreement([], "fp32", "x").status == "fail"


def test_learning_check_needs_the_dense_networks_to_learn() -> None:
    ok = {"a": {"kind": "search", "control": "imp", "level": 0, "test_accuracy": 0.95},
          "b": {"kind": "transfer", "control": "dense", "level": 0, "test_accuracy": 0.97},
          "c": {"kind": "transfer", "control": "ticket", "level": 2, "test_accuracy": 0.3}}  # fmt: skip
    assert st.check_learns(ok).status == "pass"  # a ticket may do badly; the dense ones may not
    ok["b"]["test_accuracy"] = 0.5
    assert st.check_learns(ok).status == "fail"


def test_selftest_runs_the_suite_twice_on_the_cpu() -> None:
    """The suite part of `selftest --device cpu` (no family timings): 8 trainings learn and
    repeat bit for bit; the CPU is its own reference; the record is valid JSON."""
    result = st.run_selftest("cpu", families=False)
    assert result.verdict == "pass", result.line
    assert [c.name for c in result.checks] == ["learns", "determinism"]
    assert result.checks[1].measured["trainings"] == 8
    assert any("the device is the CPU" in s["reason"] for s in result.skipped)
    assert result.line.startswith("selftest: PASS on cpu (")
    assert result.settings["torch_threads"] == 1 and result.precision == "fp32"


@pytest.mark.slow
def test_selftest_command_on_the_cpu(tmp_path: Path) -> None:
    """The whole command, as a user runs it: a verdict line, a table of checks and of step
    times for every family, exit 0, and the JSON record with every field."""
    out = tmp_path / "selftest.json"
    res = CliRunner().invoke(app, ["selftest", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "selftest: PASS on cpu" in res.output and f"record: {out}" in res.output
    rec = json.loads(out.read_text())
    assert rec["verdict"] == "pass" and rec["selftest_format"] == st.SELFTEST_FORMAT
    for key in ("checks", "timings", "skipped", "machine", "settings", "tolerances", "suite"):
        assert key in rec
    assert [t["family"] for t in rec["timings"]] == [f for f, _ in st.FAMILIES]
    assert all(t["ms_per_step"] > 0 and t["images_per_s"] > 0 for t in rec["timings"])
    assert rec["machine"]["transfer_bench"] and rec["machine"]["torch"] == torch.__version__


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)")
def test_selftest_on_cuda(tmp_path: Path) -> None:
    """On a GPU: determinism there, agreement with the CPU in fp32 and (where bf16 is native) in
    bf16 within the stated margins, and the measured differences in the record."""
    result = st.run_selftest("cuda", timing_budget_s=60.0)
    names = [c.name for c in result.checks]
    assert "determinism" in names and f"agrees with the CPU ({result.precision})" in names
    if result.precision == "bf16":
        assert "agrees with the CPU (fp32)" in names
    for c in result.checks:
        print(f"{c.name}: {c.status}: {c.detail}")
    result.write(tmp_path / "selftest-cuda.json")
    assert result.verdict == "pass", result.line

"""plan's wall-time estimate: scheduling, caching of measured step costs, and the CLI line."""

from __future__ import annotations

import json
from pathlib import Path

from transfer_bench.runner import calibrate
from transfer_bench.runner.calibrate import Job, StepCost, Workload, schedule, training_seconds

W = Workload(
    model="lenet_300_100",
    options=(),
    num_classes=10,
    channels=1,
    size=28,
    batch_size=60,
    optimizer=(("lr", 0.001), ("name", "adam")),
)


def test_schedule_respects_workers_and_dependencies() -> None:
    searches = [Job(f"s{i}", (), 10.0) for i in range(2)]
    transfers = [Job(f"t{i}", (f"s{i % 2}",), 5.0) for i in range(4)]
    assert schedule(searches + transfers, 1) == 40.0  # one slot: the sum
    assert schedule(searches + transfers, 2) == 20.0  # both searches, then two rounds of transfers
    assert schedule([Job("a", (), 3.0), Job("b", ("a",), 3.0)], 4) == 6.0  # a chain stays serial


def test_training_seconds_adds_steps_evaluations_and_fixed_cost() -> None:
    cost = StepCost(step_s=0.002, eval_s_per_image=1e-5, startup_s=3.0, fixed_s=0.1)
    assert abs(training_seconds(cost, 100, 10, 1000) - (0.1 + 0.2 + 0.1)) < 1e-12


def test_calibration_is_measured_once_then_cached(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def fake(w, device, threads, concurrent):
        calls.append((w, device, threads, concurrent))
        return StepCost(0.003, 1e-5, 2.0, 0.05)

    monkeypatch.setattr(calibrate, "measure", fake)
    first = calibrate.calibrated([W, W], "cpu", 1, 2, tmp_path)
    again = calibrate.calibrated([W], "cpu", 1, 2, tmp_path)
    other_threads = calibrate.calibrated([W], "cpu", 2, 1, tmp_path)
    assert first[W] == again[W] == StepCost(0.003, 1e-5, 2.0, 0.05)
    assert len(calls) == 2 and calls[1][2:] == (2, 1)  # a new setting is measured
    assert len(json.loads((tmp_path / calibrate.CALIBRATION_FILE).read_text())) == 2
    (tmp_path / calibrate.CALIBRATION_FILE).write_text("{broken")  # a damaged cache: measure again
    calibrate.calibrated([W], "cpu", 1, 2, tmp_path)
    assert len(calls) == 3 and other_threads[W].step_s == 0.003


def test_real_measurement_is_positive_and_small() -> None:
    tiny = Workload(
        model="lenet_300_100",
        options=(),
        num_classes=3,
        channels=1,
        size=8,
        batch_size=8,
        optimizer=(("lr", 0.01), ("momentum", 0.9), ("name", "sgd")),
    )
    cost = calibrate.measure(tiny, "cpu", 1, 1)
    assert 0 < cost.step_s < 1 and 0 < cost.eval_s_per_image < 0.1 and cost.fixed_s >= 0


def test_auto_executor_picks_the_pool_on_a_multicore_cpu() -> None:
    from transfer_bench.runner.executors import resolve_executor

    assert resolve_executor("auto", "cpu", todo=10, cores=2) == "local"
    assert resolve_executor("auto", "cpu", todo=1, cores=2) == "sequential"  # nothing to share
    assert resolve_executor("auto", "cpu", todo=10, cores=1) == "sequential"
    assert resolve_executor("auto", "cuda", todo=10, cores=16) == "sequential"  # one GPU process
    assert resolve_executor("ray", "cpu", todo=10, cores=2) == "ray"  # an explicit choice stays

"""plan's wall-time estimate: scheduling, caching of measured step costs, and the CLI line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml

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

    def fake(pool, w, device, threads, concurrent, slow_s, deadline):
        calls.append((w, device, threads, concurrent))
        return StepCost(0.003, 1e-5, 2.0, 0.05)

    monkeypatch.setattr(calibrate, "_measure_with", fake)
    monkeypatch.setattr(calibrate, "load_average", lambda: None)
    first = calibrate.calibrated([W, W], "cpu", 1, 2, tmp_path)
    again = calibrate.calibrated([W], "cpu", 1, 2, tmp_path)
    other_threads = calibrate.calibrated([W], "cpu", 2, 1, tmp_path)
    assert first[W] == again[W] == StepCost(0.003, 1e-5, 2.0, 0.05)
    assert len(calls) == 2 and calls[1][2:] == (2, 1)  # a new setting is measured
    assert len(json.loads((tmp_path / calibrate.CALIBRATION_FILE).read_text())) == 2
    (tmp_path / calibrate.CALIBRATION_FILE).write_text("{broken")  # a damaged cache: measure again
    calibrate.calibrated([W], "cpu", 1, 2, tmp_path)
    assert len(calls) == 3 and other_threads[W].step_s == 0.003


def test_a_figure_timed_on_a_busy_machine_is_timed_again_when_it_is_quieter(
    tmp_path: Path, monkeypatch
) -> None:
    """A LeNet step timed while a training suite kept both cores busy (3.1 ms) stayed in the cache
    and put the quickstart at 109 s; it runs in 55 s (a quiet timing: 1.4 ms). Each figure now
    records the load it was timed under; a busy one is timed again once the machine is quieter
    by a core, and `plan` says which figures were timed busy."""
    from transfer_bench.runner.estimate import WallEstimate

    steps = iter([0.0031, 0.0014])
    monkeypatch.setattr(
        calibrate, "_measure_with", lambda *a: StepCost(next(steps), 1e-5, 0.04, 0.003)
    )
    monkeypatch.setattr(calibrate.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(calibrate, "load_average", lambda: 2.2)  # a suite runs next to plan
    busy = calibrate.calibrated([W], "cpu", 1, 2, tmp_path)[W]
    assert busy.step_s == 0.0031 and busy.load == 2.2 and busy.timed_busy(2)
    line = "\n".join(WallEstimate(1.0, "local", 2, 1, {W: busy}, 1, 0).describe())
    assert "timed while the machine was busy (load 2.2 on" in line
    monkeypatch.setattr(calibrate, "load_average", lambda: 1.8)  # not a core quieter: kept
    assert calibrate.calibrated([W], "cpu", 1, 2, tmp_path)[W].step_s == 0.0031
    monkeypatch.setattr(calibrate, "load_average", lambda: 0.3)  # quiet: timed again, cached
    quiet = calibrate.calibrated([W], "cpu", 1, 2, tmp_path)[W]
    assert quiet.step_s == 0.0014 and not quiet.timed_busy(2)
    assert calibrate.calibrated([W], "cpu", 1, 2, tmp_path)[W] == quiet
    assert "busy" not in "\n".join(WallEstimate(1.0, "local", 2, 1, {W: quiet}, 1, 0).describe())


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


# ------------------------------------------------------------- plan answers in seconds (issue)

TINY = Workload(
    model="lenet_300_100",
    options=(),
    num_classes=3,
    channels=1,
    size=8,
    batch_size=64,
    optimizer=(("lr", 0.01), ("momentum", 0.9), ("name", "sgd")),
)


def test_a_slow_step_is_timed_once_on_a_sub_batch_and_scaled() -> None:
    """Any step counts as slow with slow_s = 0: one warm step of SMALL_BATCH images, scaled to the
    batch, and the figure says so."""
    cost = calibrate.measure(TINY, "cpu", 1, 1, slow_s=0.0)
    assert cost.how == f"scaled from one step of {calibrate.SMALL_BATCH} images"
    assert cost.extrapolated and 0 < cost.step_s < 1 and cost.fixed_s == 0.0
    fast = calibrate.measure(TINY, "cpu", 1, 1)
    assert fast.how == "" and not fast.extrapolated


def test_the_probe_decides_how_a_step_is_timed() -> None:
    """A warm 8-image step of 0.01 s at batch 512 predicts 0.64 s: timed in full. At 0.1 s
    (6.4 s predicted) a 32-image step (0.4 s) is timed and scaled; at 0.6 s the 8-image step is
    scaled (a 32-image step would take 2.4 s, over twice slow_s), as after the budget is spent."""
    assert calibrate.probe_images(0.01, 512, 1.0, spent=False) is None
    assert calibrate.probe_images(0.1, 512, 1.0, spent=False) == 32
    assert calibrate.probe_images(0.6, 512, 1.0, spent=False) == 8
    assert calibrate.probe_images(0.01, 512, 1.0, spent=True) == 8
    assert calibrate.probe_images(2.0, 4, 1.0, spent=False) == 4  # the batch itself, timed once


def test_model_work_builds_each_shape_at_most_twice() -> None:
    """FLOPs and weights are affine in the class count: a third class count is read off the line
    through two counted ones, and agrees with counting it."""
    calls = []

    def count(model, options, k, channels, size):
        calls.append(k)
        return calibrate.count_work(model, options, k, channels, size)

    work = calibrate.ModelWork(count)
    got = [work("conv2", {}, k, 3, 16) for k in (10, 100, 1000, 365, 100)]
    assert calls == [10, 100]
    exact = calibrate.count_work("conv2", {}, 365, 3, 16)
    assert got[3].flops == pytest.approx(exact.flops) and got[3].params == exact.params


def _work(head_flops: float, head_params: int):
    """A fake model: a body plus a head of ``head_*`` per class."""
    return lambda w: calibrate.Work(
        1e6 + head_flops * w.num_classes, 10**5 + head_params * w.num_classes
    )


def _classes(*ks: int) -> list[Workload]:
    return [dataclasses.replace(TINY, num_classes=k) for k in ks]


def test_class_counts_share_one_timing_when_the_head_is_negligible() -> None:
    ws = _classes(10, 100, 1000)
    # batch 64: a step is 3 * 64 * flops + 200 * weights; 1,000 FLOPs per class: 29% at 1000
    timed, derived = calibrate.share_head_timings(ws, _work(1000.0, 2))
    assert timed == ws  # each class count is timed
    timed, derived = calibrate.share_head_timings(ws, _work(10.0, 2))
    assert timed == [ws[2]] and set(derived) == set(ws[:2])  # the largest is timed
    ref, share, ratio = derived[ws[0]]
    assert ref == ws[2] and 0 < share < calibrate.HEAD_SHARE
    assert ratio == pytest.approx((1e6 + 100) / (1e6 + 10_000))
    # a class count already known (cached) is the reference: nothing new to time
    timed, derived = calibrate.share_head_timings(ws[:2], _work(10.0, 2), known=[ws[2]])
    assert timed == [] and {r for r, _, _ in derived.values()} == {ws[2]}


def test_calibration_keeps_to_its_budget_and_says_what_it_scaled(tmp_path, monkeypatch) -> None:
    """Timings stop once the budget is spent (the heaviest first); the rest are scaled by FLOPs
    from a timed workload, said so, not cached, and timed by the next call."""
    clock = [0.0]
    timed = []

    def fake(pool, w, device, threads, concurrent, slow_s, deadline):
        timed.append(w)
        clock[0] += 10.0  # each timing takes 10 s
        return StepCost(0.01 * w.size, 1e-5, 0.0, 0.0)

    monkeypatch.setattr(calibrate, "_measure_with", fake)
    monkeypatch.setattr(calibrate.time, "monotonic", lambda: clock[0])
    work = calibrate.ModelWork(count=lambda m, o, k, c, size: calibrate.Work(size**2, 1000))
    a, b, c = (dataclasses.replace(TINY, size=s) for s in (8, 16, 32))
    lines: list[str] = []
    costs = calibrate.calibrated(
        [a, b, c], "cpu", 1, 1, tmp_path, budget_s=15.0, weights={a: 1, b: 5, c: 3},
        on_progress=lines.append, model_work=work,
    )  # fmt: skip
    assert timed == [b, c]  # heaviest first; the budget ran out after two timings
    assert len(lines) == 2 and "--no-calibrate" in lines[0] and b.label() in lines[0]
    assert costs[b].how == costs[c].how == ""
    assert costs[a].how.startswith("not timed (calibration budget of 15 s spent)")
    # from the timed workload of the same model with the most work per step (c), by FLOPs
    assert c.label() in costs[a].how
    assert costs[a].step_s == pytest.approx(0.32 * (8 / 32) ** 2)
    cache = json.loads((tmp_path / calibrate.CALIBRATION_FILE).read_text())
    assert len(cache) == 2  # the scaled figure is not cached
    calibrate.calibrated([a, b, c], "cpu", 1, 1, tmp_path, budget_s=15.0)
    assert timed == [b, c, a]  # the next call times what was left


def test_device_notes_say_what_the_cpu_estimate_does_not_describe() -> None:
    from transfer_bench.runner.estimate import RunEstimate, WallEstimate, device_notes

    estimates = [RunEstimate("a", 10, 9e16), RunEstimate("b", 1, None)]  # 9e16 FLOP = 1 h at 25 TF
    cheap = WallEstimate(60.0, "local", 2, 1, {}, 2, 0)
    [line] = device_notes("cuda", cheap, estimates, 25.0)
    assert "device cuda is not on this machine" in line and "does not describe cuda" in line
    assert "1 GPU-hours at 25 TFLOP/s" in line
    assert device_notes(None, cheap, estimates, 25.0) == []
    huge = WallEstimate(40 * 86400.0, "local", 2, 1, {}, 2, 0)
    [line] = device_notes(None, huge, estimates, 25.0)
    assert "40 days on this CPU: this suite is sized for GPUs" in line and "GPU-hours" in line
    [line] = device_notes("cuda", None, estimates, 25.0)  # --no-calibrate
    assert "is not estimated for cuda" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_plan_of_a_cuda_suite_on_a_cpu_says_so(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from transfer_bench.cli import app

    monkeypatch.setenv("TRANSFER_BENCH_CACHE", str(tmp_path / "cache"))
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({**TINY_SUITE, "device": "cuda"}))
    out = CliRunner().invoke(app, ["plan", str(suite), "--results", str(tmp_path / "res")])
    assert out.exit_code == 0, out.output
    assert "expected wall time:" in out.output and "on cpu" in out.output
    assert "note: device cuda is not on this machine" in out.output
    assert "calibrating: timing lenet_300_100" in out.output  # the progress line
    bad = CliRunner().invoke(app, ["plan", str(suite), "--device", "gpu"])
    assert bad.exit_code != 0 and "did you mean 'cuda'" in str(bad.exception)


TINY_SUITE = {
    "name": "tiny-plan",
    "seeds": [0],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {"a": {"source": "synthetic:a", "num_classes": 3, "samples": 60}},
    "train": {"batch_size": 20, "epochs": 1},
    "search": {"sources": ["a"], "levels": 1},
}


@pytest.mark.slow
def test_plan_of_the_full_morcos_vgg19_suite_answers_in_seconds(tmp_path: Path) -> None:
    """The issue: `plan suites/morcos2019-vgg19.yaml` timed full-width VGG19 steps for 7+ minutes
    on 2 cores. With an empty calibration cache it must answer in under 30 s (offline, datasets
    sized from the catalogue)."""
    import os
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k != "TRANSFER_BENCH_HF_MIRROR"}
    env.update(TRANSFER_BENCH_CACHE=str(tmp_path / "cache"), HF_DATASETS_OFFLINE="1")
    root = Path(__file__).resolve().parents[1]
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "transfer_bench.cli", "plan", "suites/morcos2019-vgg19.yaml",
         "--results", str(tmp_path / "res")],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    seconds = time.perf_counter() - t
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "scaled from one step of 32 images" in proc.stdout or "of 8 images" in proc.stdout
    assert "this suite is sized for GPUs" in proc.stdout
    assert seconds < 30, f"plan took {seconds:.1f} s"


def test_pruning_at_init_scoring_is_counted(monkeypatch, tmp_path: Path) -> None:
    """A SynFlow search that trains nothing still scores (rounds x densities passes): `plan` put
    the synflow-collapse claim at 0 s, which then took 44 s; it now counts the scoring."""
    from transfer_bench.config import parse_suite
    from transfer_bench.runner import estimate
    from transfer_bench.runs.context import Context
    from transfer_bench.runs.plan import plan

    monkeypatch.setattr(
        estimate, "calibrated", lambda ws, *a, **k: {w: StepCost(0.01, 0.0, 0.0) for w in ws}
    )

    def seconds(method: str, rounds: int) -> float:
        suite = parse_suite(
            {
                "name": "pai",
                "seeds": [0, 1],
                "model": {"name": "lenet_300_100"},
                "input": {"size": 8, "channels": 1},
                "datasets": {"d": {"source": "synthetic:d", "samples": 100, "num_classes": 4}},
                "train": {"batch_size": 20, "epochs": 1},
                "search": {
                    "method": method,
                    "sources": ["d"],
                    "densities": [0.5, 0.1, 0.01],
                    "rounds": rounds,
                    "samples_per_class": 10,
                    "train_levels": False,
                },
            }
        )
        ctx = Context(suite, tmp_path / "res", torch.device("cpu"), None)
        return estimate.wall_estimate(ctx, plan(suite), "sequential", None).seconds

    # 2 seeds x 3 densities x rounds passes at one step each; SNIP: 40 images at batch 20
    assert seconds("synflow", 100) == pytest.approx(2 * 3 * 100 * 0.01)
    assert seconds("synflow", 10) == pytest.approx(2 * 3 * 10 * 0.01)
    assert seconds("snip", 100) == pytest.approx(2 * 2 * 0.01)
    assert seconds("magnitude_init", 100) == 0.0

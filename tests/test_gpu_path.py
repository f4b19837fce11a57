"""The GPU path, tested on the CPU: compact data, GPUs per worker, Ray's GPU request, optimizer
state layouts on resume, CUDA determinism flags, bf16 only where native, plan's calibration key.

Each test fails without its fix (see the module each one names). The CUDA-only checks run in
``benchmarks/gpu_check.py`` on a machine with a GPU.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.managers import SyncManager
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from transfer_bench.config import OptimizerSpec, TrainSpec, parse_suite
from transfer_bench.data.adapt import normalize
from transfer_bench.devices import (
    CUBLAS_WORKSPACE,
    check_device,
    gpu_slots,
    nondeterministic_op,
)
from transfer_bench.errors import TransferBenchError
from transfer_bench.models import build_model
from transfer_bench.runner.pool import _init_worker, check_workers, execute_pool
from transfer_bench.runner.processes import process_context
from transfer_bench.runner.ray_executor import gpus_per_run
from transfer_bench.runs.plan import plan
from transfer_bench.training import TrainData, train
from transfer_bench.training.optim import build_optimizer
from transfer_bench.training.precision import cpu_native_bf16, cuda_native_bf16, resolve_precision

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- data stays uint8 (runs/context)


def test_uint8_batches_equal_rows_of_the_normalized_split():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 4, (50,), generator=g)
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    data = TrainData(x, y, x[:10], y[:10], mean=mean, std=std)
    rows = torch.randperm(50, generator=g)[:17]
    assert torch.equal(data.train_images(rows), normalize(x, mean, std)[rows])
    assert data.nbytes() == x.numel() + 50 * 8 + x[:10].numel() + 10 * 8


def test_training_on_uint8_equals_training_on_normalized_floats():
    """Normalizing per batch is the same arithmetic as normalizing whole splits up front."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (64, 3, 12, 12), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    mean, std = (0.4, 0.5, 0.45), (0.2, 0.25, 0.3)
    spec = TrainSpec(batch_size=32, epochs=2, augment="crop_flip", padding=2, channels_last="on")
    opt = OptimizerSpec(name="adam", lr=1e-3)
    states = []
    for data in (
        TrainData(x, y, x[:32], y[:32], mean=mean, std=std),
        TrainData(normalize(x, mean, std), y, normalize(x[:32], mean, std), y[:32]),
    ):
        m = build_model("conv2", num_classes=10, in_channels=3, image_size=12, seed=0)
        out = train(m, data, spec, opt, None, order_seed=5)
        states.append((out.history, m.state_dict()))
    (h1, s1), (h2, s2) = states
    assert h1 == h2
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


MEMORY_SCRIPT = r"""
import json, sys
from pathlib import Path
import torch
from transfer_bench.config import OptimizerSpec, TrainSpec, parse_suite
from transfer_bench.models import build_model
from transfer_bench.runs.context import Context
from transfer_bench.training import train

torch.set_num_threads(1)
path = Path(sys.argv[1])
suite = parse_suite({
    "name": "mem", "seeds": [0], "model": {"name": "lenet_300_100"},
    "input": {"size": 32, "channels": 3},
    "datasets": {"big": {"source": f"local:{path}"}},
    "train": {"batch_size": 128, "epochs": 1},
    "search": {"sources": ["big"], "levels": 1},
})
ctx = Context(suite=suite, suite_dir=path.parent / "res", device=torch.device("cpu"), cache_dir=None)
ds = ctx.dataset("big")

def kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])

Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) restarts from here
base = kib("VmRSS")
data = ctx.train_data("big")
model = build_model("lenet_300_100", num_classes=10, in_channels=3, image_size=32, seed=0)
spec = TrainSpec(batch_size=128, iterations=3, eval_every=1)
train(model, data, spec, OptimizerSpec(name="adam", lr=1e-3), None, order_seed=0)
print(json.dumps({
    "grown_kib": kib("VmHWM") - base,
    "uint8_kib": data.nbytes() // 1024,
    "shared": data.x_train.data_ptr() == ds.x_train.data_ptr(),
}))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_training_process_memory_stays_near_the_uint8_size(cifar_sized_npz: Path):
    """A 50,000-image 32x32x3 training split is 150 MiB as uint8 and 600 MiB as float32; training
    on it (an epoch's first steps and an evaluation of 10,000 test images) must grow the process
    by far less than the uint8 size, not by float copies of the splits and of every epoch."""
    path = cifar_sized_npz
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["shared"], "on the CPU the training data is the loaded dataset itself"
    assert got["uint8_kib"] > 170_000  # 180 MiB of images and labels
    assert got["grown_kib"] < 0.5 * got["uint8_kib"], got  # measured 0.24-0.37; before: 7.4


# ------------------------------------------------------- one GPU per pool worker (runner/pool.py)


def test_gpu_slots_spread_workers_over_gpus():
    assert gpu_slots("auto", ["0", "1"]) == ["0", "1"]
    assert gpu_slots("cuda", ["0", "1"], runs_per_gpu=2) == ["0", "1", "0", "1"]
    assert gpu_slots("cuda:1", ["4", "6"], runs_per_gpu=2) == ["6", "6"]
    assert gpu_slots("cpu", ["0", "1"]) is None
    assert gpu_slots("auto", []) is None
    with pytest.raises(TransferBenchError, match="--runs-per-gpu 0"):
        gpu_slots("cuda", ["0"], runs_per_gpu=0)


def test_gpu_workers_are_capped_at_the_slots():
    events = []
    assert check_workers(None, 10, cores=16, emit=events.append, gpu_slots=2) == 2
    assert check_workers(8, 10, cores=16, emit=events.append, gpu_slots=3) == 3
    assert any("3 GPU slot(s)" in e.message for e in events)
    assert check_workers(None, 20, cores=16, emit=events.append) == 16  # CPU: one per core


def _visible_after(seconds: float) -> tuple[int, str | None]:
    time.sleep(seconds)  # long enough that every worker gets a task
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")


def test_each_pool_worker_takes_its_own_gpu():
    ctx = process_context()
    manager = SyncManager(ctx=ctx)
    manager.start()
    try:
        slots = manager.Queue()
        for gpu in ("3", "5"):
            slots.put(gpu)
        env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
        with ProcessPoolExecutor(
            2,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(1, os.getpid(), env, os.getcwd(), slots),
        ) as pool:
            seen = list(pool.map(_visible_after, [0.5] * 4))
    finally:
        manager.shutdown()
    by_worker: dict[int, set] = {}
    for pid, visible in seen:
        by_worker.setdefault(pid, set()).add(visible)
    assert sorted(v for vs in by_worker.values() for v in vs) == ["3", "5"]  # one GPU each


SUITE = {
    "name": "tiny",
    "seeds": [0],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {"src": {"source": "synthetic:src", "num_classes": 4, "samples": 120}},
    "train": {"batch_size": 30, "epochs": 1},
    "search": {"sources": ["src"], "rate": 0.5, "levels": 1},
}


def test_pool_pins_its_worker_to_the_gpu_and_records_it(tmp_path: Path):
    """With GPUs visible (faked through the ``gpus`` seam) a worker runs with its GPU as
    ``CUDA_VISIBLE_DEVICES``, and every result records it (here the CPU trains: no real GPU)."""
    runs = plan(parse_suite(SUITE))
    execute_pool(SUITE, tmp_path / "res", runs, device="auto", cache_dir=None, gpus=["7"])
    results = list((tmp_path / "res").rglob("result.json"))
    assert results
    assert {json.loads(p.read_text())["machine"].get("visible_gpus") for p in results} == {"7"}


# ----------------------------------------------------- Ray reserves GPUs (runner/ray_executor.py)


def test_ray_reserves_a_gpu_per_run_when_the_cluster_has_them():
    assert gpus_per_run("auto", 0, cluster_gpus=4) == 1
    assert gpus_per_run("cuda", 0, cluster_gpus=1) == 1
    assert gpus_per_run("cuda:0", 0.5, cluster_gpus=1) == 0.5
    assert gpus_per_run("auto", 0, cluster_gpus=0) == 0  # a CPU cluster trains on CPUs
    assert gpus_per_run("cpu", 0, cluster_gpus=4) == 0
    with pytest.raises(TransferBenchError, match="reports no GPUs"):
        gpus_per_run("cuda", 0, cluster_gpus=0)
    with pytest.raises(TransferBenchError, match="has 1 GPU"):
        gpus_per_run("auto", 2, cluster_gpus=1)


@pytest.mark.slow  # starts Ray (~10 s)
def test_ray_task_of_an_auto_device_gets_a_gpu(tmp_path: Path):
    """Ray's own API: a local Ray declared with one (fake) GPU; the run's task reserves it, and Ray
    shows it to the task as CUDA_VISIBLE_DEVICES, which the result records."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install ray)")
    from transfer_bench.runner.ray_executor import execute_ray

    ray.init(num_cpus=1, num_gpus=1, include_dashboard=False)
    try:
        assert ray.cluster_resources().get("GPU") == 1
        events = []
        execute_ray(
            SUITE,
            tmp_path / "res",
            plan(parse_suite(SUITE)),
            device="auto",
            on_event=events.append,
        )
    finally:
        ray.shutdown()
    assert any(e.kind == "info" and "reserves 1" in e.message for e in events)
    results = list((tmp_path / "res").rglob("result.json"))
    assert {json.loads(p.read_text())["machine"].get("visible_gpus") for p in results} == {"0"}


# ------------------------------------ optimizer state takes its parameter's layout (training/optim)


def _resnet():
    return build_model(
        "resnet20", num_classes=10, in_channels=3, image_size=8, seed=1, options={"width": 4}
    )


def test_adam_state_takes_the_parameter_layout_on_load():
    model = _resnet().to(memory_format=torch.channels_last)
    params = list(model.parameters())
    opt = build_optimizer(params, OptimizerSpec(name="adam", lr=1e-3))
    nchw = {
        i: {
            "step": torch.tensor(3.0),
            "exp_avg": torch.randn(p.shape),
            "exp_avg_sq": torch.rand(p.shape),
        }
        for i, p in enumerate(params)
    }
    state = {"state": copy.deepcopy(nchw), "param_groups": opt.state_dict()["param_groups"]}
    opt.load_state_dict(state)
    for i, p in enumerate(params):
        for key in ("exp_avg", "exp_avg_sq"):
            assert opt.state[p][key].stride() == p.stride()
            assert torch.equal(opt.state[p][key], nchw[i][key])  # same values, new layout


def test_adam_resumed_across_layouts_equals_a_resume_in_the_same_layout():
    """A checkpoint written in NCHW (e.g. on a CPU, where ``channels_last: auto`` is off) and
    resumed channels_last (e.g. on a GPU) must continue exactly as the same checkpoint with its
    state already in channels_last. Without the fix fused Adam paired weights with other weights'
    moments (max difference ~2e-2)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 8, 8, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    data = TrainData(x, y, x[:16], y[:16])
    opt = OptimizerSpec(name="adam", lr=1e-3)
    saved: dict = {}

    class Stop(Exception):
        pass

    def keep(state: dict) -> None:
        if state["iteration"] == 4:
            saved.update(copy.deepcopy(state))
            raise Stop

    with pytest.raises(Stop):
        train(
            _resnet(),
            data,
            TrainSpec(batch_size=16, epochs=3, channels_last="off"),
            opt,
            None,
            order_seed=3,
            on_epoch=keep,
            checkpoint_every=0,
        )
    as_cl = copy.deepcopy(saved)
    for st in as_cl["optimizer"]["state"].values():
        for k, v in st.items():
            if v.dim() == 4:
                st[k] = v.contiguous(memory_format=torch.channels_last)
    spec = TrainSpec(batch_size=16, epochs=3, channels_last="on")
    a, b = _resnet(), _resnet()
    train(a, data, spec, opt, None, order_seed=3, resume=copy.deepcopy(saved))
    train(b, data, spec, opt, None, order_seed=3, resume=as_cl)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_masks_take_the_parameter_layout():
    from transfer_bench.training.loop import MaskEnforcer

    model = _resnet().to(memory_format=torch.channels_last)
    masks = {n: torch.rand(p.shape) < 0.5 for n, p in model.named_parameters() if p.dim() == 4}
    enforcer = MaskEnforcer(model, masks)
    for p, m in zip(enforcer.params, enforcer.masks, strict=True):
        assert m.stride() == p.stride() and m.dtype == p.dtype


# -------------------------------------------------------------- CUDA determinism (devices.py)

FLAGS_SCRIPT = r"""
import json, os, torch
from transfer_bench.devices import configure_determinism, resolve_device
before = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
resolve_device("cpu")  # the CPU is left alone
untouched = not torch.are_deterministic_algorithms_enabled()
mode = configure_determinism()
print(json.dumps({
    "before": before, "untouched": untouched, "mode": mode,
    "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    "algorithms": torch.are_deterministic_algorithms_enabled(),
    "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
    "cudnn_deterministic": torch.backends.cudnn.deterministic,
    "cudnn_benchmark": torch.backends.cudnn.benchmark,
}))
"""


@pytest.mark.parametrize("mode", ["", "warn", "off"])
def test_cuda_determinism_flags_in_a_fresh_process(mode: str):
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    env["TRANSFER_BENCH_DETERMINISTIC"] = mode
    out = subprocess.run(
        [sys.executable, "-c", FLAGS_SCRIPT], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    assert got["before"] is None and got["untouched"]
    if mode == "off":
        assert got["mode"] == "off" and not got["algorithms"] and got["cudnn_benchmark"]
        return
    assert got["cublas"] == CUBLAS_WORKSPACE
    assert got["algorithms"] and got["cudnn_deterministic"] and not got["cudnn_benchmark"]
    assert got["warn_only"] == (mode == "warn")


def test_global_pooling_backward_is_a_mean_not_adaptive_pooling():
    """``adaptive_avg_pool2d(x, 1)`` (every built-in conv net's last pooling) runs as a mean, whose
    CUDA backward is deterministic; ``AdaptiveAvgPool2DBackward`` (which has none) is not used."""
    x = torch.randn(2, 4, 7, 7, requires_grad=True)
    assert type(F.adaptive_avg_pool2d(x, 1).grad_fn).__name__.startswith("MeanBackward")
    assert type(F.adaptive_avg_pool2d(x, 2).grad_fn).__name__.startswith("AdaptiveAvgPool2D")


def test_nondeterministic_op_is_named():
    err = RuntimeError(
        "adaptive_max_pool2d_backward_cuda does not have a deterministic implementation, but you "
        "set 'torch.use_deterministic_algorithms(True)'."
    )
    assert nondeterministic_op(err) == "adaptive_max_pool2d_backward_cuda"
    assert nondeterministic_op(RuntimeError("out of memory")) is None


# ------------------------------------------------ bf16 only where native (training/precision.py)


def test_bf16_only_on_gpus_with_native_bf16():
    assert cuda_native_bf16((9, 0)) and cuda_native_bf16((8, 0))
    assert not cuda_native_bf16((7, 0)) and not cuda_native_bf16((7, 5))  # V100, T4
    assert not cpu_native_bf16(frozenset({"avx2", "avx512f"}), isa_cap="")
    assert cpu_native_bf16(frozenset({"avx512_bf16"}), isa_cap="")
    assert not cpu_native_bf16(frozenset({"avx512_bf16"}), isa_cap="AVX2")
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"


def test_precision_auto_on_a_gpu_without_native_bf16_is_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 0))
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"


# ------------------------------------------------------------------- device names (devices.py)


@pytest.mark.parametrize(
    ("name", "says"),
    [("gpu", "did you mean 'cuda'"), ("cuda:x", "use auto, cpu, cuda"), ("tpu", "not a device")],
)
def test_bad_device_is_one_line(name: str, says: str):
    with pytest.raises(TransferBenchError, match=says) as err:
        check_device(name)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_cuda_without_a_gpu_is_one_line():
    with pytest.raises(TransferBenchError, match="no CUDA GPU is visible here") as err:
        check_device("cuda")
    assert "--device cpu" in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------- plan on GPUs (runner/calibrate.py, estimate.py)


def test_calibration_key_names_the_gpu_model_and_the_training_settings(monkeypatch):
    from transfer_bench.runner import calibrate
    from transfer_bench.runner.calibrate import Workload

    w = Workload("vgg19", (), 10, 3, 32, 128, (("lr", 0.1), ("name", "sgd")))
    names = iter(["cuda (NVIDIA H200)", "cuda (Tesla V100-SXM2-16GB)"])
    monkeypatch.setattr(
        calibrate, "fingerprint", lambda device: {"cpu": "x", "cores": 8, "device": next(names)}
    )
    assert calibrate._key(w, "cuda", 1, 1) != calibrate._key(w, "cuda", 1, 1)
    monkeypatch.setattr(calibrate, "fingerprint", lambda device: {"device": "cuda (A100)"})
    keys = {
        calibrate._key(w, "cuda", 1, 1),
        calibrate._key(dataclasses.replace(w, precision="bf16"), "cuda", 1, 1),
        calibrate._key(dataclasses.replace(w, channels_last="on"), "cuda", 1, 1),
    }
    assert len(keys) == 3


def test_wall_estimate_counts_gpu_slots(monkeypatch, tmp_path: Path):
    from transfer_bench.runner import estimate
    from transfer_bench.runner.calibrate import StepCost
    from transfer_bench.runs.context import Context

    suite = parse_suite({**SUITE, "seeds": list(range(8))})
    ctx = Context(suite, tmp_path / "res", torch.device("cuda"), None)
    monkeypatch.setattr(estimate, "visible_gpus", lambda: ["0", "1", "2", "3"])
    monkeypatch.setattr(
        estimate, "calibrated", lambda ws, *a, **k: {w: StepCost(0.01, 1e-5, 0.0) for w in ws}
    )
    runs = plan(suite)
    local = estimate.wall_estimate(ctx, runs, "auto", None)
    assert (local.executor, local.workers) == ("local", 4)  # one worker per GPU
    assert estimate.wall_estimate(ctx, runs, "local", None, runs_per_gpu=2).workers == 8
    assert estimate.wall_estimate(ctx, runs, "local", 16).workers == 4  # capped at the slots
    assert estimate.wall_estimate(ctx, runs, "ray", None).workers == 4
    monkeypatch.setattr(estimate, "visible_gpus", lambda: ["0"])
    assert estimate.wall_estimate(ctx, runs, "auto", None).executor == "sequential"


def test_an_op_without_a_deterministic_kernel_is_one_line(monkeypatch):
    """torch raises deep inside a training for such an op under deterministic CUDA settings; the
    loop turns it into one line naming the op and the switch."""
    from transfer_bench.training import loop

    def fail(*args, **kwargs):
        raise RuntimeError(
            "adaptive_max_pool2d_backward_cuda does not have a deterministic implementation, but "
            "you set 'torch.use_deterministic_algorithms(True)'. You can turn off ..."
        )

    monkeypatch.setattr(loop.F, "cross_entropy", fail)
    x = torch.randn(8, 1, 4, 4)
    data = TrainData(x, torch.zeros(8, dtype=torch.long), x, torch.zeros(8, dtype=torch.long))
    model = build_model("lenet_300_100", num_classes=2, in_channels=1, image_size=4, seed=0)
    with pytest.raises(TransferBenchError, match="adaptive_max_pool2d_backward_cuda has no") as e:
        train(model, data, TrainSpec(batch_size=4, epochs=1), OptimizerSpec(name="sgd", lr=0.1),
              None, order_seed=0)  # fmt: skip
    assert "TRANSFER_BENCH_DETERMINISTIC=warn" in str(e.value) and "\n" not in str(e.value)


def test_augmented_batches_reach_the_model_in_its_layout():
    """The batch a channels_last model gets is channels_last after augmentation (whose gathers
    return the default layout), so no layout copy happens inside the first convolution."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 4, (32,), generator=g)
    data = TrainData(x, y, x[:8], y[:8], mean=(0.5,) * 3, std=(0.25,) * 3)
    model = build_model("conv2", num_classes=4, in_channels=3, image_size=8, seed=0)
    seen = []
    model.register_forward_pre_hook(
        lambda m, args: (
            seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
            if m.training
            else None
        )
    )
    spec = TrainSpec(batch_size=16, epochs=1, augment="crop_flip", padding=2, channels_last="on")
    train(model, data, spec, OptimizerSpec(name="sgd", lr=0.1), None, order_seed=0)
    assert seen and all(seen)

"""The toolkit on a CUDA GPU: every model family trains deterministically, CPU and GPU agree within
stated tolerances, data lives on the GPU as uint8, a suite runs and passes its determinism check,
and pool workers on one GPU give the sequential results.

Skipped without a GPU (CI has none); ``python benchmarks/gpu_check.py`` runs these with the GPU
benchmarks in one go, and ``transfer-bench selftest --device cuda`` should too. Measured values are
printed (``pytest -s``) so that a run on new hardware documents itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from transfer_bench.config import OptimizerSpec, TrainSpec, parse_suite
from transfer_bench.devices import resolve_device
from transfer_bench.models import build_model
from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import plan
from transfer_bench.training import TrainData, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

#: (model, options, input channels, image size): every built-in family, plus one timm model
FAMILIES = [
    ("lenet_300_100", {}, 1, 28),
    ("conv2", {}, 3, 32),
    ("conv4", {}, 3, 32),
    ("conv6", {}, 3, 32),
    ("vgg11", {}, 3, 32),
    ("vgg19", {}, 3, 32),
    ("resnet20", {}, 3, 32),
    ("resnet18", {}, 3, 32),
    ("resnet50", {}, 3, 32),
    ("timm:resnet18", {}, 3, 32),
]


def _data(device: str, channels: int, size: int, n: int = 256) -> TrainData:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    stats = (0.5,) * channels, (0.25,) * channels
    return TrainData(x.to(device), y.to(device), x[:64].to(device), y[:64].to(device), *stats)


def _train(name, options, channels, size, device, **spec) -> tuple[dict, list]:
    dev = resolve_device(device)
    model = build_model(
        name, num_classes=10, in_channels=channels, image_size=size, seed=0, options=options
    ).to(dev)
    g = torch.Generator().manual_seed(1)
    params = dict(model.named_parameters())
    masks = {k: torch.rand(params[k].shape, generator=g) < 0.2 for k in model.prunable_names}
    out = train(
        model,
        _data(device, channels, size),
        TrainSpec(batch_size=64, epochs=2, augment="crop_flip", padding=4, **spec),
        OptimizerSpec(name="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4),
        masks,
        order_seed=3,
    )
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, out.history


@pytest.mark.parametrize(("name", "options", "channels", "size"), FAMILIES)
def test_every_family_trains_bit_identically_twice_on_cuda(name, options, channels, size):
    """Deterministic settings (devices.configure_determinism) hold for every model: no op without
    a deterministic kernel, and two trainings give the same bits (bf16 and channels_last, the
    CUDA defaults)."""
    s1, h1 = _train(name, options, channels, size, "cuda")
    s2, h2 = _train(name, options, channels, size, "cuda")
    assert torch.are_deterministic_algorithms_enabled()
    assert h1 == h2
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    print(f"{name}: test loss {h1[-1]['test_loss']:.4f}")


@pytest.mark.parametrize(
    ("name", "precision", "tolerance"),
    [
        ("lenet_300_100", "fp32", 1e-4),  # plain matmuls in fp32 on both
        ("conv4", "fp32", 2e-2),  # cuDNN convolutions take TF32 by default
        ("conv4", "bf16", 5e-2),
    ],
)
def test_cuda_agrees_with_the_cpu(name, precision, tolerance):
    """Test losses after two epochs, GPU vs CPU (different kernels, so not bit-identical)."""
    channels, size = (1, 28) if name == "lenet_300_100" else (3, 32)
    _, cpu = _train(name, {}, channels, size, "cpu", precision="fp32", channels_last="off")
    _, gpu = _train(name, {}, channels, size, "cuda", precision=precision)
    diff = abs(cpu[-1]["test_loss"] - gpu[-1]["test_loss"])
    print(f"{name} {precision}: |test loss cpu - cuda| = {diff:.2e} (tolerance {tolerance})")
    assert diff < tolerance


def test_data_lives_on_the_gpu_once_as_uint8(tmp_path: Path, cifar_sized_npz: Path):
    path = cifar_sized_npz
    suite = parse_suite(
        {
            "name": "mem",
            "seeds": [0],
            "model": {"name": "vgg19"},
            "input": {"size": 32, "channels": 3},
            "datasets": {"big": {"source": f"local:{path}"}},
            "train": {"batch_size": 512, "epochs": 1},
            "search": {"sources": ["big"], "levels": 1},
        }
    )
    ctx = Context(suite, tmp_path / "res", resolve_device("cuda"), None)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    data = ctx.train_data("big")
    ds = ctx.dataset("big")
    assert data.x_train.is_cuda and data.x_train.dtype == torch.uint8
    assert ds.x_train.data_ptr() == data.x_train.data_ptr()  # no second copy
    held = torch.cuda.memory_allocated() - before
    assert held <= data.nbytes() * 1.01
    model = build_model("vgg19", num_classes=10, in_channels=3, image_size=32, seed=0).cuda()
    train(model, data, TrainSpec(batch_size=512, iterations=10), SGD, None, order_seed=0)
    peak = torch.cuda.max_memory_allocated() - before
    print(
        f"uint8 data {data.nbytes() / 2**20:.0f} MiB; peak with VGG19 training {peak / 2**20:.0f} MiB"
    )
    assert peak < data.nbytes() + 4 * 2**30  # data once, plus the model's working memory


SGD = OptimizerSpec(name="sgd", lr=0.01, momentum=0.9)

SUITE = {
    "name": "cuda-tiny",
    "seeds": [0, 1],
    "model": {"name": "conv2"},
    "input": {"size": 16, "channels": 3},
    "datasets": {
        "src": {"source": "synthetic:src", "num_classes": 4, "samples": 240},
        "tgt": {"source": "synthetic:tgt", "num_classes": 5, "samples": 200},
    },
    "train": {"batch_size": 30, "epochs": 2, "augment": "crop_flip", "padding": 2},
    "search": {"sources": ["src"], "rate": 0.5, "head_rate": 0.2, "levels": 2},
    "transfer": {"targets": ["tgt"], "controls": ["random_reinit", "dense"]},
}


def _metrics(suite_dir: Path) -> dict:
    out = {}
    for p in sorted(suite_dir.rglob("result.json")):
        r = json.loads(p.read_text())
        for volatile in ("seconds", "machine"):
            r.pop(volatile, None)
        out[str(p.relative_to(suite_dir))] = r
    return out


def test_suite_runs_on_cuda_and_reproduces_itself(tmp_path: Path):
    from transfer_bench.api import prepare, run_prepared
    from transfer_bench.runner.determinism import check_determinism

    p = prepare(SUITE, tmp_path / "res", device="cuda", cache_dir=tmp_path / "cache")
    summary = run_prepared(p, executor="sequential", report=True)
    assert summary.trained and summary.report is not None
    results = list(p.ctx.suite_dir.rglob("result.json"))
    machine = json.loads(results[0].read_text())["machine"]
    assert machine["device"].startswith("cuda (")
    precisions = {json.loads(r.read_text()).get("precision") for r in results}
    print(f"machine: {machine['device']}; precisions recorded: {precisions}")
    check = check_determinism(p.ctx, p.runs)
    assert check.ok, check.differences


def test_pool_workers_on_one_gpu_give_the_sequential_results(tmp_path: Path):
    from transfer_bench.runner.execute import execute
    from transfer_bench.runner.pool import execute_pool

    suite = parse_suite(SUITE)
    runs = plan(suite)
    seq = Context(suite, tmp_path / "seq" / suite.name, resolve_device("cuda"), None)
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))  # the pool workers' threads
    try:
        execute(seq, runs)
    finally:
        torch.set_num_threads(before)
    events = []
    execute_pool(
        SUITE,
        tmp_path / "pool" / suite.name,
        runs,
        device="cuda",
        cache_dir=None,
        runs_per_gpu=2,
        on_event=events.append,
    )
    assert any(e.kind == "info" and "2 worker(s) on GPU(s)" in e.message for e in events)
    assert _metrics(tmp_path / "pool" / suite.name) == _metrics(seq.suite_dir)

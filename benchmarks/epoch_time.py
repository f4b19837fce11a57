"""Epoch time of conv4, resnet20 and vgg19, and the toolkit loop vs a plain DataLoader loop.

For each model: one epoch over N random 32x32x3 samples with the toolkit's ``train`` (in-memory
tensors, masks at 20% density, channels_last for conv nets) on the chosen device; and, for LeNet and
Conv-4, the same work with a textbook PyTorch loop (``DataLoader(TensorDataset)``, default Adam/SGD,
masks re-applied by a forward pre-hook as ``torch.nn.utils.prune`` does), interleaved round by
round; the paired median ratio plain / toolkit is reported (goal >= 1.5 on CPU). Writes JSON.

Usage: python benchmarks/epoch_time.py [--device cpu|cuda] [--samples N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.devices import resolve_device
from transfer_bench.models import build_model
from transfer_bench.training import TrainData, train


def _data(n: int, c: int, size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, c, size, size, generator=g).to(device), torch.randint(
        0, 10, (n,), generator=g
    ).to(device)


def _masks(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    params = dict(model.named_parameters())
    return {
        k: (torch.rand(params[k].shape, generator=g) < 0.2).to(params[k].device)
        for k in model.prunable_names
    }


def toolkit_epoch(name, x, y, batch, opt, device) -> float:
    model = build_model(
        name, num_classes=10, in_channels=x.shape[1], image_size=x.shape[-1], seed=0
    ).to(device)
    data = TrainData(x, y, x[:batch], y[:batch])
    spec = TrainSpec(batch_size=batch, epochs=1, eval_batch_size=batch)
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    train(model, data, spec, opt, _masks(model), order_seed=0)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def plain_epoch(name, x, y, batch, opt, device) -> float:
    model = build_model(
        name, num_classes=10, in_channels=x.shape[1], image_size=x.shape[-1], seed=0
    ).to(device)
    masks = _masks(model)
    params = dict(model.named_parameters())
    import torch.nn.utils.prune as prune

    modules = dict(model.named_modules())
    for pname, m in masks.items():
        mod, attr = pname.rsplit(".", 1)
        prune.custom_from_mask(modules[mod], attr, m)
    del params
    if opt.name == "adam":
        o = torch.optim.Adam(model.parameters(), lr=opt.lr)
    else:
        o = torch.optim.SGD(model.parameters(), lr=opt.lr, momentum=opt.momentum)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    t = time.perf_counter()
    model.train()
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        o.zero_grad()
        loss.backward()
        o.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--samples", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/epoch_time.json"))
    args = ap.parse_args()
    dev = args.device
    resolve_device(dev)  # a GPU gets the settings runs use (deterministic kernels), both loops
    adam = OptimizerSpec(name="adam", lr=1.2e-3)
    sgd = OptimizerSpec(name="sgd", lr=0.05, momentum=0.9)
    rows = []
    cases = [
        ("lenet_300_100", 1, 28, 60, adam, True),
        ("conv4", 3, 32, 128, sgd, True),
        ("resnet20", 3, 32, 128, sgd, False),
        ("vgg19", 3, 32, 128, sgd, False),
    ]
    for name, c, size, batch, opt, compare in cases:
        n = args.samples if name != "lenet_300_100" else 6000
        x, y = _data(n, c, size, dev)
        toolkit_epoch(name, x[: batch * 2], y[: batch * 2], batch, opt, dev)  # warm-up
        tk, ratios = [], []
        for _ in range(args.rounds):
            a = toolkit_epoch(name, x, y, batch, opt, dev)
            tk.append(a)
            if compare:
                b = plain_epoch(name, x, y, batch, opt, dev)
                ratios.append(b / a)
        row = {
            "model": name,
            "device": dev,
            "samples": n,
            "batch": batch,
            "toolkit_epoch_s": statistics.median(tk),
            "toolkit_s_per_10k": statistics.median(tk) * 10_000 / n,
            "plain_over_toolkit_paired_median": statistics.median(ratios) if ratios else None,
        }
        rows.append(row)
        ratio = (
            f", plain DataLoader loop / toolkit = {row['plain_over_toolkit_paired_median']:.2f}"
            if ratios
            else ""
        )
        print(f"{name:>14} on {dev}: {row['toolkit_s_per_10k']:.2f} s per 10k samples{ratio}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"torch": torch.__version__, "threads": torch.get_num_threads(), "results": rows},
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

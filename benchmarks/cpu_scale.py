"""Epoch time of the narrow models considered for the natural-image ``cpu`` scales.

For each candidate (name, options) it trains one short epoch of random 32x32x3 images with the
toolkit's loop (SGD with momentum, batch 128, masks at 20% density, the real training path) and
evaluates once, with ``--threads`` torch threads (1 = what each ``--executor local`` worker gets on a
2-core machine). Prints seconds per 10,000 training images and per 10,000 evaluated images, the
parameter count and forward MFLOPs per image, and writes JSON. Used to size the ``cpu`` scales of
``suites/morcos2019-*.yaml`` and the natural-image claims.

Usage: python benchmarks/cpu_scale.py [--threads 1] [--samples 1280] [--rounds 2] [--models ...]
       [--channels-last off|on|both]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.models import build_model, count_flops
from transfer_bench.training import TrainData, train

LAYOUT = {"off": "NCHW", "on": "channels_last"}  # train.channels_last -> the layout's name
CANDIDATES = (
    "resnet20:width=4",
    "resnet20:width=8",
    "resnet20:width=16",
    "vgg11:width=8",
    "vgg11:width=16",
    "vgg19:width=8",
    "vgg19:width=16",
    "resnet18:width=8",
    "resnet50:width=4",
    "resnet50:width=8",
)


def parse(candidate: str) -> tuple[str, dict[str, int]]:
    """``"vgg19:width=8"`` -> ``("vgg19", {"width": 8})``."""
    name, _, opts = candidate.partition(":")
    options = {}
    for part in filter(None, opts.split(",")):
        key, _, value = part.partition("=")
        options[key] = int(value)
    return name, options


def epoch_seconds(
    name: str, options: dict, x, y, batch: int, channels_last: str = "off"
) -> tuple[float, float]:
    """Seconds for one training epoch over ``x`` and for one evaluation pass over ``x``."""
    model = build_model(name, num_classes=10, in_channels=3, image_size=32, seed=0, options=options)
    g = torch.Generator().manual_seed(1)
    params = dict(model.named_parameters())
    masks = {k: torch.rand(params[k].shape, generator=g) < 0.2 for k in model.prunable_names}
    sgd = OptimizerSpec(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4)
    spec = TrainSpec(
        batch_size=batch,
        epochs=1,
        eval_batch_size=1000,
        eval_every=1000,
        channels_last=channels_last,
    )
    t = time.perf_counter()
    train(model, TrainData(x, y, x[:batch], y[:batch]), spec, sgd, masks, order_seed=0)
    train_s = time.perf_counter() - t
    model.eval()
    t = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            model(x[i : i + 1000])
    return train_s, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=1280)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=list(CANDIDATES))
    ap.add_argument(
        "--channels-last",
        choices=["off", "on", "both"],
        default="off",
        help="layout (off = NCHW, the CPU default); both: interleaved, with NCHW / channels_last",
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/cpu_scale.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.samples, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.samples,), generator=g)
    rows = []
    for cand in args.models:
        name, options = parse(cand)
        model = build_model(
            name, num_classes=10, in_channels=3, image_size=32, seed=0, options=options
        )
        n_params = sum(p.numel() for p in model.parameters())
        mflops = count_flops(model, (3, 32, 32)) / 1e6
        layouts = ["off", "on"] if args.channels_last == "both" else [args.channels_last]
        for cl in layouts:
            epoch_seconds(name, options, x[:256], y[:256], 128, cl)  # warm-up
        runs = {cl: [] for cl in layouts}
        for _ in range(args.rounds):  # interleaved: the host's drift hits both layouts alike
            for cl in layouts:
                runs[cl].append(epoch_seconds(name, options, x, y, 128, cl))
        row = {"model": cand, "params": n_params, "forward_mflops": round(mflops, 2)}
        for cl in layouts:
            tr = statistics.median(r[0] for r in runs[cl]) * 10_000 / args.samples
            ev = statistics.median(r[1] for r in runs[cl]) * 10_000 / args.samples
            suffix = "" if len(layouts) == 1 else f"_{LAYOUT[cl].lower()}"
            row[f"train_s_per_10k{suffix}"] = round(tr, 2)
            row[f"eval_s_per_10k{suffix}"] = round(ev, 2)
            print(
                f"{cand:>18} {LAYOUT[cl]:>13}: "
                f"{n_params / 1e6:6.3f}M params, {mflops:7.1f} MFLOP/img fwd, "
                f"train {tr:6.1f} s / 10k imgs, eval {ev:5.1f} s / 10k imgs "
                f"({args.threads} thread{'s' if args.threads > 1 else ''})",
                flush=True,
            )
        if len(layouts) == 2:
            ratio = row["train_s_per_10k_nchw"] / row["train_s_per_10k_channels_last"]
            row["train_nchw_over_channels_last"] = round(ratio, 3)
            print(f"{cand:>18}: training NCHW / channels_last {ratio:.2f}", flush=True)
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "threads": args.threads,
        "samples": args.samples,
        "channels_last": args.channels_last,
    }
    args.out.write_text(json.dumps({**meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""CPU convolution options not covered elsewhere: oneDNN on/off for training, BN folded for evaluation.

For each ``cpu``-scale model (32x32x3 images, 1 thread = what a pool worker gets on 2 cores):

- training: one epoch of ``--samples`` random images with the toolkit's ``train()`` (SGD with
  momentum, batch 128, NCHW), with oneDNN (``torch.backends.mkldnn``, the default) and without it
  (ATen's own convolutions);
- evaluation of 1,000 images in ``eval()`` mode: as trained (convolution, then BatchNorm) and with
  each BatchNorm folded into the convolution before it (``torch.fx.experimental.optimization.fuse``),
  in NCHW and channels_last, with the largest logit difference and the number of changed
  predictions (folding changes the arithmetic, so results move in their last bits).

Rounds are interleaved and medians reported; writes ``benchmarks/out/conv_options.json``.

Usage: python benchmarks/conv_options.py [--rounds 3] [--samples 1280] [--models ...]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
import warnings
from pathlib import Path

import torch
from torch.fx.experimental.optimization import fuse

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.models import build_model
from transfer_bench.training import TrainData, train

# torch.backends.mkldnn.flags() also sets oneDNN's TF32 flag, which warns on a CPU-only build
warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")

MODELS = ("resnet20:8", "vgg19:8", "resnet18:8")


def model_of(cand: str) -> torch.nn.Module:
    name, _, width = cand.partition(":")
    return build_model(
        name, num_classes=10, in_channels=3, image_size=32, seed=0, options={"width": int(width)}
    )


SPEC = TrainSpec(batch_size=128, epochs=1, eval_every=1000, channels_last="off")
SGD = OptimizerSpec(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4)


def train_seconds(cand: str, x, y, mkldnn: bool) -> float:
    model = model_of(cand)
    with torch.backends.mkldnn.flags(enabled=mkldnn):
        t = time.perf_counter()
        train(model, TrainData(x, y, x[:128], y[:128]), SPEC, SGD, None, order_seed=0)
        return time.perf_counter() - t


def eval_seconds(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    with torch.no_grad():
        t = time.perf_counter()
        out = model(x)
        return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=1280)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/conv_options.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.samples, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.samples,), generator=g)
    xe = torch.randn(1000, 3, 32, 32, generator=g)
    rows = []
    for cand in args.models:
        # a trained model, so BatchNorm's running statistics are not the identity
        model = model_of(cand)
        train(model, TrainData(x, y, x[:128], y[:128]), SPEC, SGD, None, order_seed=1)
        model.eval()
        model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        variants = {
            "bn": model,
            "folded": fuse(model),
            "bn_cl": model_cl,
            "folded_cl": fuse(model_cl).to(memory_format=torch.channels_last),
        }
        xe_cl = xe.contiguous(memory_format=torch.channels_last)
        inputs = {k: xe_cl if k.endswith("_cl") else xe for k in variants}
        train_s = {True: [], False: []}
        eval_s = {k: [] for k in variants}
        outs = {}
        train_seconds(cand, x[:256], y[:256], True)  # warm-up
        train_seconds(cand, x[:256], y[:256], False)
        for _ in range(args.rounds):
            for flag in (True, False):
                train_s[flag].append(train_seconds(cand, x, y, flag))
            for k, m in variants.items():
                s, outs[k] = eval_seconds(m, inputs[k])
                eval_s[k].append(s)
        per10k = 10_000 / args.samples
        tr_on = statistics.median(train_s[True]) * per10k
        tr_off = statistics.median(train_s[False]) * per10k
        ev = {k: statistics.median(v) * 10 for k, v in eval_s.items()}  # 1,000 images -> 10k
        ref = outs["bn"]
        diff = {k: float((o - ref).abs().max()) for k, o in outs.items()}
        changed = {k: int((o.argmax(1) != ref.argmax(1)).sum()) for k, o in outs.items()}
        row = {
            "model": cand,
            "train_s_per_10k_onednn": round(tr_on, 2),
            "train_s_per_10k_without_onednn": round(tr_off, 2),
            "train_without_over_with_onednn": round(tr_off / tr_on, 3),
            "eval_s_per_10k": {k: round(v, 2) for k, v in ev.items()},
            "eval_bn_over_folded_nchw": round(ev["bn"] / ev["folded"], 3),
            "eval_bn_over_folded_channels_last": round(ev["bn_cl"] / ev["folded_cl"], 3),
            "max_logit_difference": diff,
            "changed_predictions_of_1000": changed,
        }
        rows.append(row)
        print(
            f"{cand:>11}: training {tr_on:5.1f} s/10k with oneDNN, {tr_off:5.1f} without "
            f"({tr_off / tr_on:.2f}x); evaluation s/10k: BN {ev['bn']:.2f}, folded "
            f"{ev['folded']:.2f} ({row['eval_bn_over_folded_nchw']:.2f}x), channels_last BN "
            f"{ev['bn_cl']:.2f}, folded {ev['folded_cl']:.2f} "
            f"({row['eval_bn_over_folded_channels_last']:.2f}x); folding moved logits by "
            f"<= {diff['folded']:.1e}, changed {changed['folded']} of 1000 predictions",
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": 1, "samples": args.samples}
    args.out.write_text(json.dumps({**meta, "results": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

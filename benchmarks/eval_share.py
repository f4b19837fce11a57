"""Evaluation's share of a training at the natural-image claims' settings, by test-set size.

Trains VGG19 at width 8 as the natural-image claims and ``cpu`` scales do (4,000 CIFAR-10 training
images, batch 64, 8 epochs, SGD lr 0.05 cosine, crop + flip) with a one-batch test set, so the
training is timed without evaluation, and times the toolkit's ``evaluate`` (batches of 1,000, the
default ``eval_batch_size``) on 4,000 and on all 10,000 test images, interleaved, ``--rounds``
times each. Prints each test size's seconds per pass and its share of a training that evaluates
``--passes`` times (2: 8 epochs with ``eval_every: 4``). One torch thread is what each worker of
``--executor local --workers 2`` gets on 2 cores.

Needs ``catalog:cifar10`` (the hub, or a local copy via ``TRANSFER_BENCH_HF_MIRROR``).
``--model resnet18 --epochs 6`` measures the ResNet suite's ``cpu`` scale (6 epochs, eval_every 3).

Usage: python benchmarks/eval_share.py [--model vgg19] [--epochs 8] [--threads 1] [--rounds 3]
       [--passes 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from transfer_bench.api import default_cache_dir
from transfer_bench.config import DatasetSpec, InputSpec, OptimizerSpec, TrainSpec
from transfer_bench.data import load_dataset
from transfer_bench.models import build_model
from transfer_bench.training import TrainData, train
from transfer_bench.training.loop import evaluate

SIZES = (4000, 10000)
SGD = OptimizerSpec(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vgg19", help="built at width 8")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--passes", type=int, default=2)
    ap.add_argument("--out", type=Path, help="default: benchmarks/out/eval_share-MODEL.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cifar = DatasetSpec(source="catalog:cifar10", train_size=4000)
    ds = load_dataset(
        cifar, InputSpec(size=32, channels=3), split_seed=0, cache_dir=default_cache_dir()
    )
    assert len(ds.y_test) >= max(SIZES), f"test split has {len(ds.y_test)} images"
    data = TrainData(
        ds.x_train, ds.y_train, ds.x_test[:64], ds.y_test[:64], mean=ds.mean, std=ds.std
    )
    model = build_model(
        args.model, num_classes=10, in_channels=3, image_size=32, seed=0, options={"width": 8}
    )
    spec = TrainSpec(
        batch_size=64, epochs=args.epochs, schedule="cosine", augment="crop_flip", padding=4
    )
    evaluate(model, ds.x_test[:1000], ds.y_test[:1000], 1000, data.prepare)  # warm-up
    t_train = train(model, data, spec, SGD, None, order_seed=0).seconds
    evals: dict[int, list[float]] = {n: [] for n in SIZES}
    for _ in range(args.rounds):
        for n in SIZES:  # interleaved, so the host's drift hits both sizes alike
            t = time.perf_counter()
            evaluate(model, ds.x_test[:n], ds.y_test[:n], 1000, data.prepare)
            evals[n].append(time.perf_counter() - t)
    rows = {}
    for n in SIZES:
        e = statistics.median(evals[n])
        share = args.passes * e / (t_train + args.passes * e)
        rows[n] = {"eval_s": round(e, 3), "share": round(share, 4), "all_s": evals[n]}
        print(
            f"test {n:>6,} images: {e:5.2f} s per pass, {args.passes} passes = "
            f"{100 * share:4.1f}% of a training ({t_train:.1f} s without evaluation)",
            flush=True,
        )
    ratio = (t_train + args.passes * rows[10000]["eval_s"]) / (
        t_train + args.passes * rows[4000]["eval_s"]
    )
    print(f"a training with 10,000 test images takes {ratio:.3f}x one with 4,000")
    out = args.out or Path(f"benchmarks/out/eval_share-{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "model": f"{args.model} width 8",
        "epochs": args.epochs,
        "torch": torch.__version__,
        "threads": args.threads,
        "passes": args.passes,
    }
    result = {**meta, "train_s": t_train, "sizes": rows, "ratio_10k_over_4k": ratio}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

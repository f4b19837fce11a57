"""Peak memory and epoch time per model at the data sizes of the Morcos et al. suites.

For VGG19 and ResNet-50 at full width (the ``morcos2019-*`` suites: 32x32x3, batch 512, SGD) on
the chosen device, with the toolkit's own loop (uint8 data on the device, per-batch normalization
and augmentation, ``precision``/``channels_last`` ``auto``):

- step time (median of ``--repeats`` timings of ``--steps`` steps minus a short run) and test
  evaluation time per image, with the deterministic settings runs use (``on``) and without them
  (``off``), so the price of reproducibility is visible;
- for every Morcos dataset (Fashion-MNIST, SVHN, CIFAR-10/100, Places365 and ImageNet at 32x32:
  sizes from the catalogue), the uint8 size of its splits and the peak memory of a process that
  holds them and trains a few steps (CUDA: ``max_memory_allocated``; CPU: peak RSS growth, and
  only the datasets that fit ``--max-gib``);
- the epoch time those give: steps per epoch x step time + one evaluation of the test split.

Data are random uint8 images (speed and memory do not depend on pixel values). Prints a table and
writes JSON. Usage: python benchmarks/morcos_scale.py [--device cuda] [--models vgg19,resnet50]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import torch

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.data.catalogue import get_entry
from transfer_bench.devices import configure_determinism, resolve_device
from transfer_bench.machine import describe, fingerprint
from transfer_bench.models import build_model
from transfer_bench.training import TrainData, train
from transfer_bench.training.loop import evaluate

DATASETS = ("fashion_mnist", "svhn", "cifar10", "cifar100", "places365", "imagenet32")
BATCH = 512
SGD = OptimizerSpec(name="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4)
STATS = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def sizes(name: str) -> tuple[int, int, int]:
    """(train, test, classes) of a catalogue dataset; a dataset without a test split keeps 10%."""
    e = get_entry(name)
    train_n = e.sizes[e.train_split]
    test_n = e.sizes[e.test_split] if e.test_split else train_n // 10
    return (train_n if e.test_split else train_n - test_n), test_n, e.num_classes


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def images(n: int, dev: torch.device, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device=dev).manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, device=dev, generator=g)


def model_for(name: str, classes: int, dev: torch.device) -> torch.nn.Module:
    return build_model(name, num_classes=classes, in_channels=3, image_size=32, seed=0).to(dev)


def step_time(name: str, dev: torch.device, steps: int, repeats: int) -> tuple[float, float]:
    """(seconds per training step, seconds per evaluated image) at batch 512, 10 classes."""
    n = BATCH * (steps + 4)
    x, y = images(n, dev), torch.randint(0, 10, (n,), device=dev)
    data = TrainData(x, y, x[:10_000], y[:10_000], *STATS)

    def timed(k: int) -> float:
        m = model_for(name, 10, dev)
        spec = TrainSpec(batch_size=BATCH, iterations=k, augment="crop_flip", padding=4)
        sync(dev)
        t = time.perf_counter()
        train(m, data, spec, SGD, None, order_seed=0)
        sync(dev)
        return time.perf_counter() - t

    timed(4)  # warm-up: kernels, allocator, cuDNN plans
    short = statistics.median(timed(4) for _ in range(repeats))
    long_ = statistics.median(timed(4 + steps) for _ in range(repeats))
    m = model_for(name, 10, dev)
    evaluate(m, data.x_test[:1000], data.y_test[:1000], 1000, data.prepare)
    sync(dev)
    t = time.perf_counter()
    evaluate(m, data.x_test, data.y_test, 1000, data.prepare)
    sync(dev)
    return max(1e-9, (long_ - short) / steps), (time.perf_counter() - t) / len(data.y_test)


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def peak_memory(name: str, dataset: str, dev: torch.device) -> dict:
    """uint8 bytes of ``dataset``'s splits and the peak memory of holding them and training."""
    n_train, n_test, classes = sizes(dataset)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")
        before = _rss_kib("VmRSS") * 1024
    data = TrainData(
        images(n_train, dev, 1),
        torch.randint(0, classes, (n_train,), device=dev),
        images(n_test, dev, 2),
        torch.randint(0, classes, (n_test,), device=dev),
        *STATS,
    )
    m = model_for(name, classes, dev)
    spec = TrainSpec(batch_size=BATCH, iterations=3, augment="crop_flip", padding=4)
    train(m, data, spec, SGD, None, order_seed=0)
    evaluate(m, data.x_test[:5000], data.y_test[:5000], 1000, data.prepare)
    sync(dev)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = _rss_kib("VmHWM") * 1024 - before
    out = {
        "uint8_bytes": data.nbytes(),
        "peak_bytes": int(peak),
        "train": n_train,
        "test": n_test,
        "classes": classes,
    }
    del data, m
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", default="vgg19,resnet50")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--max-gib",
        type=float,
        default=None,
        help="skip datasets whose uint8 splits exceed this (default: 6 on CPU)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    max_gib = args.max_gib if args.max_gib is not None else (1e9 if dev.type == "cuda" else 6.0)
    record = {"machine": fingerprint(dev), "batch": BATCH, "models": {}}
    print(describe(record["machine"]))
    for name in args.models.split(","):
        row: dict = {"datasets": {}}
        for mode in ("off", "on"):  # "on" last: what runs use
            if dev.type == "cuda":
                configure_determinism(mode)
            step, per_image = step_time(name, dev, args.steps, args.repeats)
            row[f"step_s_determinism_{mode}"] = step
            row[f"eval_s_per_image_determinism_{mode}"] = per_image
            print(
                f"{name}: {1e3 * step:.1f} ms per step of {BATCH}, "
                f"{1e6 * per_image:.1f} us per test image (determinism {mode})",
                flush=True,
            )
            if dev.type != "cuda":
                break
        used = "on" if dev.type == "cuda" else "off"  # the CPU has no determinism switch
        step, per_image = (
            row[f"step_s_determinism_{used}"],
            row[f"eval_s_per_image_determinism_{used}"],
        )
        for ds in DATASETS:
            n_train, n_test, _ = sizes(ds)
            if (n_train + n_test) * 3072 / 2**30 > max_gib:
                print(f"  {ds}: skipped (over --max-gib {max_gib:g})")
                continue
            mem = peak_memory(name, ds, dev)
            mem["epoch_s"] = math.ceil(n_train / BATCH) * step + n_test * per_image
            row["datasets"][ds] = mem
            print(
                f"  {ds:14s} {n_train:>9,} train {n_test:>7,} test: uint8 "
                f"{mem['uint8_bytes'] / 2**30:6.2f} GiB, peak {mem['peak_bytes'] / 2**30:6.2f} "
                f"GiB, epoch {mem['epoch_s']:7.1f} s",
                flush=True,
            )
        record["models"][name] = row
    out = args.out or Path(f"benchmarks/out/morcos_scale-{dev.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

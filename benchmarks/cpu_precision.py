"""CPU precision and layout: fp32 / bf16 autocast x NCHW / channels_last for the ``cpu``-scale nets.

What it measures, with the toolkit's own ``train()`` and ``evaluate()`` (so what suites run):

- **training step** (``--batch`` 64, the ``cpu`` scales' batch; SGD momentum, crop + flip,
  20%-density masks, uint8 images normalized per batch) in four variants: ``train.precision`` fp32
  / bf16 x ``train.channels_last`` off / on. Each variant trains ``--steps`` + 1 steps per round; a
  step is the time between two consecutive ``after_backward`` calls (optimizer, masks, next
  forward and backward), the first is dropped (warm-up). Variants are interleaved in rounds
  (starting at a different variant each round); each ratio is taken within a round, then the
  median over rounds (spread: min-max).
- **evaluation per image** (``evaluate()``, batch ``--eval-batch``, 1000 = the suites'), after a
  short fp32 training so that BatchNorm's running statistics are not the identity: fp32 / bf16
  autocast x NCHW / channels_last x as trained / BatchNorm folded into the preceding convolution
  (:func:`transfer_bench.training.fold_bn.fold_batchnorm`), with the largest logit difference and
  the changed predictions against fp32 NCHW unfolded.
- ``--quality``: what bf16 does to results: short trainings of the ``cpu`` recipe on the same data
  (``--data cifar10`` = 4,000 real CIFAR-10 training images and the test split, all 10,000 or
  ``--test-size``, via ``catalog:cifar10``; set
  ``TRANSFER_BENCH_HF_MIRROR``; ``synthetic`` otherwise) in each variant and seed, with final test
  accuracy and loss, and their differences from fp32 NCHW paired by seed, next to the seed-to-seed
  spread and to fp32 channels_last (which changes only the order of float sums).

The header prints the CPU model, ``torch.backends.cpu.get_cpu_capability()``, whether bf16 is native
(:func:`transfer_bench.training.precision.cpu_native_bf16`), ``ONEDNN_MAX_CPU_ISA`` and
``ATEN_CPU_CAPABILITY``. ``--isa native AVX2 AVX512_CORE`` runs one child process per oneDNN ISA cap
(``AVX2`` also caps ATen's kernels, as on an AVX2-only host) and prints the tables together.
Writes ``benchmarks/out/cpu_precision[_<isa>][_quality].json``.

Usage: python benchmarks/cpu_precision.py [--threads 1] [--rounds 5] [--steps 3] [--models ...]
       [--isa native AVX2 AVX512_CORE] [--quality --data cifar10 --seeds 0 1 2 --epochs 8]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.data.adapt import normalize
from transfer_bench.models import build_model
from transfer_bench.training import TrainData, evaluate, train
from transfer_bench.training.fold_bn import fold_batchnorm
from transfer_bench.training.layout import to_channels_last
from transfer_bench.training.precision import cpu_native_bf16

MODELS = ("vgg19:8", "resnet18:8", "conv4", "resnet20:8", "resnet20:16")
#: name -> (train.precision, train.channels_last)
VARIANTS = {
    "fp32": ("fp32", "off"),
    "fp32_cl": ("fp32", "on"),
    "bf16": ("bf16", "off"),
    "bf16_cl": ("bf16", "on"),
}
SGD = OptimizerSpec(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4)
CPU = torch.device("cpu")
MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)  # images are uint8, normalized per batch


def model_of(cand: str, seed: int = 0, num_classes: int = 10) -> torch.nn.Module:
    """``"vgg19:8"`` -> VGG19 at width 8; ``"conv4"`` -> Conv-4."""
    name, _, width = cand.partition(":")
    options = {"width": int(width)} if width else {}
    return build_model(
        name, num_classes=num_classes, in_channels=3, image_size=32, seed=seed, options=options
    )


def masks_of(model: torch.nn.Module, density: float = 0.2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    params = dict(model.named_parameters())
    return {k: torch.rand(params[k].shape, generator=g) < density for k in model.prunable_names}


def spec_of(variant: str, batch: int, **kw) -> TrainSpec:
    precision, channels_last = VARIANTS[variant]
    return TrainSpec(
        optimizer="sgd",
        batch_size=batch,
        augment="crop_flip",
        padding=4,
        precision=precision,
        channels_last=channels_last,
        **kw,
    )


def host() -> dict:
    info = {"model name": platform.processor(), "cpu family": "?", "model": "?"}
    seen: set[str] = set()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (s.strip() for s in line.partition(":"))
            if key in info and key not in seen:  # the first processor's
                info[key] = value
                seen.add(key)
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")
    return {
        "cpu": f"{info['model name']} (family {info['cpu family']}, model {info['model']})",
        "cores": os.cpu_count(),
        "isa_flags": [f for f in wanted if f in flags],
        "torch": torch.__version__,
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_native_bf16(),
        "onednn_bf16_kernels": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "ONEDNN_MAX_CPU_ISA": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY", ""),
        "threads": torch.get_num_threads(),
    }


def print_host(h: dict) -> None:
    print(
        f"host: {h['cpu']}, {h['cores']} cores; flags {' '.join(h['isa_flags'])}; torch "
        f"{h['torch']}; ATen capability {h['aten_cpu_capability']}; native bf16 "
        f"{h['cpu_native_bf16']}; oneDNN bf16 kernels {h['onednn_bf16_kernels']}; "
        f"ONEDNN_MAX_CPU_ISA={h['ONEDNN_MAX_CPU_ISA'] or '(unset)'}; "
        f"ATEN_CPU_CAPABILITY={h['ATEN_CPU_CAPABILITY'] or '(unset)'}; {h['threads']} thread(s)",
        flush=True,
    )


# ------------------------------------------------------------------------------ training steps


def step_seconds(cand: str, variant: str, x, y, batch: int, steps: int) -> list[float]:
    """Seconds per training step for ``steps`` steps of ``train()`` (after one warm-up step)."""
    model = model_of(cand)
    stamps: list[float] = []
    n = batch * (steps + 1)
    data = TrainData(x[:n], y[:n], x[:batch], y[:batch], MEAN, STD)
    spec = spec_of(variant, batch, epochs=1, eval_batch_size=batch)
    train(
        model,
        data,
        spec,
        SGD,
        masks_of(model),
        order_seed=0,
        after_backward=lambda _m: stamps.append(time.perf_counter()),
    )
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def bench_training(cand: str, x, y, args) -> dict:
    names = list(VARIANTS)
    for v in names:  # warm-up: oneDNN primitives, autocast caches
        step_seconds(cand, v, x, y, args.batch, 1)
    per_round: dict[str, list[float]] = {v: [] for v in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for v in order:
            per_round[v].append(
                statistics.median(step_seconds(cand, v, x, y, args.batch, args.steps))
            )
    ref = per_round["fp32"]
    row = {"model": cand, "rounds": args.rounds, "steps_per_round": args.steps}
    for v in names:
        row[f"{v}_ms"] = [round(1e3 * s, 2) for s in spread(per_round[v])]
        row[f"{v}_speedup"] = [
            round(s, 3) for s in spread([a / b for a, b in zip(ref, per_round[v], strict=True)])
        ]
    return row


# ---------------------------------------------------------------------------------- evaluation


def eval_variants(model: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, bool]]:
    """name -> (model, bf16): {fp32, bf16} x {NCHW, channels_last} x {as trained, BN folded}."""
    cl = copy.deepcopy(model)
    to_channels_last(cl, CPU)  # as train() leaves it during its evaluations (hooks kept)
    out = {}
    for layout, m in (("", model), ("_cl", cl)):
        folded = fold_batchnorm(m)
        for prec in ("fp32", "bf16"):
            out[f"{prec}{layout}"] = (m, prec == "bf16")
            out[f"{prec}{layout}_folded"] = (folded, prec == "bf16")
    return out


def logits(model, x, bf16: bool, batch: int) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return torch.cat([model(x[i : i + batch]).float() for i in range(0, len(x), batch)])


def bench_eval(cand: str, x, y, xe, ye, args) -> dict:
    model = model_of(cand)
    n = min(len(x), 640)
    # a short fp32 training, so BatchNorm's running statistics are not the identity
    train(
        model,
        TrainData(x[:n], y[:n], x[:64], y[:64], MEAN, STD),
        spec_of("fp32", 64, epochs=1),
        SGD,
        None,
        order_seed=1,
    )
    model.eval()
    variants = eval_variants(model)
    xf = normalize(xe, MEAN, STD)
    ref = logits(model, xf, False, args.eval_batch)
    quality = {}
    for k, (m, bf16) in variants.items():
        out = logits(m, xf, bf16, args.eval_batch)
        quality[k] = {
            "max_logit_difference": float((out - ref).abs().max()),
            "changed_predictions": int((out.argmax(1) != ref.argmax(1)).sum()),
        }
    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    prepare = TrainData(xe, ye, xe, ye, MEAN, STD).prepare  # as train() evaluates uint8 images
    for r in range(args.rounds):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            m, bf16 = variants[k]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                t = time.perf_counter()
                evaluate(m, xe, ye, args.eval_batch, prepare)
                times[k].append((time.perf_counter() - t) / len(ye))
    ref_t = times["fp32"]
    fold_s = []
    for _ in range(5):  # what folding itself costs (torch.fx trace + fuse), per evaluation
        t = time.perf_counter()
        fold_batchnorm(model)
        fold_s.append(time.perf_counter() - t)
    row = {"model": cand, "rounds": args.rounds, "images": len(ye), "batch": args.eval_batch}
    row["fold_ms"] = [round(1e3 * s, 1) for s in spread(fold_s)]
    for k in names:
        row[f"{k}_us_per_image"] = [round(1e6 * s, 1) for s in spread(times[k])]
        row[f"{k}_speedup"] = [
            round(s, 3) for s in spread([a / b for a, b in zip(ref_t, times[k], strict=True)])
        ]
        row[f"{k}_vs_fp32"] = quality[k]
    for layout in ("", "_cl"):  # folding alone, within a layout and precision
        for prec in ("fp32", "bf16"):
            a, b = times[f"{prec}{layout}"], times[f"{prec}{layout}_folded"]
            row[f"fold_gain_{prec}{layout}"] = [
                round(s, 3) for s in spread([p / q for p, q in zip(a, b, strict=True)])
            ]
    return row


# ---------------------------------------------------------------------------------- quality


def load_data(name: str, test_size: int | None, seed: int = 0):
    if name == "cifar10":
        from transfer_bench.config import DatasetSpec, InputSpec
        from transfer_bench.data import load_dataset

        spec = DatasetSpec(source="catalog:cifar10", train_size=4000, test_size=test_size)
        ds = load_dataset(spec, InputSpec(size=32, channels=3), split_seed=0, cache_dir=None)
        return TrainData(ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.mean, ds.std)
    g = torch.Generator().manual_seed(seed)  # separable random data: class means + noise
    means = torch.randn(10, 3, 32, 32, generator=g) * 0.5
    y = torch.randint(0, 10, (8000,), generator=g)
    x = means[y] + torch.randn(8000, 3, 32, 32, generator=g)
    return TrainData(x[:4000], y[:4000], x[4000:], y[4000:])


def bench_quality(args) -> dict:
    data = load_data(args.data, args.test_size)
    rows = []
    for cand in args.models:
        for seed in args.seeds:
            for v in args.variants:
                model = model_of(cand, seed)
                spec = spec_of(v, 64, epochs=args.epochs, schedule="cosine", eval_every=args.epochs)
                out = train(model, data, spec, SGD, None, order_seed=seed)
                rows.append(
                    {
                        "model": cand,
                        "seed": seed,
                        "variant": v,
                        "test_accuracy": out.test_accuracy,
                        "test_loss": out.final_test_loss,
                        "train_loss": out.final_train_loss,
                        "seconds": round(out.seconds, 1),
                    }
                )
                print(
                    f"{cand:>12} seed {seed} {v:>8}: test accuracy {out.test_accuracy:.4f}, "
                    f"test loss {out.final_test_loss:.4f}, train loss {out.final_train_loss:.4f}, "
                    f"{out.seconds:.1f} s",
                    flush=True,
                )
    summary = []
    for cand in args.models:
        by = {(r["seed"], r["variant"]): r for r in rows if r["model"] == cand}
        base = [by[(s, "fp32")] for s in args.seeds]
        accs = [b["test_accuracy"] for b in base]
        line = {
            "model": cand,
            "fp32_accuracy_mean": statistics.mean(accs),
            "fp32_accuracy_seed_sd": statistics.stdev(accs) if len(accs) > 1 else None,
        }
        for v in args.variants:
            if v == "fp32":
                continue
            d_acc = [
                by[(s, v)]["test_accuracy"] - by[(s, "fp32")]["test_accuracy"] for s in args.seeds
            ]
            d_loss = [by[(s, v)]["test_loss"] - by[(s, "fp32")]["test_loss"] for s in args.seeds]
            speed = [by[(s, "fp32")]["seconds"] / by[(s, v)]["seconds"] for s in args.seeds]
            line[f"{v}_minus_fp32_accuracy"] = d_acc
            line[f"{v}_minus_fp32_test_loss"] = d_loss
            line[f"{v}_speedup_whole_training"] = [round(x, 3) for x in spread(speed)]
        summary.append(line)
        print(json.dumps(line), flush=True)
    return {
        "data": args.data,
        "test_size": len(data.y_test),
        "epochs": args.epochs,
        "runs": rows,
        "summary": summary,
    }


# ---------------------------------------------------------------------------------- printing


def fmt(triple: list[float], unit: str = "x") -> str:
    med, lo, hi = triple
    return f"{med:.2f}{unit} ({lo:.2f}-{hi:.2f})"


def print_tables(result: dict) -> None:
    print_host(result["host"])
    print(
        f"training step, batch {result['batch']}: fp32 ms median (min-max); speed-up vs fp32 "
        f"within rounds, median (min-max)"
    )
    print(f"{'model':>12} | {'fp32 ms':>22} | {'fp32+CL':>18} | {'bf16':>18} | {'bf16+CL':>18}")
    for row in result["training"]:
        print(
            f"{row['model']:>12} | {fmt(row['fp32_ms'], ''):>22} | "
            f"{fmt(row['fp32_cl_speedup']):>18}"
            f" | {fmt(row['bf16_speedup']):>18} | {fmt(row['bf16_cl_speedup']):>18}",
            flush=True,
        )
    if result.get("evaluation"):
        print(
            f"evaluation, batch {result['evaluation'][0]['batch']}: us per image (fp32 NCHW) "
            "and speed-up vs fp32 NCHW as trained; [max logit diff, changed predictions]"
        )
        keys = ["fp32_folded", "fp32_cl", "fp32_cl_folded", "bf16", "bf16_cl", "bf16_cl_folded"]
        print(f"{'model':>12} | {'fp32 us/img':>10} | " + " | ".join(f"{k:>26}" for k in keys))
        for row in result["evaluation"]:
            cells = []
            for k in keys:
                q = row[f"{k}_vs_fp32"]
                cells.append(
                    f"{row[f'{k}_speedup'][0]:.2f}x "
                    f"[{q['max_logit_difference']:.1e}, {q['changed_predictions']}]"
                )
            print(
                f"{row['model']:>12} | {row['fp32_us_per_image'][0]:>10.1f} | "
                + " | ".join(f"{c:>26}" for c in cells),
                flush=True,
            )
        print(
            "BN folding alone: evaluation as trained / folded, within a precision and layout, "
            "median (min-max); cost of folding once (torch.fx trace + fuse)"
        )
        cols = ["fp32", "fp32_cl", "bf16", "bf16_cl"]
        print(f"{'model':>12} | " + " | ".join(f"{c:>18}" for c in cols) + " | fold ms")
        for row in result["evaluation"]:
            cells = " | ".join(f"{fmt(row[f'fold_gain_{c}']):>18}" for c in cols)
            print(f"{row['model']:>12} | {cells} | {row['fold_ms'][0]:.1f}", flush=True)


def run_isas(args, argv: list[str]) -> None:
    """One child process per ISA cap (oneDNN reads it once per process), then all tables."""
    results = []
    for isa in args.isa:
        env = dict(os.environ)
        env.pop("ONEDNN_MAX_CPU_ISA", None)
        env.pop("ATEN_CPU_CAPABILITY", None)
        if isa != "native":
            env["ONEDNN_MAX_CPU_ISA"] = isa
            if isa == "AVX2":  # an AVX2-only host runs ATen's AVX2 kernels too
                env["ATEN_CPU_CAPABILITY"] = "avx2"
        out = args.out.with_name(f"cpu_precision_{isa.lower()}.json")
        child = [a for a in argv if a not in args.isa and a != "--isa"]
        cmd = [sys.executable, __file__, *child, "--out", str(out)]
        print(f"--- {isa}: {' '.join(cmd[1:])}", flush=True)
        rc = subprocess.run(cmd, env=env).returncode
        if rc != 0:
            print(
                f"--- {isa}: child exited with {rc} (negative: killed by signal {-rc})", flush=True
            )
            continue
        results.append(json.loads(out.read_text()))
    print("\n=== all ISA caps")
    for r in results:
        print_tables(r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--steps", type=int, default=3, help="timed training steps per variant and round"
    )
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--eval-batch", type=int, default=1000)
    ap.add_argument("--eval-images", type=int, default=1000)
    ap.add_argument("--models", nargs="*", default=list(MODELS))
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument(
        "--isa", nargs="*", help="native and/or ONEDNN_MAX_CPU_ISA caps, one child each"
    )
    ap.add_argument("--quality", action="store_true", help="bf16's effect on short trainings")
    ap.add_argument("--data", choices=["cifar10", "synthetic"], default="cifar10")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--test-size", type=int, default=None, help="test images (default: all)")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.out is None:
        isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
        stem = "cpu_precision" + (f"_{isa.lower()}" if isa else "")
        args.out = Path("benchmarks/out") / (stem + ("_quality" if args.quality else "") + ".json")
    if args.isa:
        run_isas(args, sys.argv[1:])
        return
    torch.set_num_threads(args.threads)
    h = host()
    print_host(h)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.quality:
        result = {"host": h, **bench_quality(args)}
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
        return
    g = torch.Generator().manual_seed(0)
    n = args.batch * (args.steps + 1)
    x = torch.randint(0, 256, (max(n, 640), 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (len(x),), generator=g)
    xe = torch.randint(0, 256, (args.eval_images, 3, 32, 32), generator=g, dtype=torch.uint8)
    ye = torch.randint(0, 10, (args.eval_images,), generator=g)
    result = {"host": h, "batch": args.batch, "training": [], "evaluation": []}
    t0 = time.perf_counter()
    for cand in args.models:
        row = bench_training(cand, x, y, args)
        result["training"].append(row)
        print(
            f"{cand:>12}: step fp32 {fmt(row['fp32_ms'], ' ms')}; speed-up fp32+CL "
            f"{fmt(row['fp32_cl_speedup'])}, bf16 {fmt(row['bf16_speedup'])}, bf16+CL "
            f"{fmt(row['bf16_cl_speedup'])} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        if not args.no_eval:
            result["evaluation"].append(bench_eval(cand, x, y, xe, ye, args))
            print(f"{cand:>12}: evaluation done ({time.perf_counter() - t0:.0f} s)", flush=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print_tables(result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

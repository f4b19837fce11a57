"""Where a training step's time goes: forward, backward, optimizer, masking, loop overhead, eval.

For each configuration it builds the toolkit's model, optimizer (``build_optimizer``) and mask
enforcer (``MaskEnforcer``, 20%-density random masks) and times the phases of one step separately
(CPU ops are synchronous, so ``perf_counter`` around each phase is exact), interleaving masked and
dense steps. It then runs the real ``train()`` for the same number of steps: the difference between
its time per step and the sum of the phases is the loop's own overhead (learning-rate schedule,
loss bookkeeping, slicing). Evaluation is reported per epoch as a share of the epoch's training
time. Finally ``torch.profiler`` lists the operators with the most self CPU time in the masked step.

Prints a table per configuration and writes ``benchmarks/out/profile_step.json``.

Usage: python benchmarks/profile_step.py [--steps 200] [--configs lenet resnet20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

from transfer_bench.config import OptimizerSpec, TrainSpec
from transfer_bench.models import build_model, count_flops
from transfer_bench.training import TrainData, train
from transfer_bench.training.loop import MaskEnforcer, evaluate
from transfer_bench.training.optim import ELEMENTWISE, build_optimizer

#: name -> (model, options, channels, size, batch, optimizer, train size, test size)
CONFIGS = {
    # the quickstart step: LeNet-300-100 on 28x28 digits, Adam 1.2e-3, batch 60
    "lenet": ("lenet_300_100", {}, 1, 28, 60, OptimizerSpec(name="adam", lr=1.2e-3), 4000, 1000),
    # the natural-image cpu suites' step: ResNet-20 width 8 (option), SGD, batch 128
    "resnet20": (
        "resnet20",
        {"width": 8},
        3,
        32,
        128,
        OptimizerSpec(name="sgd", lr=0.05, momentum=0.9),
        1280,
        1000,
    ),
    "conv4": ("conv4", {}, 3, 32, 128, OptimizerSpec(name="sgd", lr=0.05, momentum=0.9), 640, 500),
}
KINDS = ("dense", "masked", "masked_before")
OLD_OPTIMIZERS = {
    "adam": lambda ps, s: torch.optim.Adam(ps, lr=s.lr, betas=s.betas, fused=True),
    "sgd": lambda ps, s: torch.optim.SGD(ps, lr=s.lr, momentum=s.momentum),
}
PHASES = ("forward", "zero_grad", "backward", "mask_grads", "optimizer", "mask_weights")


def _model(cfg, seed: int = 0):
    name, opts, ch, size = cfg[:4]
    return build_model(
        name, num_classes=10, in_channels=ch, image_size=size, seed=seed, options=dict(opts)
    )


def _masks(model, density: float = 0.2):
    g = torch.Generator().manual_seed(1)
    params = dict(model.named_parameters())
    return {k: torch.rand(params[k].shape, generator=g) < density for k in model.prunable_names}


def _timed_step(model, opt, enf, x, y) -> list[float]:
    """One training step as ``train()`` does it; the clock before it and after each phase.
    ``opt.fast`` marks the current loop (gradients set to None by hand), else the old one."""
    t = [time.perf_counter()]
    loss = F.cross_entropy(model(x), y)
    t.append(time.perf_counter())
    if getattr(opt, "fast", False):
        for p in opt.param_groups[0]["params"]:
            p.grad = None
    else:
        opt.zero_grad(set_to_none=True)
    t.append(time.perf_counter())
    loss.backward()
    t.append(time.perf_counter())
    enf.mask_grads()
    t.append(time.perf_counter())
    opt.step()
    t.append(time.perf_counter())
    enf.mask_weights()
    t.append(time.perf_counter())
    return t


def phase_times(cfg, steps: int, channels_last: bool) -> dict[str, dict[str, float]]:
    """Median seconds per phase, masked and dense, interleaved in blocks of steps (step-by-step
    interleaving would have each model evict the other's weights and optimizer state from cache,
    which a real training never does)."""
    _, _, ch, size, batch, opt_spec = cfg[:6]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, ch, size, size, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    setups = {}
    for kind in KINDS:
        model = _model(cfg)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        masks = _masks(model) if kind != "dense" else None
        if kind == "masked_before":  # the earlier loop: stock optimizer, grads masked
            opt = OLD_OPTIMIZERS[opt_spec.name](model.parameters(), opt_spec)
            enforcer = MaskEnforcer(model, masks, grads=True)
        else:
            opt = build_optimizer(list(model.parameters()), opt_spec)
            opt.fast = True
            enforcer = MaskEnforcer(model, masks, grads=opt_spec.name not in ELEMENTWISE)
        enforcer.mask_weights()
        setups[kind] = (model, opt, enforcer)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    times: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in setups}
    block = max(5, min(40, steps // 6))
    for i in range(-1, -(-steps // block)):  # block -1 warms up
        for kind in KINDS if i % 2 else KINDS[::-1]:
            for j in range(block):
                t = _timed_step(*setups[kind], x, y)
                if i >= 0 and j >= 2:  # a block's first steps refill the cache
                    for p, a, b in zip(PHASES, t, t[1:], strict=False):
                        times[kind][p].append(b - a)
    return {k: {p: statistics.median(v[p]) for p in PHASES} for k, v in times.items()}


def loop_time(cfg, steps: int, masked: bool, channels_last: bool) -> tuple[float, float]:
    """(seconds per step of the real ``train()``, seconds of one evaluation pass)."""
    _, _, ch, size, batch, opt_spec, _, n_test = cfg
    g = torch.Generator().manual_seed(0)
    n = batch * steps
    x = torch.randn(n, ch, size, size, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    xt = torch.randn(n_test, ch, size, size, generator=g)
    yt = torch.randint(0, 10, (n_test,), generator=g)
    spec = TrainSpec(
        batch_size=batch, epochs=1, channels_last="on" if channels_last else "off", eval_every=1
    )
    model = _model(cfg)
    masks = _masks(model) if masked else None
    train(
        model,
        TrainData(x[: batch * 5], y[: batch * 5], xt[:10], yt[:10]),
        spec,
        opt_spec,
        masks,
        order_seed=0,
    )  # warm-up
    t = time.perf_counter()
    train(model, TrainData(x, y, xt[:1], yt[:1]), spec, opt_spec, masks, order_seed=0)
    per_step = (time.perf_counter() - t) / steps
    evals = []
    for _ in range(3):
        t = time.perf_counter()
        evaluate(model, xt, yt, spec.eval_batch_size)
        evals.append(time.perf_counter() - t)
    return per_step, statistics.median(evals)


def top_ops(cfg, steps: int, channels_last: bool, k: int = 12) -> list[dict]:
    """Operators with the most self CPU time over ``steps`` masked steps (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    _, _, ch, size, batch, opt_spec = cfg[:6]
    model = _model(cfg)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    enf = MaskEnforcer(model, _masks(model), grads=opt_spec.name not in ELEMENTWISE)
    opt = build_optimizer(list(model.parameters()), opt_spec)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, ch, size, size, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), generator=g)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        enf.mask_grads()
        opt.step()
        enf.mask_weights()

    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows)
    return [
        {
            "op": e.key,
            "calls_per_step": e.count / steps,
            "self_us_per_step": e.self_cpu_time_total / steps,
            "share": e.self_cpu_time_total / total,
        }
        for e in rows[:k]
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--configs", nargs="+", default=["lenet", "resnet20"], choices=list(CONFIGS))
    ap.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/profile_step.json"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"torch": torch.__version__, "threads": torch.get_num_threads(), "configs": {}}
    for name in args.configs:
        cfg = CONFIGS[name]
        conv = name != "lenet"
        cl = args.channels_last == "on" or (args.channels_last == "auto" and conv)
        steps = args.steps if not conv else max(10, args.steps // 10)
        phases = phase_times(cfg, steps, cl)
        loop_masked, eval_s = loop_time(cfg, steps, True, cl)
        loop_dense, _ = loop_time(cfg, steps, False, cl)
        fwd_flops = count_flops(_model(cfg), (1, cfg[2], cfg[3], cfg[3]))
        train_n = cfg[6]
        epoch_steps = -(-train_n // cfg[4])
        row = {
            "model": cfg[0],
            "options": cfg[1],
            "batch": cfg[4],
            "optimizer": cfg[5].name,
            "channels_last": cl,
            "phases_s": phases,
            "loop_s_per_step": {"masked": loop_masked, "dense": loop_dense},
            "eval_s": eval_s,
            "eval_share_of_epoch": eval_s / (eval_s + loop_masked * epoch_steps),
            "train_examples_per_epoch": train_n,
            "test_examples": cfg[7],
            "forward_flops_per_sample": fwd_flops,
            "top_ops": top_ops(cfg, min(steps, 50), cl),
        }
        report["configs"][name] = row
        print(f"\n== {name}: {cfg[0]} {cfg[1]} batch {cfg[4]} {cfg[5].name} channels_last={cl}")
        print(f"{'phase':14s} {'dense us':>10s} {'masked us':>10s} {'before us':>10s}")
        for p in PHASES:
            cells = " ".join(f"{1e6 * phases[k][p]:10.0f}" for k in KINDS)
            print(f"{p:14s} {cells}")
        sums = {k: sum(phases[k].values()) for k in KINDS}
        print(
            f"{'sum':14s} " + " ".join(f"{1e6 * sums[k]:10.0f}" for k in KINDS) + "   masked/dense "
            f"{sums['masked'] / sums['dense']:.3f}, before/dense "
            f"{sums['masked_before'] / sums['dense']:.3f}"
        )
        for kind, loop in (("dense", loop_dense), ("masked", loop_masked)):
            overhead = loop - sum(phases[kind].values())
            print(
                f"train() {kind:6s}: {1e6 * loop:8.0f} us/step (loop overhead {1e6 * overhead:+.0f})"
            )
        print(
            f"eval of {cfg[7]} test images: {eval_s * 1e3:.1f} ms = "
            f"{100 * row['eval_share_of_epoch']:.1f}% of an epoch of {train_n}"
        )
        peak_s = 3 * fwd_flops * cfg[4] / loop_masked / 1e9
        print(f"achieved: {peak_s:.0f} GFLOP/s (3 x forward FLOPs, masked train())")
        print("top ops (masked step, self CPU):")
        for op in row["top_ops"]:
            print(
                f"  {op['op']:40s} {op['calls_per_step']:5.1f}x {op['self_us_per_step']:9.0f} us "
                f"{100 * op['share']:5.1f}%"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

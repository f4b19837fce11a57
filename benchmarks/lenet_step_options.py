"""Options for a faster LeNet-300-100 step (batch 60, Adam) that were measured and not adopted.

The README's Performance goal is >= 0.40 of the matmul peak for this step. This script measures, in one process
and one thread count (default 1: what each pool worker runs), how far the step is from its GEMMs
and what two candidate rewrites would give:

- ``autograd``: forward + backward as the toolkit runs them (``F.linear``, autograd);
- ``manual``: the same forward and backward written out by hand (no autograd; gradients written
  into preallocated buffers), and its largest deviation from autograd's gradients;
- ``gemms``: only the matrix products of that manual step (a floor for any rewrite);
- ``adam_full``: the fused Adam kernel on the dense tensors plus re-zeroing the pruned weights
  (what the loop does), against ``adam_compact``: gathering the kept entries' gradients, fused Adam
  on those alone and scattering them back, per density, and whether the kept weights come out
  bit-identical after 50 steps.

Timings are the minimum over repeats of the mean per call (the host is noisy; minima are the
least disturbed). Prints a table and writes ``benchmarks/out/lenet_step_options.json``.

Usage: python benchmarks/lenet_step_options.py [--threads 1] [--reps 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

BATCH = 60
SHAPES = [(300, 784), (300,), (100, 300), (100,), (10, 100), (10,)]
ADAM = dict(
    amsgrad=False,
    lr=1.2e-3,
    beta1=0.9,
    beta2=0.999,
    weight_decay=0.0,
    eps=1e-8,
    maximize=False,
    grad_scale=None,
    found_inf=None,
)


def best_us(fn, reps: int, n: int = 200) -> float:
    """Minimum over ``reps`` repeats of the mean microseconds per call of ``fn``."""
    for _ in range(20):
        fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    return best


def step_timings(reps: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 784, generator=g)
    y = torch.randint(0, 10, (BATCH,), generator=g)
    params = [torch.randn(s, generator=g) * 0.05 for s in SHAPES]
    for p in params:
        p.requires_grad_()
    w1, b1, w2, b2, w3, b3 = params

    def autograd_step() -> None:
        for p in params:
            p.grad = None
        h = F.relu(F.linear(x, w1, b1))
        h = F.relu(F.linear(h, w2, b2))
        F.cross_entropy(F.linear(h, w3, b3), y).backward()

    d = [p.detach() for p in params]
    grads = [torch.empty_like(p) for p in d]
    rows = torch.arange(BATCH)

    def manual_step() -> None:
        a1 = torch.addmm(d[1], x, d[0].t())
        h1 = a1.clamp_min(0)
        a2 = torch.addmm(d[3], h1, d[2].t())
        h2 = a2.clamp_min(0)
        dz = torch.softmax(torch.addmm(d[5], h2, d[4].t()), 1)
        dz[rows, y] -= 1
        dz /= BATCH
        torch.mm(dz.t(), h2, out=grads[4])
        torch.sum(dz, 0, out=grads[5])
        dh = (dz @ d[4]).mul_(a2 > 0)
        torch.mm(dh.t(), h1, out=grads[2])
        torch.sum(dh, 0, out=grads[3])
        dh = (dh @ d[2]).mul_(a1 > 0)
        torch.mm(dh.t(), x, out=grads[0])
        torch.sum(dh, 0, out=grads[1])

    def gemms_only() -> None:
        a1 = torch.addmm(d[1], x, d[0].t())
        a2 = torch.addmm(d[3], a1, d[2].t())
        z = torch.addmm(d[5], a2, d[4].t())
        torch.mm(z.t(), a2, out=grads[4])
        dh = z @ d[4]
        torch.mm(dh.t(), a1, out=grads[2])
        torch.mm((dh @ d[2]).t(), x, out=grads[0])

    autograd_step()
    manual_step()
    deviation = max(float((p.grad - m).abs().max()) for p, m in zip(params, grads, strict=True))
    return {
        "autograd_fwd_bwd_us": best_us(autograd_step, reps),
        "manual_fwd_bwd_us": best_us(manual_step, reps),
        "gemms_only_us": best_us(gemms_only, reps),
        "manual_max_grad_deviation": deviation,
    }


def _state(shapes):
    return (
        [torch.zeros(s) for s in shapes],
        [torch.zeros(s) for s in shapes],
        [torch.zeros(()) for _ in shapes],
    )


def adam_timings(density: float, reps: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    masks = [
        (torch.rand(s, generator=g) < density).float() if len(s) == 2 else torch.ones(s)
        for s in SHAPES
    ]
    params = [torch.randn(s, generator=g) * 0.05 * m for s, m in zip(SHAPES, masks, strict=True)]
    grads = [torch.randn(s, generator=g) for s in SHAPES]
    ea, es, st = _state(SHAPES)
    weights = params[::2]
    weight_masks = masks[::2]

    def full() -> None:
        torch._foreach_add_(st, 1)
        torch._fused_adam_(params, grads, ea, es, [], st, **ADAM)
        torch._foreach_mul_(weights, weight_masks)

    index = [m.flatten().nonzero().squeeze(1) for m in masks]
    compact_params = [p.flatten()[i].clone() for p, i in zip(params, index, strict=True)]
    cea, ces, cst = _state([(len(i),) for i in index])
    targets = [p.detach().view(-1) for p in params]

    def compact() -> None:
        cg = [gr.view(-1).index_select(0, i) for gr, i in zip(grads, index, strict=True)]
        torch._foreach_add_(cst, 1)
        torch._fused_adam_(compact_params, cg, cea, ces, [], cst, **ADAM)
        for t, i, c in zip(targets, index, compact_params, strict=True):
            t.index_copy_(0, i, c)

    out = {"adam_full_us": best_us(full, reps), "adam_compact_us": best_us(compact, reps)}
    # bit-identity of the kept weights after 50 steps from the same start
    a = [p.clone() for p in params]
    b = [p.clone() for p in params]
    ea, es, st = _state(SHAPES)
    cb = [p.flatten()[i].clone() for p, i in zip(b, index, strict=True)]
    cea, ces, cst = _state([(len(i),) for i in index])
    for _ in range(50):
        gr = [torch.randn(s, generator=g) for s in SHAPES]
        torch._foreach_add_(st, 1)
        torch._fused_adam_(a, gr, ea, es, [], st, **ADAM)
        torch._foreach_mul_(a, masks)
        cg = [x.view(-1).index_select(0, i) for x, i in zip(gr, index, strict=True)]
        torch._foreach_add_(cst, 1)
        torch._fused_adam_(cb, cg, cea, ces, [], cst, **ADAM)
        for t, i, c in zip(b, index, cb, strict=True):
            t.view(-1).index_copy_(0, i, c)
    out["compact_bit_identical"] = all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/lenet_step_options.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    a = torch.randn(1024, 1024)
    peak = 2 * 1024**3 / best_us(lambda: torch.mm(a, a), args.reps, n=10) / 1e3
    step = step_timings(args.reps)
    fwd_flops = 2 * BATCH * (784 * 300 + 300 * 100 + 100 * 10)
    real_flops = 2 * fwd_flops + 2 * BATCH * (300 * 100 + 100 * 10)  # no input gradient
    print(f"threads {args.threads}; 1024^3 matmul {peak:.0f} GFLOP/s")
    for k in ("autograd_fwd_bwd_us", "manual_fwd_bwd_us", "gemms_only_us"):
        rate = real_flops / step[k] / 1e3
        print(f"{k:22s} {step[k]:7.0f} us  {rate:5.0f} GFLOP/s  {rate / peak:4.2f} of peak")
    print(f"manual vs autograd gradients: max |difference| {step['manual_max_grad_deviation']:.1e}")
    adam = {}
    print("density  adam_full us  adam_compact us  compact bit-identical")
    for density in (1.0, 0.64, 0.26, 0.07, 0.045):
        r = adam_timings(density, args.reps)
        adam[str(density)] = r
        print(
            f"{density:7.3f}  {r['adam_full_us']:12.0f}  {r['adam_compact_us']:15.0f}  "
            f"{r['compact_bit_identical']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "matmul_gflops": peak,
    }
    args.out.write_text(json.dumps({**meta, "step": step, "adam": adam}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

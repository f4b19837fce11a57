"""Reproduce oneDNN's channels_last 1x1-convolution crash on CPU, and check the toolkit's workaround.

Each case runs in its own process (the bug corrupts the heap, so a crash ends the process): one
``nn.Conv2d`` with a 1x1 kernel, 60 images, forward + backward 10 times, 1 thread, under
``ONEDNN_MAX_CPU_ISA`` (default AVX2, which an AMD EPYC here runs anyway; AVX-512 CPUs take other
kernels unless capped). ``--layout`` picks what is tested: ``channels_last`` (raw), ``nchw``, or
``toolkit`` (``transfer_bench.training.layout.to_channels_last``, which keeps the convolutions it
knows to corrupt in NCHW). Prints the cases that crashed with their exit status and last stderr
line; writes ``benchmarks/out/channels_last_crash.json``.

Usage: python benchmarks/channels_last_crash.py [--isa AVX2] [--layout channels_last]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

CASE = r"""
import sys, torch
from torch import nn
torch.set_num_threads(1)
cin, cout, stride, hw, layout = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
fmt = torch.contiguous_format if layout == "nchw" else torch.channels_last
if layout == "toolkit":
    from transfer_bench.training.layout import to_channels_last
    to_channels_last(conv, torch.device("cpu"))
else:
    conv.to(memory_format=fmt)
x = torch.randn(60, cin, hw, hw).contiguous(memory_format=fmt)
for _ in range(10):
    conv(x).sum().backward()
print("ok")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", default="AVX2", help="ONEDNN_MAX_CPU_ISA ('' = the CPU's best)")
    ap.add_argument(
        "--layout", choices=["channels_last", "nchw", "toolkit"], default="channels_last"
    )
    ap.add_argument("--in-channels", default="1,2,3,4,5,6,7,8,12,16")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/channels_last_crash.json"))
    args = ap.parse_args()
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": args.isa} if args.isa else dict(os.environ)
    cases, crashed = [], []
    cins = [int(c) for c in args.in_channels.split(",")]
    for cin, mult, stride, hw in itertools.product(cins, (1, 2), (1, 2), (8, 16, 32)):
        cmd = [sys.executable, "-c", CASE, str(cin), str(cin * mult), str(stride), str(hw)]
        proc = subprocess.run(cmd + [args.layout], env=env, capture_output=True, text=True)
        ok = proc.returncode == 0 and "ok" in proc.stdout
        last = (proc.stderr.strip().splitlines() or [""])[-1][:70]
        row = {"in": cin, "out": cin * mult, "stride": stride, "hw": hw, "ok": ok}
        if not ok:
            row.update(returncode=proc.returncode, stderr=last)
            crashed.append(row)
        cases.append(row)
    print(
        f"ONEDNN_MAX_CPU_ISA={args.isa or '(unset)'}, layout {args.layout}: "
        f"{len(crashed)} of {len(cases)} cases crashed"
    )
    for r in crashed:
        print(
            f"  1x1 conv {r['in']}->{r['out']} stride {r['stride']} {r['hw']}x{r['hw']}: "
            f"exit {r['returncode']} {r['stderr']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"isa": args.isa, "layout": args.layout, "cases": cases, "crashed": len(crashed)}
    args.out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

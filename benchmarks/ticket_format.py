"""Size and check time of ticket files, against the information they carry.

For each model and density it builds a ticket with a random mask (sizes do not depend on which
weights are kept), writes it, and reports: the file size; the information bound (32 bits per kept
weight plus 1 mask bit per prunable weight) plus the dense non-prunable tensors (biases, BN), which
any lossless float32 format must store; their ratio; the in-process ``load_ticket`` time; and the
whole-command times of ``transfer-bench ticket verify`` and ``ticket inspect`` (median of
``--rounds`` runs of the console entry point, start-up and imports included, as a user sees it;
both check with numpy only, never importing torch); and one ``ticket verify`` over all the files
written, per file. Writes JSON to ``benchmarks/out/ticket_format.json``.

Usage: python benchmarks/ticket_format.py [--rounds 3] [--models lenet_300_100 resnet20 resnet50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from transfer_bench.models import build_model
from transfer_bench.tickets import load_ticket, save_ticket, ticket_from_state

MODELS = {
    "lenet_300_100": dict(num_classes=10, in_channels=1, image_size=28),
    "resnet20": dict(num_classes=10, in_channels=3, image_size=32),
    "resnet50": dict(num_classes=10, in_channels=3, image_size=32),
}


def make(name: str, density: float):
    model = build_model(name, seed=0, **MODELS[name])
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(1)
    masks = {n: torch.rand(params[n].shape, generator=g) < density for n in model.prunable_names}
    meta = {
        "level": 0,
        "rewind": 0,
        "seed": 0,
        "source": {"name": "bench"},
        "search": {"method": "random"},
        "suite": {"name": "bench"},
        "model": model.model_spec,
    }
    ticket = ticket_from_state(
        model.state_dict(), masks, model.prunable_names, model.head_names, meta
    )
    prunable = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    dense = sum(v.numel() * v.element_size() for v in ticket.state.values())
    return ticket, prunable, kept, dense


def median_seconds(cmd: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--densities", nargs="+", type=float, default=[0.2, 0.05])
    ap.add_argument("--out", default="benchmarks/out/ticket_format.json")
    args = ap.parse_args()
    rows = []
    paths: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            for density in args.densities:
                ticket, prunable, kept, dense = make(name, density)
                path = save_ticket(ticket, Path(tmp) / f"{name}-{density}.ticket")
                size = path.stat().st_size
                bound = (32 * kept + prunable) / 8 + dense
                t0 = time.perf_counter()
                load_ticket(path)
                load_s = time.perf_counter() - t0
                command = [sys.executable, "-m", "transfer_bench.entry", "ticket"]
                paths.append(str(path))
                row = {
                    "model": name,
                    "density": density,
                    "prunable": prunable,
                    "kept": kept,
                    "file_bytes": size,
                    "bound_bytes": round(bound),
                    "ratio": size / bound,
                    "load_s": load_s,
                    "verify_command_s": median_seconds(
                        [*command, "verify", str(path)], args.rounds
                    ),
                    "inspect_command_s": median_seconds(
                        [*command, "inspect", str(path)], args.rounds
                    ),
                }
                rows.append(row)
                print(
                    f"{name:14s} {100 * density:4.0f}%  file {size / 1e6:8.2f} MB  bound "
                    f"{bound / 1e6:7.2f} MB  ratio {row['ratio']:5.1f}x  load {load_s:6.3f} s  "
                    f"verify {row['verify_command_s']:5.2f} s  inspect {row['inspect_command_s']:5.2f} s"
                )
        every = median_seconds(
            [sys.executable, "-m", "transfer_bench.entry", "ticket", "verify", *paths], args.rounds
        )
        print(f"one verify command over all {len(paths)} files: {every:.2f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"torch": torch.__version__, "rows": rows, "verify_all_s": every}, indent=1)
    )
    print(f"written: {out}")


if __name__ == "__main__":
    main()

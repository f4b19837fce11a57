"""Pruning at initialization as a search method: SynFlow, SNIP, GraSP, magnitude and random.

Tanaka et al. 2020 (SynFlow, iterative, data-free), Lee et al. 2019 (SNIP), Wang et al. 2020
(GraSP); magnitude and random at init as baselines (Frankle et al. 2021). Level i's ticket is the
init with the mask at ``search.densities[i-1]``; level 0 is the dense init. A layer with no weight
left (layer collapse) is recorded in each level's result as ``collapsed_layers``.
"""

from __future__ import annotations

import torch

from transfer_bench.pruning import density, full_masks
from transfer_bench.pruning.at_init import layer_collapse, prune_at_init
from transfer_bench.runs.context import Context, Progress
from transfer_bench.runs.plan import Run
from transfer_bench.runs.store import RunDir
from transfer_bench.seeding import generator
from transfer_bench.stages.common import SourceSetup, source_setup, train_level


def scoring_batch(setup: SourceSetup, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` seeded training examples of every class (Synaptic-Flow: 10 x classes)."""
    y = setup.data.y_train
    g = generator(setup.run.seed, "scoring-batch", setup.data_id)
    order = torch.randperm(len(y), generator=g).to(y.device)
    picks = []
    for c in range(setup.ds.num_classes):
        idx = order[y[order] == c][:per_class]
        picks.append(idx)
    idx = torch.cat(picks)
    return setup.data.train_images(idx), y[idx]


def run_at_init(ctx: Context, run: Run, rd: RunDir, progress: Progress) -> list[int]:
    """Write one ticket per target density (and train each on the source if asked)."""
    setup = source_setup(ctx, run, rd)
    spec = setup.spec
    init = setup.fresh_model()
    if not rd.ticket_path(0).exists():
        setup.write_ticket(0, init.state_dict(), full_masks(init))
    missing = [lv for lv in run.levels if lv > 0 and not rd.ticket_path(lv).exists()]
    if missing:
        progress(f"scoring with {spec.method} for {len(missing)} densities")
        data = (
            scoring_batch(setup, spec.samples_per_class)
            if spec.method in ("snip", "grasp")
            else None
        )
        by_density = prune_at_init(
            init,
            spec.method,
            [spec.densities[lv - 1] for lv in missing],
            data=data,
            scope=spec.scope,
            rounds=spec.rounds if spec.method == "synflow" else None,
            generator=generator(run.seed, "prune-at-init", spec.method, setup.data_id),
        )
        for lv in missing:
            masks = by_density[float(spec.densities[lv - 1])]
            setup.write_ticket(
                lv,
                init.state_dict(),
                masks,
                target_density=spec.densities[lv - 1],
                collapsed_layers=layer_collapse(masks),
            )
    done: list[int] = []
    for level in run.levels:
        if not spec.train_levels or rd.has_result(level):
            done.append(level)
            continue
        ticket, model, masks = setup.ticket_model(level)
        outcome, _ = train_level(setup, level, model, masks, start=0, progress=progress)
        rd.write_result(
            level,
            setup.record(
                level,
                density(masks),
                outcome,
                target_density=ticket.meta.get("target_density", 1.0),
                collapsed_layers=ticket.meta.get("collapsed_layers", []),
            ),
        )
        done.append(level)
    return done

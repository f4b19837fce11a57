"""Iterative magnitude pruning with reset or late rewinding.

Frankle & Carbin 2019 (ICLR), "The Lottery Ticket Hypothesis": train, prune p% of the remaining
weights by magnitude, reset the survivors to their initial values, repeat. Frankle et al. 2020 (ICML),
"Linear Mode Connectivity and the LTH": rewind to the weights at iteration k instead of the init.

Level L's ticket (mask_L + rewound weights) is written before level L trains, so every level yields
a ticket; level 0 is the dense ticket. Level L >= 1 trains from iteration k to the end of the
schedule, as in OpenLTH. Trained weights of every level are kept, so a search can later be extended
with more levels without retraining the earlier ones.
"""

from __future__ import annotations

from transfer_bench.pruning import density, full_masks, magnitude_prune
from transfer_bench.runs.context import Context, Progress
from transfer_bench.runs.plan import Run
from transfer_bench.runs.store import RunDir, load_tensors
from transfer_bench.stages.common import SourceSetup, outcome_record, source_setup, train_level
from transfer_bench.tickets import load_ticket

__all__ = ["outcome_record", "run_imp"]


def _next_ticket(setup: SourceSetup, level: int, trained: dict, masks: dict) -> None:
    spec = setup.spec
    new = magnitude_prune(
        trained,
        masks,
        level=level + 1,
        rate=spec.rate,
        head_rate=spec.head_rate,
        head_names=setup.probe.head_names,
        scope=spec.scope,
        rates=spec.layer_rates({n: tuple(m.shape) for n, m in masks.items()}),
    )
    t0 = load_ticket(setup.rd.ticket_path(0))
    setup.write_ticket(level + 1, {**t0.weights, **t0.state}, new)


def run_imp(ctx: Context, run: Run, rd: RunDir, progress: Progress) -> list[int]:
    """Run (or resume, or extend) one IMP search; returns the levels that are complete."""
    setup = source_setup(ctx, run, rd)
    k = setup.rewind
    last = max(run.levels)
    done: list[int] = []
    for level in run.levels:
        if rd.has_result(level):
            if level < last and not rd.ticket_path(level + 1).exists():
                masks = load_ticket(rd.ticket_path(level)).masks
                _next_ticket(setup, level, load_tensors(rd.trained_path(level)), masks)
            done.append(level)
            continue
        if level == 0:
            model = setup.fresh_model()
            masks = full_masks(model)
            if k == 0 and not rd.ticket_path(0).exists():
                setup.write_ticket(0, model.state_dict(), masks)
        else:
            _, model, masks = setup.ticket_model(level)

        def on_snapshot(state: dict, masks: dict = masks) -> None:
            if not rd.ticket_path(0).exists():
                setup.write_ticket(0, state, masks)

        outcome, trained = train_level(
            setup,
            level,
            model,
            masks,
            start=0 if level == 0 else k,
            progress=progress,
            snapshot_at=k if (level == 0 and k > 0) else None,
            on_snapshot=on_snapshot,
        )
        if outcome.diverged_at is None and level < last:
            _next_ticket(setup, level, trained, masks)
        rd.write_result(level, setup.record(level, density(masks), outcome))
        done.append(level)
        if outcome.diverged_at is not None:
            break
    return done

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

from typing import Any

from transfer_bench.errors import ConfigError
from transfer_bench.models import build_model
from transfer_bench.pruning import density, full_masks, magnitude_prune
from transfer_bench.runner.context import Context, Progress
from transfer_bench.runner.plan import Run
from transfer_bench.runner.store import (
    RunDir,
    load_checkpoint,
    load_tensors,
    save_checkpoint,
    save_tensors,
)
from transfer_bench.seeding import derive_seed
from transfer_bench.tickets import load_ticket, save_ticket, ticket_from_state
from transfer_bench.training import train


def outcome_record(
    ctx: Context, run: Run, level: int, dens: float, outcome: Any, **fields: Any
) -> dict:
    """The flat ``result.json`` record shared by search and transfer runs."""
    return {
        "suite": ctx.suite.name,
        "run_id": run.run_id,
        "level": level,
        "density": dens,
        "seed": run.seed,
        "test_accuracy": outcome.test_accuracy,
        "best_test_accuracy": outcome.best_test_accuracy,
        "final_train_loss": outcome.final_train_loss,
        "final_test_loss": outcome.final_test_loss,
        "early_stop_iteration": outcome.early_stop_iteration,
        "iterations": outcome.iterations,
        "seconds": round(outcome.seconds, 3),
        "diverged_at": outcome.diverged_at,
        **fields,
        "history": outcome.history,
    }


def run_imp(ctx: Context, run: Run, rd: RunDir, progress: Progress) -> list[int]:
    """Run (or resume, or extend) one IMP search; returns the levels that are complete."""
    suite = ctx.suite
    spec = suite.search
    source = run.config["dataset"]["name"]
    ds = ctx.dataset(source)
    data = ctx.train_data(source)
    spe = data.steps_per_epoch(suite.train.batch_size)
    total = suite.train.total_iterations(spe)
    k = spec.rewind_iterations(spe)
    if k >= total:
        raise ConfigError(
            f"search.rewind: rewind point {k} iterations is not before the end of training "
            f"({total} iterations on {source}); use a smaller rewind"
        )
    opt_key = suite.train.optimizer
    last = max(run.levels)

    def fresh_model():
        return build_model(
            suite.model.name,
            num_classes=ds.num_classes,
            in_channels=suite.input.channels,
            image_size=suite.input.size,
            seed=derive_seed(run.seed, "init"),
            options=dict(suite.model.options),
        ).to(ctx.device)

    probe = fresh_model()
    meta_base = {
        "model": probe.model_spec,
        "source": {
            "dataset": source,
            "spec": run.config["dataset"],
            "num_classes": ds.num_classes,
            "input": run.config["input"],
            "data": ds.info,
        },
        "search": {
            **run.config["search"],
            "train": run.config["train"],
            "optimizer": run.config["optimizer"],
        },
        "rewind": k,
        "seed": run.seed,
        "suite": {"name": suite.name, "hash": ctx.suite_hash},
        "run_id": run.run_id,
    }
    rd.write_config({**run.config, "seed": run.seed, "levels": list(run.levels), "data": ds.info})

    def write_ticket(level: int, state: dict, masks: dict) -> None:
        t = ticket_from_state(
            state, masks, probe.prunable_names, probe.head_names, {**meta_base, "level": level}
        )
        save_ticket(t, rd.ticket_path(level))

    def next_ticket(level: int, trained: dict, masks: dict) -> None:
        new = magnitude_prune(
            trained,
            masks,
            level=level + 1,
            rate=spec.rate,
            head_rate=spec.head_rate,
            head_names=probe.head_names,
            scope=spec.scope,
            rates=spec.layer_rates({n: tuple(masks[n].shape) for n in masks}),
        )
        t0 = load_ticket(rd.ticket_path(0))
        write_ticket(level + 1, {**t0.weights, **t0.state}, new)

    order_seed = derive_seed(run.seed, "order", "search", source)
    done: list[int] = []
    for level in run.levels:
        if rd.has_result(level):
            if level < last and not rd.ticket_path(level + 1).exists():
                masks = load_ticket(rd.ticket_path(level)).masks
                next_ticket(level, load_tensors(rd.trained_path(level)), masks)
            done.append(level)
            continue
        model = fresh_model()
        if level == 0:
            masks = full_masks(model)
            start = 0
            if k == 0 and not rd.ticket_path(0).exists():
                write_ticket(0, model.state_dict(), masks)
        else:
            ticket = load_ticket(rd.ticket_path(level))
            masks = ticket.apply(model, head="keep")
            start = k
        dens = density(masks)

        def on_snapshot(state: dict, masks: dict = masks) -> None:
            if not rd.ticket_path(0).exists():
                write_ticket(0, state, masks)

        def on_progress(
            epoch: int, acc: float | None, level: int = level, dens: float = dens
        ) -> None:
            progress(
                f"level {level}/{last} ({100 * dens:.1f}% left) epoch {epoch} acc {100 * (acc or 0):.1f}%"
            )

        ckpt = rd.checkpoint_path(level)
        outcome = train(
            model,
            data,
            suite.train,
            suite.optimizers[opt_key],
            masks,
            order_seed=order_seed,
            start_iteration=start,
            resume=load_checkpoint(ckpt),
            snapshot_at=k if (level == 0 and k > 0) else None,
            on_snapshot=on_snapshot,
            on_epoch=lambda state, ckpt=ckpt: save_checkpoint(ckpt, state),
            on_progress=on_progress,
        )
        trained = {n: t.detach() for n, t in model.state_dict().items()}
        save_tensors(rd.trained_path(level), trained)
        if outcome.diverged_at is None and level < last:
            next_ticket(level, trained, masks)
        rd.write_result(
            level,
            outcome_record(
                ctx,
                run,
                level,
                dens,
                outcome,
                kind="search",
                method=spec.method,
                source=source,
                target=source,
                optimizer=opt_key,
                source_optimizer=opt_key,
                control="imp",
            ),
        )
        done.append(level)
        if outcome.diverged_at is not None:
            break
    return done

"""What every search method shares: the source setup, ticket writing, and training one level.

A search run trains on one source dataset for one seed. Its level L ticket (mask + rewound weights)
is written to ``level_L/ticket.ticket``; training level L (from those weights, masks enforced) writes
``trained.safetensors`` and ``result.json``. Level 0 is always the dense network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from transfer_bench.config import SearchSpec
from transfer_bench.data import ImageDataset
from transfer_bench.errors import ConfigError
from transfer_bench.fileio import atomic_write_json
from transfer_bench.machine import fingerprint
from transfer_bench.models import build_model
from transfer_bench.pruning import Masks, density
from transfer_bench.runs.context import Context, Progress
from transfer_bench.runs.plan import Run
from transfer_bench.runs.store import RunDir, load_checkpoint, save_checkpoint, save_tensors
from transfer_bench.seeding import SEEDING_VERSION, data_identity, derive_seed, order_seed
from transfer_bench.tickets import (
    Ticket,
    apply_ticket,
    load_ticket,
    save_ticket,
    ticket_from_state,
)
from transfer_bench.training import TrainData, TrainOutcome, train


def outcome_record(
    ctx: Context, run: Run, level: int, dens: float, outcome: TrainOutcome, **fields: Any
) -> dict:
    """The flat ``result.json`` record shared by search and transfer runs (``fields`` carry the
    training's ``order_seed``: equal values mean the same batches and augmentation)."""
    return {
        "suite": ctx.suite.name,
        "run_id": run.run_id,
        "level": level,
        "density": dens,
        "seed": run.seed,
        "seeding": SEEDING_VERSION,
        "test_accuracy": outcome.test_accuracy,
        "best_test_accuracy": outcome.best_test_accuracy,
        "final_train_loss": outcome.final_train_loss,
        "final_test_loss": outcome.final_test_loss,
        "early_stop_iteration": outcome.early_stop_iteration,
        "iterations": outcome.iterations,
        "seconds": round(outcome.seconds, 3),
        "diverged": outcome.diverged_at is not None,
        "diverged_at": outcome.diverged_at,
        "precision": outcome.precision,  # the arithmetic used: fp32, or bf16 autocast
        "channels_last": outcome.channels_last,
        "torch_threads": torch.get_num_threads(),
        "machine": fingerprint(ctx.device),
        **fields,
        "history": outcome.history,
    }


TICKET_FACTS = "ticket.json"


def ticket_facts(ticket: Ticket, source: str) -> dict[str, Any]:
    """The small, committable summary of a ticket file (densities per layer, provenance), so that
    analyses of masks (e.g. layer collapse) work where ticket files are not kept."""
    return {
        "source": source,
        "seed": ticket.meta.get("seed"),
        "level": ticket.meta.get("level"),
        "run_id": ticket.meta.get("run_id"),
        "density": ticket.density,
        "layer_density": ticket.layer_density(),
    }


@dataclass
class SourceSetup:
    """The source dataset, its training tensors and the run's fixed choices.

    ``data_id`` is the source's :func:`~transfer_bench.seeding.data_identity`; ``order_seed``, from
    it and the seed, is the one a transfer on the same data uses too.
    """

    ctx: Context
    run: Run
    rd: RunDir
    source: str
    ds: ImageDataset
    data: TrainData
    steps_per_epoch: int
    total: int
    rewind: int
    data_id: str
    order_seed: int
    probe: nn.Module
    meta_base: dict[str, Any]
    spec: SearchSpec

    def fresh_model(self) -> nn.Module:
        """The network at its seeded initialization (the same for every source of a seed)."""
        suite = self.ctx.suite
        return build_model(
            suite.model.name,
            num_classes=self.ds.num_classes,
            in_channels=suite.input.channels,
            image_size=suite.input.size,
            seed=derive_seed(self.run.seed, "init"),
            options=dict(suite.model.options),
        ).to(self.ctx.device)

    def ticket_model(self, level: int) -> tuple[Ticket, nn.Module, Masks]:
        """This run's ticket of ``level``, a fresh model with the ticket loaded, and its masks."""
        ticket = load_ticket(self.rd.ticket_path(level))
        model = self.fresh_model()
        return ticket, model, apply_ticket(ticket, model, head="keep")

    def write_ticket(self, level: int, state: dict, masks: Masks, **meta: Any) -> None:
        t = ticket_from_state(
            state,
            masks,
            self.probe.prunable_names,
            self.probe.head_names,
            {**self.meta_base, **meta, "level": level},
        )
        save_ticket(t, self.rd.ticket_path(level))
        atomic_write_json(self.rd.level(level) / TICKET_FACTS, ticket_facts(t, self.source))

    def record(self, level: int, dens: float, outcome: TrainOutcome, **fields: Any) -> dict:
        opt = self.ctx.suite.search_optimizer(self.source)
        return outcome_record(
            self.ctx,
            self.run,
            level,
            dens,
            outcome,
            kind="search",
            method=self.spec.method,
            source=self.source,
            target=self.source,
            optimizer=opt,
            source_optimizer=opt,
            control=self.spec.method,
            num_classes=self.ds.num_classes,
            order_seed=self.order_seed,
            **fields,
        )


def source_setup(ctx: Context, run: Run, rd: RunDir) -> SourceSetup:
    suite = ctx.suite
    source = run.config["dataset"]["name"]
    data = ctx.train_data(source)  # first: on a GPU it replaces the CPU copy of the dataset
    ds = ctx.dataset(source)
    spe = data.steps_per_epoch(suite.train.batch_size)
    total = suite.train.total_iterations(spe)
    spec = suite.search_for(source)
    k = spec.rewind_iterations(spe)
    if k >= total:
        raise ConfigError(
            f"search.rewind: rewind point {k} iterations is not before the end of training "
            f"({total} iterations on {source}); use a smaller rewind"
        )
    data_id = data_identity(ds.info)
    setup = SourceSetup(
        ctx=ctx,
        run=run,
        rd=rd,
        source=source,
        ds=ds,
        data=data,
        steps_per_epoch=spe,
        total=total,
        rewind=k,
        data_id=data_id,
        order_seed=order_seed(run.seed, data_id),
        probe=None,  # type: ignore[arg-type]
        meta_base={},
        spec=spec,
    )
    setup.probe = setup.fresh_model()
    setup.meta_base = {
        "model": setup.probe.model_spec,
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
        "seeding": SEEDING_VERSION,
        "suite": {"name": suite.name, "hash": ctx.suite_hash},
        "run_id": run.run_id,
    }
    rd.write_config({**run.config, "seed": run.seed, "levels": list(run.levels), "data": ds.info})
    return setup


def train_level(
    setup: SourceSetup,
    level: int,
    model: nn.Module,
    masks: Masks,
    *,
    start: int,
    progress: Progress,
    snapshot_at: int | None = None,
    on_snapshot: Callable[[dict[str, torch.Tensor]], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    after_backward: Callable[[nn.Module], None] | None = None,
) -> tuple[TrainOutcome, dict[str, torch.Tensor]]:
    """Train one level on the source (resuming from its checkpoint) and save its trained weights."""
    ctx = setup.ctx
    dens = density(masks)
    last = max(setup.run.levels)
    ckpt = setup.rd.checkpoint_path(level)

    def on_progress(epoch: int, acc: float | None) -> None:
        progress(
            f"level {level}/{last} ({100 * dens:.1f}% left) epoch {epoch} acc {100 * (acc or 0):.1f}%"
        )

    def checkpoint(state: dict[str, Any]) -> None:
        if on_epoch is not None:
            on_epoch(state)
        save_checkpoint(ckpt, state)

    outcome = train(
        model,
        setup.data,
        ctx.suite.train,
        ctx.suite.optimizers[ctx.suite.search_optimizer(setup.source)],
        masks,
        order_seed=setup.order_seed,
        start_iteration=start,
        resume=load_checkpoint(ckpt),
        snapshot_at=snapshot_at,
        on_snapshot=on_snapshot,
        on_epoch=checkpoint,
        on_progress=on_progress,
        after_backward=after_backward,
        # a caller's on_epoch (Early-Bird's mask tracking) must see every epoch
        checkpoint_every=ctx.checkpoint_seconds if on_epoch is None else 0.0,
    )
    trained = {n: t.detach() for n, t in model.state_dict().items()}
    save_tensors(setup.rd.trained_path(level), trained)
    return outcome, trained

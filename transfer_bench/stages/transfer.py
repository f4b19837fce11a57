"""Retrain tickets on a target dataset, next to controls (Morcos et al. 2019, "One ticket to win them all").

A ticket (mask + rewound weights) from a source search is applied to a model built for the target.
The suite's head policy (``head_policy.py``; default: re-initialize unless the target has the
source's labels) decides whether the head is kept; a re-initialized head is drawn from a seeded
generator and pruned to the ticket's head density (Morcos: the output layer "is simply replaced and
randomly initialized"). Every result records the policy and the action taken. Controls:

- ``random_reinit``: the same masks with fresh weights from a seeded init (Frankle & Carbin's control);
- ``shuffle_layerwise``: each layer's mask permuted, fresh init (Frankle et al. 2021's sanity check);
- ``random_global``: one permutation over all masked weights, fresh init (Morcos et al.'s random ticket);
- ``own_ticket``: the target's own IMP ticket at the same level (the ticket arm with source = target);
- ``dense``: the unpruned network from the search's init seed, trained on the target.

A ticket found elsewhere (the suite's ``tickets:``) comes from its file instead of a search run,
checked against the digest the run was planned with; its source identity
(:func:`transfer_bench.runs.external.source_identity`) stands in for the source's rows, and the
run records which file it transferred (``config.json``) and its digest (every result).

Target training always runs the full target schedule from iteration 0 with the target optimizer,
which may differ from the source's. Its data order and augmentation are seeded by the target's
training rows (``seeding.order_seed``), so every arm on a target, and a search on the same data,
sees the same batches; the head and control draws are seeded by the source's and the target's rows
too, never by their names in the suite.
"""

from __future__ import annotations

from transfer_bench.fileio import atomic_write_json
from transfer_bench.models import build_model
from transfer_bench.pruning import apply_masks_, density, random_global, shuffle_layerwise
from transfer_bench.runs import external
from transfer_bench.runs.context import Context, Progress
from transfer_bench.runs.plan import Run
from transfer_bench.runs.store import RunDir, load_checkpoint, read_json, save_checkpoint
from transfer_bench.seeding import data_identity, derive_seed, generator, order_seed
from transfer_bench.stages.common import outcome_record
from transfer_bench.tickets import apply_ticket, load_ticket
from transfer_bench.tickets.apply import head_mismatch
from transfer_bench.training import train

FRESH_INIT_CONTROLS = ("random_reinit", "shuffle_layerwise", "random_global")
SKIPPED_FILE = "skipped.json"


def _no_ticket_because(source: RunDir, level: int) -> str | None:
    """Why the source search has no ticket for ``level`` (it diverged earlier), or None."""
    if source.ticket_path(level).exists():
        return None
    for earlier in range(level):
        path = source.result_path(earlier)
        if path.exists() and read_json(path).get("diverged"):
            return (
                f"the source search diverged at level {earlier}, so it has no level {level} ticket"
            )
    return None


def _head_mode(cfg: dict, ticket, model) -> str:
    """``keep`` or ``reinit`` for this ticket and target model, from the run's head policy.

    ``head_action`` (set by the plan where ``auto`` re-initializes) wins; ``auto`` otherwise means
    the target has the source's labels, so the head is kept when it fits (as ``match`` does).
    """
    if cfg.get("head_action") == "reinit" or cfg["head"] == "reinit":
        return "reinit"
    if cfg["head"] == "keep":
        return "keep"
    return "keep" if head_mismatch(ticket, model) is None else "reinit"


def _recorded_search(loaded: dict) -> dict:
    """The search block an external ticket records (its first level's)."""
    _, ticket = next(iter(loaded.values()))
    return ticket.meta.get("search") or {}


def _method(suite, cfg: dict, source: str | None, loaded: dict | None) -> str | None:
    """How the source's ticket was found: the search method, or what an external ticket records
    (``imported`` for OpenLTH and torch-prune files)."""
    if not source or cfg["control"] == "dense":
        return None
    if loaded is not None:
        return str(_recorded_search(loaded).get("method") or "external")
    return suite.search_for(source).method


def _source_optimizer(suite, cfg: dict, source: str | None, loaded: dict | None) -> str | None:
    if not source or cfg["control"] == "dense":
        return None
    if loaded is not None:
        return (_recorded_search(loaded).get("optimizer") or {}).get("key")
    return suite.search_optimizer(source)


def run_transfer(ctx: Context, run: Run, rd: RunDir, progress: Progress) -> list[int]:
    """Train every requested level of one transfer run; returns the levels that are complete."""
    suite = ctx.suite
    cfg = run.config
    target = cfg["target"]["name"]
    control = cfg["control"]
    source = cfg.get("source")
    data = ctx.train_data(target)  # first: on a GPU it replaces the CPU copy of the dataset
    ds = ctx.dataset(target)
    opt_key = cfg["optimizer"]["key"]
    target_id = data_identity(ds.info)
    seed_of_order = order_seed(run.seed, target_id)
    ext = cfg.get("ticket")  # a ticket found elsewhere: its files, by level, with digests
    facts: dict = {}
    if ext is not None:
        planned = {f["level"]: f["sha256"] for f in ext["files"]}
        loaded = {lv: ctx.external_ticket(source, lv, planned[lv]) for lv in run.levels}
        named = ctx.external_source(source).dataset
        # the named dataset's rows stand in only for a ticket that records none (loading it
        # otherwise would cost a dataset load and one of the context's two dataset slots)
        unrecorded = any(external.recorded_rows(t) is None for _, t in loaded.values())
        named_rows = data_identity(ctx.dataset(named).info) if named and unrecorded else None
        facts["ticket_files"] = [external.provenance(t, f) for f, t in loaded.values()]
    rd.write_config({**cfg, "seed": run.seed, "levels": list(run.levels), "data": ds.info, **facts})
    source_dir = (
        ctx.suite_dir / cfg["source_run"] / f"seed_{run.seed}" if "source_run" in cfg else None
    )

    def build(seed: int):
        return build_model(
            suite.model.name,
            num_classes=ds.num_classes,
            in_channels=suite.input.channels,
            image_size=suite.input.size,
            seed=seed,
            options=dict(suite.model.options),
        ).to(ctx.device)

    done: list[int] = []
    for level in run.levels:
        if rd.has_result(level):
            done.append(level)
            continue
        if control == "dense":
            model, masks = build(derive_seed(run.seed, "init")), None
        elif source_dir is not None and (why := _no_ticket_because(RunDir(source_dir), level)):
            # nothing to train: the source search diverged before producing this ticket
            atomic_write_json(rd.level(level) / SKIPPED_FILE, {"level": level, "reason": why})
            progress(f"level {level}: skipped ({why})")
            done.append(level)
            continue
        else:
            if ext is not None:
                file, ticket = loaded[level]
                source_id = external.source_identity(ticket, file, named_rows)
                found_by = {"ticket_sha256": file.sha256, "ticket_format": file.format}
            else:
                ticket = load_ticket(RunDir(source_dir).ticket_path(level))
                source_id = data_identity(ticket.meta["source"]["data"])
                found_by = {}
            model = build(derive_seed(run.seed, "init"))
            head = _head_mode(cfg, ticket, model)
            masks = apply_ticket(
                ticket,
                model,
                head=head,
                generator=generator(run.seed, "head", source_id, target_id, level),
            )
            if control in FRESH_INIT_CONTROLS:
                rng = generator(run.seed, control, source_id, target_id, level)
                if control == "shuffle_layerwise":
                    masks = shuffle_layerwise(masks, rng)
                elif control == "random_global":
                    masks = random_global(masks, rng)
                role = "reinit" if control == "random_reinit" else control
                model = build(derive_seed(run.seed, role, level))
                apply_masks_(model, masks)
        dens = density(masks) if masks else 1.0
        head_record = (
            {"head_policy": cfg["head"], "head": "kept" if head == "keep" else "reinitialized"}
            if masks
            else {"head_policy": None, "head": None}
        )
        if masks:
            head_record.update(found_by)

        def on_progress(
            epoch: int, acc: float | None, level: int = level, dens: float = dens
        ) -> None:
            progress(
                f"level {level} ({100 * dens:.1f}% left) epoch {epoch} acc {100 * (acc or 0):.1f}%"
            )

        ckpt = rd.checkpoint_path(level)
        outcome = train(
            model,
            data,
            suite.train,
            suite.optimizers[opt_key],
            masks,
            order_seed=seed_of_order,
            resume=load_checkpoint(ckpt),
            on_epoch=lambda state, ckpt=ckpt: save_checkpoint(ckpt, state),
            on_progress=on_progress,
            checkpoint_every=ctx.checkpoint_seconds,
        )
        rd.write_result(
            level,
            outcome_record(
                ctx,
                run,
                level,
                dens,
                outcome,
                kind="transfer",
                method=_method(suite, cfg, source, loaded if ext is not None else None),
                source=source,
                target=target,
                optimizer=opt_key,
                source_optimizer=_source_optimizer(suite, cfg, source, loaded if ext else None),
                control=control,
                num_classes=ds.num_classes,
                order_seed=seed_of_order,
                **head_record,
            ),
        )
        done.append(level)
    return done

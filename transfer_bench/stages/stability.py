"""Instability analysis runs (Frankle et al. 2020, "Linear Mode Connectivity and the LTH", ICML).

For each requested level L and rewind point k: start from the dense training's weights at
iteration k times the level-L mask of the source search, train two copies to the end of the
schedule with different data orders, and record the error barrier along the linear path between
them (``points`` evenly spaced, stable = barrier < 2%). The weights at k are recomputed by training
the dense network (same init and data order as the search) for k iterations, which is exactly the
search's own trajectory. Results go to ``level_L/rewind_<k>/result.json`` (kind ``stability``).
The two copies' data orders are seeded by the source's training rows, not its name in the suite.
"""

from __future__ import annotations

from transfer_bench.config import SearchSpec
from transfer_bench.fileio import atomic_write_json
from transfer_bench.pruning import density, full_masks
from transfer_bench.runs.context import Context, Progress
from transfer_bench.runs.plan import Run
from transfer_bench.runs.store import RunDir
from transfer_bench.seeding import SEEDING_VERSION, derive_seed
from transfer_bench.stages.common import SourceSetup, source_setup
from transfer_bench.tickets import load_ticket
from transfer_bench.training import train
from transfer_bench.training.stability import instability


def weights_at(setup: SourceSetup, k: int) -> dict:
    """The dense network's state after k iterations of the search's own training."""
    model = setup.fresh_model()
    if k == 0:
        return {n: t.detach().clone() for n, t in model.state_dict().items()}
    snaps: list[dict] = []
    spec = setup.ctx.suite.train.model_copy(update={"iterations": k})
    train(
        model,
        setup.data,
        spec,
        setup.ctx.suite.optimizers[setup.ctx.suite.search_optimizer(setup.source)],
        None,
        order_seed=setup.order_seed,
        snapshot_at=k,
        on_snapshot=snaps.append,
    )
    return snaps[0]


def run_stability(ctx: Context, run: Run, rd: RunDir, progress: Progress) -> list[int]:
    setup = source_setup(ctx, run, rd)
    suite = ctx.suite
    search_rd = RunDir(ctx.suite_dir / run.config["source_run"] / f"seed_{run.seed}")
    points = run.config["stability"]["points"]
    done: list[int] = []
    for level in run.levels:
        for r in run.config["stability"]["rewind_points"]:
            k = SearchSpec(sources=("x",), rewind=r).rewind_iterations(setup.steps_per_epoch)
            out = rd.level(level) / f"rewind_{k}" / "result.json"
            if out.exists():
                continue
            progress(f"level {level} rewind {k}: two copies + {points}-point path")
            model = setup.fresh_model()
            masks = load_ticket(search_rd.ticket_path(level)).masks if level else full_masks(model)
            result = instability(
                setup.fresh_model,
                weights_at(setup, k),
                masks,
                setup.data,
                suite.train,
                suite.optimizers[suite.search_optimizer(setup.source)],
                seeds=(
                    derive_seed(run.seed, "stability", setup.data_id, 0),
                    derive_seed(run.seed, "stability", setup.data_id, 1),
                ),
                start_iteration=k,
                points=points,
            )
            result["interpolation"] = result.pop("path")  # "path" names the file in analysis frames
            atomic_write_json(
                out,
                {
                    "kind": "stability",
                    "suite": suite.name,
                    "run_id": run.run_id,
                    "source": setup.source,
                    "target": setup.source,
                    "optimizer": suite.search_optimizer(setup.source),
                    "control": "stability",
                    "method": setup.spec.method,
                    "level": level,
                    "density": density(masks),
                    "seed": run.seed,
                    "seeding": SEEDING_VERSION,
                    "rewind": k,
                    "test_accuracy": 1.0 - sum(result["end_errors"]) / 2,
                    **result,
                },
            )
        done.append(level)
    return done

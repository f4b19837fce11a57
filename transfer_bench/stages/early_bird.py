"""Early-Bird tickets as a search method (You et al. 2020, "Drawing Early-Bird Tickets", ICLR).

The dense network trains on the source (level 0) while a mask is drawn after every epoch for each
prune fraction; a FIFO of the last ``window`` masks declares the Early-Bird ticket at the first
epoch where every normalized Hamming distance to the newest mask is <= ``threshold``. Level i's
ticket is the mask for ``prune_fractions[i-1]`` at its detection epoch (the final epoch's mask,
flagged ``detected: false``, if it never settled) on the rewound weights (the init for rewind 0,
i.e. You et al.'s "EB Train (re-init)"), so it can be retrained or transferred like any ticket.

With ``mask: bn_channel`` the masks are BatchNorm-scale channel masks (network slimming, with the
L1 penalty on the scales during training); a ticket then masks the whole filters of the conv layer
that feeds each pruned channel.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from transfer_bench.pruning import Masks, density, full_masks
from transfer_bench.pruning.early_bird import (
    EarlyBirdDetector,
    bn_channel_mask,
    l1_bn_penalty,
    magnitude_mask,
)
from transfer_bench.runs.context import Context, Progress
from transfer_bench.runs.plan import Run
from transfer_bench.runs.store import RunDir, load_checkpoint
from transfer_bench.stages.common import source_setup, train_level
from transfer_bench.tickets import load_ticket


def conv_feeding_bn(model: nn.Module, example: torch.Tensor) -> dict[str, str]:
    """BN weight name -> the prunable conv weight whose output it normalizes (by forward order)."""
    names = {m: n for n, m in model.named_modules()}
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: order.append(m))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))
    ]
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            model(example)
            model.train(was)
    finally:
        for h in hooks:
            h.remove()
    out: dict[str, str] = {}
    last_conv: nn.Conv2d | None = None
    for m in order:
        if isinstance(m, nn.Conv2d):
            last_conv = m
        elif last_conv is not None and last_conv.out_channels == m.num_features:
            out[f"{names[m]}.weight"] = f"{names[last_conv]}.weight"
    return out


def channel_to_weight_masks(model: nn.Module, bn_masks: Masks, feeding: dict[str, str]) -> Masks:
    """Weight masks that drop the filters of the conv layers feeding pruned BN channels."""
    masks = full_masks(model)
    for bn_name, keep in bn_masks.items():
        conv = feeding.get(bn_name)
        if conv in masks:
            masks[conv] = masks[conv] & keep.view(-1, 1, 1, 1).to(masks[conv].device)
    return masks


def run_early_bird(ctx: Context, run: Run, rd: RunDir, progress: Progress) -> list[int]:
    setup = source_setup(ctx, run, rd)
    spec = setup.spec
    eb = spec.early_bird
    k = setup.rewind
    done: list[int] = []
    if not rd.has_result(0):
        model = setup.fresh_model()
        masks0 = full_masks(model)
        if k == 0 and not rd.ticket_path(0).exists():
            setup.write_ticket(0, model.state_dict(), masks0)
        example = setup.data.train_images(torch.arange(1))
        feeding = conv_feeding_bn(model, example) if eb.mask == "bn_channel" else {}
        detectors = {f: EarlyBirdDetector(eb.window, eb.threshold) for f in eb.prune_fractions}
        chosen: dict[float, Masks] = {}
        resumed = load_checkpoint(rd.checkpoint_path(0))
        if resumed is not None and "early_bird" in resumed:
            saved = resumed["early_bird"]
            for f, det in detectors.items():
                for epoch, m in zip(saved["epochs"][str(f)], saved["masks"][str(f)], strict=True):
                    det.update(m, epoch)
                if str(f) in saved["chosen"]:
                    chosen[f] = saved["chosen"][str(f)]
        history_masks: dict[float, list[Masks]] = {
            f: list(det.masks) for f, det in detectors.items()
        }

        def draw(f: float) -> Masks:
            if eb.mask == "bn_channel":
                return bn_channel_mask(model, f)
            return magnitude_mask(model, f, model.prunable_names, scope="global")

        def on_epoch(state: dict[str, Any]) -> None:
            epoch = state["iteration"] // setup.steps_per_epoch
            for f, det in detectors.items():
                m = draw(f)
                if det.update(m, epoch) and f not in chosen:
                    chosen[f] = m
                history_masks[f] = list(det.masks)
            state["early_bird"] = {
                "epochs": {str(f): det.epochs[-len(det.masks) :] for f, det in detectors.items()},
                "masks": {str(f): history_masks[f] for f in detectors},
                "chosen": {str(f): m for f, m in chosen.items()},
            }

        outcome, _ = train_level(
            setup,
            0,
            model,
            masks0,
            start=0,
            progress=progress,
            snapshot_at=k if k > 0 else None,
            on_snapshot=lambda st: (
                None if rd.ticket_path(0).exists() else setup.write_ticket(0, st, masks0)
            ),
            on_epoch=on_epoch,
            after_backward=(lambda m: l1_bn_penalty(m, eb.l1)) if eb.mask == "bn_channel" else None,
        )
        final_epoch = outcome.iterations // setup.steps_per_epoch
        report = {}
        t0 = load_ticket(rd.ticket_path(0))
        for i, f in enumerate(eb.prune_fractions, start=1):
            det = detectors[f]
            det.update(draw(f), final_epoch)  # the final mask joins the history
            m = chosen.get(f) or draw(f)
            weight_masks = (
                channel_to_weight_masks(model, m, feeding) if eb.mask == "bn_channel" else m
            )
            report[str(f)] = {
                "detected": f in chosen,
                "detected_epoch": det.detected_epoch,
                "max_distances": det.max_distances,
                "epochs": det.epochs,
            }
            setup.write_ticket(
                i,
                {**t0.weights, **t0.state},
                weight_masks,
                early_bird={"prune_fraction": f, "mask": eb.mask, **report[str(f)]},
            )
        rd.write_result(0, setup.record(0, 1.0, outcome, early_bird=report))
    done.append(0)
    for level in run.levels:
        if level == 0:
            continue
        if not spec.train_levels or rd.has_result(level):
            done.append(level)
            continue
        ticket, model, masks = setup.ticket_model(level)
        outcome, _ = train_level(setup, level, model, masks, start=k, progress=progress)
        info = ticket.meta.get("early_bird") or {}
        epochs = ctx.suite.train.total_iterations(setup.steps_per_epoch) / setup.steps_per_epoch
        rd.write_result(
            level,
            setup.record(
                level,
                density(masks),
                outcome,
                early_bird=info,
                # when the ticket was drawn, as a fraction of training (1.0: the masks never
                # settled and the ticket is drawn at the end)
                early_bird_epoch=info.get("detected_epoch"),
                early_bird_fraction=(info["detected_epoch"] / epochs)
                if info.get("detected") and info.get("detected_epoch")
                else 1.0,
            ),
        )
        done.append(level)
    return done

"""Compare two tickets of one architecture: densities, mask overlap and shared initialization.

The comparison researchers make when two searches should agree (two seeds, two sources, reset vs
rewind): per masked layer, each ticket's density, the Jaccard index of the kept weights next to the
value two independent random masks of those densities would reach on average, and whether the
weights kept by both start from the same values (bit for bit: the same init and rewind point).
"""

from __future__ import annotations

from typing import Any

import torch

from transfer_bench.errors import TicketError
from transfer_bench.pruning.overlap import counts, expected_random
from transfer_bench.tickets.format import Ticket

OVERALL = "(all layers)"


def _check_same_architecture(a: Ticket, b: Ticket) -> None:
    if list(a.masks) != list(b.masks):
        only = sorted(set(a.masks) ^ set(b.masks))
        what = f"layer {only[0]!r} is in only one ticket" if only else "layers are in another order"
        raise TicketError(f"ticket diff: {what}; compare tickets of the same architecture")
    for name in a.masks:
        if a.masks[name].shape != b.masks[name].shape:
            raise TicketError(
                f"ticket diff: layer {name!r} has shape {list(a.masks[name].shape)} in one ticket "
                f"and {list(b.masks[name].shape)} in the other; compare tickets of the same "
                "architecture"
            )


def _row(layer: str, ma: torch.Tensor, mb: torch.Tensor, wa: torch.Tensor, wb: torch.Tensor):
    c = counts(ma, mb, f"layer {layer!r}")
    shared = ma & mb
    n_shared = int(torch.count_nonzero(shared))
    va, vb = wa[shared], wb[shared]
    equal = int(torch.count_nonzero(va == vb)) if n_shared else 0
    gap = float((va.double() - vb.double()).abs().max()) if n_shared else 0.0
    p, q = c.kept_a / c.total if c.total else 0.0, c.kept_b / c.total if c.total else 0.0
    return {
        "layer": layer,
        "total": c.total,
        "density_a": p,
        "density_b": q,
        "jaccard": c.value("jaccard"),
        "jaccard_random": expected_random("jaccard", p, q),
        "shared": n_shared,
        "same_init": equal / n_shared if n_shared else float("nan"),
        "max_init_gap": gap,
    }


def diff_tickets(a: Ticket, b: Ticket) -> list[dict[str, Any]]:
    """One row per masked layer and a last pooled row (``layer == OVERALL``).

    ``jaccard_random``: the expected Jaccard index of two independent random masks with the same
    densities. ``same_init``: the fraction of weights kept by both whose stored (rewound) values
    are bit-identical; ``max_init_gap``: the largest absolute difference among them.
    """
    _check_same_architecture(a, b)
    rows = [
        _row(name, a.masks[name], b.masks[name], a.weights[name], b.weights[name])
        for name in a.masks
    ]
    flat = {
        k: torch.cat([getattr(t, attr)[n].reshape(-1) for n in a.masks])
        for k, t, attr in (("ma", a, "masks"), ("mb", b, "masks"), ("wa", a, "weights"))
    }
    flat["wb"] = torch.cat([b.weights[n].reshape(-1).to(flat["wa"].dtype) for n in a.masks])
    rows.append(_row(OVERALL, flat["ma"], flat["mb"], flat["wa"], flat["wb"]))
    return rows


def same_init_verdict(overall: dict[str, Any]) -> str:
    """Plain words for the pooled ``same_init``."""
    share, n = overall["same_init"], overall["shared"]
    if n == 0:
        return "no weight is kept by both tickets"
    if share == 1.0:
        return f"yes: all {n:,} weights kept by both start from identical values"
    if share == 0.0:
        return f"no: none of the {n:,} weights kept by both start from the same value"
    return (
        f"partly: {100 * share:.1f}% of the {n:,} weights kept by both start from identical values"
    )

"""`ticket diff`: densities, mask overlap against chance, and shared initialization."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_tickets import Toy, make_ticket, random_masks
from typer.testing import CliRunner

from transfer_bench.cli import app
from transfer_bench.errors import TicketError
from transfer_bench.tickets import save_ticket, ticket_from_state
from transfer_bench.tickets.diff import OVERALL, diff_tickets


def _with_masks(model: Toy, density: float, seed: int):
    meta = {**make_ticket(model).meta}
    return ticket_from_state(
        model.state_dict(),
        random_masks(model, density, seed=seed),
        model.prunable_names,
        model.head_names,
        meta,
    )


def test_a_ticket_equals_itself() -> None:
    t = make_ticket(Toy())
    rows = diff_tickets(t, t)
    assert rows[-1]["layer"] == OVERALL
    assert all(r["jaccard"] == 1.0 and r["same_init"] == 1.0 for r in rows if r["shared"])


def test_other_masks_and_other_init_are_told_apart() -> None:
    torch.manual_seed(0)
    model = Toy()
    a = _with_masks(model, 0.3, seed=1)
    b = _with_masks(model, 0.3, seed=2)  # same weights, independent random masks
    overall = diff_tickets(a, b)[-1]
    assert overall["same_init"] == 1.0
    # independent random masks overlap about as much as chance predicts
    assert overall["jaccard"] == pytest.approx(overall["jaccard_random"], abs=0.05)
    other = Toy()  # another initialization (fresh random weights)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)
    c = _with_masks(other, 0.3, seed=1)
    overall = diff_tickets(a, c)[-1]
    assert overall["jaccard"] == 1.0 and overall["same_init"] == 0.0


def test_cli_diff_and_architecture_mismatch(tmp_path: Path) -> None:
    a = save_ticket(make_ticket(Toy()), tmp_path / "a.ticket")
    out = CliRunner().invoke(app, ["ticket", "diff", str(a), str(a)])
    assert out.exit_code == 0, out.output
    assert (
        "Jaccard of the kept weights 1.000" in out.output
        and "Same initialization: yes" in out.output
    )
    t = make_ticket(Toy())
    t.masks.pop(next(iter(t.masks)))
    with pytest.raises(TicketError, match="only one ticket"):
        diff_tickets(make_ticket(Toy()), t)

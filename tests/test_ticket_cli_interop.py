"""`ticket export --to` / `ticket import --from` / `ticket upgrade` from the command line."""

from __future__ import annotations

from pathlib import Path

import torch
from test_tickets import META
from typer.testing import CliRunner

from transfer_bench.cli import app
from transfer_bench.models import build_model
from transfer_bench.tickets import format as fmt
from transfer_bench.tickets import load_ticket, save_ticket, ticket_from_state


def _lenet_ticket(tmp_path: Path) -> Path:
    model = build_model("lenet_300_100", num_classes=10, in_channels=1, image_size=8, seed=0)
    params = dict(model.named_parameters())
    g = torch.Generator().manual_seed(0)
    masks = {n: torch.rand(params[n].shape, generator=g) < 0.2 for n in model.prunable_names}
    meta = {**META, "model": model.model_spec}
    ticket = ticket_from_state(
        model.state_dict(), masks, model.prunable_names, model.head_names, meta
    )
    return save_ticket(ticket, tmp_path / "lenet.ticket")


def test_export_import_round_trips_from_the_cli(tmp_path: Path) -> None:
    src = _lenet_ticket(tmp_path)
    runner = CliRunner()
    common = ["--model", "lenet_300_100", "--num-classes", "10", "--in-channels", "1"]
    common += ["--image-size", "8"]
    for fmt_name, out in (("torch-prune", tmp_path / "t.pth"), ("openlth", tmp_path / "level_0")):
        res = runner.invoke(app, ["ticket", "export", str(src), str(out), "--to", fmt_name])
        assert res.exit_code == 0, res.output
        back = tmp_path / f"back-{fmt_name}.ticket"
        res = runner.invoke(
            app, ["ticket", "import", str(out), str(back), "--from", fmt_name, *common]
        )
        assert res.exit_code == 0, res.output
        a, b = load_ticket(src), load_ticket(back)
        for name in a.masks:
            assert torch.equal(a.masks[name], b.masks[name])
            assert torch.equal(a.weights[name], b.weights[name])
    bad = runner.invoke(app, ["ticket", "export", str(src), str(tmp_path / "x"), "--to", "onnx"])
    assert bad.exit_code != 0 and "--to 'onnx'" in str(bad.exception)


def test_upgrade_writes_the_current_version(tmp_path: Path) -> None:
    ticket = load_ticket(_lenet_ticket(tmp_path))
    old = tmp_path / "v1.ticket"
    old.write_bytes(fmt._encode(fmt._tensors(ticket), ticket.meta, version=1))
    new = tmp_path / "v2.ticket"
    res = CliRunner().invoke(app, ["ticket", "upgrade", str(old), str(new)])
    assert res.exit_code == 0, res.output
    assert new.stat().st_size < old.stat().st_size / 3  # 20% density: kept values only
    assert new.read_bytes() == fmt.ticket_bytes(ticket)

"""``ticket verify`` / ``ticket inspect`` check files with numpy only: no torch, no typer.

The checks themselves are covered by the malformed-ticket corpus (run through both ``load_ticket``
and the console entry point); here: that the fast path really avoids torch, that many files can be
verified in one command, and that the numpy reading agrees with torch for every dtype (BF16, which
numpy lacks, included).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from transfer_bench import entry
from transfer_bench.errors import TicketError
from transfer_bench.tickets import format as fmt
from transfer_bench.tickets import load_ticket, read_ticket_arrays, save_ticket, ticket_from_state

REPO = Path(__file__).resolve().parents[1]
META = {
    "model": {"name": "unit"},
    "level": 1,
    "rewind": 0,
    "seed": 0,
    "source": {"dataset": "unit"},
    "search": {"method": "imp"},
    "suite": {"name": "unit"},
}


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(7, 5)
        self.bn = nn.BatchNorm1d(5)
        self.fc2 = nn.Linear(5, 3)


def ticket(dtype: torch.dtype = torch.float32, seed: int = 0):
    torch.manual_seed(seed)
    model = Net().to(dtype)
    g = torch.Generator().manual_seed(seed + 1)
    names = ["fc1.weight", "fc2.weight"]
    params = dict(model.named_parameters())
    masks = {n: torch.rand(params[n].shape, generator=g) < 0.4 for n in names}
    return ticket_from_state(model.state_dict(), masks, names, ["fc2.weight", "fc2.bias"], META)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_numpy_and_torch_readers_agree_bit_for_bit(tmp_path: Path, dtype: torch.dtype) -> None:
    t = ticket(dtype)
    path = save_ticket(t, tmp_path / "t.ticket")
    arrays = read_ticket_arrays(path)
    back = load_ticket(path)
    assert arrays.density == pytest.approx(t.density) and arrays.version == 2
    for name, m in t.masks.items():
        assert (arrays.masks[name] == m.numpy()).all()
        assert back.weights[name].dtype == dtype
        assert torch.equal(back.weights[name].view(torch.uint8), t.weights[name].view(torch.uint8))
    for name, v in t.state.items():
        assert back.state[name].dtype == v.dtype and back.state[name].shape == v.shape
        assert torch.equal(back.state[name], v)


def test_bfloat16_nan_is_found_without_torch(tmp_path: Path) -> None:
    t = ticket(torch.bfloat16)
    tensors = fmt._tensors_v2(t)
    tensors["kept/fc1.weight"][0] = float("nan")
    path = tmp_path / "nan.ticket"
    path.write_bytes(fmt._encode(tensors, t.meta))
    with pytest.raises(TicketError, match="NaN or infinite"):
        read_ticket_arrays(path)


def test_in_memory_check_rejects_what_files_cannot_hold() -> None:
    t = ticket()
    bad = fmt.Ticket(
        masks=t.masks,
        weights=t.weights,
        state={**t.state, "z": torch.zeros(2, dtype=torch.cfloat)},
        meta=t.meta,
    )
    with pytest.raises(TicketError, match="cannot store"):
        fmt.check_ticket(bad, "mem")


def test_verify_and_inspect_import_neither_torch_nor_typer(tmp_path: Path) -> None:
    path = save_ticket(ticket(), tmp_path / "t.ticket")
    probe = (
        "import sys\n"
        "from transfer_bench import entry\n"
        f"for argv in (['ticket', 'verify', {str(path)!r}], ['ticket', 'inspect', {str(path)!r}]):\n"
        "    sys.argv = ['transfer-bench', *argv]\n"
        "    try:\n"
        "        entry.main()\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, e.code\n"
        "heavy = sorted(m for m in ('torch', 'typer', 'pydantic', 'pandas') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "OK:" in proc.stdout and "fc1.weight" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY=", proc.stdout


def test_verify_many_files_reports_each(tmp_path: Path, capsys, monkeypatch) -> None:
    good = [save_ticket(ticket(seed=s), tmp_path / f"{s}.ticket") for s in range(2)]
    bad = tmp_path / "bad.ticket"
    bad.write_bytes(good[0].read_bytes()[:-3])
    monkeypatch.setattr(sys, "argv", ["tb", "ticket", "verify", *map(str, [*good, bad])])
    with pytest.raises(SystemExit) as e:
        entry.main()
    out = capsys.readouterr()
    assert e.value.code == 1
    assert out.out.count("OK:") == 2 and "2 of 3 tickets verified" in out.out
    assert "FAILED:" in out.err and "bad.ticket" in out.err


def test_options_and_help_go_to_the_typer_app(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["tb", "ticket", "verify", "--help"])
    with pytest.raises(SystemExit) as e:
        entry.main()
    assert e.value.code == 0
    assert "exit status 1 if any fails" in " ".join(capsys.readouterr().out.split())


def test_inspect_shows_version_and_provenance(tmp_path: Path, capsys, monkeypatch) -> None:
    path = save_ticket(ticket(), tmp_path / "t.ticket")
    monkeypatch.setattr(sys, "argv", ["tb", "ticket", "inspect", str(path)])
    with pytest.raises(SystemExit) as e:
        entry.main()
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "format version 2" in out and "fc2.weight" in out
    meta = json.loads(out[out.index("{") :])
    assert meta["search"] == {"method": "imp"} and "param_shapes" not in meta

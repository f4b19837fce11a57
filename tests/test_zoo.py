"""The ticket zoo: every committed entry verifies, fits the size budget and is what its catalogue
says (the LeNet tickets are the committed quickstart's, and retraining one on its source gives its
catalogue accuracy); a changed zoo file is refused; ``zoo build`` makes entries from a results
folder that suites can then name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from transfer_bench import run_suite
from transfer_bench.cli import app
from transfer_bench.config import load_suite, parse_suite
from transfer_bench.errors import TicketError
from transfer_bench.machine import fingerprint
from transfer_bench.runs.plan import plan
from transfer_bench.tickets import zoo
from transfer_bench.tickets.verify import read_ticket_arrays

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "results" / "quickstart"


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_entry_verifies_and_the_zoo_fits_its_budget() -> None:
    entries = zoo.read_catalogue()
    assert entries and len({e.name for e in entries}) == len(entries)
    files = {p.name for p in zoo.zoo_dir().glob("*.ticket")}
    assert files == {e.file for e in entries}  # nothing uncatalogued, nothing missing
    for e in entries:
        assert zoo.verify_entry(e) is None, e.name
        assert e.bytes == (zoo.zoo_dir() / e.file).stat().st_size
        assert read_ticket_arrays(e.path()).version == 2
        assert 0 < e.density < 1 and 0 < e.source_accuracy <= 1 and e.sha256 and e.suite_file
    assert zoo.zoo_bytes() <= zoo.SIZE_BUDGET_BYTES
    res = CliRunner().invoke(app, ["ticket", "zoo"])
    assert res.exit_code == 0, res.output
    assert res.output.count("| OK |") == len(entries) and "budget" in res.output


def test_the_lenet_entries_are_the_committed_quickstarts_tickets() -> None:
    """Levels are the quickstart's transferred levels; densities, source accuracies and source
    rows are the committed quickstart search's (seed 0)."""
    group = zoo.lookup("lenet_300_100-mnist5k")
    suite = load_suite(ROOT / "suites" / "quickstart.yaml")
    assert [e.level for e in group] == [lv for lv in suite.transfer_levels if lv > 0]
    (search,) = QUICKSTART.glob("search-*/seed_0")
    rows = json.loads((search / "config.json").read_text())["data"]["rows"]["train"]["sha256"]
    for e in group:
        result = json.loads((search / f"level_{e.level}" / "result.json").read_text())
        assert e.source_accuracy == result["test_accuracy"]
        assert e.density == pytest.approx(result["density"], abs=1e-12)
        assert e.data["train_rows_sha256"] == rows and e.run_id == search.parent.name
        assert (e.suite, e.seed, e.seeding, e.model["name"]) == (
            "quickstart",
            0,
            2,
            "lenet_300_100",
        )


def test_the_lenet_ticket_reproduces_its_catalogue_accuracy(tmp_path, one_thread) -> None:
    """Retrained on its source with the quickstart's settings and seed (through a suite with the
    zoo ticket as its only source), the sparsest LeNet ticket reaches its catalogue accuracy: bit
    for bit on a machine like the one that found it (1 thread), within a point elsewhere."""
    (entry,) = zoo.lookup("lenet_300_100-mnist5k-4.5")
    quick = load_suite(ROOT / "suites" / "quickstart.yaml")
    data = {
        "name": "zoo-reproduce",
        "seeds": [entry.seed],
        "model": quick.model.model_dump(),
        "input": quick.input.model_dump(),
        "datasets": {"mnist5k": quick.datasets["mnist5k"].model_dump(exclude_defaults=True)},
        "optimizers": {"adam": quick.optimizers["adam"].model_dump()},
        "train": quick.train.model_dump(exclude_defaults=True),
        "tickets": {"zoo": f"zoo:{entry.name}"},
        "transfer": {"targets": ["mnist5k"], "controls": []},
    }
    summary = run_suite(
        data,
        results=tmp_path / "res",
        cache_dir=tmp_path / "cache",
        executor="sequential",
        report=False,
    )
    (path,) = summary.suite_dir.glob("transfer-*/seed_*/level_7/result.json")
    record = json.loads(path.read_text())
    assert record["head"] == "kept" and record["level"] == entry.level
    here = fingerprint(torch.device("cpu"))
    same_machine = entry.machine == (
        f"{here['cpu']}, {here['threads']} thread(s), torch {here['torch']}"
    )
    if same_machine:
        assert record["test_accuracy"] == entry.source_accuracy
    assert abs(record["test_accuracy"] - entry.source_accuracy) <= 0.01


def test_a_changed_zoo_file_is_refused(tmp_path, monkeypatch) -> None:
    copy = tmp_path / "zoo"
    shutil.copytree(zoo.zoo_dir(), copy)
    monkeypatch.setenv(zoo.ZOO_ENV, str(copy))
    (entry,) = zoo.lookup("lenet_300_100-mnist5k-7.0")
    path = copy / entry.file
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    res = CliRunner().invoke(app, ["ticket", "zoo"])
    assert res.exit_code == 1 and "FAILED" in res.output and entry.file in res.output
    suite = load_suite(ROOT / "suites" / "zoo-transfer.yaml")
    with pytest.raises(
        TicketError, match=r"tickets\.mnist5k_zoo: zoo:lenet_300_100-mnist5k-7\.0: "
    ):
        plan(suite)


def test_build_makes_entries_a_suite_can_name(tmp_path, monkeypatch, one_thread) -> None:
    data = {
        "name": "tiny",
        "seeds": [0],
        "model": {"name": "lenet_300_100"},
        "input": {"size": 8, "channels": 1},
        "datasets": {"src": {"source": "synthetic:src", "num_classes": 4, "samples": 120}},
        "train": {"batch_size": 30, "epochs": 1},
        "search": {"sources": ["src"], "rate": 0.5, "levels": 2},
        "transfer": {"targets": ["src"], "controls": ["dense"], "levels": [0, 2]},
    }
    summary = run_suite(
        data,
        results=tmp_path / "res",
        cache_dir=tmp_path / "cache",
        executor="sequential",
        report=False,
    )
    built = zoo.build_entries(summary.suite_dir, suite_file="tiny.yaml")
    assert [e.level for e, _ in built] == [2]  # level 0, the dense init, is left out
    folder = tmp_path / "zoo"
    entries = zoo.write_zoo(built, folder)
    monkeypatch.setenv(zoo.ZOO_ENV, str(folder))
    (e,) = entries
    assert e.group == "lenet_300_100-src" and zoo.verify_entry(e) is None
    assert e.name == f"lenet_300_100-src-{100 * e.density:.1f}"
    suite = parse_suite(
        {
            **data,
            "search": None,
            "tickets": {"z": "zoo:lenet_300_100-src"},
            "transfer": {"targets": ["src"]},
        }
    )
    runs = plan(suite)
    ticket_runs = [r for r in runs if r.config.get("source") == "z"]
    assert ticket_runs and all(r.levels == (2,) for r in ticket_runs)
    assert ticket_runs[0].config["ticket"]["files"][0]["sha256"] == e.sha256
    with pytest.raises(Exception, match="no search run of seed 5"):
        zoo.build_entries(summary.suite_dir, seed=5)

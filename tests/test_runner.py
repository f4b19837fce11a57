"""End to end: a tiny synthetic suite runs, skips finished work, resumes after interruption."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from transfer_bench.cli import app
from transfer_bench.config import parse_suite
from transfer_bench.models import build_model
from transfer_bench.runner.execute import execute
from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import plan
from transfer_bench.runs.store import RunDir
from transfer_bench.tickets import apply_ticket, load_ticket

SUITE = {
    "name": "tiny",
    "seeds": [0, 1],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "src": {"source": "synthetic:src", "num_classes": 4, "samples": 240},
        "tgt": {"source": "synthetic:tgt", "num_classes": 7, "samples": 210},
    },
    "train": {"batch_size": 30, "epochs": 2},
    "search": {"sources": ["src"], "rate": 0.5, "head_rate": 0.2, "levels": 2},
    "transfer": {"targets": ["src", "tgt"], "controls": ["random_reinit", "dense"]},
}


def make_ctx(tmp: Path, data: dict | None = None) -> Context:
    suite = parse_suite(data or SUITE)
    return Context(
        suite=suite,
        suite_dir=tmp / "results" / suite.name,
        device=torch.device("cpu"),
        cache_dir=tmp / "cache",
    )


def metrics(suite_dir: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(suite_dir.rglob("result.json")):
        r = json.loads(p.read_text())
        r.pop("seconds")
        out[str(p.relative_to(suite_dir))] = r
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("e2e")
    ctx = make_ctx(tmp)
    summary = execute(ctx, plan(ctx.suite))
    assert summary.skipped == []
    return tmp


def test_suite_runs_end_to_end(finished: Path):
    ctx = make_ctx(finished)
    runs = plan(ctx.suite)
    # 2 seeds x (1 search + 2 targets x (ticket + random_reinit + dense))
    assert len(runs) == 2 * (1 + 2 * 3)
    m = metrics(ctx.suite_dir)
    kinds = {(r["kind"], r["control"]) for r in m.values()}
    assert kinds == {
        ("search", "imp"),
        ("transfer", "ticket"),
        ("transfer", "random_reinit"),
        ("transfer", "dense"),
    }
    search = [r for r in m.values() if r["kind"] == "search" and r["seed"] == 0]
    assert sorted(r["level"] for r in search) == [0, 1, 2]
    for r in search:
        assert 0.0 <= r["test_accuracy"] <= 1.0


def test_second_run_does_no_work(finished: Path):
    ctx = make_ctx(finished)
    before = {p: p.stat().st_mtime_ns for p in ctx.suite_dir.rglob("result.json")}
    summary = execute(ctx, plan(ctx.suite))
    assert summary.trained == [] and len(summary.skipped) == len(plan(ctx.suite))
    assert before == {p: p.stat().st_mtime_ns for p in ctx.suite_dir.rglob("result.json")}


def test_level_start_is_rewound_weights_times_mask(finished: Path):
    ctx = make_ctx(finished)
    search = next(r for r in plan(ctx.suite) if r.kind == "search")
    rd = RunDir(search.folder(ctx.suite_dir))
    t0, t2 = load_ticket(rd.ticket_path(0)), load_ticket(rd.ticket_path(2))
    model = build_model("lenet_300_100", num_classes=4, in_channels=1, image_size=8, seed=123)
    masks = apply_ticket(t2, model, head="keep")
    params = dict(model.named_parameters())
    for name, m in masks.items():
        assert torch.equal(params[name].detach(), t0.weights[name] * m)
    for name, v in t0.state.items():
        assert torch.equal(model.state_dict()[name], v)
    # density after 2 levels at 50% (head 20%): exact per layer
    for name, m in t2.masks.items():
        p = 0.2 if name in model.head_names else 0.5
        assert int(m.sum()) == round(m.numel() * (1 - p) ** 2)


def test_transfer_to_other_class_count_reinits_head(finished: Path):
    ctx = make_ctx(finished)
    m = metrics(ctx.suite_dir)
    tgt = [r for r in m.values() if r["target"] == "tgt" and r["control"] == "ticket"]
    assert tgt and all(r["source"] == "src" for r in tgt)
    dens = {r["level"]: r["density"] for r in tgt}
    assert dens[0] == 1.0 and dens[2] < dens[1] < 1.0


def test_interrupted_run_resumes_to_identical_results(finished: Path, tmp_path: Path):
    ctx = make_ctx(tmp_path)
    calls = {"n": 0}

    def stop_midway(status: str) -> None:
        calls["n"] += 1
        if calls["n"] == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(ctx, plan(ctx.suite), on_status=stop_midway)
    partial = set(metrics(ctx.suite_dir))
    assert partial  # something was kept
    summary = execute(make_ctx(tmp_path), plan(ctx.suite))
    assert summary.trained  # the rest was done
    assert metrics(ctx.suite_dir) == metrics(make_ctx(finished).suite_dir)


def test_extending_levels_trains_only_new_levels(finished: Path, tmp_path: Path):
    import shutil

    shutil.copytree(finished / "results", tmp_path / "results")
    data = yaml.safe_load(yaml.safe_dump(SUITE))
    data["search"]["levels"] = 4
    data["transfer"]["targets"] = ["src"]
    data["transfer"]["controls"] = []
    ctx = make_ctx(tmp_path, data)
    search = next(r for r in plan(ctx.suite) if r.kind == "search")
    rd = RunDir(search.folder(ctx.suite_dir))
    old = {lv: rd.result_path(lv).stat().st_mtime_ns for lv in (0, 1, 2)}
    trained = []
    execute(ctx, [search], on_status=lambda s: trained.append(s.split()[1]))
    assert {lv: rd.result_path(lv).stat().st_mtime_ns for lv in (0, 1, 2)} == old
    assert rd.has_result(3) and rd.has_result(4)
    assert {t.split("/")[0] for t in trained} == {"3", "4"}  # only the two new levels trained


def write_suite(tmp: Path, data: dict) -> Path:
    p = tmp / "suite.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_cli_plan_run_and_tickets(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRANSFER_BENCH_CACHE", str(tmp_path / "cache"))
    small = yaml.safe_load(yaml.safe_dump(SUITE))
    small["seeds"] = [0]
    small["transfer"]["targets"] = ["tgt"]
    suite = write_suite(tmp_path, small)
    res = tmp_path / "res"
    runner = CliRunner()
    out = runner.invoke(app, ["plan", str(suite), "--results", str(res)])
    assert out.exit_code == 0, out.output
    assert "search" in out.output and "budget:" in out.output and "PFLOP" in out.output
    assert not res.exists()
    out = runner.invoke(app, ["run", str(suite), "--results", str(res)])
    assert out.exit_code == 0, out.output
    assert (res / "tiny" / "report.md").exists()
    (res / "tiny" / "report.md").unlink()
    out = runner.invoke(app, ["report", str(res / "tiny")])
    assert out.exit_code == 0, out.output
    assert (res / "tiny" / "report.md").exists()
    run_dir = next((res / "tiny").glob("search-*/seed_0"))
    ticket = tmp_path / "t.ticket"
    out = runner.invoke(app, ["ticket", "export", str(run_dir), "2", str(ticket)])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["ticket", "inspect", str(ticket)])
    assert out.exit_code == 0 and "density" in out.output
    out = runner.invoke(app, ["ticket", "verify", str(ticket)])
    assert out.exit_code == 0 and "OK" in out.output
    raw = bytearray(ticket.read_bytes())
    raw[-3] ^= 0xFF
    ticket.write_bytes(bytes(raw))
    out = runner.invoke(app, ["ticket", "verify", str(ticket)])
    assert out.exit_code == 1 and "FAILED" in out.output


def test_cli_bad_yaml_is_one_line(tmp_path: Path):
    import subprocess
    import sys

    bad = yaml.safe_load(yaml.safe_dump(SUITE))
    bad["search"]["rate"] = 1.5
    suite = write_suite(tmp_path, bad)
    proc = subprocess.run(
        [sys.executable, "-m", "transfer_bench.cli", "plan", str(suite)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "search.rate" in lines[0] and "Traceback" not in proc.stderr

"""Search methods and controls end to end on tiny synthetic suites."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from transfer_bench.config import parse_suite
from transfer_bench.runner.execute import execute
from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import plan
from transfer_bench.runs.store import RunDir
from transfer_bench.tickets import load_ticket

BASE = {
    "name": "m",
    "seeds": [0],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "src": {"source": "synthetic:src", "num_classes": 4, "samples": 240},
        "tgt": {"source": "synthetic:tgt", "num_classes": 5, "samples": 200},
    },
    "train": {"batch_size": 30, "epochs": 2},
    "search": {"sources": ["src"], "rate": 0.5, "levels": 2},
    "transfer": {"targets": ["tgt"], "controls": []},
}


def suite_with(**changes):
    d = copy.deepcopy(BASE)
    for path, value in changes.items():
        cur = d
        *parents, last = path.split("__")
        for p in parents:
            cur = cur[p]
        cur[last] = value
    return parse_suite(d)


def run_suite(tmp: Path, suite) -> Context:
    ctx = Context(
        suite=suite, suite_dir=tmp / suite.name, device=torch.device("cpu"), cache_dir=tmp / "cache"
    )
    execute(ctx, plan(suite))
    return ctx


def records(ctx: Context) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(ctx.suite_dir.rglob("result.json"))]


def search_dir(ctx: Context) -> RunDir:
    return RunDir(next(r for r in plan(ctx.suite) if r.kind == "search").folder(ctx.suite_dir))


@pytest.mark.parametrize(
    "method",
    [
        "synflow",
        "snip",
        pytest.param("grasp", marks=pytest.mark.slow),
        pytest.param("magnitude_init", marks=pytest.mark.slow),
        pytest.param("random_init", marks=pytest.mark.slow),
    ],
)
def test_prune_at_init_methods_make_transferable_tickets(tmp_path, method):
    suite = suite_with(
        search={
            "sources": ["src"],
            "method": method,
            "densities": [0.5, 0.05],
            "rounds": 10,
            "scope": "global",
        },
        transfer={"targets": ["tgt"], "controls": ["shuffle_layerwise"]},
    )
    ctx = run_suite(tmp_path, suite)
    rd = search_dir(ctx)
    for level, d in ((1, 0.5), (2, 0.05)):
        t = load_ticket(rd.ticket_path(level))
        assert abs(t.density - d) < 1e-3
        assert "collapsed_layers" in t.meta
    recs = records(ctx)
    assert {r["control"] for r in recs if r["kind"] == "transfer"} == {
        "ticket",
        "shuffle_layerwise",
    }
    assert all(r["method"] == method for r in recs if r["kind"] == "search")


def test_all_five_controls(tmp_path):
    suite = suite_with(
        search={"sources": ["src", "tgt"], "rate": 0.5, "levels": 2},
        transfer={
            "sources": ["src"],
            "targets": ["tgt"],
            "controls": [
                "random_reinit",
                "shuffle_layerwise",
                "random_global",
                "own_ticket",
                "dense",
            ],
        },
    )
    ctx = run_suite(tmp_path, suite)
    recs = [r for r in records(ctx) if r["kind"] == "transfer"]
    by = {(r["control"], r["level"]): r for r in recs}
    assert {c for c, _ in by} == {
        "ticket",
        "random_reinit",
        "shuffle_layerwise",
        "random_global",
        "own_ticket",
        "dense",
    }
    for c in ("ticket", "random_reinit", "shuffle_layerwise", "random_global"):
        assert by[(c, 2)]["density"] == pytest.approx(by[("ticket", 2)]["density"], abs=1e-3)
    assert by[("own_ticket", 2)]["source"] == "tgt"


def test_rewinding_to_k_reproduces_weights_at_k(tmp_path):
    from transfer_bench.stages.common import source_setup
    from transfer_bench.stages.stability import weights_at

    suite = suite_with(search={"sources": ["src"], "rate": 0.5, "levels": 1, "rewind": "3it"})
    ctx = run_suite(tmp_path, suite)
    rd = search_dir(ctx)
    t0 = load_ticket(rd.ticket_path(0))
    assert t0.meta["rewind"] == 3
    run = next(r for r in plan(suite) if r.kind == "search")
    state = weights_at(source_setup(ctx, run, RunDir(tmp_path / "scratch")), 3)
    for name, w in t0.weights.items():
        assert torch.equal(w, state[name])
    init = weights_at(source_setup(ctx, run, RunDir(tmp_path / "scratch")), 0)
    assert not all(torch.equal(t0.weights[n], init[n]) for n in t0.weights)
    t1 = load_ticket(rd.ticket_path(1))
    for name, m in t1.masks.items():
        assert torch.equal(t1.weights[name], state[name] * m)


def test_early_bird_magnitude(tmp_path):
    suite = suite_with(
        train={"batch_size": 30, "epochs": 8},
        search={
            "sources": ["src"],
            "method": "early_bird",
            "early_bird": {"prune_fractions": [0.5, 0.9], "window": 3, "threshold": 0.2},
        },
    )
    ctx = run_suite(tmp_path, suite)
    rd = search_dir(ctx)
    level0 = json.loads(rd.result_path(0).read_text())
    eb = level0["early_bird"]
    assert set(eb) == {"0.5", "0.9"}
    for f, info in eb.items():
        t = load_ticket(rd.ticket_path(1 if f == "0.5" else 2))
        assert abs(t.density - (1 - float(f))) < 1e-3
        assert t.meta["early_bird"]["detected"] == info["detected"]
        if info["detected"]:
            assert 3 <= info["detected_epoch"] <= 8


def test_early_bird_bn_channels(tmp_path):
    suite = suite_with(
        model={"name": "resnet20", "options": {"width": 4}},
        train={"batch_size": 40, "epochs": 3},
        search={
            "sources": ["src"],
            "method": "early_bird",
            "early_bird": {"mask": "bn_channel", "prune_fractions": [0.5], "window": 2},
        },
        transfer={"targets": ["tgt"], "controls": []},
    )
    ctx = run_suite(tmp_path, suite)
    t = load_ticket(search_dir(ctx).ticket_path(1))
    conv = [n for n in t.masks if t.masks[n].dim() == 4]
    # whole filters are pruned: every output channel is all-kept or all-pruned
    pruned_filters = 0
    for n in conv:
        per_filter = t.masks[n].flatten(1)
        assert bool((per_filter.all(1) | ~per_filter.any(1)).all())
        pruned_filters += int((~per_filter.any(1)).sum())
    assert pruned_filters > 0
    assert any(r["kind"] == "transfer" for r in records(ctx))


def test_stability_runs_record_barrier(tmp_path):
    suite = suite_with(
        transfer=None,
        stability={"levels": [0, 1], "rewind_points": [0, "2it"], "points": 5},
    )
    d = suite.model_dump(mode="json", exclude_none=True)
    ctx = run_suite(tmp_path, parse_suite(d))
    recs = [r for r in records(ctx) if r["kind"] == "stability"]
    assert sorted((r["level"], r["rewind"]) for r in recs) == [(0, 0), (0, 2), (1, 0), (1, 2)]
    for r in recs:
        assert len(r["interpolation"]) == 5 and r["barrier"] >= -1e-9
    from transfer_bench.analysis.plots import plot

    paths = plot("stability", ctx.suite_dir, tmp_path / "fig" / "stability", formats=("png",))
    assert paths[0].stat().st_size > 0

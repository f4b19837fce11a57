"""The head policy of transfers: ``auto`` keeps a source's output layer only for targets with the
source's labels, records what it did in every result and report; stale run folders are left out."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from transfer_bench.analysis.frame import PLAN_FILE, load_results
from transfer_bench.analysis.report import write_report
from transfer_bench.config import DatasetSpec, parse_suite
from transfer_bench.head_policy import head_action, same_labels
from transfer_bench.models import build_model
from transfer_bench.runner.execute import execute
from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import plan
from transfer_bench.runs.store import RunDir
from transfer_bench.stages.transfer import _head_mode
from transfer_bench.tickets import apply_ticket, load_ticket

A = DatasetSpec(source="synthetic:a", num_classes=4, samples=160)
A_SMALL = DatasetSpec(source="synthetic:a", num_classes=4, samples=160, train_size=40)
B = DatasetSpec(source="synthetic:b", num_classes=4, samples=160)


def test_same_labels_means_same_source_label_column_and_classes() -> None:
    assert same_labels(A, A_SMALL)  # another subset of the same data has the same labels
    assert not same_labels(A, B)  # equal class counts, other data: other labels
    assert not same_labels(A, A.model_copy(update={"classes": (0, 1)}))
    assert head_action("auto", A, A_SMALL) == "keep"
    assert head_action("auto", A, B) == "reinit"
    assert {head_action(p, A, B) for p in ("keep", "reinit", "match")} == {
        "keep",
        "reinit",
        "match",
    }
    with pytest.raises(ValueError, match="unknown head policy"):
        head_action("sometimes", A, B)


SUITE = {
    "name": "heads",
    "seeds": [0],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "a": A.model_dump(exclude_defaults=True),
        "a_small": A_SMALL.model_dump(exclude_defaults=True),
        "b": B.model_dump(exclude_defaults=True),
    },
    "train": {"batch_size": 40, "epochs": 1},
    "search": {"sources": ["a"], "rate": 0.5, "head_rate": 0.2, "levels": 1},
    "transfer": {"targets": ["a", "a_small", "b"], "controls": ["random_reinit"], "levels": [1]},
}


def _ctx(root: Path, **transfer: object) -> Context:
    data = {**SUITE, "transfer": {**SUITE["transfer"], **transfer}}
    suite = parse_suite(data)
    return Context(
        suite=suite,
        suite_dir=root / suite.name,
        device=torch.device("cpu"),
        cache_dir=root / "cache",
    )


def test_plan_marks_only_transfers_to_other_labels() -> None:
    suite = parse_suite(SUITE)
    cfgs = {
        (r.config["source"], r.config["target"]["name"]): r.config
        for r in plan(suite)
        if r.kind == "transfer" and r.config["control"] == "ticket"
    }
    assert cfgs[("a", "b")]["head_action"] == "reinit"
    assert "head_action" not in cfgs[("a", "a")] and "head_action" not in cfgs[("a", "a_small")]
    match = parse_suite({**SUITE, "transfer": {**SUITE["transfer"], "head": "match"}})
    assert all("head_action" not in r.config for r in plan(match) if r.kind == "transfer")


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory) -> Context:
    ctx = _ctx(tmp_path_factory.mktemp("heads"))
    execute(ctx, plan(ctx.suite))
    return ctx


def _records(suite_dir: Path) -> dict[tuple[str, str], dict]:
    out = {}
    for p in suite_dir.rglob("result.json"):
        r = json.loads(p.read_text())
        if r["kind"] == "transfer":
            out[(r["control"], r["target"])] = r
    return out


def test_results_record_policy_and_action(auto_run: Context) -> None:
    recs = _records(auto_run.suite_dir)
    for control in ("ticket", "random_reinit"):
        assert recs[(control, "b")]["head"] == "reinitialized"
        assert recs[(control, "a")]["head"] == "kept"
        assert recs[(control, "a_small")]["head"] == "kept"
        assert {r["head_policy"] for r in recs.values()} == {"auto"}


def test_the_reinitialized_head_is_not_the_tickets(auto_run: Context) -> None:
    search = next(r for r in plan(auto_run.suite) if r.kind == "search")
    ticket = load_ticket(RunDir(search.folder(auto_run.suite_dir)).ticket_path(1))
    model = build_model("lenet_300_100", num_classes=4, in_channels=1, image_size=8, seed=5)
    gen = torch.Generator().manual_seed(0)
    for cfg, want in (
        ({"head": "auto", "head_action": "reinit"}, "reinit"),
        ({"head": "auto"}, "keep"),
    ):
        mode = _head_mode(cfg, ticket, model)
        assert mode == want
        apply_ticket(ticket, model, head=mode, generator=gen)
        head = model.head_names[0]
        same = torch.equal(model.state_dict()[head], ticket.weights[head] * ticket.masks[head])
        assert same == (want == "keep")


def test_match_keeps_a_fitting_head_of_other_labels(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, head="match", controls=[])
    execute(ctx, plan(ctx.suite))
    recs = _records(ctx.suite_dir)
    assert (
        recs[("ticket", "b")]["head"] == "kept" and recs[("ticket", "b")]["head_policy"] == "match"
    )


def test_report_names_the_policy_and_the_data(auto_run: Context) -> None:
    text = write_report(auto_run.suite_dir, suite_name="heads", analysis={"plots": []}).read_text()
    assert "## Output layer of transferred tickets" in text
    assert "- a -> b: reinitialized" in text and "- a -> a: kept" in text
    assert "## Data" in text and "`synthetic:a`" in text and "synthetic (generated, seeded)" in text
    assert re.search(r"\| [0-9a-f]{12} / [0-9a-f]{12} \|", text), "rows hashes missing"


def test_run_folders_outside_the_plan_are_left_out(auto_run: Context, tmp_path: Path) -> None:
    suite_dir = tmp_path / "copy"
    shutil.copytree(auto_run.suite_dir, suite_dir)
    (suite_dir / PLAN_FILE).write_text(
        json.dumps({"run_ids": sorted({r.run_id for r in plan(auto_run.suite)})})
    )
    planned = len(load_results(suite_dir))
    old = next(p for p in suite_dir.iterdir() if p.name.startswith("transfer-"))
    shutil.copytree(old, suite_dir / "transfer-0000000000")  # as an older version left it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_results(suite_dir)
    assert len(df) == planned
    assert any("transfer-0000000000" in str(w.message) for w in caught)
    (suite_dir / PLAN_FILE).unlink()  # no plan recorded: everything is read, as before
    assert len(load_results(suite_dir)) > planned

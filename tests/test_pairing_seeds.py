"""Seeds follow the data, not its name: arms on the same training rows share their data order and
augmentation (in searches and transfers alike), other rows get another stream, and the seeding
rule's version is part of every run's identity, so results of an older rule are never resumed."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from transfer_bench.analysis.frame import PLAN_FILE, load_results
from transfer_bench.api import run_suite, write_suite_report
from transfer_bench.config import DatasetSpec, InputSpec, parse_suite
from transfer_bench.data import load_dataset
from transfer_bench.errors import DatasetError
from transfer_bench.runner.execute import execute
from transfer_bench.runs.context import Context
from transfer_bench.runs.plan import plan, seeding_of, suite_hash
from transfer_bench.seeding import SEEDING_VERSION, data_identity, order_seed
from transfer_bench.training.loop import augment_batch, epoch_order

A = {"source": "synthetic:a", "num_classes": 4, "samples": 200}
SUITE = {
    "name": "pairing",
    "seeds": [0],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "a_reset": A,
        "a_rewind": A,  # the same data under another name (another search variant)
        "a_small": {**A, "train_size": 60},  # other rows of the same source
    },
    "train": {"batch_size": 32, "epochs": 2, "augment": "crop", "padding": 1},
    "search": {
        "sources": ["a_reset", "a_rewind"],
        "rate": 0.5,
        "head_rate": 0.2,
        "levels": 1,
        "per_source": {"a_rewind": {"rewind": "2it"}},
    },
    "transfer": {"targets": ["a_reset", "a_rewind", "a_small"], "controls": ["dense"]},
    "analysis": {"baseline": "dense", "plots": []},
}
#: The run ids this suite had before the seeding rule was versioned (computed by that code).
RULE_1_IDS = {
    "search-2c7691246b",
    "search-b7d76e8bcd",
    "transfer-02d61cacef",
    "transfer-3d68e015c4",
    "transfer-595afaeb81",
    "transfer-6ec01e3dbe",
    "transfer-8b150746d0",
    "transfer-a95cf4e7c3",
    "transfer-aa899cdc3f",
    "transfer-b1dc64698b",
    "transfer-ee480e2160",
}


def _records(suite_dir: Path) -> dict[tuple, dict]:
    """Every result record by (kind, control, source, target, level)."""
    out = {}
    for path in suite_dir.rglob("result.json"):
        r = json.loads(path.read_text())
        out[(r["kind"], r["control"], r.get("source"), r["target"], r["level"])] = r
    return out


def _same_training(a: dict, b: dict) -> bool:
    keys = ("test_accuracy", "final_train_loss", "final_test_loss", "history")
    return all(a[k] == b[k] for k in keys)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pairing")
    summary = run_suite(SUITE, results=root / "results", executor="sequential", report=False)
    return summary.suite_dir


def test_same_data_under_two_names_gets_the_same_stream(finished: Path) -> None:
    recs = _records(finished)
    reset = recs[("search", "imp", "a_reset", "a_reset", 0)]
    rewind = recs[("search", "imp", "a_rewind", "a_rewind", 0)]
    assert reset["order_seed"] == rewind["order_seed"]
    # the two searches' dense trainings differ only in the rewind snapshot they keep: identical
    assert _same_training(reset, rewind)
    dense = {t: recs[("transfer", "dense", None, t, 0)] for t in ("a_reset", "a_rewind")}
    assert _same_training(dense["a_reset"], dense["a_rewind"])


def test_search_and_transfer_on_the_same_data_share_the_stream(finished: Path) -> None:
    recs = _records(finished)
    search = recs[("search", "imp", "a_reset", "a_reset", 0)]
    dense = recs[("transfer", "dense", None, "a_reset", 0)]
    assert search["order_seed"] == dense["order_seed"]
    assert _same_training(search, dense)  # same init, same batches, same augmentation


def test_other_rows_get_another_stream(finished: Path) -> None:
    recs = _records(finished)
    small = recs[("transfer", "dense", None, "a_small", 0)]
    full = recs[("transfer", "dense", None, "a_reset", 0)]
    assert small["order_seed"] != full["order_seed"]
    gray = InputSpec(size=8, channels=1)

    def ident(classes: list[int]) -> str:
        spec = DatasetSpec(source="builtin:digits", classes=classes, train_size=100)
        ds = load_dataset(spec, gray, split_seed=0, cache_dir=None)
        return data_identity(ds.info)

    # two class subsets of one size: the same number of rows, other rows -> other streams
    first, last = ident([0, 1]), ident([2, 3])
    assert first != last
    n = 100
    assert not torch.equal(
        epoch_order(order_seed(0, first), 0, n, torch.device("cpu")),
        epoch_order(order_seed(0, last), 0, n, torch.device("cpu")),
    )
    x = torch.rand(8, 1, 8, 8)
    assert not torch.equal(
        augment_batch("crop", x, 1, order_seed(0, first), 0),
        augment_batch("crop", x, 1, order_seed(0, last), 0),
    )


def test_results_and_tickets_record_the_rule(finished: Path) -> None:
    recs = _records(finished)
    assert {r["seeding"] for r in recs.values()} == {SEEDING_VERSION}
    configs = [json.loads(p.read_text()) for p in finished.rglob("config.json")]
    assert configs and {c["seeding"] for c in configs} == {SEEDING_VERSION}
    from transfer_bench.tickets import load_ticket

    ticket = load_ticket(next(finished.rglob("ticket.ticket")))
    assert ticket.meta["seeding"] == SEEDING_VERSION


def test_the_rule_enters_every_run_id() -> None:
    suite = parse_suite(SUITE)
    new, old = plan(suite), plan(suite, seeding=1)
    assert {r.run_id for r in old} == RULE_1_IDS  # rule 1 = the ids made before the version
    assert not {r.run_id for r in new} & RULE_1_IDS
    assert all(r.config["seeding"] == SEEDING_VERSION for r in new)
    assert suite_hash(suite) != suite_hash(suite, seeding=1)
    with pytest.raises(ValueError, match="seeding rule"):
        plan(suite, seeding=SEEDING_VERSION + 1)


def test_a_folder_of_the_old_rule_is_not_resumed(tmp_path: Path) -> None:
    suite = parse_suite(SUITE)
    suite_dir = tmp_path / "results" / suite.name
    ctx = Context(suite=suite, suite_dir=suite_dir, device=torch.device("cpu"), cache_dir=None)
    old = plan(suite, seeding=1)
    execute(ctx, old)  # the folders an earlier transfer-bench left (run ids of rule 1)
    (suite_dir / "suite.yaml").write_text(json.dumps(SUITE))
    # re-analysing that folder keeps its runs: the report plans it under its own rule
    write_suite_report(suite_dir, suite)
    assert seeding_of(suite_dir, suite) == 1
    ids = set(json.loads((suite_dir / PLAN_FILE).read_text())["run_ids"])
    assert ids == RULE_1_IDS and len(load_results(suite_dir)) > 0
    # running it now trains every run afresh, next to the old folders, and reports only those
    summary = run_suite(SUITE, results=tmp_path / "results", executor="sequential", report=False)
    assert not summary.skipped and len(summary.trained) == len(old)
    assert seeding_of(suite_dir, suite) == SEEDING_VERSION
    write_suite_report(suite_dir, suite)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_results(suite_dir)
    assert set(df["seeding"]) == {SEEDING_VERSION}
    assert set(df["run_id"]) == {r.run_id for r in plan(suite)}
    assert any("no longer plans" in str(w.message) for w in caught)


def test_a_dataset_without_row_digest_is_one_line() -> None:
    with pytest.raises(DatasetError, match="delete the dataset cache folder"):
        data_identity({"source": "builtin:digits"})

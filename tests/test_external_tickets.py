"""Tickets a suite did not search (``tickets:``): a ticket searched by one suite, exported to
OpenLTH and torch-prune (and written as format version 1), and used as an external source by a
second suite gives results bit-identical to the first suite's own transfer of it; every bad
ticket (another model, options, input or head size, a wrong pin, a tampered file, a pickle that
runs code, an unknown format) is one line naming the file and the fix, from ``plan`` and ``run``,
before anything trains or is written; digests enter the run ids; ``own_ticket`` at an external
ticket's levels; the report lists the tickets."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from transfer_bench import run_suite
from transfer_bench.cli import app, main
from transfer_bench.config import parse_suite
from transfer_bench.errors import ConfigError, TicketError, TransferBenchError
from transfer_bench.fileio import sha256_file
from transfer_bench.models import build_model
from transfer_bench.runs.plan import plan
from transfer_bench.tickets import format as fmt
from transfer_bench.tickets import load_ticket, save_ticket, ticket_from_state

BASE = {
    "seeds": [0],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "src": {"source": "synthetic:src", "num_classes": 4, "samples": 240},
        "tgt": {"source": "synthetic:tgt", "num_classes": 7, "samples": 210},
    },
    "train": {"batch_size": 30, "epochs": 2},
}
CONTROLS = ["random_reinit", "shuffle_layerwise", "random_global", "dense"]
SEARCHED = {
    **BASE,
    "name": "searched",
    "search": {"sources": ["src"], "rate": 0.5, "head_rate": 0.2, "levels": 2},
    # src: the own ticket (head kept); tgt: another dataset (head re-initialized)
    "transfer": {"targets": ["src", "tgt"], "controls": CONTROLS, "levels": [1, 2]},
}
COMPARED = (
    "test_accuracy",
    "best_test_accuracy",
    "final_train_loss",
    "final_test_loss",
    "early_stop_iteration",
    "iterations",
    "density",
    "head",
    "order_seed",
    "history",
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: tiny trainings on a shared 2-core machine run several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def transfers(suite_dir: Path) -> dict[tuple[str, str, str, int, int], dict]:
    """(source, control, target, level, seed) -> result.json of every transfer training."""
    out = {}
    for p in suite_dir.glob("transfer-*/seed_*/level_*/result.json"):
        r = json.loads(p.read_text())
        out[(r["source"], r["control"], r["target"], r["level"], r["seed"])] = r
    return out


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> tuple[Path, Path]:
    """The first suite, run: (its folder, the dataset cache)."""
    tmp = tmp_path_factory.mktemp("searched")
    summary = run_suite(
        SEARCHED, results=tmp / "res", cache_dir=tmp / "cache", executor="sequential", report=False
    )
    return summary.suite_dir, tmp / "cache"


def _ticket(suite_dir: Path, level: int) -> Path:
    (path,) = suite_dir.glob(f"search-*/seed_0/level_{level}/ticket.ticket")
    return path


@pytest.fixture(scope="module")
def exported(searched, tmp_path_factory) -> dict[str, dict]:
    """The searched tickets of levels 1 and 2 in four forms, each as a ``tickets:`` entry."""
    suite_dir, _ = searched
    out = tmp_path_factory.mktemp("exported")
    runner = CliRunner()
    entries: dict[str, dict] = {"as_v2": {"file": []}, "as_v1": {"file": []}}
    entries["as_openlth"] = {"file": [], "dataset": "src"}
    entries["as_torch_prune"] = {"file": [], "levels": [1, 2], "dataset": "src"}
    for level in (1, 2):
        run_dir = _ticket(suite_dir, level).parents[1]
        copy = out / f"l{level}.ticket"
        lth = out / "openlth" / f"level_{level}" / "main"
        tp = out / f"l{level}.pth"
        for dst, to in ((copy, "ticket"), (lth, "openlth"), (tp, "torch-prune")):
            res = runner.invoke(
                app, ["ticket", "export", str(run_dir), str(level), str(dst), "--to", to]
            )
            assert res.exit_code == 0, res.output
        ticket = load_ticket(copy)
        v1 = out / f"l{level}-v1.ticket"
        v1.write_bytes(fmt._encode(fmt._tensors(ticket), ticket.meta, version=1))
        entries["as_v2"]["file"].append(str(copy))
        entries["as_v1"]["file"].append(str(v1))
        entries["as_openlth"]["file"].append(str(lth))
        entries["as_torch_prune"]["file"].append(str(tp))
    return entries


def test_an_exported_ticket_transfers_bit_identically(searched, exported, tmp_path) -> None:
    """The issue's test: ``.ticket`` (v2, v1), OpenLTH and torch-prune copies of the searched
    tickets, used as external sources, give the searched suite's transfers bit for bit: the
    ticket arm and every control derived from its mask, on the source itself (head kept) and on
    another dataset (head re-initialized)."""
    suite_dir, cache = searched
    second = {
        **BASE,
        "name": "external",
        "tickets": exported,
        "transfer": {"targets": ["src", "tgt"], "controls": CONTROLS},
    }
    summary = run_suite(
        second, results=tmp_path / "res", cache_dir=cache, executor="sequential", report=False
    )
    mine, theirs = transfers(suite_dir), transfers(summary.suite_dir)
    wanted = [k for k in mine if k[0] == "src"]
    assert len(wanted) == 4 * 2 * 2 and {k[3] for k in wanted} == {1, 2}
    for name in exported:
        for _, control, target, level, seed in wanted:
            a = mine[("src", control, target, level, seed)]
            b = theirs[(name, control, target, level, seed)]
            for key in COMPARED:
                assert a[key] == b[key], (name, control, target, level, key)
            assert b["ticket_sha256"] and b["ticket_format"] in ("ticket", "openlth", "torch-prune")
    assert {k[0] for k in theirs if k[1] == "ticket"} == set(exported)
    heads = {(k[2], r["head"]) for k, r in theirs.items() if k[1] == "ticket"}
    assert heads == {("src", "kept"), ("tgt", "reinitialized")}
    # the report lists every external ticket with its digest and what the file records
    from transfer_bench.analysis.provenance import tickets_section

    text = tickets_section(summary.suite_dir)
    assert text.startswith("## Tickets from elsewhere")
    for entry in exported.values():
        for f in entry["file"]:
            path = Path(f)
            if path.is_file():
                assert sha256_file(path) in text
    assert "`synthetic:src`" in text and "openlth" in text and "torch-prune" in text


def test_without_a_named_dataset_an_import_draws_from_its_digest(searched, exported) -> None:
    """Source identity: an OpenLTH file records no source rows, so without ``dataset:`` its head
    and random masks are seeded by its digest, and ``auto`` re-initializes its head (its labels
    are unknown); naming the dataset restores both."""
    from transfer_bench.runs import external

    files = exported["as_openlth"]["file"]
    named = parse_suite(
        {
            **BASE,
            "name": "n",
            "tickets": {"t": {"file": files, "dataset": "src"}},
            "transfer": {"targets": ["src"]},
        }
    )
    bare = parse_suite(
        {**BASE, "name": "b", "tickets": {"t": files}, "transfer": {"targets": ["src"]}}
    )
    src_named = external.resolve(named)["t"]
    src_bare = external.resolve(bare)["t"]
    assert src_named.head_action("auto", named.datasets["src"]) == "keep"
    assert src_bare.head_action("auto", bare.datasets["src"]) == "reinit"
    f = src_bare.at(1)
    ticket = external.load(bare, src_bare, f)
    assert external.recorded_rows(ticket) is None
    assert external.source_identity(ticket, f, None) == f.sha256
    assert external.source_identity(ticket, f, "rows") == "rows"
    own = load_ticket(exported["as_v2"]["file"][0])
    assert (
        external.source_identity(own, f, "rows")
        == own.meta["source"]["data"]["rows"]["train"]["sha256"]
    )


# ------------------------------------------------------------------------------------ refusals


def _lenet_ticket(
    path: Path,
    *,
    model: str = "lenet_300_100",
    classes: int = 4,
    size: int = 8,
    options: dict | None = None,
    channels: int = 1,
) -> Path:
    net = build_model(
        model,
        num_classes=classes,
        in_channels=channels,
        image_size=size,
        seed=0,
        options=options or {},
    )
    params = dict(net.named_parameters())
    g = torch.Generator().manual_seed(0)
    masks = {n: torch.rand(params[n].shape, generator=g) < 0.3 for n in net.prunable_names}
    meta = {
        "model": net.model_spec,
        "level": 1,
        "rewind": 0,
        "seed": 0,
        "source": {"dataset": "elsewhere", "spec": {"source": "synthetic:elsewhere"}},
        "search": {"method": "imp"},
        "suite": {"name": "elsewhere"},
    }
    t = ticket_from_state(net.state_dict(), masks, net.prunable_names, net.head_names, meta)
    return save_ticket(t, path)


def _suite(tickets: dict, **transfer) -> dict:
    return {
        **BASE,
        "name": "refused",
        "tickets": tickets,
        "transfer": {"targets": ["src"], "controls": ["random_reinit"], **transfer},
    }


def _cli(monkeypatch, capsys, tmp_path: Path, data: dict, *args) -> tuple[int, str, str]:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("TRANSFER_BENCH_CACHE", str(tmp_path / "cache"))
    capsys.readouterr()
    argv = ["transfer-bench", *args, str(suite), "--results", str(tmp_path / "res")]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


class Boom:
    """An object whose unpickling runs code (writes a file): what ``weights_only`` refuses."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def _bad_cases(tmp: Path) -> dict[str, tuple[dict, tuple[str, ...]]]:
    """name -> (tickets entry, fragments its one-line error must hold)."""
    good = _lenet_ticket(tmp / "good.ticket")
    tampered = tmp / "tampered.ticket"
    blob = bytearray(good.read_bytes())
    blob[-5] ^= 0x01  # a kept weight's last byte
    tampered.write_bytes(bytes(blob))
    code = tmp / "code.pth"
    torch.save({"fc.weight_orig": Boom(tmp / "marker")}, code)
    text = tmp / "notes.txt"
    text.write_text("a ticket from a colleague, somewhere\n")
    return {
        "model": (
            {"file": str(_lenet_ticket(tmp / "conv.ticket", model="conv2", channels=1))},
            ("conv.ticket", "a conv2 ticket, but the suite's model is lenet_300_100", "use a "),
        ),
        "input": (
            {"file": str(_lenet_ticket(tmp / "big.ticket", size=10))},
            ("big.ticket", "10x10x1 inputs", "set input.size: 10"),
        ),
        "head": (
            {"file": str(_lenet_ticket(tmp / "head.ticket", classes=5))},
            ("head.ticket", "5 classes but target src has 4", "transfer.head: auto"),
        ),
        "pin": (
            {"file": str(good), "sha256": "0" * 64},
            ("good.ticket", f"sha256 is {sha256_file(good)}", "get the original file"),
        ),
        "tampered": (
            {"file": str(tampered)},
            ("tampered.ticket", "sha256 mismatch", "copy the original file again"),
        ),
        "pickle": (
            {"file": str(code), "levels": [1], "dataset": "src"},
            ("code.pth", "refusing to unpickle code", "torch.save(model.state_dict()"),
        ),
        "format": (
            {"file": str(text)},
            ("notes.txt", "format not recognised", "ticket import"),
        ),
    }


def test_bad_tickets_are_one_line_before_anything_trains(tmp_path, monkeypatch, capsys) -> None:
    """A mismatched model or input, a head the policy cannot keep, a wrong pin, a tampered file,
    a pickle that runs code and an unknown format: ``plan`` exits 2 with one line naming the
    file and the fix; ``run`` and ``run_suite`` refuse before anything trains or is written."""
    cases = _bad_cases(tmp_path)
    for name, (entry, fragments) in cases.items():
        transfer = {"head": "keep"} if name == "head" else {}
        data = _suite({"colleague": entry}, **transfer)
        code, out, err = _cli(monkeypatch, capsys, tmp_path, data, "plan", "--no-estimate")
        lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (name, err)
        assert lines[0].startswith("error: tickets.colleague: "), (name, lines[0])
        for fragment in fragments:
            assert fragment in lines[0], (name, fragment, lines[0])
        code, out, err = _cli(
            monkeypatch, capsys, tmp_path, data, "run", "--executor", "sequential"
        )
        assert code == 2 and "tickets.colleague: " in err and "trained" not in out, name
        with pytest.raises(TransferBenchError, match="tickets.colleague: "):
            run_suite(data, results=tmp_path / "res", cache_dir=tmp_path / "cache")
        assert not (tmp_path / "res").exists(), name  # nothing written
    assert not (tmp_path / "marker").exists()  # the pickle's code never ran


def test_plan_lists_every_ticket_problem(tmp_path, monkeypatch, capsys) -> None:
    cases = _bad_cases(tmp_path)
    data = _suite({"a": cases["pin"][0], "b": cases["format"][0]})
    code, out, err = _cli(monkeypatch, capsys, tmp_path, data, "plan", "--no-estimate")
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert code == 2 and len(lines) == 2
    assert "tickets.b: " in lines[0] and "format not recognised" in lines[0]
    assert "tickets.a: " in lines[1] and "(and 1 more problem(s) with tickets)" in lines[1]


def test_a_missing_file_and_an_unknown_zoo_name(tmp_path) -> None:
    for entry, fragment in (
        (str(tmp_path / "nowhere.ticket"), "no such file or folder"),
        ("zoo:lenet-mnist", "no such ticket or group in the zoo"),
        ("zoo:lenet_300_100-mnist5k-4.4", "did you mean 'zoo:lenet_300_100-mnist5k-4.5'"),
    ):
        with pytest.raises(TicketError, match=fragment):
            plan(parse_suite(_suite({"t": entry})))


# --------------------------------------------------------------------------------- run ids etc.


def test_a_changed_file_is_a_new_run(tmp_path) -> None:
    path = _lenet_ticket(tmp_path / "t.ticket")
    data = _suite({"t": str(path)})
    before = {r.run_id for r in plan(parse_suite(data)) if r.config.get("source") == "t"}
    moved = tmp_path / "elsewhere.ticket"
    shutil.copyfile(path, moved)
    same = {
        r.run_id
        for r in plan(parse_suite(_suite({"t": str(moved)})))
        if r.config.get("source") == "t"
    }
    assert same == before  # a moved file is the same run: the path is not hashed
    ticket = load_ticket(path)
    changed = {**ticket.weights}
    name = next(iter(changed))
    changed[name] = torch.where(ticket.masks[name], changed[name] * 2, changed[name])
    save_ticket(fmt.Ticket(ticket.masks, changed, ticket.state, ticket.meta), path)
    after = {r.run_id for r in plan(parse_suite(data)) if r.config.get("source") == "t"}
    assert before and after and not before & after
    cfg = next(r.config for r in plan(parse_suite(data)) if r.config.get("source") == "t")
    assert cfg["ticket"]["files"] == [{"level": 1, "format": "ticket", "sha256": sha256_file(path)}]


def test_own_ticket_is_trained_at_an_external_tickets_levels(tmp_path) -> None:
    """``own_ticket`` with a ticket found elsewhere: the target's own ticket at the external
    ticket's levels (the target is searched in the same suite); a level the search does not
    reach is one line."""
    path = _lenet_ticket(tmp_path / "t.ticket")
    data = {
        **_suite({"t": str(path)}, controls=["own_ticket", "dense"]),
        "search": {"sources": ["src"], "rate": 0.5, "levels": 2},
    }
    data["transfer"]["sources"] = ["t"]
    runs = plan(parse_suite(data))
    own = [r for r in runs if r.config.get("control") == "own_ticket"]
    assert own and all(r.levels == (1,) and r.config["source"] == "src" for r in own)
    assert all(r.depends_on for r in own)
    data["tickets"] = {"t": {"file": str(path), "levels": [3]}}
    with pytest.raises(ConfigError, match=r"own_ticket pairs tickets.t's level 3 .* levels 0\.\.2"):
        plan(parse_suite(data))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"tickets": {"src": "x.ticket"}}, "tickets.src: 'src' is also a dataset"),
        ({"tickets": {"t": {"file": ["a", "b"], "sha256": ["0" * 64]}}}, "1 value(s) for 2 file"),
        ({"tickets": {"t": {"file": "a", "dataset": "nope"}}}, "tickets.t.dataset: 'nope'"),
        (
            {"transfer": {"targets": ["src"], "sources": ["u"]}},
            "transfer.sources[0]: 'u' is not a search source or ticket",
        ),
        (
            {"tickets": {"t": "a", "u": "b"}, "transfer": {"targets": ["src"], "sources": ["t"]}},
            "tickets.u: ticket 'u' is not in transfer.sources",
        ),
        ({"transfer": None, "search": {"sources": ["src"]}}, "tickets are only transferred"),
        ({"transfer": {"targets": ["src"], "controls": ["own_ticket"]}}, "has no search"),
        (
            {"transfer": {"targets": ["src"], "levels": [1]}},
            "transfer.levels: transfer.levels pick",
        ),
        ({"tickets": {}}, "search: required key is missing"),
    ],
)
def test_suite_checks_of_tickets(change, fragment) -> None:
    data = {**_suite({"t": "a.ticket"}), **change}
    with pytest.raises(ConfigError) as e:
        parse_suite(data)
    assert fragment in str(e.value)


def test_a_ticket_entry_is_one_file_or_a_list() -> None:
    s = parse_suite(
        _suite({"t": "a.ticket", "u": ["b", "c"], "v": {"file": "d", "sha256": "A" * 64}})
    )
    assert s.tickets["t"].file == ("a.ticket",) and s.tickets["u"].file == ("b", "c")
    assert s.tickets["v"].sha256 == ("a" * 64,)
    assert s.transfer_sources == ("t", "u", "v") and s.search is None


def test_other_options_and_other_source_rows_are_refused(tmp_path, exported) -> None:
    """Two checks the command-line cases above do not reach: a ticket of the suite's model with
    other options, and a ``.ticket`` whose recorded source rows are not its named dataset's."""
    from transfer_bench.runs.preflight import ticket_problems

    wide = _lenet_ticket(tmp_path / "wide.ticket", model="resnet20", options={"width": 8})
    data = {
        **_suite({"wide": str(wide)}),
        "model": {"name": "resnet20", "options": {"width": 4}},
    }
    (line,) = ticket_problems(parse_suite(data), tmp_path / "cache")
    assert line.startswith("tickets.wide: ") and "model.options {'width': 8}" in line
    assert "set model.options to the ticket's" in line
    data = _suite({"t": {"file": exported["as_v2"]["file"], "dataset": "tgt"}})
    lines = ticket_problems(parse_suite(data), tmp_path / "cache")
    assert len(lines) == 2  # one per file
    assert all("records source rows" in ln and "datasets.tgt has rows" in ln for ln in lines)
    assert (
        ticket_problems(
            parse_suite(_suite({"t": {"file": exported["as_v2"]["file"], "dataset": "src"}})),
            tmp_path / "cache",
        )
        == []
    )


def test_a_file_changed_after_planning_is_refused(tmp_path) -> None:
    from transfer_bench.api import prepare

    path = _lenet_ticket(tmp_path / "t.ticket")
    p = prepare(_suite({"t": str(path)}), tmp_path / "res", cache_dir=tmp_path / "cache")
    planned = next(r for r in p.runs if r.config.get("source") == "t").config["ticket"]
    f, ticket = p.ctx.external_ticket("t", 1, planned["files"][0]["sha256"])
    assert f.path == path and ticket.meta["level"] == 1
    with pytest.raises(TicketError, match=r"tickets\.t: .*t\.ticket changed since the run was"):
        p.ctx.external_ticket("t", 1, "0" * 64)


def test_a_primary_level_is_checked_once_the_files_are_read(tmp_path) -> None:
    path = _lenet_ticket(tmp_path / "t.ticket")  # records level 1
    data = {**_suite({"t": str(path)}), "analysis": {"primary": [{"arm": "ticket", "level": 2}]}}
    with pytest.raises(ConfigError, match=r"analysis.primary\[0\].level: 2 is not a transferred"):
        plan(parse_suite(data))
    data["analysis"]["primary"][0]["level"] = 1
    assert plan(parse_suite(data))

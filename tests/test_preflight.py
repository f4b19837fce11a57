"""The walkthrough's mistakes, each one line naming the fix, before anything trains or is written:
a missing ``local:`` target, a typo'd ``catalog:`` name, a rewind point past the end of
training, a model that cannot take the input, bad worker counts (``run``, ``plan`` and
``run_suite``); ``plan``'s exit status and ``--strict``; ``plan``'s table in a log keeps every
folder whole; ``ticket inspect`` on a result.json; the version in one place."""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import pytest
import yaml

from transfer_bench.cli import main
from transfer_bench.errors import TransferBenchError

SUITE = {  # the walkthrough's suite in miniature: one source, one target, seconds to run
    "name": "walk",
    "seeds": [0, 1, 2],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "src": {"source": "synthetic:src", "samples": 200, "num_classes": 4},
        "tgt": {"source": "synthetic:tgt", "samples": 200, "num_classes": 4},
    },
    "train": {"batch_size": 50, "epochs": 1},
    "search": {"sources": ["src"], "rate": 0.5, "levels": 1},
    "transfer": {"targets": ["tgt"], "controls": ["random_global"], "levels": [1]},
    "analysis": {"baseline": "random_global"},
}


def variant(**changes) -> dict:
    """SUITE with dotted keys replaced (``**{"datasets.tgt.source": "..."}``)."""
    data = json.loads(json.dumps(SUITE))
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    return data


def cli(monkeypatch, capsys, tmp_path: Path, data: dict, *args) -> tuple[int, str, str]:
    """``transfer-bench ARGS SUITE --results R`` in this process -> (exit code, stdout, stderr)."""
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("TRANSFER_BENCH_CACHE", str(tmp_path / "cache"))
    capsys.readouterr()
    argv = ["transfer-bench", *map(str, args), str(suite), "--results", str(tmp_path / "res")]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_run_checks_every_dataset_before_training(tmp_path, monkeypatch, capsys) -> None:
    """The walkthrough trained the whole source search before a missing target file failed."""
    missing = tmp_path / "fmnist.npz"
    data = variant(**{"datasets.tgt": {"source": f"local:{missing}"}})
    code, out, err = cli(monkeypatch, capsys, tmp_path, data, "run", "--executor", "sequential")
    line = error_line(err)
    assert code == 2 and line.startswith("error: datasets.tgt: ")
    assert str(missing) in line and "does not exist" in line
    assert "trained" not in out and not (tmp_path / "res").exists()  # nothing trained or written


def test_run_suite_checks_before_writing(tmp_path) -> None:
    from transfer_bench import run_suite

    data = variant(**{"datasets.tgt": {"source": "catalog:cifar-10"}})
    with pytest.raises(
        TransferBenchError, match=r"datasets\.tgt: .*did you mean 'catalog:cifar10'"
    ):
        run_suite(data, results=tmp_path / "res", cache_dir=tmp_path / "cache")
    with pytest.raises(TransferBenchError, match="--workers 0: use a whole number >= 1"):
        run_suite(SUITE, results=tmp_path / "res", executor="local", workers=0)
    assert not (tmp_path / "res").exists()


def test_plan_fails_on_a_typo_in_a_catalogue_name(tmp_path, monkeypatch, capsys) -> None:
    data = variant(**{"datasets.tgt": {"source": "catalog:cifar-10"}})
    code, out, err = cli(monkeypatch, capsys, tmp_path, data, "plan", "--no-calibrate")
    assert code == 2 and "budget:" in out  # the plan is still printed
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: datasets.tgt: ") and "did you mean 'catalog:cifar10'" in line


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub unreachable (offline mode), an empty datasets cache and no mirror."""
    import datasets
    import huggingface_hub.constants

    from transfer_bench.data.catalogue import MIRROR_ENV

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def test_an_untrained_default_baseline_is_named_before_training(
    tmp_path, monkeypatch, capsys
) -> None:
    """A suite that trains only Morcos' random ticket but leaves ``analysis.baseline`` at its
    default (random_reinit) used to train, then leave every comparison table empty. ``plan`` and
    ``run`` now say so in one line naming the fix; ``plan --strict`` refuses it; a suite with no
    control but the dense network, or with the baseline set, gets no such line."""
    data = variant(analysis={})
    fix = "set analysis.baseline to one of random_global or add random_reinit"
    code, _, err = cli(monkeypatch, capsys, tmp_path, data, "plan", "--no-calibrate")
    assert code == 0 and "warning: analysis.baseline: the default baseline 'random_reinit'" in err
    assert fix in err
    code, _, err = cli(monkeypatch, capsys, tmp_path, data, "plan", "--no-calibrate", "--strict")
    assert code == 2 and "error: --strict: analysis.baseline" in err
    code, _, err = cli(monkeypatch, capsys, tmp_path, data, "run", "--executor", "sequential")
    assert code == 0 and fix in err
    for fine in (SUITE, variant(analysis={}, **{"transfer.controls": ["dense"]})):
        code, _, err = cli(monkeypatch, capsys, tmp_path, fine, "plan", "--no-calibrate")
        assert code == 0 and "analysis.baseline" not in err


def test_plan_sizes_an_unreachable_catalogue_dataset_unless_strict(
    tmp_path, monkeypatch, capsys, offline
) -> None:
    """A known catalogue dataset that cannot be reached here still plans (the budget of a GPU
    suite from a laptop); ``--strict`` asks that it load on this machine, and for 3+ seeds."""
    data = variant(**{"datasets.tgt": {"source": "catalog:mnist", "train_size": 100}})
    code, out, err = cli(monkeypatch, capsys, tmp_path, data, "plan", "--no-calibrate")
    assert code == 0 and "catalogue" in out and "tgt: not available here" in err
    code, _, err = cli(monkeypatch, capsys, tmp_path, data, "plan", "--no-calibrate", "--strict")
    assert code == 2 and error_line(err).startswith("error: --strict: datasets.tgt (catalog:mnist)")
    code, _, err = cli(monkeypatch, capsys, tmp_path, variant(seeds=[0, 1]), "plan", "--strict")
    assert code == 2 and "error: --strict: seeds: 2 seeds give no bootstrap CI" in err
    code, _, err = cli(monkeypatch, capsys, tmp_path, variant(seeds=[0, 1]), "plan")
    assert code == 0 and "warning: seeds: 2 seeds" in err


@pytest.mark.parametrize("command", ["run", "plan"])
def test_a_rewind_point_past_training_leaves_nothing_behind(
    tmp_path, monkeypatch, capsys, command
) -> None:
    """It was found when the search started, after its folder was made (left empty)."""
    data = variant(**{"search.rewind": "5ep"})
    code, _, err = cli(monkeypatch, capsys, tmp_path, data, command, "--no-calibrate"
                       if command == "plan" else "--no-report")  # fmt: skip
    line = error_line(err)
    assert code == 2 and line.startswith("error: search.rewind: rewind point '5ep' is ")
    assert "use a smaller rewind or train longer" in line
    assert not (tmp_path / "res").exists()  # plan never writes; run checks before writing


@pytest.mark.parametrize(
    "model, size, expected",
    [
        ({"name": "vgg11", "options": {"widht": 4}}, 8, "did you mean 'width'?"),
        ({"name": "vgg11", "options": {"width": 4}}, 8, "needs image_size >= 16"),
    ],
)
@pytest.mark.parametrize("command", ["run", "plan"])
def test_a_model_that_cannot_run_is_one_line(
    tmp_path, monkeypatch, capsys, command, model, size, expected
) -> None:
    data = variant(model=model, **{"input.size": size})
    code, _, err = cli(monkeypatch, capsys, tmp_path, data, command, "--no-calibrate"
                       if command == "plan" else "--no-report")  # fmt: skip
    assert code == 2 and expected in error_line(err)
    assert not (tmp_path / "res").exists()


def test_plan_keeps_every_folder_whole_in_a_log(tmp_path, monkeypatch, capsys) -> None:
    """Piped to a file, rich cut the folder column to the console width ('res/cif…')."""
    code, out, _ = cli(monkeypatch, capsys, tmp_path, SUITE, "plan", "--no-estimate")
    assert code == 0 and "…" not in out
    from transfer_bench.config import parse_suite
    from transfer_bench.runs.plan import plan

    for run in plan(parse_suite(SUITE)):
        assert str(run.folder(tmp_path / "res" / "walk")) in out


def test_ticket_inspect_on_a_result_json_says_not_a_ticket(tmp_path, monkeypatch, capsys) -> None:
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"best_test_accuracy": 0.9, "kind": "search"}, indent=1))
    monkeypatch.setattr(sys, "argv", ["transfer-bench", "ticket", "inspect", str(result)])
    with pytest.raises(SystemExit) as stop:
        from transfer_bench.entry import main as entry_main

        entry_main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "is a text file" in err and "not a ticket file" in err
    assert "byte header" not in err


def test_the_version_is_written_once(monkeypatch, capsys) -> None:
    import transfer_bench
    from transfer_bench.machine import fingerprint
    from transfer_bench.tickets.format import _created_by

    version = transfer_bench.__version__
    assert importlib.metadata.version("transfer-bench") == version
    assert fingerprint("cpu")["transfer_bench"] == version
    assert _created_by()["transfer_bench"] == version
    root = Path(__file__).resolve().parents[1]
    pyproject = (root / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and '\nversion = "' not in pyproject
    assert 'version = { attr = "transfer_bench.__version__" }' in pyproject
    minor = ".".join(version.split(".")[:2])
    assert f"version {minor}" in (root / "README.md").read_text()  # the README speaks of it
    for entry in ("entry", "cli"):
        monkeypatch.setattr(sys, "argv", ["transfer-bench", "--version"])
        with pytest.raises(SystemExit) as stop:
            if entry == "entry":
                from transfer_bench.entry import main as run
            else:
                run = main
            run()
        assert stop.value.code in (0, None)
        assert capsys.readouterr().out.strip() == f"transfer-bench {version}"


def test_a_finished_suite_reanalyses_without_its_data(monkeypatch, capsys, tmp_path: Path):
    """`run` on a suite whose runs are all complete only re-analyses them, so a dataset that is
    gone since (a file moved, a hub copy not cached here) does not stop it; with anything left to
    train, the same suite is refused before it starts."""
    import numpy as np

    rng = np.random.default_rng(0)
    data_file = tmp_path / "tgt.npz"
    np.savez(
        data_file,
        x=rng.integers(0, 256, (120, 8, 8), dtype=np.uint8),
        y=np.arange(120) % 4,
    )
    data = variant(**{"datasets.tgt": {"source": f"local:{data_file}"}})
    code, _, err = cli(monkeypatch, capsys, tmp_path, data, "run", "--progress", "none")
    assert code == 0, err
    data_file.unlink()
    code, out, err = cli(monkeypatch, capsys, tmp_path, data, "run", "--progress", "none")
    assert code == 0, err
    assert "report:" in out
    data["seeds"] = [0, 1, 2, 3]
    code, _, err = cli(monkeypatch, capsys, tmp_path, data, "run", "--progress", "none")
    assert code != 0 and "does not exist" in err


def test_plan_sizes_a_hub_dataset_from_the_catalogue_without_downloading_it(
    monkeypatch, capsys, tmp_path: Path
):
    """A paper-scale suite planned on a laptop must not fetch gigabytes to count images: a hub
    dataset not on this machine is sized from the catalogue; `--strict` tries to load it."""
    from transfer_bench.runs.context import Context

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))  # nothing cached
    monkeypatch.delenv("TRANSFER_BENCH_HF_MIRROR", raising=False)
    loaded: list[str] = []
    real = Context.dataset
    monkeypatch.setattr(
        Context, "dataset", lambda self, name: loaded.append(name) or real(self, name)
    )
    data = variant(**{"datasets.tgt": {"source": "catalog:svhn"}})
    code, out, err = cli(monkeypatch, capsys, tmp_path, data, "plan", "--no-calibrate")
    assert code == 0, err
    assert "tgt" not in loaded and "catalogue" in out and "not downloaded" in err
    assert "73,257" in out  # SVHN's training split, from the catalogue
    code, _, err = cli(monkeypatch, capsys, tmp_path, data, "plan", "--no-calibrate", "--strict")
    assert code != 0 and "tgt" in loaded

"""The researcher's workflow (issue 17): progress lines in logs, experiment tracking read back
from each tracker's own files, the Python API (``run_suite``, ``load_results``)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

SUITE = {
    "name": "tiny-track",
    "seeds": [0],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "src": {"source": "synthetic:src", "num_classes": 4, "samples": 240},
        "tgt": {"source": "synthetic:tgt", "num_classes": 7, "samples": 210},
    },
    "train": {"batch_size": 30, "epochs": 2},
    "search": {"sources": ["src"], "rate": 0.5, "head_rate": 0.2, "levels": 1},
    "transfer": {"targets": ["tgt"], "controls": ["dense"]},
}
# 3 runs: the search (levels 0, 1), the ticket on tgt (levels 0, 1), dense on tgt (level 0)
TRAININGS, RUNS = 5, 3

AVAILABLE = [
    name
    for name, module in (("tensorboard", "tensorboard"), ("mlflow", "mlflow"), ("wandb", "wandb"))
    if importlib.util.find_spec(module) is not None
]


def env(tmp: Path, **extra: str) -> dict[str, str]:
    e = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "TRANSFER_BENCH_CACHE": str(tmp / "cache"),
        "HF_DATASETS_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
    }
    for k in ("MLFLOW_TRACKING_URI", "WANDB_DIR", "TENSORBOARD_LOGDIR", "MLFLOW_ALLOW_FILE_STORE"):
        e.pop(k, None)
    return {**e, **extra}


def results_by_training(suite_dir: Path) -> dict[tuple[str, int, int], dict]:
    """(run_id, seed, level) -> result.json record."""
    out = {}
    for p in suite_dir.rglob("result.json"):
        r = json.loads(p.read_text())
        out[(r["run_id"], r["seed"], r["level"])] = r
    return out


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """The tiny suite run once by the CLI with stdout and stderr to a file (not a terminal), with
    every installed tracker (sequential executor; the pool is tested in ``test_pool_*``)."""
    tmp = tmp_path_factory.mktemp("workflow")
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    log = tmp / "run.log"
    args = [sys.executable, "-m", "transfer_bench.cli", "run", str(suite), "--results"]
    args += [str(tmp / "res"), "--no-report"]
    if AVAILABLE:
        args += ["--track", ",".join(AVAILABLE)]
    with log.open("w") as out:
        proc = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, env=env(tmp), cwd=tmp)
    text = log.read_text()
    assert proc.returncode == 0, text
    return tmp / "res" / SUITE["name"], text


def test_log_has_a_line_per_training_and_per_run(tracked):
    suite_dir, text = tracked
    lines = text.splitlines()
    trained = [ln for ln in lines if re.match(r"^\[\d\d:\d\d:\d\d\] trained ", ln)]
    finished = [ln for ln in lines if re.match(r"^\[\d\d:\d\d:\d\d\] finished ", ln)]
    assert len(trained) == TRAININGS and len(finished) == RUNS, text
    records = results_by_training(suite_dir)
    assert len(records) == TRAININGS
    seen = set()
    for i, line in enumerate(trained, start=1):
        m = re.search(
            r"seed (\d+) level (\d+) \(density ([\d.]+)%\): test accuracy ([\d.]+)%, "
            r"([\d.]+) s \| trainings (\d+)/(\d+), runs (\d+)/(\d+), time left ~\S+",
            line,
        )
        assert m, line
        seed, level = int(m[1]), int(m[2])
        label = line.split("] trained ", 1)[1]
        assert (int(m[6]), int(m[7]), int(m[9])) == (i, TRAININGS, RUNS)
        match = [
            r
            for r in records.values()
            if r["seed"] == seed
            and r["level"] == level
            and label.startswith("search " if r["kind"] == "search" else r["control"] + " ")
            and abs(100 * r["test_accuracy"] - float(m[4])) < 0.006
            and abs(100 * r["density"] - float(m[3])) < 0.006
        ]
        assert match, line
        seen.add((match[0]["run_id"], seed, level))
    assert len(seen) == TRAININGS  # every training once
    assert finished[-1].rstrip().endswith(f"runs {RUNS}/{RUNS}, time left ~0s"), finished[-1]
    assert "3 runs trained, 0 already complete" in text
    assert "\x1b[" not in text  # no terminal control sequences in a log


def assert_curve(got: list, want: list, what: str, rel: float = 1e-12) -> None:
    """Same steps, same values (to ``rel``)."""
    assert [s for s, _ in got] == [s for s, _ in want], what
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=rel), what


def check_params(params: dict, record: dict) -> None:
    for key in ("suite", "kind", "target", "control", "seed", "level", "optimizer"):
        assert str(params[key]) == str(record[key]), key
    assert float(params["density"]) == pytest.approx(record["density"])
    if record.get("source") is not None:
        assert params["source"] == record["source"]


@pytest.mark.skipif("mlflow" not in AVAILABLE, reason="mlflow not installed (.[track])")
def test_mlflow_file_store_holds_every_training(tracked, monkeypatch):
    from mlflow.tracking import MlflowClient

    suite_dir, _ = tracked
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(suite_dir / "tracking" / "mlruns").as_uri())
    exp = client.get_experiment_by_name(SUITE["name"])  # experiment = suite
    runs = client.search_runs([exp.experiment_id])
    records = results_by_training(suite_dir)
    assert len(runs) == TRAININGS
    keys = set()
    for run in runs:
        p = run.data.params
        key = (p["run_id"], int(p["seed"]), int(p["level"]))
        record = records[key]
        keys.add(key)
        check_params(p, record)
        for metric in ("test_accuracy", "test_loss", "train_loss"):
            got = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, metric)]
            want = [(h["epoch"], h[metric]) for h in record["history"]]
            assert_curve(sorted(got), want, metric)
        assert run.data.metrics["final_test_accuracy"] == pytest.approx(record["test_accuracy"])
        assert run.info.status == "FINISHED"
    assert keys == set(records)


@pytest.mark.skipif("tensorboard" not in AVAILABLE, reason="tensorboard not installed (.[track])")
def test_tensorboard_event_files_hold_every_training(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    suite_dir, _ = tracked
    root = suite_dir / "tracking" / "tensorboard" / SUITE["name"]  # a folder per suite
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(folders) == TRAININGS
    records = results_by_training(suite_dir)
    keys = set()
    for folder in folders:
        ea = EventAccumulator(str(folder))
        ea.Reload()
        content = ea.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        hp = {}
        for k, v in data.session_start_info.hparams.items():
            kind = v.WhichOneof("kind")
            hp[k] = v.string_value if kind == "string_value" else v.number_value
        hp = {k: (int(v) if k in ("seed", "level") else v) for k, v in hp.items()}
        key = (hp["run_id"], hp["seed"], hp["level"])
        record = records[key]
        keys.add(key)
        check_params(hp, record)
        for metric in ("test_accuracy", "test_loss", "train_loss"):
            got = [(e.step, e.value) for e in ea.Scalars(metric)]
            want = [(h["epoch"], h[metric]) for h in record["history"]]
            assert_curve(got, want, metric, rel=1e-6)  # stored as float32
        final = ea.Scalars("final/test_accuracy")
        assert final[0].value == pytest.approx(record["test_accuracy"], rel=1e-6)
    assert keys == set(records)


def wandb_records(path: Path):
    """The protobuf records of a wandb ``.wandb`` file (its LevelDB-style log: a 7-byte header,
    then 32 KiB blocks of chunks with 7-byte headers), read without the wandb service."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    pos, parts = 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + n], pos + 7 + n
        if kind == 0:
            pos += block - pos % block if pos % block else 0
            continue
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(parts)
            yield rec


def items(entries) -> dict:
    """Key -> value of wandb record items (a key is in ``key`` or, split, in ``nested_key``)."""
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in entries}


@pytest.mark.skipif("wandb" not in AVAILABLE, reason="wandb not installed (.[track])")
def test_wandb_offline_runs_hold_every_training(tracked):
    suite_dir, _ = tracked
    files = sorted((suite_dir / "tracking" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == TRAININGS
    records = results_by_training(suite_dir)
    keys = set()
    for f in files:
        config, history, group = {}, {}, None
        for rec in wandb_records(f):
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                group = rec.run.run_group
                config.update(items(rec.run.config.update))
            elif kind == "config":
                config.update(items(rec.config.update))
            elif kind == "history":
                history[rec.history.step.num] = items(rec.history.item)
        assert group == SUITE["name"]  # grouped by suite
        key = (config["run_id"], config["seed"], config["level"])
        record = records[key]
        keys.add(key)
        check_params(config, record)
        for h in record["history"]:
            for metric in ("test_accuracy", "test_loss", "train_loss"):
                assert history[h["epoch"]][metric] == pytest.approx(h[metric]), metric
    assert keys == set(records)


def cli(args: list[str], monkeypatch, tmp: Path) -> str:
    """Run the CLI in this process (stdout is not a terminal); its output."""
    from typer.testing import CliRunner

    from transfer_bench.cli import app

    for k, v in env(tmp).items():
        if k != "PYTHONPATH":
            monkeypatch.setenv(k, v)
    for k in ("MLFLOW_TRACKING_URI", "WANDB_DIR", "TENSORBOARD_LOGDIR"):
        monkeypatch.delenv(k, raising=False)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


def test_rerun_trains_and_logs_nothing(tracked, tmp_path, monkeypatch):
    """A rerun finds every run complete: nothing is trained, printed per training or tracked."""
    suite_dir, _ = tracked
    suite = suite_dir.parent.parent / "suite.yaml"
    args = ["run", str(suite), "--results", str(suite_dir.parent), "--no-report"]
    args += ["--progress", "plain"] + (["--track", AVAILABLE[0]] if AVAILABLE else [])
    out = cli(args, monkeypatch, tmp_path)
    assert f"{RUNS} runs ({RUNS} already complete), 0 trainings to do" in out
    assert " trained " not in out and " finished " not in out
    assert f"0 runs trained, {RUNS} already complete" in out
    if AVAILABLE:
        assert f"{AVAILABLE[0]}: 0 trainings logged" in out


def test_quiet_prints_only_the_summary(tmp_path, monkeypatch):
    data = {**SUITE, "name": "tiny-quiet", "train": {"batch_size": 30, "epochs": 1}}
    data.pop("transfer")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(data))
    args = ["run", str(suite), "--results", str(tmp_path / "res"), "--no-report", "--quiet"]
    lines = [ln for ln in cli(args, monkeypatch, tmp_path).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("1 runs trained, 0 already complete"), lines
    assert len(list((tmp_path / "res" / "tiny-quiet").rglob("result.json"))) == 2


def test_missing_tracker_is_one_line_with_the_install_command(tmp_path):
    """A tracker library that cannot be imported: exit 2, one line naming the extra, before
    anything trains."""
    hide = tmp_path / "hide" / "wandb"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('hidden for the test')\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    args = [sys.executable, "-m", "transfer_bench.cli", "run", str(suite), "--results"]
    args += [str(tmp_path / "res"), "--track", "wandb"]
    e = env(tmp_path)
    e["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "hide"), e["PYTHONPATH"]])
    proc = subprocess.run(args, capture_output=True, text=True, env=e)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and 'pip install -e ".[track]"' in lines[0], proc.stderr
    assert "wandb" in lines[0] and "Traceback" not in proc.stderr
    assert not list((tmp_path / "res").rglob("result.json"))


def test_track_in_the_suite_is_validated(tmp_path):
    from transfer_bench.config import ConfigError, load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "track": "mlflow, tensorboard"}))
    assert load_suite(suite).track == ("mlflow", "tensorboard")
    suite.write_text(yaml.safe_dump({**SUITE, "track": ["mlfow"]}))
    with pytest.raises(ConfigError, match=r"track\[0\].*did you mean 'mlflow'"):
        load_suite(suite)


def test_run_suite_from_python_with_tracking(tmp_path, capfd):
    """``run_suite`` (sequential executor): a summary, plain progress lines, and TensorBoard
    logs equal to ``result.json``; a second call skips everything."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from transfer_bench import SuiteRunSummary, load_histories, load_results, run_suite
    from transfer_bench.config import parse_suite

    data = {**SUITE, "name": "tiny-api", "seeds": [0, 1], "train": {"batch_size": 30, "epochs": 1}}
    data["search"] = {**SUITE["search"], "levels": 1}
    data.pop("transfer")
    s = run_suite(
        parse_suite(data),
        results=tmp_path / "res",
        cache_dir=tmp_path / "cache",
        track="tensorboard",
        progress="plain",
        report=False,
    )
    out = capfd.readouterr().out
    assert isinstance(s, SuiteRunSummary)
    assert len(s.trained) == 2 and s.skipped == () and s.trainings == 4
    assert s.suite_dir == tmp_path / "res" / "tiny-api" and s.report is None
    assert s.tracked["tensorboard"]["trainings"] == 4
    assert out.count("] trained search src seed ") == 4 and out.count("] finished ") == 2
    df = load_results(s.suite_dir)
    assert len(df) == 4 and set(df["seed"]) == {0, 1} and set(df["level"]) == {0, 1}
    hist = load_histories(s.suite_dir)
    assert len(hist) == 4 and {"epoch", "test_accuracy", "train_loss"} <= set(hist.columns)
    root = s.suite_dir / "tracking" / "tensorboard" / "tiny-api"
    for row in df.itertuples():
        (folder,) = root.glob(f"*__seed_{row.seed}__level_{row.level}__*")
        ea = EventAccumulator(str(folder))
        ea.Reload()
        (acc,) = ea.Scalars("test_accuracy")
        assert acc.step == 1 and acc.value == pytest.approx(row.test_accuracy, rel=1e-6)
    again = run_suite(data, results=tmp_path / "res", cache_dir=tmp_path / "cache", report=False)
    assert again.trained == () and len(again.skipped) == 2 and again.trainings == 0


@pytest.mark.slow
def test_pool_trainings_are_reported_and_tracked_by_the_parent(tmp_path, capfd):
    """With ``executor="local"`` trainings finish in worker processes; the parent reports each
    from its result file and logs it (MLflow here) with the values of ``result.json``."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from transfer_bench import run_suite

    s = run_suite(
        SUITE,
        results=tmp_path / "res",
        executor="local",
        workers=2,
        cache_dir=tmp_path / "cache",
        track=["mlflow"],
        progress="plain",
        report=False,
    )
    out = capfd.readouterr().out
    assert s.trainings == TRAININGS and len(s.trained) == RUNS
    assert out.count("] trained ") == TRAININGS and out.count("] finished ") == RUNS
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        client = MlflowClient(tracking_uri=(s.suite_dir / "tracking" / "mlruns").as_uri())
        exp = client.get_experiment_by_name(SUITE["name"])
        runs = client.search_runs([exp.experiment_id])
        records = results_by_training(s.suite_dir)
        assert len(runs) == TRAININGS
        for run in runs:
            p = run.data.params
            record = records[(p["run_id"], int(p["seed"]), int(p["level"]))]
            got = client.get_metric_history(run.info.run_id, "test_accuracy")
            want = [(h["epoch"], h["test_accuracy"]) for h in record["history"]]
            assert_curve(sorted((m.step, m.value) for m in got), want, "test_accuracy")
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def test_rich_display_and_bad_progress_mode(tracked, tmp_path, monkeypatch):
    """``--progress rich`` draws the bar over runs even into a file; an unknown mode is a
    one-line error naming the choices."""
    from typer.testing import CliRunner

    from transfer_bench.cli import app
    from transfer_bench.errors import TransferBenchError

    suite_dir, _ = tracked
    suite = suite_dir.parent.parent / "suite.yaml"
    args = ["run", str(suite), "--results", str(suite_dir.parent), "--no-report"]
    out = cli([*args, "--progress", "rich"], monkeypatch, tmp_path)
    assert f"{SUITE['name']}" in out and f"{RUNS}/{RUNS}" in out and "] trained " not in out
    res = CliRunner().invoke(app, [*args, "--progress", "fancy"])
    assert isinstance(res.exception, TransferBenchError)
    assert str(res.exception) == "progress 'fancy': use one of auto, plain, rich, none"

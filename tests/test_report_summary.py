"""Reports lead with findings (with detectable effects) and the machine; `power` and
`compare --against` work on a finished suite; results record the machine."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from transfer_bench.cli import app
from transfer_bench.machine import BUILD_KEYS, describe, differences, fingerprint

SUITE = {
    "name": "summary",
    "seeds": [0, 1, 2],
    "model": {"name": "lenet_300_100"},
    "input": {"size": 8, "channels": 1},
    "datasets": {
        "a": {"source": "synthetic:a", "num_classes": 4, "samples": 160},
        "b": {"source": "synthetic:b", "num_classes": 4, "samples": 160},
    },
    "train": {"batch_size": 40, "epochs": 1},
    "search": {"sources": ["a"], "rate": 0.5, "head_rate": 0.2, "levels": 2},
    "transfer": {"targets": ["b"], "controls": ["random_reinit"], "levels": [1, 2]},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("summary")
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE))
    out = CliRunner().invoke(app, ["run", str(suite), "--results", str(tmp / "res")])
    assert out.exit_code == 0, out.output
    return tmp / "res" / "summary"


def test_results_record_the_machine(finished: Path) -> None:
    record = json.loads(next(finished.rglob("result.json")).read_text())
    assert set(BUILD_KEYS) <= set(record["machine"])
    assert record["machine"] == {**fingerprint("cpu"), "threads": record["torch_threads"]}


def test_fingerprint_differences() -> None:
    here = fingerprint("cpu")
    assert differences([here, dict(here)]) == []
    assert differences([here, {**here, "torch": "0.0"}]) == ["torch"]
    assert here["torch"] in describe(here)


def test_report_leads_with_findings_and_ends_with_how(finished: Path) -> None:
    text = (finished / "report.md").read_text()
    order = [text.index(h) for h in ("## Findings", "## Each arm vs", "## Runs", "## Machine")]
    order.append(text.index("## Configuration"))
    assert order == sorted(order)
    findings = text[text.index("## Findings") : text.index("## Each arm vs")]
    assert "Machine: " in findings and fingerprint("cpu")["torch"] in findings
    assert "![" in findings  # the main figure opens the report
    assert "MDE (points)" in text
    # a non-significant cell says what could have been detected
    if "does not differ significantly" in findings:
        assert "were detectable (80% power" in findings


def test_power_command_plans_seeds(finished: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["power", str(finished), "--effect", "5"])
    assert out.exit_code == 0, out.output
    assert "seeds needed" in out.output and "one more seed of the whole suite costs" in out.output
    rows = [line for line in out.output.splitlines() if line.startswith("| ticket from a on b")]
    assert len(rows) == 3  # two levels and their integral
    bad = runner.invoke(app, ["power", str(finished), "--power", "1.5"])
    assert bad.exit_code != 0 and "--power 1.5" in str(bad.exception)  # main() prints one line
    out = runner.invoke(
        app, ["plan", str(finished / "suite.yaml"), "--results", str(finished.parent)]
    )
    assert out.exit_code == 0 and "transfer-bench power" in out.output


def test_compare_against_warns_on_other_builds(finished: Path, tmp_path: Path) -> None:
    other = tmp_path / "summary"
    shutil.copytree(finished, other)
    for path in other.rglob("result.json"):
        record = json.loads(path.read_text())
        record["machine"]["torch"] = "9.9.9"
        path.write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="differ in torch"):
        out = CliRunner().invoke(app, ["compare", str(finished), "--against", str(other)])
    assert out.exit_code == 0, out.output
    assert "same verdict in 2 of 2 cells" in out.output

"""Every shipped suite is valid and plans; the Morcos 2019 suites run at smoke scale (slow, CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from transfer_bench.cli import app
from transfer_bench.config import load_suite
from transfer_bench.runs.plan import plan
from transfer_bench.seeding import SEEDING_VERSION

SUITES = sorted((Path(__file__).parents[1] / "suites").glob("*.yaml"))


@pytest.mark.parametrize("path", SUITES, ids=lambda p: p.stem)
def test_suite_is_valid_and_plans(path: Path):
    suite = load_suite(path)
    runs = plan(suite)
    assert runs and len({r.key for r in runs}) == len(runs)
    for scale in suite.scales:
        scaled = load_suite(path, scale)
        assert scaled.name == f"{suite.name}-{scale}"
        assert {r.kind for r in plan(scaled)} == {r.kind for r in runs}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["morcos2019-vgg19", "morcos2019-resnet50", "morcos2019-optimizers"]
)
def test_morcos_suites_run_at_smoke_scale(name: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRANSFER_BENCH_CACHE", str(tmp_path / "cache"))
    path = Path(__file__).parents[1] / "suites" / f"{name}.yaml"
    out = CliRunner().invoke(
        app,
        ["run", str(path), "--scale", "smoke", "--results", str(tmp_path), "--executor", "local"],
    )
    assert out.exit_code == 0, out.output
    report = tmp_path / f"{name}-smoke" / "report.md"
    assert report.exists() and "## Findings" in report.read_text()


ROOT = Path(__file__).parents[1]
COMMITTED = sorted(p.parent for p in (ROOT / "results").rglob("suite.yaml"))


def _suite_file(results_dir: Path) -> tuple[Path, str | None]:
    """The suite file (and scale) a committed results folder was made from."""
    rel = results_dir.relative_to(ROOT / "results")
    for scale in ("cpu", "smoke", "hub"):
        if rel.name.endswith(f"-{scale}"):
            return (
                ROOT / "suites" / rel.parent / f"{rel.name.removesuffix(f'-{scale}')}.yaml",
                scale,
            )
    return ROOT / "suites" / rel.parent / f"{rel.name}.yaml", None


def _seeding_rule(results_dir: Path) -> int:
    """The seeding rule a committed folder's runs record (1: made before rules were numbered)."""
    config = json.loads(next(results_dir.rglob("config.json")).read_text())
    return int(config.get("seeding", 1))


@pytest.mark.parametrize("results_dir", COMMITTED, ids=lambda p: p.name)
def test_committed_results_are_the_current_plan(results_dir: Path):
    """Every committed run folder is a run the suite plans today and every planned run is there:
    a change of defaults or of the suite that changes run ids must come with re-run results.
    Folders made under an earlier seeding rule are listed as expected failures until re-run."""
    rule = _seeding_rule(results_dir)
    if rule < SEEDING_VERSION:
        pytest.xfail(
            f"{results_dir.relative_to(ROOT)} was made under seeding rule {rule} "
            f"(now {SEEDING_VERSION}): re-run its suite to replace it"
        )
    path, scale = _suite_file(results_dir)
    if not path.exists():  # a suite that lives only with its results (e.g. results/gpu-h200's)
        path, scale = results_dir / "suite.yaml", None
    planned = {r.run_id for r in plan(load_suite(path, scale))}
    present = {p.name for p in results_dir.iterdir() if p.is_dir() and "-" in p.name}
    present -= {"figures", "tables"}
    assert present == planned, (
        f"{results_dir}: stale {present - planned}, missing {planned - present}"
    )

"""Committed reports are what the current code writes from the committed results: a change to the
analysis that alters a report's numbers must come with re-made reports. Each folder is copied as
a fresh clone has it (no ticket files, checkpoints or weights) and its report re-made there; the
summary and every table must match the committed ones. (Claim folders: `test_claims.py` recomputes
their verdicts.)"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

from transfer_bench.api import SUITE_COPY, write_suite_report
from transfer_bench.config import load_suite

ROOT = Path(__file__).parents[1]
FOLDERS = sorted(
    p.parent
    for p in (ROOT / "results").rglob(SUITE_COPY)
    if "claims" not in p.relative_to(ROOT / "results").parts
)
NOT_COMMITTED = shutil.ignore_patterns(
    "*.ticket", "*.safetensors", "checkpoint.pt", ".lock", "*.lock", "*.tmp"
)


def summary(report: str) -> str:
    """The report's "## Summary" section (its first section: the answer a reader sees first)."""
    if "## Summary" not in report:
        return "(no summary)"
    start = report.index("## Summary")
    return report[start : report.index("\n## ", start + 1)]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_committed_report_is_current(folder: Path, tmp_path: Path):
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy, ignore=NOT_COMMITTED)
    for made in ("report.md", "report.html", "tables"):
        target = copy / made
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path, _ = write_suite_report(copy, load_suite(copy / SUITE_COPY))
    committed = (folder / "report.md").read_text()
    assert summary(path.read_text()) == summary(committed), (
        f"{folder.relative_to(ROOT)}: the summary differs from what the current code writes; "
        f"re-make it with `transfer-bench report {folder.relative_to(ROOT)}`"
    )
    for table in sorted((folder / "tables").glob("*.csv")):
        assert (copy / "tables" / table.name).read_text() == table.read_text(), (
            f"{table.relative_to(ROOT)} differs from what the current code writes; "
            f"re-make it with `transfer-bench report {folder.relative_to(ROOT)}`"
        )

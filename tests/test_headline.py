"""Reports lead with the answer: a short summary and a headline table (one row per primary
comparison or claim check: effect, CI, p, MDE, verdict), before the findings; and what a reader
sees first in a real browser (headless Chromium, skipped where none is installed).

Results are written as ``result.json`` files (no training), so each report takes about a second."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_results import write_results

from transfer_bench.analysis import headline
from transfer_bench.api import write_suite_report
from transfer_bench.config import AnalysisSpec, parse_suite


def suite_data(sources=("a", "b"), levels=(1, 2), primary=None) -> dict:
    analysis = {"baseline": "random_global", "n_resamples": 99, "plots": ["sparsity_curve"]}
    if primary is not None:
        analysis["primary"] = primary
    return {
        "name": "head",
        "seeds": [0, 1, 2, 3, 4],
        "model": {"name": "lenet_300_100"},
        "datasets": {
            n: {"source": f"synthetic:{n}", "num_classes": 4, "samples": 160}
            for n in (*sources, "t")
        },
        "search": {"sources": list(sources), "levels": max(levels)},
        "transfer": {
            "targets": ["t"],
            "controls": ["random_global", "dense"],
            "levels": list(levels),
        },
        "analysis": analysis,
    }


def accuracy(control, source, seed, level) -> float:
    """The ticket from ``a`` is 6 points ahead of the random ticket; everything else is level,
    with seed-to-seed noise."""
    salt = len(control) + (0 if source is None else ord(source))
    noise = 0.01 * np.sin(3.3 * seed + 1.7 * level + salt)
    ahead = 0.06 if (control, source) == ("ticket", "a") else 0.0
    return 0.6 + ahead + noise + (0.2 if control == "dense" else 0.0)


def report(tmp_path: Path, data: dict) -> tuple[Path, str]:
    suite_dir = write_results(tmp_path, data, accuracy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path, _ = write_suite_report(suite_dir, parse_suite(data))
    return suite_dir, path.read_text()


def headline_rows(text: str) -> list[str]:
    summary = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in summary.splitlines() if ln.startswith("| ")]
    return rows[1:]  # without the header


def test_report_opens_with_a_summary_and_a_headline_table(tmp_path: Path) -> None:
    primary = [{"arm": "ticket", "source": "a"}]
    _, text = report(tmp_path, suite_data(primary=primary))
    sections = re.findall(r"^## (.+)$", text, flags=re.M)
    assert sections[:2] == ["Summary", "Findings"]  # the answer first, then the findings
    summary = text.split("## Summary", 1)[1].split("## Findings", 1)[0]
    assert "2 primary comparisons with random_global (`analysis.primary`: ticket from a" in summary
    assert (
        "Significant (p_holm < 0.05): ticket from a on t at 50.0% and 25.0% (+5.98 and +5.87 "
        "points, p_holm <0.001 and <0.001)"
    ) in summary
    header = next(ln for ln in summary.splitlines() if ln.startswith("| comparison"))
    for column in ("Δ (points) [95% CI]", "p (adj.)", "MDE (points)", "n", "verdict"):
        assert column in header
    rows = headline_rows(text)
    assert len(rows) == 2 and all(r.startswith("| ticket from a on t |") for r in rows)
    assert all("**better than random_global**" in r for r in rows)
    assert "ticket from b" not in summary  # a secondary cell is left to the findings


def test_without_declared_primaries_the_headline_is_a_stated_selection(tmp_path: Path) -> None:
    _, text = report(tmp_path, suite_data(sources=("a", "b", "c"), levels=(1, 2, 3)))
    rows = headline_rows(text)
    assert len(rows) == headline.HEADLINE_ROWS  # 9 primary cells, 8 shown
    assert rows[0].startswith("| ticket from a on t |")  # the largest effect for its MDE first
    summary = text.split("## Summary", 1)[1].split("## Findings", 1)[0]
    assert "No primary comparisons declared, so all 9 cells" in summary
    assert "a selection for reading" in summary and "'Each arm vs random_global'" in summary


def test_headline_cells_rank_by_effect_over_mde() -> None:
    cmp = pd.DataFrame(
        {
            "role": ["primary"] * 10,
            "diff": [0.01 * i for i in range(10)],
            "mde": [0.05] * 9 + [float("inf")],  # the largest effect is not estimable
        }
    )
    rows, note = headline.headline_cells(cmp, AnalysisSpec())
    assert list(rows.index) == [8, 7, 6, 5, 4, 3, 2, 1] and "all 10 cells" in note
    declared = AnalysisSpec(primary=[{"arm": "ticket"}])
    rows, note = headline.headline_cells(cmp, declared)
    assert len(rows) == 10 and note == ""  # declared primaries are all shown


def test_a_claim_suite_leads_with_its_verdict_and_checks() -> None:
    record = {
        "title": "Tickets beat re-init",
        "paper": "Frankle & Carbin 2019",
        "alpha": 0.05,
        "verdict": "inconclusive",
        "checks": [
            {"check": "ticket - reinit", "effect": 0.028, "ci_low": 0.02, "ci_high": 0.03,
             "scale": 100, "unit": "points", "expect": "greater", "p_holm": 0.001,
             "mde": 0.004, "n": 8, "verdict": "reproduced"},
            {"check": "ticket - dense", "effect": -0.001, "ci_low": -0.004, "ci_high": 0.002,
             "scale": 100, "unit": "points", "expect": "equivalent", "p_holm": 0.2,
             "mde": float("nan"), "n": 8, "verdict": "inconclusive"},
        ],
    }  # fmt: skip
    text = headline.summary_section(pd.DataFrame(), AnalysisSpec(), record)
    assert text.startswith("## Summary")
    assert "**inconclusive** (2 checks fixed before the run: 1 reproduced, 1 inconclusive" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| ticket")]
    assert (
        rows[0]
        == "| ticket - reinit | +2.80 points [+2.00, +3.00] | 0.001 | 0.40 | 8 | **reproduced** |"
    )
    assert "none (not a t-test)" in rows[1] and "**inconclusive**" in rows[1]


def test_nothing_to_compare_gives_no_summary() -> None:
    assert headline.summary_section(pd.DataFrame(), AnalysisSpec(), None) == ""


# ------------------------------------------------------------------ what a browser shows first

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
#: after the page has loaded, note what lies in the first screen (the viewport)
PROBE = """<script>
window.addEventListener('load', () => {
  const h = window.innerHeight, top = e => e.getBoundingClientRect().top;
  const seen = sel => [...document.querySelectorAll(sel)].filter(e => top(e) < h);
  const out = {
    headings: seen('h1,h2,h3').map(e => e.textContent),
    tables: seen('table').map(e => e.querySelector('tr').textContent.replace(/\\s+/g, ' ').trim()),
    first_table_bottom: document.querySelector('table').getBoundingClientRect().bottom,
    first_image_top: document.querySelector('img') ? top(document.querySelector('img')) : null,
    height: h,
  };
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def chromium(*args: str) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs a headless Chromium (Debian: apt-get install chromium); CI has none",
)
def test_a_reader_sees_the_summary_and_headline_table_in_the_first_screen(tmp_path: Path) -> None:
    """report.html in headless Chromium at 1280x900: the first screen shows the title, the
    Summary and the whole headline table, above the main figure. A screenshot of that screen is
    written next to the report (first-screen.png) for a person to look at."""
    suite_dir, _ = report(tmp_path, suite_data(primary=[{"arm": "ticket", "source": "a"}]))
    html = (suite_dir / "report.html").read_text()
    probe = suite_dir / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "</body>"))
    dom = chromium("--window-size=1280,900", "--virtual-time-budget=5000", "--dump-dom",
                   probe.as_uri())  # fmt: skip
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, flags=re.S)
    assert found, dom[-2000:]
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert seen["headings"][:2] == ["Report: head", "Summary"]
    assert seen["tables"] and seen["tables"][0].startswith("comparison (vs random_global)")
    assert seen["first_table_bottom"] <= seen["height"]  # the whole headline table is in view
    assert seen["first_image_top"] is None or seen["first_image_top"] > seen["first_table_bottom"]
    shot = suite_dir / "first-screen.png"
    chromium("--window-size=1280,900", f"--screenshot={shot}", (suite_dir / "report.html").as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000  # a rendered page, not a blank one

"""The Markdown report of a suite: run counts, ticket-vs-control table, figure, findings, warnings.

``write_report`` reads ``result.json`` files below the suite directory and writes, atomically,
``report.md``, ``figures/sparsity_curve.{png,pdf}`` and ``tables/comparison.csv``. Warnings raised
while loading and analysing (skipped files, untestable comparisons) are listed in the report and
re-issued to the caller, so nothing is silently dropped.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from transfer_bench.analysis.frame import atomic_write_text, load_results
from transfer_bench.analysis.plots import sparsity_curve
from transfer_bench.analysis.stats import compare
from transfer_bench.config import AnalysisSpec, format_validation_error
from transfer_bench.errors import ConfigError

FIGURE_BASE = Path("figures") / "sparsity_curve"
TABLE_PATH = Path("tables") / "comparison.csv"
REPORT_NAME = "report.md"
CORRECTION_NAMES = {"holm": "Holm correction", "none": "no correction"}


# ---------------------------------------------------------------------------------------- format


def fmt_percent_remaining(pct: float) -> str:
    """Weights remaining: one decimal from 1 % up ("10.7%"), two significant digits below ("0.42%")."""
    if not math.isfinite(pct):
        return "–"
    return f"{pct:.1f}%" if pct >= 1.0 else f"{pct:.2g}%"


def fmt_acc(mean: float, std: float, n: int) -> str:
    """Accuracy fraction as percent "93.12 ± 0.45 (3)"; std omitted when undefined."""
    if n == 0 or not math.isfinite(mean):
        return "–"
    spread = f" ± {100 * std:.2f}" if math.isfinite(std) else ""
    return f"{100 * mean:.2f}{spread} ({n})"


def fmt_points(diff: float) -> str:
    """A difference of accuracy fractions in percentage points, signed ("+3.10")."""
    return "–" if not math.isfinite(diff) else f"{100 * diff:+.2f}"


def fmt_p(p: float) -> str:
    """p-value with three decimals, "<0.001" below that, "–" when untested."""
    if not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_p_eq(name: str, p: float) -> str:
    """ "p_holm = 0.004" / "p_holm < 0.001" for prose."""
    text = fmt_p(p)
    return f"{name} < 0.001" if text == "<0.001" else f"{name} = {text}"


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|")


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------- sections


def counts_section(df: pd.DataFrame) -> str:
    """Number of runs by kind and control, plus the seeds, sources and targets seen."""
    if df.empty:
        return "## Runs\n\nNo readable `result.json` files were found."
    counts = df.groupby(["kind", "control"], dropna=False).size().reset_index(name="trainings")
    table = markdown_table(["kind", "control", "trainings"], counts.values.tolist())

    transfer = df[df["kind"] == "transfer"]

    def seen(col: str, rows: pd.DataFrame = transfer) -> str:
        return ", ".join(str(v) for v in sorted(rows[col].dropna().unique())) or "–"

    return (
        f"## Runs\n\n{len(df)} finished trainings (one per run, seed and level); seeds: {seen('seed', df)}; transfer sources: {seen('source')}; "
        f"targets: {seen('target')}; optimizers: {seen('optimizer')}.\n\n{table}"
    )


def comparison_section(cmp: pd.DataFrame, spec: AnalysisSpec) -> str:
    """Per target and optimizer: ticket vs baseline table, one row per source and level."""
    title = (
        f"## Ticket vs {spec.baseline}\n\nMetric: `{spec.metric}` in percent, mean ± std (n seeds); "
        f"diff in percentage points; Welch t-test, {CORRECTION_NAMES[spec.correction]} over all "
        f"{len(cmp)} comparisons, * = significant at alpha = {spec.alpha:g}."
    )
    if cmp.empty:
        return f"{title}\n\nNo ticket transfers to compare."
    p_adj = "p (Holm)" if spec.correction == "holm" else "p (adj.)"
    header = [
        "source",
        "level",
        "weights remaining",
        "ticket",
        spec.baseline,
        "diff (points)",
        "p (Welch)",
        p_adj,
        "sig.",
    ]
    parts = [title]
    for (target, optimizer), group in cmp.groupby(
        ["target", "optimizer"], dropna=False, sort=False
    ):
        rows = [
            [
                r.source,
                r.level,
                fmt_percent_remaining(r.percent_remaining),
                fmt_acc(r.ticket_mean, r.ticket_std, r.ticket_n),
                fmt_acc(r.baseline_mean, r.baseline_std, r.baseline_n),
                fmt_points(r.diff),
                fmt_p(r.p),
                fmt_p(r.p_adj),
                "*" if r.significant else "",
            ]
            for r in group.itertuples()
        ]
        parts.append(f"### {target} ({optimizer})\n\n{markdown_table(header, rows)}")
    return "\n\n".join(parts)


def findings(cmp: pd.DataFrame, spec: AnalysisSpec) -> list[str]:
    """Plain-language statements generated from the comparison table."""
    if cmp.empty:
        return []
    multi_opt = cmp["optimizer"].nunique(dropna=False) > 1
    p_name = "p_holm" if spec.correction == "holm" else "p"
    out = []
    for (source, target, optimizer), group in cmp.groupby(
        ["source", "target", "optimizer"], dropna=False, sort=False
    ):
        where = f"{target} ({optimizer})" if multi_opt else str(target)
        who = f"Ticket from {source}"
        for r in group[group["significant"]].itertuples():
            verb = "beats" if r.diff > 0 else "is worse than"
            out.append(
                f"{who} {verb} {spec.baseline} on {where} at "
                f"{fmt_percent_remaining(r.percent_remaining)} weights remaining: "
                f"{fmt_points(r.diff)} points, {fmt_p_eq(p_name, r.p_adj)}, "
                f"n = {r.ticket_n}/{r.baseline_n}"
            )
        tested = group[~group["significant"] & group["p_adj"].notna()]
        if not tested.empty:
            levels = ", ".join(fmt_percent_remaining(v) for v in tested["percent_remaining"])
            out.append(
                f"{who} does not differ significantly from {spec.baseline} on {where} at {levels} "
                f"weights remaining ({p_name} >= {spec.alpha:g})"
            )
        untested = group[group["p_adj"].isna()]
        if not untested.empty:
            levels = ", ".join(fmt_percent_remaining(v) for v in untested["percent_remaining"])
            out.append(
                f"{who} vs {spec.baseline} on {where} could not be tested at {levels} weights "
                "remaining (see warnings)"
            )
    return out


def _bullets(title: str, items: list[str], empty: str) -> str:
    body = "\n".join(f"- {i}" for i in items) if items else empty
    return f"## {title}\n\n{body}"


# ------------------------------------------------------------------------------------------ main


def parse_analysis(analysis: dict[str, Any] | AnalysisSpec | None) -> AnalysisSpec:
    """Validate the suite's ``analysis`` section (defaults when None) or raise a one-line ConfigError."""
    if isinstance(analysis, AnalysisSpec):
        return analysis
    try:
        return AnalysisSpec.model_validate(analysis or {})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, "analysis")) from None


def _unique(messages: list[str]) -> list[str]:
    return list(dict.fromkeys(messages))


def write_report(
    suite_dir: Path,
    *,
    suite_name: str,
    analysis: dict[str, Any] | AnalysisSpec | None = None,
    config_summary: str = "",
) -> Path:
    """Analyse the results below ``suite_dir`` and write ``suite_dir/report.md``; returns its path."""
    suite_dir = Path(suite_dir)
    spec = parse_analysis(analysis)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_results(suite_dir)
        cmp = compare(
            df,
            metric=spec.metric,
            baseline=spec.baseline,
            correction=spec.correction,
            alpha=spec.alpha,
        )
        sparsity_curve(df, suite_dir / FIGURE_BASE, metric=spec.metric)
    atomic_write_text(suite_dir / TABLE_PATH, cmp.to_csv(index=False))
    messages = _unique([str(w.message) for w in caught])

    fig = FIGURE_BASE.as_posix()
    sections = [f"# Report: {suite_name}"]
    if config_summary.strip():
        sections.append(f"## Configuration\n\n```yaml\n{config_summary.strip()}\n```")
    sections += [
        counts_section(df),
        comparison_section(cmp, spec),
        f"## Figure\n\n![sparsity curve]({fig}.png)\n\nPDF: [{fig}.pdf]({fig}.pdf); "
        f"table as CSV: [{TABLE_PATH.as_posix()}]({TABLE_PATH.as_posix()})",
        _bullets("Findings", findings(cmp, spec), "No comparisons could be made."),
        _bullets("Warnings", messages, "None."),
    ]
    path = atomic_write_text(suite_dir / REPORT_NAME, "\n\n".join(sections) + "\n")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return path

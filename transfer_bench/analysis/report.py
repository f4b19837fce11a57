"""The report of a suite: configuration, run counts and compute, tables, figures, findings, warnings.

``write_report`` reads the results below a suite's folder and writes, atomically: ``report.md`` and
a self-contained ``report.html`` (figures embedded), ``tables/comparison.{csv,md,tex}`` (each arm vs
the baseline per target, optimizer and density), ``tables/auc.{csv,md,tex}`` (the sparsity-integrated
comparison) and ``figures/<kind>.{png,pdf,svg}``. Warnings raised while loading and analysing are
listed in the report and re-issued to the caller, so nothing is silently dropped.

The report leads with the answer (``headline``: a short summary and a table of the primary
comparisons or claim checks), then the main figure and the findings, the tables and figures, and
how the results were made.
"""

from __future__ import annotations

import base64
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from transfer_bench.analysis.claims import claim_section, evaluate_claim, write_claim
from transfer_bench.analysis.frame import (
    apply_diverged,
    diverged_rows,
    in_plan,
    load_results,
    with_own_ticket_rows,
)
from transfer_bench.analysis.headline import summary_section
from transfer_bench.analysis.power import DEFAULT_POWER
from transfer_bench.analysis.precision import noise_text, pairing_text
from transfer_bench.analysis.primaries import primaries_text, table_primaries
from transfer_bench.analysis.provenance import (
    data_section,
    head_section,
    machine_line,
    machine_section,
)
from transfer_bench.analysis.stats import MIN_BOOTSTRAP_N, auc_table, comparison_table
from transfer_bench.analysis.tables import (
    P_NAMES,
    caption_text,
    joined,
    p_phrase,
    shown_ci,
    to_markdown,
    write_tables,
)
from transfer_bench.config import AnalysisSpec, ClaimSpec, format_validation_error
from transfer_bench.errors import ConfigError
from transfer_bench.fileio import atomic_write_text, suite_folder_lock

REPORT_NAME = "report.md"
TABLES_DIR = "tables"  # the report's own tables, rewritten by every report
HTML_NAME = "report.html"
ROUNDS_FILE = "rounds.json"  # written by `run --until-mde` (analysis.rounds)
TEST_NAMES = {
    "welch": "Welch's t-test",
    "mannwhitney": "Mann-Whitney U",
    "paired_t": "paired t-test",
    "wilcoxon": "Wilcoxon signed-rank",
}
CORRECTION_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}


def parse_analysis(analysis: dict[str, Any] | AnalysisSpec | None) -> AnalysisSpec:
    """Validate the suite's ``analysis`` section (defaults when None) or raise a one-line ConfigError."""
    if isinstance(analysis, AnalysisSpec):
        return analysis
    try:
        return AnalysisSpec.model_validate(analysis or {})
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, "analysis")) from None


@dataclass
class Analysis:
    """Everything the report shows, computed once."""

    results: pd.DataFrame
    comparison: pd.DataFrame
    auc: pd.DataFrame
    sources_auc: pd.DataFrame
    messages: list[str] = field(default_factory=list)
    diverged: pd.DataFrame = field(default_factory=pd.DataFrame)


def treatments(df: pd.DataFrame, baseline: str) -> list[str]:
    """Arms compared with the baseline: the ticket first, then every other non-dense control."""
    present = set(df.loc[df["kind"] == "transfer", "control"].dropna()) if not df.empty else set()
    rest = sorted(c for c in present if c not in {"ticket", "dense", baseline})
    return (["ticket"] if "ticket" in present else []) + rest


DIVERGED_WORDS = {
    "chance": "chance accuracy (1 / classes)",
    "exclude": "excluded",
    "keep": "their last accuracy before diverging",
}


def analyse(suite_dir: Path, spec: AnalysisSpec, *, has_claim: bool = False) -> Analysis:
    """Load results and compute every table (warnings are left to the caller to collect).

    ``has_claim``: the suite has a claim, whose checks are then its primary comparisons (unless
    ``analysis.primary`` names others), so every table cell is secondary."""
    raw = load_results(suite_dir)
    a = _analyse(raw, spec, has_claim)
    a.diverged = diverged_rows(raw)
    return a


def _analyse(df: pd.DataFrame, spec: AnalysisSpec, has_claim: bool = False) -> Analysis:
    policy = spec.diverged
    bad = diverged_rows(df)
    if not bad.empty:
        warnings.warn(
            f"{len(bad)} training(s) diverged (non-finite loss); analysed as "
            f"{DIVERGED_WORDS[policy]} (analysis.diverged: {policy}); see 'Diverged trainings'",
            stacklevel=2,
        )
    df = apply_diverged(df, policy)
    if spec.baseline == "own_ticket":  # a target's own ticket may live under its "ticket" arm
        df = with_own_ticket_rows(df)
    empty = pd.DataFrame()
    transfer = df[df["kind"] == "transfer"] if not df.empty else empty
    arms = treatments(df, spec.baseline)
    if transfer.empty or not arms or spec.baseline not in set(transfer["control"]):
        if not transfer.empty:
            warnings.warn(
                f"report: no {spec.baseline} runs to compare with; tables left empty", stacklevel=2
            )
        return Analysis(df, empty, empty, empty)
    common = dict(
        metric=spec.metric,
        test=spec.test,
        correction=spec.correction,
        alpha=spec.alpha,
        n_resamples=spec.n_resamples,
        seed=0,
    )
    primary = table_primaries(spec, has_claim)
    cmp = comparison_table(df, baseline=spec.baseline, treatment=arms, primary=primary, **common)
    auc = auc_table(df, baseline=spec.baseline, treatment=arms, **common)
    sources = empty
    if transfer.loc[transfer["control"] == "ticket", "source"].nunique() > 1:
        sources = auc_table(df, baseline=None, treatment="ticket", **common)
    return Analysis(df, cmp, auc, sources)


# ---------------------------------------------------------------------------------- sections


def fmt_percent_remaining(pct: float) -> str:
    """Weights remaining: one decimal from 1 % up ("10.7%"), two significant digits below."""
    if not math.isfinite(pct):
        return "–"
    return f"{pct:.1f}%" if pct >= 1.0 else f"{pct:.2g}%"


def _points(x: float) -> str:
    return f"{100 * x:+.2f}" if math.isfinite(x) else "–"


def _p(name: str, p: float) -> str:
    return f"{name} {p_phrase(p)}"


def rounds_text(suite_dir: Path) -> str:
    """One sentence on how ``run --until-mde`` chose the seeds ("" when it did not run)."""
    try:
        rec = json.loads((Path(suite_dir) / ROUNDS_FILE).read_text())
        rounds = rec["rounds"]
        last = rounds[-1]
        text = (
            f"Seeds: the suite's {len(rec['suite_seeds'])} seed(s) extended to {last['seeds']} by "
            f"`run --until-mde {rec['target_mde']:g} --max-seeds {rec['max_seeds']}` in "
            f"{len(rounds)} round(s), each sized from the spread of the primary comparisons "
            f"only, never from their effects (an internal pilot); last round: {last['reason']}."
        )
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return ""
    return text


def counts_section(df: pd.DataFrame) -> str:
    if df.empty:
        return "## Runs\n\nNo readable `result.json` files were found."
    real = df[~df.get("derived", pd.Series(False, index=df.index)).fillna(False).astype(bool)]
    g = real.groupby(["kind", "control"], dropna=False)
    counts = g.size().rename("trainings").to_frame()
    counts["compute (s)"] = g["seconds"].sum().round(1) if "seconds" in real else float("nan")
    lines = ["| kind | control | trainings | compute (s) |", "|---|---|---|---|"]
    for (kind, control), row in counts.iterrows():
        lines.append(f"| {kind} | {control} | {int(row['trainings'])} | {row['compute (s)']:.1f} |")
    total = float(real["seconds"].sum()) if "seconds" in real else float("nan")
    seeds = ", ".join(str(s) for s in sorted(real["seed"].dropna().unique()))
    return (
        f"## Runs\n\n{len(real)} finished trainings (one per run, seed and level), seeds {seeds}; "
        f"total training compute {total / 60:.1f} min (sum of per-training wall time).\n\n"
        + "\n".join(lines)
    )


def _table_section(
    title: str, table: pd.DataFrame, stem: str, suite_dir: Path, context: dict
) -> str:
    if table.empty:
        return f"## {title}\n\nNothing to compare (see warnings)."
    paths = write_tables(table, suite_dir / TABLES_DIR, stem, context)
    links = ", ".join(f"[{p.suffix[1:]}](tables/{p.name})" for p in paths)
    parts = [f"## {title}", caption_text(table, context), f"Tables: {links}."]
    keys = ["target", "optimizer"] if "optimizer" in table.columns else ["target"]
    for key, group in table.groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        group.attrs = table.attrs
        parts.append(f"### {' / '.join(str(k) for k in key)}\n\n{to_markdown(group)}")
    return "\n\n".join(parts)


def _detectable(rows: pd.DataFrame) -> str:
    """What a non-significant result could have found: "; with n = 3/3 only differences of about
    1.2-2.5 points or more were detectable (80% power)" (from the rows' ``mde``), or that no
    difference accuracy allows was (an infinite MDE: too few seeds for the spread)."""
    if "mde" not in rows.columns or not rows["mde"].notna().any():
        return ""
    mde = rows["mde"].astype(float).dropna()
    ns = sorted({f"{int(a)}/{int(b)}" for a, b in rows[["ticket_n", "baseline_n"]].to_numpy()})
    finite = mde[np.isfinite(mde)]
    power = f"{100 * DEFAULT_POWER:g}% power"
    if finite.empty:
        return (
            f"; with n = {', '.join(ns)} no difference accuracy allows (up to 100 points) was "
            f"detectable at {power}: not estimable with these seeds"
        )
    low, high = f"{100 * finite.min():.1f}", f"{100 * finite.max():.1f}"
    size = low if low == high else f"{low}-{high}"
    blind = ""
    if len(finite) < len(mde):
        blind = f", and none that accuracy allows at {len(mde) - len(finite)} of them"
    return (
        f"; with n = {', '.join(ns)} only differences of about {size} points or more were "
        f"detectable ({power}{blind})"
    )


def _untested(rows: pd.DataFrame) -> str:
    """Why these rows have no test: too few seeds, or seeds that do not vary."""
    n = int(rows[["ticket_n", "baseline_n"]].min(axis=1).min())
    if n < 2:
        ns = sorted({f"{int(a)}/{int(b)}" for a, b in rows[["ticket_n", "baseline_n"]].to_numpy()})
        return f"not tested: with n = {', '.join(ns)} a test needs at least 2 seeds per arm"
    return (
        "not tested: the seeds do not vary (every seed gave the same accuracy, or the same "
        "difference), so the t statistic is undefined"
    )


def dense_finding(results: pd.DataFrame, metric: str) -> str:
    """One sentence with the dense network's accuracy on every target (mean ± SD over seeds)."""
    if results.empty or "control" not in results.columns:
        return ""
    dense = results[(results["kind"] == "transfer") & (results["control"] == "dense")]
    dense = dense[dense[metric].notna()] if metric in dense.columns else dense.iloc[0:0]
    if dense.empty:
        return ""
    multi_opt = dense["optimizer"].nunique(dropna=False) > 1
    parts, ns = [], set()
    for (target, optimizer), g in dense.groupby(["target", "optimizer"], dropna=False, sort=True):
        per_seed = g.groupby("seed")[metric].mean().to_numpy(dtype=float)
        where = f"{target} ({optimizer})" if multi_opt else str(target)
        sd = f" ± {100 * per_seed.std(ddof=1):.2f}" if per_seed.size >= 2 else ""
        parts.append(f"{100 * per_seed.mean():.2f}{sd}% on {where}")
        ns.add(per_seed.size)
    n = "/".join(str(k) for k in sorted(ns))
    what = "mean ± SD over" if max(ns) >= 2 else "one"
    seeds = "seed" if max(ns) == 1 else "seeds"
    listed = joined(parts)
    return (
        f"The dense network (the unpruned reference of every arm, trained on each target) "
        f"reaches {listed} ({what} n = {n} {seeds})."
    )


def intervals_text(cmp: pd.DataFrame, spec: AnalysisSpec) -> str:
    """What the report's intervals are, as far as they exist: BCa bootstrap CIs where an arm has
    at least 3 seeds, none below (or with ``n_resamples: 0``)."""
    if spec.n_resamples <= 0:
        return "no confidence intervals (analysis.n_resamples: 0)"
    if cmp.empty:
        return f"intervals are BCa bootstrap 95% CIs ({spec.n_resamples} resamples) over seeds"
    lows = cmp["paired_ci_low"].where(cmp["paired_ci_low"].notna(), cmp["diff_ci_low"])
    n = int(cmp[["ticket_n", "baseline_n"]].min(axis=1).min())
    if lows.isna().all():
        return (
            f"no confidence intervals: a bootstrap CI needs at least {MIN_BOOTSTRAP_N} seeds per "
            f"arm, and these results have {n}"
        )
    some = (
        f", none where an arm has fewer than {MIN_BOOTSTRAP_N} seeds" if lows.isna().any() else ""
    )
    return f"intervals are BCa bootstrap 95% CIs ({spec.n_resamples} resamples) over seeds{some}"


def single_level(results: pd.DataFrame) -> bool:
    """Whether every transferred arm was trained at one level only (nothing to integrate)."""
    if results.empty or "kind" not in results.columns:
        return False
    arms = results[(results["kind"] == "transfer") & (results["control"] != "dense")]
    return not arms.empty and bool((arms.groupby(["control", "source", "target"])["level"]
                                    .nunique() < 2).all())  # fmt: skip


def _secondary(role: str, text: str = " (secondary, exploratory)") -> str:
    return text if role == "secondary" else ""


def findings(a: Analysis, spec: AnalysisSpec) -> list[str]:
    """Plain-language statements generated from the statistics: the dense network's accuracy,
    then the comparisons (primary ones first); untested cells say why."""
    out: list[str] = []
    dense = dense_finding(a.results, spec.metric)
    if dense:
        out.append(dense)
    p_name = P_NAMES[spec.correction]
    cmp = a.comparison
    if not cmp.empty:
        multi_opt = cmp["optimizer"].nunique(dropna=False) > 1
        # a group (arm, source, target, optimizer) with a primary cell comes first
        keys = ["control", "source", "target", "optimizer"]
        groups = sorted(
            cmp.groupby(keys, dropna=False, sort=True),
            key=lambda kg: not (kg[1]["role"] == "primary").any(),
        )
        for (control, source, target, optimizer), g in groups:
            who = f"Ticket from {source}" if control == "ticket" else f"{control} ({source})"
            where = f"{target} ({optimizer})" if multi_opt else str(target)
            for r in g[g["significant"].fillna(False).astype(bool)].itertuples():
                verb = "beats" if r.diff > 0 else "is worse than"
                ci, (low, high) = "", shown_ci(r)  # the tables' CI: paired where paired
                if math.isfinite(low) and math.isfinite(high):
                    ci = f" (95% CI {_points(low)} to {_points(high)})"
                out.append(
                    f"{who} {verb} {spec.baseline} on {where} at "
                    f"{fmt_percent_remaining(r.percent_remaining)} weights remaining: "
                    f"{_points(r.diff)} points{ci}, {_p(p_name, r.p_adj)}, n = {r.ticket_n}/{r.baseline_n}"
                    f"{_secondary(r.role)}."
                )
            untested = g[g["p_adj"].isna() & g["diff"].notna()]
            if not untested.empty:
                diffs = ", ".join(
                    f"{_points(d)} points at {fmt_percent_remaining(v)}"
                    for d, v in zip(untested["diff"], untested["percent_remaining"], strict=True)
                )
                out.append(
                    f"{who} vs {spec.baseline} on {where}: {diffs} weights remaining; "
                    f"{_untested(untested)}{_secondary(untested['role'].iloc[0])}."
                )
            rest = g[~g["significant"].fillna(False).astype(bool) & g["p_adj"].notna()]
            if not rest.empty:
                mixed = rest["role"].nunique() > 1
                levels = ", ".join(
                    fmt_percent_remaining(v) + (_secondary(role, " [secondary]") if mixed else "")
                    for v, role in zip(rest["percent_remaining"], rest["role"], strict=True)
                )
                out.append(
                    f"{who} does not differ significantly from {spec.baseline} on {where} at "
                    f"{levels} weights remaining ({p_name} >= {spec.alpha:g}){_detectable(rest)}"
                    f"{'' if mixed else _secondary(rest['role'].iloc[0])}."
                )
    for r in a.auc.itertuples() if not a.auc.empty else []:
        if not (r.n_levels >= 2 and math.isfinite(r.diff)):
            continue  # nothing integrated (tables hold no such rows; older frames might)
        who = f"ticket from {r.source}" if r.control == "ticket" else f"{r.control} ({r.source})"
        span = (
            f"Integrated over {r.n_levels} densities ({fmt_percent_remaining(100 * r.density_max)} "
            f"to {fmt_percent_remaining(100 * r.density_min)}), the {who} on {r.target} "
            f"({r.optimizer})"
        )
        if not math.isfinite(r.p_adj):
            out.append(
                f"{span} differs from {spec.baseline} by {_points(r.diff)} points of mean "
                f"accuracy; {_untested(a.auc.loc[[r.Index]])}{_secondary(r.role)}."
            )
            continue
        sig = "significantly " if bool(r.significant) else "not significantly "
        direction = "above" if r.diff > 0 else "below"
        mde = "" if bool(r.significant) else _detectable(a.auc.loc[[r.Index]])
        out.append(
            f"{span} is {sig}{direction} {spec.baseline}: {_points(r.diff)} points of mean "
            f"accuracy, {_p(p_name, r.p_adj)}{mde}{_secondary(r.role)}."
        )
    for r in a.sources_auc.itertuples() if not a.sources_auc.empty else []:
        if not math.isfinite(r.p_adj):
            continue
        better = r.source if r.diff > 0 else r.baseline_source
        worse = r.baseline_source if r.diff > 0 else r.source
        verdict = "transfers better than" if bool(r.significant) else "is not distinguishable from"
        out.append(
            f"On {r.target} ({r.optimizer}), the ticket from {better} {verdict} the ticket from "
            f"{worse} over all densities: {_points(abs(r.diff))} points, {_p(p_name, r.p_adj)}"
            f"{_secondary(r.role)}."
        )
    return out


def figure_data(a: Analysis, suite_dir: Path) -> dict[str, Any]:
    """What every figure of a suite is drawn from: the analysed results (diverged trainings
    counted as ``analysis.diverged`` says) and the report's comparison table (its test, baseline
    and correction give the transfer matrix its reference and stars)."""
    return {"results": a.results, "comparison": a.comparison, "suite_dir": suite_dir}


def figure_options(kind: str, spec: AnalysisSpec) -> dict[str, Any]:
    """The suite's analysis settings as a figure's options: the metric of the kinds that plot
    one, and the suite's baseline as the transfer matrix's reference (so ``plot`` and the report
    draw the same figure)."""
    options: dict[str, Any] = {}
    if kind in ("sparsity_curve", "transfer_matrix", "optimizer_transfer"):
        options["metric"] = spec.metric
    if kind == "transfer_matrix":
        options["reference"] = spec.baseline
    return options


def figures_section(
    a: Analysis, suite_dir: Path, spec: AnalysisSpec
) -> tuple[list[str], list[Path]]:
    """Draw the suite's figures; one Markdown block per figure (in ``spec.plots`` order) and PNGs."""
    from transfer_bench.analysis.plots import plot  # lazy: matplotlib, only when drawing

    data = figure_data(a, suite_dir)
    parts: list[str] = []
    pngs: list[Path] = []
    tickets_exist = any(suite_dir.glob("*/seed_*/level_*/ticket.ticket"))
    for kind in spec.plots:
        if kind in ("optimizer_transfer",) and (
            a.results.empty or a.results["optimizer"].nunique() < 2
        ):
            continue
        if kind == "transfer_matrix" and (a.results.empty or a.results["source"].nunique() < 2):
            continue
        if kind in ("mask_overlap", "layer_density") and not tickets_exist:
            # ticket files are not kept in a clone of committed results: keep the figure drawn
            # when they were there instead of dropping it
            old = sorted((suite_dir / "figures").glob(f"{kind}.*"))
            png = next((f for f in old if f.suffix == ".png"), None)
            if png is not None:
                pngs.append(png)
                others = ", ".join(f"[{f.suffix[1:]}](figures/{f.name})" for f in old if f != png)
                parts.append(
                    f"### {kind}\n\n![{kind}](figures/{png.name})\n\n{others} (drawn from the "
                    "ticket files when they were present; not redrawn here)"
                )
            continue
        if kind == "stability" and (a.results.empty or "stability" not in set(a.results["kind"])):
            continue
        options = figure_options(kind, spec)
        try:
            paths = plot(kind, data, suite_dir / "figures" / kind, width=spec.width, **options)
        except ConfigError as e:
            warnings.warn(f"figure {kind}: {e}", stacklevel=2)
            continue
        png = next(p for p in paths if p.suffix == ".png")
        pngs.append(png)
        others = ", ".join(
            f"[{p.suffix[1:]}](figures/{p.name})" for p in paths if p.suffix != ".png"
        )
        parts.append(f"### {kind}\n\n![{kind}](figures/{png.name})\n\n{others}")
    return parts, pngs


def _cell(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def diverged_section(bad: pd.DataFrame, policy: str) -> str:
    """Every training whose loss became non-finite, with the step, and how the analysis treated it."""
    if bad.empty:
        return ""
    cols = [
        c
        for c in (
            "kind",
            "source",
            "target",
            "optimizer",
            "control",
            "level",
            "seed",
            "diverged_at",
        )
        if c in bad.columns
    ]
    rows = bad[cols].sort_values([c for c in cols if c != "diverged_at"])
    head = ["diverged at step" if c == "diverged_at" else c for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows.itertuples(index=False)]
    table = "\n".join(lines)
    return (
        f"## Diverged trainings\n\n{len(bad)} training(s) produced a non-finite loss and stopped; "
        f"the analysis counts them as {DIVERGED_WORDS[policy]} (`analysis.diverged: {policy}`; "
        "alternatives: chance, exclude, keep).\n\n" + table
    )


# ---------------------------------------------------------------------------------------- html


def markdown_to_html(text: str, suite_dir: Path, title: str) -> str:
    """A self-contained HTML page: the report rendered, every PNG embedded as a data URI."""
    import markdown

    body = markdown.markdown(text, extensions=["tables", "fenced_code"])

    def embed(m: re.Match[str]) -> str:
        path = suite_dir / m.group(2)
        if not path.exists():
            return m.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f'{m.group(1)}"data:image/png;base64,{data}"'

    body = re.sub(r'(<img[^>]*src=)"([^"]+\.png)"', embed, body)
    style = (
        "body{font-family:Georgia,serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
        "th,td{border-bottom:1px solid #ccc;padding:3px 8px;text-align:right}"
        "th:first-child,td:first-child{text-align:left}img{max-width:100%}"
        "pre{background:#f6f6f6;padding:1em;overflow-x:auto}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body>{body}</body></html>\n"
    )


# ---------------------------------------------------------------------------------------- main


def write_report(
    suite_dir: Path,
    *,
    suite_name: str,
    analysis: dict[str, Any] | AnalysisSpec | None = None,
    config_summary: str = "",
    claim: ClaimSpec | None = None,
) -> Path:
    """Analyse the results below ``suite_dir`` and write the report files; returns report.md's path.

    With a ``claim`` its verdicts are written to ``claim.json`` and shown in the report."""
    suite_dir = Path(suite_dir)
    spec = parse_analysis(analysis)
    # one writer at a time per folder; it removes what a killed writer left behind
    with suite_folder_lock(suite_dir):
        return _write_report(suite_dir, suite_name, spec, config_summary, claim)


def ticket_facts_frame(suite_dir: Path) -> pd.DataFrame:
    """One row per ``ticket.json`` (the committable summary written next to every ticket file),
    with ``kind = "ticket"`` and ``collapsed_layers`` (layers with no weight left)."""
    rows = []
    found = sorted(Path(suite_dir).glob("*/seed_*/level_*/ticket.json"))
    for path in in_plan(found, Path(suite_dir), "ticket summaries"):
        try:
            facts = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            warnings.warn(f"{path}: skipped unreadable ticket summary ({e})", stacklevel=2)
            continue
        layers = facts.get("layer_density") or {}
        rows.append(
            {
                **facts,
                "kind": "ticket",
                "collapsed_layers": sum(1 for v in layers.values() if v == 0),
            }
        )
    return pd.DataFrame(rows)


def claim_frames(a: Analysis, suite_dir: Path) -> dict[str, pd.DataFrame]:
    """What claim checks select from: result rows (own_ticket rows derived) and ticket rows."""
    return {"results": with_own_ticket_rows(a.results), "tickets": ticket_facts_frame(suite_dir)}


def _write_report(
    suite_dir: Path,
    suite_name: str,
    spec: AnalysisSpec,
    config_summary: str,
    claim: ClaimSpec | None,
) -> Path:
    context = {"title": f"{suite_name}: each arm vs {spec.baseline}"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = analyse(suite_dir, spec, has_claim=claim is not None)
        cmp_section = _table_section(
            f"Each arm vs {spec.baseline}", a.comparison, "comparison", suite_dir, context
        )
        one_level = single_level(a.results)
        if a.auc.empty and one_level:  # no table: drop one an earlier report left
            for suffix in ("csv", "md", "tex"):
                (suite_dir / TABLES_DIR / f"auc.{suffix}").unlink(missing_ok=True)
        auc_section = (
            ""
            if a.auc.empty and one_level
            else _table_section(
                "Sparsity-integrated comparison (mean accuracy over log density)",
                a.auc,
                "auc",
                suite_dir,
                {"title": f"{suite_name}: area under accuracy vs log density"},
            )
        )
        src_section = (
            _table_section(
                "Source vs source (integrated over density)",
                a.sources_auc,
                "sources",
                suite_dir,
                {"title": f"{suite_name}: sources compared"},
            )
            if not a.sources_auc.empty
            else ""
        )
        figures, _ = figures_section(a, suite_dir, spec)
        data_text = data_section(suite_dir)
        claim_text, record = "", None
        if claim is not None:
            record = evaluate_claim(claim_frames(a, suite_dir), claim)
            write_claim(suite_dir, record)
            claim_text = claim_section(record)
    messages = list(dict.fromkeys(str(w.message) for w in caught))
    fallback = {"paired_t": " (Welch's t-test where the arms' seeds differ)"}
    fallback["wilcoxon"] = " (Mann-Whitney U where the arms' seeds differ)"
    head = (
        f"Primary test: {TEST_NAMES[spec.test]}{fallback.get(spec.test, '')}, "
        f"{CORRECTION_NAMES[spec.correction]} correction, alpha = {spec.alpha:g}; "
        f"{intervals_text(a.comparison, spec)}; accuracies in percent, differences in points; "
        f"detectable differences at {100 * DEFAULT_POWER:g}% power (the tables' MDE column)."
    )
    if one_level:
        head += (
            " One transfer level: there is no sparsity-integrated comparison (it needs at least "
            "2 levels)."
        )
    checks = len(claim.checks) if claim is not None else None
    design = [
        rounds_text(suite_dir),
        primaries_text(spec, a.comparison, checks),
        pairing_text(a.comparison),
        noise_text(a.comparison),
    ]
    head = " ".join([head, *(d for d in design if d)])
    find = findings(a, spec)
    # the answers first (summary and headline table), then a paper's results section: the main
    # figure and the findings, the tables and figures, and how they were made last
    main_figure = figures[0].split("\n", 1)[1].strip() if figures else ""
    sections = [
        f"# Report: {suite_name}",
        summary_section(a.comparison, spec, record),
        "## Findings\n\n"
        + (f"{main_figure}\n\n" if main_figure else "")
        + ("\n".join(f"- {f}" for f in find) or "No comparisons could be made.")
        + f"\n\n{head} {machine_line(a.results)}",
        claim_text,
        cmp_section,
        auc_section,
        src_section,
        "## Figures\n\n" + "\n\n".join(figures[1:]) if len(figures) > 1 else "",
        diverged_section(a.diverged, spec.diverged),
        data_text,
        head_section(a.results),
        counts_section(a.results),
        machine_section(a.results),
        f"## Configuration\n\n```yaml\n{config_summary.strip()}\n```"
        if config_summary.strip()
        else "",
        "## Warnings\n\n" + ("\n".join(f"- {m}" for m in messages) or "None."),
    ]
    text = "\n\n".join(s for s in sections if s) + "\n"
    path = atomic_write_text(suite_dir / REPORT_NAME, text)
    atomic_write_text(
        suite_dir / HTML_NAME, markdown_to_html(text, suite_dir, f"Report: {suite_name}")
    )
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return path

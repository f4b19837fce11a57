"""Expand a suite into runs with content-hashed folders.

A run's id hashes only what it computes (sorted canonical JSON of its config with defaults dropped,
sha256), never the seed (a subfolder) or the number of IMP levels, so a search can be extended with
more levels and unrelated suite edits leave finished runs valid (OpenLTH's lesson, with sha256 and a
machine-readable ``config.json`` written next to the results).

The seeding rule (``seeding.SEEDING_VERSION``) is part of what a run computes, so it enters every
run id: runs made under an earlier rule live in other folders and are never resumed or mixed in.
Rule 1 (before the rule had a number) is the absence of the field, so ``plan(suite, seeding=1)``
gives the ids of folders made then, which ``report`` uses to re-analyse them.

A ticket of the suite's ``tickets:`` (found elsewhere, :mod:`.external`) is planned like a searched
source, without a search to depend on: its transfer runs hash the digest of each of its files, so
a changed file is a new run, never mixed with the old results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from transfer_bench.config import Suite
from transfer_bench.errors import ConfigError
from transfer_bench.head_policy import head_action
from transfer_bench.runs.external import ExternalSource, resolve
from transfer_bench.seeding import SEEDING_VERSION

#: The run ids a suite plans now, written by ``run``; analysis leaves out folders of older plans.
PLAN_FILE = "plan.json"

SCHEMA_VERSION = 1


def canonical_hash(obj: Any, length: int = 10) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Run:
    """One unit of work: a source search or a transfer (ticket x target x optimizer x control)."""

    kind: Literal["search", "transfer", "stability"]
    run_id: str
    seed: int
    config: dict[str, Any]
    levels: tuple[int, ...]
    depends_on: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.run_id}/seed_{self.seed}"

    def folder(self, suite_dir: Path) -> Path:
        return suite_dir / self.run_id / f"seed_{self.seed}"

    def label(self) -> str:
        c = self.config
        if self.kind == "search":
            return f"search {c['dataset']['name']}"
        if self.kind == "stability":
            return f"stability {c['dataset']['name']}"
        src = c.get("source") or "-"
        return f"{c['control']} {src}->{c['target']['name']} ({c['optimizer']['key']})"


def _dump(model: Any) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_defaults=True)


def _check_seeding(seeding: int) -> int:
    if not (isinstance(seeding, int) and 1 <= seeding <= SEEDING_VERSION):
        raise ValueError(
            f"seeding rule {seeding!r} is not one of 1..{SEEDING_VERSION}; pass a known rule"
        )
    return seeding


def _versioned(fields: dict[str, Any], seeding: int) -> dict[str, Any]:
    """``fields`` with the seeding rule; rule 1 adds nothing (its runs were hashed without it)."""
    return fields if _check_seeding(seeding) == 1 else {**fields, "seeding": seeding}


def _common(suite: Suite, seeding: int) -> dict[str, Any]:
    common = {
        "schema": SCHEMA_VERSION,
        "model": _dump(suite.model),
        "input": _dump(suite.input),
        "data_seed": suite.data_seed,
    }
    return _versioned(common, seeding)


def _optimizer(suite: Suite, key: str) -> dict[str, Any]:
    return {"key": key, **suite.optimizers[key].model_dump(mode="json")}


def _train(suite: Suite) -> dict[str, Any]:
    t = _dump(suite.train)
    t.pop("optimizer", None)
    return t


def search_config(suite: Suite, source: str, *, seeding: int = SEEDING_VERSION) -> dict[str, Any]:
    spec = suite.search_for(source)
    search = _dump(spec)
    for k in ("levels", "sources", "per_source", "optimizer"):
        search.pop(k, None)
    search["method"] = spec.method
    return {
        "kind": "search",
        **_common(suite, seeding),
        "dataset": {"name": source, **_dump(suite.datasets[source])},
        "train": _train(suite),
        "optimizer": _optimizer(suite, suite.search_optimizer(source)),
        "search": search,
    }


def _head_fields(
    suite: Suite, source: str, target: str, external: ExternalSource | None = None
) -> dict[str, Any]:
    """``{"head_action": "reinit"}`` where ``head: auto`` re-initializes (other labels), else {}.

    Why only there: for a target with the source's labels ``auto`` does what it did before
    version 0.2 (keep the fitting head), so those run ids stay valid; where it now re-initializes
    a head it used to keep (equal class counts, other labels) the id must change. An external
    ticket's labels are the ones it records or its named dataset's (unknown: re-initialized).
    """
    assert suite.transfer is not None
    policy = suite.transfer.head
    if policy != "auto":
        return {}
    if external is not None:
        action = external.head_action(policy, suite.datasets[target])
    else:
        action = head_action(policy, suite.datasets[source], suite.datasets[target])
    return {"head_action": action} if action == "reinit" else {}


def _own_levels(
    suite: Suite, target: str, levels: tuple[int, ...], external: Mapping[str, ExternalSource]
) -> tuple[int, ...]:
    """The levels ``own_ticket`` trains on ``target``: those of every transferred source (an
    external ticket's own levels included), less those its ``ticket`` arm already gives when the
    target is itself a transfer source. Every one must be a level of the target's search."""
    searched = [s for s in suite.transfer_sources if s not in external]
    wanted = set(levels if searched else ())
    for name in suite.transfer_sources:
        if name in external:
            wanted |= set(external[name].levels)
    if target in suite.transfer_sources:
        wanted -= set(levels)
    n = suite.search.num_levels if suite.search is not None else -1
    for name in suite.transfer_sources:
        bad = [lv for lv in external[name].levels if lv > n] if name in external else []
        if bad:
            raise ConfigError(
                f"transfer.controls: own_ticket pairs tickets.{name}'s level {bad[0]} with "
                f"{target}'s own ticket at level {bad[0]}, but the search has levels 0..{n}; "
                "search more levels or drop own_ticket"
            )
    return tuple(sorted(wanted))


def _check_primary_levels(suite: Suite, external: Mapping[str, ExternalSource]) -> None:
    """``analysis.primary`` levels, where the suite could not check them (a ticket whose files
    record their levels): each must be a level some transfer trains."""
    levels = set(suite.transfer_levels)
    for source in external.values():
        levels |= set(source.levels)
    for i, entry in enumerate(suite.analysis.primary):
        if entry.level is not None and entry.level not in levels:
            raise ConfigError(
                f"analysis.primary[{i}].level: {entry.level} is not a transferred level of this "
                f"suite; use one of {', '.join(map(str, sorted(levels))) or 'none'}"
            )


def plan(
    suite: Suite,
    *,
    seeding: int = SEEDING_VERSION,
    tickets: Mapping[str, ExternalSource] | None = None,
) -> list[Run]:
    """All runs of ``suite`` in dependency order (searches first), with the run ids of seeding rule
    ``seeding`` (the current one unless re-analysing older results). ``tickets``: the suite's
    external tickets already resolved (default: resolved here, which reads their files)."""
    runs: list[Run] = []
    search_ids: dict[str, str] = {}
    external = dict(tickets) if tickets is not None else resolve(suite) if suite.tickets else {}
    if external:
        _check_primary_levels(suite, external)
    searched = suite.searched_sources
    all_levels = tuple(range(suite.search.num_levels + 1)) if suite.search is not None else ()
    for source in searched:
        cfg = search_config(suite, source, seeding=seeding)
        rid = f"search-{canonical_hash(cfg)}"
        search_ids[source] = rid
        runs += [Run("search", rid, s, cfg, all_levels) for s in suite.seeds]
    if suite.stability is not None:
        st = suite.stability
        for source in suite.search.sources:
            cfg = {
                **search_config(suite, source, seeding=seeding),
                "kind": "stability",
                "source_run": search_ids[source],
                "stability": {"rewind_points": list(st.rewind_points), "points": st.points},
            }
            rid = f"stability-{canonical_hash(cfg)}"
            runs += [
                Run("stability", rid, s, cfg, tuple(st.levels), (f"{search_ids[source]}/seed_{s}",))
                for s in suite.seeds
            ]
    if suite.transfer is None:
        return runs
    levels = suite.transfer_levels
    for target in suite.transfer.targets:
        tgt = {"name": target, **_dump(suite.datasets[target])}
        for opt in suite.transfer_optimizers:
            base = {
                "kind": "transfer",
                **_common(suite, seeding),
                "target": tgt,
                "train": _train(suite),
                "optimizer": _optimizer(suite, opt),
            }
            for control in ("ticket", *suite.transfer.controls):
                if control == "dense":
                    cfg = {**base, "control": "dense"}
                    rid = f"transfer-{canonical_hash(cfg)}"
                    runs += [Run("transfer", rid, s, cfg, (0,)) for s in suite.seeds]
                    continue
                sources = suite.transfer_sources
                at = {}
                if control == "own_ticket":
                    # the target's own ticket; when the target is itself a transfer source, its
                    # "ticket" arm already is that computation (analysis derives the rows), except
                    # at an external ticket's levels that the ticket arm does not train
                    own = _own_levels(suite, target, levels, external)
                    sources, at = ((target,), {target: own}) if own else ((), {})
                for source in sources:
                    if source in external:
                        ext = external[source]
                        cfg = {
                            **base,
                            "control": control,
                            "source": source,
                            "ticket": ext.config(suite),
                            "head": suite.transfer.head,
                            **_head_fields(suite, source, target, ext),
                        }
                        rid = f"transfer-{canonical_hash(cfg)}"
                        runs += [Run("transfer", rid, s, cfg, ext.levels) for s in suite.seeds]
                        continue
                    cfg = {
                        **base,
                        "control": control,
                        "source": source,
                        "source_run": search_ids[source],
                        "head": suite.transfer.head,
                        **_head_fields(suite, source, target),
                    }
                    rid = f"transfer-{canonical_hash(cfg)}"
                    run_levels = at.get(source, levels)
                    runs += [
                        Run(
                            "transfer", rid, s, cfg, run_levels, (f"{search_ids[source]}/seed_{s}",)
                        )
                        for s in suite.seeds
                    ]
    return runs


def suite_hash(suite: Suite, *, seeding: int = SEEDING_VERSION) -> str:
    """Hash of what the suite computes under seeding rule ``seeding`` (``track:`` only says where
    metrics are logged)."""
    dumped = suite.model_dump(mode="json", exclude_defaults=True, exclude={"track"})
    return canonical_hash(_versioned(dumped, seeding), 16)


def seeding_of(
    suite_dir: Path, suite: Suite, *, tickets: Mapping[str, ExternalSource] | None = None
) -> int:
    """The seeding rule ``suite``'s results in ``suite_dir`` were made under: the newest rule with
    a run folder there (the current rule for a folder without runs). Why: ``report`` re-plans the
    suite, and a folder made under an earlier rule must keep its own runs, not lose them all."""
    for seeding in range(SEEDING_VERSION, 0, -1):
        runs = plan(suite, seeding=seeding, tickets=tickets)
        if any((Path(suite_dir) / r.run_id).is_dir() for r in runs):
            return seeding
    return SEEDING_VERSION

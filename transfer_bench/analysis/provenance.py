"""Report sections on where the data came from, what happened to transferred heads, and the machine.

Both read what the runs recorded themselves (``config.json``'s ``data`` block, the ``head_policy``
and ``head`` fields of transfer results), so a report rebuilt from a results folder alone says which
copy of a dataset was trained on (hub, local mirror and how it differs, bundled file), which
classes and how many images of each split, whether each transferred ticket kept its source's
output layer, and which machine and torch build trained the runs. Tickets found elsewhere (a
suite's ``tickets:``) are listed after the data, from the ``ticket_files`` their transfer runs
recorded: file, format, digest and what the file itself says of its source.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from transfer_bench.analysis.frame import in_plan
from transfer_bench.head_policy import POLICY_TEXT
from transfer_bench.machine import describe, differences


def dataset_infos(suite_dir: Path) -> dict[str, dict[str, Any]]:
    """Dataset name -> the ``data`` block of the first run config that trained on it."""
    suite_dir = Path(suite_dir)
    out: dict[str, dict[str, Any]] = {}
    found = sorted(suite_dir.glob("*/seed_*/config.json"))
    for path in in_plan(found, suite_dir, "run configs"):
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            warnings.warn(f"{path}: skipped unreadable run config ({e})", stacklevel=2)
            continue
        block = cfg.get("dataset") or cfg.get("target") or {}
        name, info = block.get("name"), cfg.get("data")
        if isinstance(name, str) and isinstance(info, dict) and name not in out:
            out[name] = info
    return out


def external_tickets(suite_dir: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """(ticket name, level) -> what a transfer run recorded of that external ticket."""
    suite_dir = Path(suite_dir)
    out: dict[tuple[str, int], dict[str, Any]] = {}
    found = sorted(suite_dir.glob("transfer-*/seed_*/config.json"))
    for path in in_plan(found, suite_dir, "run configs"):
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # dataset_infos warns about it
        for f in cfg.get("ticket_files") or []:
            if isinstance(f, dict) and isinstance(f.get("level"), int):
                out.setdefault((str(cfg.get("source")), f["level"]), f)
    return out


def _recorded(f: dict[str, Any]) -> str:
    r = f.get("recorded") or {}
    named = [str(r["dataset"])] if r.get("dataset") else []
    named += [f"`{r['source']}`"] if r.get("source") else []
    named += [f"rows {str(r['rows'])[:12]}"] if r.get("rows") else []
    where = ", ".join(named) or "not recorded"
    found = f"level {r.get('level')}, seed {r.get('seed')}" if r.get("seed", -1) != -1 else ""
    suite = f"suite {r['suite']}" if r.get("suite") else ""
    creator = r.get("created_by") or {}
    made = (
        f"transfer-bench {creator.get('transfer_bench')}, torch {creator.get('torch')}"
        if creator
        else "?"
    )
    how = ", ".join(x for x in (str(r.get("method") or "?"), found, suite) if x)
    return f"{where} | {how} | {made}"


def tickets_section(suite_dir: Path) -> str:
    """``## Tickets from elsewhere``: every external ticket a transfer used, one row per level."""
    found = external_tickets(suite_dir)
    if not found:
        return ""
    lines = [
        "| ticket | level | density | file | format | sha256 | found on | how | created by |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (name, level), f in sorted(found.items()):
        density = f.get("density")
        shown = f"{100 * density:.2f}%" if isinstance(density, float | int) else "?"
        lines.append(
            f"| {name} | {level} | {shown} | `{f.get('file')}` | {f.get('format')} | "
            f"`{f.get('sha256')}` | {_recorded(f)} |"
        )
    return (
        "## Tickets from elsewhere\n\n"
        "These tickets were not searched by this suite; each was read from its file, checked "
        "against its digest (which is part of the run ids: a changed file is a new run) and "
        'transferred next to controls derived from its mask and init. "found on", "how" and '
        '"created by" are what the file records (OpenLTH and torch-prune files record no '
        "source).\n\n" + "\n".join(lines)
    )


def _loaded_from(info: dict[str, Any]) -> str:
    origin = info.get("origin") or {}
    where = origin.get("loaded_from")
    if where == "hub":
        return f"Hugging Face hub ({origin.get('hub_id')})"
    if where:
        return f"local copy `{where}` standing in for the hub's `{origin.get('hub_id')}`"
    if origin.get("path"):
        return f"file `{origin['path']}`"
    if origin.get("loader"):
        return f"bundled data (`{origin['loader']}`)"
    if origin.get("generator"):
        return "synthetic (generated, seeded)"
    return f"`{origin.get('hub_id', info.get('source', '?'))}`"


def _classes(info: dict[str, Any]) -> str:
    names = info.get("class_names") or info.get("classes") or []
    shown = ", ".join(map(str, names[:10])) + (", ..." if len(names) > 10 else "")
    return f"{info.get('num_classes', len(names))}: {shown}"


def data_section(suite_dir: Path) -> str:
    """``## Data``: one row per dataset (source, copy, classes, sizes, rows hash) and mirror notes."""
    infos = dataset_infos(suite_dir)
    if not infos:
        return ""
    lines = [
        "| dataset | source | loaded from | classes | train / test images | rows sha256 |",
        "|---|---|---|---|---|---|",
    ]
    notes = []
    for name, info in sorted(infos.items()):
        sizes = info.get("sizes") or {}
        rows = info.get("rows") or {}
        digest = (
            " / ".join(str((rows.get(s) or {}).get("sha256", "?"))[:12] for s in ("train", "test"))
            if rows
            else "not recorded (runs predate row hashes)"
        )
        lines.append(
            f"| {name} | `{info.get('source')}` | {_loaded_from(info)} | {_classes(info)} | "
            f"{sizes.get('train', '?')} / {sizes.get('test', '?')} | {digest} |"
        )
        note = (info.get("origin") or {}).get("mirror_note")
        if note:
            notes.append(f"- **{name}**, the local copy's description: {note}")
    text = "## Data\n\n" + "\n".join(lines)
    text += (
        "\n\nRow hashes identify exactly which images of the source's splits were used "
        "(`config.json` and every ticket record them in full)."
    )
    if notes:
        text += (
            "\n\nSome datasets were loaded from a local copy instead of the hub: results are "
            "comparable with hub-trained ones statistically, not bit for bit.\n\n"
            + "\n".join(notes)
        )
    external = tickets_section(suite_dir)
    return text + (f"\n\n{external}" if external else "")


def head_section(df: pd.DataFrame) -> str:
    """``## Output layer``: the head policy and, per source -> target, whether heads were kept."""
    if df.empty or "head" not in df.columns or "kind" not in df.columns:
        return ""
    rows = df[(df["kind"] == "transfer") & df["head"].notna()]
    if rows.empty:
        return ""
    policies = sorted(set(rows["head_policy"].dropna().astype(str)))
    said = "; ".join(f"`{p}`: {POLICY_TEXT.get(p, p)}" for p in policies)
    pairs = rows.groupby(["source", "target"], sort=True)["head"].agg(
        lambda s: ", ".join(sorted(set(s)))
    )
    lines = [f"- {src} -> {tgt}: {what}" for (src, tgt), what in pairs.items()]
    older = df[(df["kind"] == "transfer") & df["head"].isna() & (df["control"] != "dense")]
    tail = (
        f"\n\n{len(older)} transfer result(s) do not record their head (written before version "
        "0.2, when `auto` kept any head whose class count matched)."
        if not older.empty
        else ""
    )
    return (
        f"## Output layer of transferred tickets\n\nHead policy (`transfer.head`) {said}. "
        "A re-initialized head is drawn from a seeded generator and pruned at random to the "
        "ticket's head density.\n\n" + "\n".join(lines) + tail
    )


def machines(df: pd.DataFrame) -> list[tuple[dict[str, Any], int]]:
    """Distinct machine fingerprints of the trainings in ``df`` with how many trainings each ran,
    most frequent first; trainings that predate fingerprints are left out."""
    if df.empty or "machine" not in df.columns:
        return []
    counts: dict[str, int] = {}
    for record in df["machine"]:
        if isinstance(record, dict):
            key = json.dumps(record, sort_keys=True)
            counts[key] = counts.get(key, 0) + 1
    return [(json.loads(k), n) for k, n in sorted(counts.items(), key=lambda kv: -kv[1])]


def machine_line(df: pd.DataFrame) -> str:
    """One sentence for a report's summary: where the trainings ran, and whether builds differed."""
    found = machines(df)
    if not found:
        return "Machine: not recorded (these runs predate machine fingerprints)."
    if len(found) == 1:
        return f"Machine: {describe(found[0][0])}."
    varying = differences(r for r, _ in found)
    text = f"Machines: {len(found)} set-ups ({', '.join(str(n) for _, n in found)} trainings)"
    if varying:
        text += f", differing in {', '.join(varying)}: float results are not comparable bit for bit"
    return text + "; see Machine below."


def machine_section(df: pd.DataFrame) -> str:
    """``## Machine``: every fingerprint the trainings recorded, with counts."""
    found = machines(df)
    if not found:
        return ""
    missing = int(df["machine"].map(lambda r: not isinstance(r, dict)).sum())
    lines = [
        "| trainings | CPU | cores | torch threads | device | torch | build | BLAS | Python | "
        "transfer-bench |"
    ]
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for r, n in found:
        lines.append(
            f"| {n} | {r.get('cpu')} | {r.get('cores')} | {r.get('threads')} | {r.get('device')} | "
            f"{r.get('torch')} | {r.get('build')} | {r.get('blas')} | {r.get('python')} | "
            f"{r.get('transfer_bench') or 'not recorded'} |"
        )
    tail = f"\n\n{missing} training(s) recorded no machine (older runs)." if missing else ""
    return "## Machine\n\n" + "\n".join(lines) + tail

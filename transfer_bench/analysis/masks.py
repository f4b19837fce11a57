"""Similarity of ticket masks: Jaccard index and normalized Hamming distance, per layer and pooled.

Do tickets found on different sources (or seeds) keep the same weights? Two measures of a pair of
masks ``a``, ``b`` (True = kept):

- Jaccard index ``|a AND b| / |a OR b|`` (1 = same kept set; two empty masks count as identical);
- normalized Hamming distance ``1 - (fraction of equal mask bits)`` (You et al. 2020, "Drawing
  early-bird tickets"; 0 = identical masks).

"Overall" values pool the counts over all layers (a large layer weighs more), they are not a mean of
per-layer values. Two independent random masks of densities ``p``, ``q`` have expected Jaccard
``pq / (p + q - pq)`` and Hamming ``p + q - 2pq`` (``expected_random``), the chance level against
which an overlap is interesting.

``collect_tickets`` lists the ``.ticket`` files of a suite from their headers (cheap, no tensors);
``overlap_matrix`` and ``pair_table`` load and compare them.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from transfer_bench.analysis.frame import in_plan
from transfer_bench.errors import ConfigError, TicketError
from transfer_bench.pruning.overlap import METRIC_LABELS as METRIC_LABELS  # figure labels
from transfer_bench.pruning.overlap import (
    ZERO,
    Masks,
    check_metric,
    counts,
)
from transfer_bench.tickets import MAX_HEADER_BYTES, TICKET_SUFFIX, load_ticket

OVERALL = (
    "all layers"  # layer value of pooled rows in ``pair_table`` (parameter names have no spaces)
)
TICKET_COLUMNS: tuple[str, ...] = (
    "path",
    "run_id",
    "source",
    "seed",
    "level",
    "density",
    "layer_density",
)
PAIR_COLUMNS: tuple[str, ...] = ("a", "b", "layer", "value", "expected_random", "bits")


# -------------------------------------------------------------------------------------- tickets


def read_ticket_meta(path: Path) -> dict[str, Any]:
    """The ``meta`` object of a ticket file from its header only (no tensors read or verified)."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < n <= MAX_HEADER_BYTES:
                raise TicketError(f"{path}: not a safetensors ticket (bad header length)")
            header = json.loads(f.read(n).decode("utf-8"))
        meta = json.loads(header["__metadata__"]["meta"])
    except OSError as e:
        raise TicketError(f"{path}: cannot be read ({e.strerror})") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise TicketError(f"{path}: header has no readable ticket metadata") from None
    if not isinstance(meta, dict):
        raise TicketError(f"{path}: ticket metadata is not a JSON object")
    return meta


def _source_from_config(seed_dir: Path) -> str | None:
    cfg_path = seed_dir / "config.json"
    if not cfg_path.is_file():
        return None
    try:
        name = json.loads(cfg_path.read_text()).get("dataset", {}).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return str(name) if name is not None else None


def _source_from_meta(meta: Mapping[str, Any]) -> str | None:
    src = meta.get("source")
    if isinstance(src, Mapping):
        name = src.get("dataset", src.get("name"))
        return None if name is None else str(name)
    return None if src is None else str(src)


def _int_from_folder(folder: str, prefix: str) -> int | None:
    if folder.startswith(prefix) and folder[len(prefix) :].isdigit():
        return int(folder[len(prefix) :])
    return None


def ticket_record(path: Path) -> dict[str, Any]:
    """One ``collect_tickets`` row for a ticket file (raises TicketError if unreadable)."""
    path = Path(path)
    meta = read_ticket_meta(path)
    level_dir, seed_dir = path.parent, path.parent.parent
    seed = meta.get("seed", _int_from_folder(seed_dir.name, "seed_"))
    level = meta.get("level", _int_from_folder(level_dir.name, "level_"))
    run_id = meta.get("run_id")
    if run_id is None and _int_from_folder(seed_dir.name, "seed_") is not None:
        run_id = seed_dir.parent.name
    source = _source_from_config(seed_dir) or _source_from_meta(meta)
    layer_density = meta.get("layer_density")
    return {
        "path": path,
        "run_id": run_id,
        "source": source,
        "seed": seed,
        "level": level,
        "density": meta.get("density"),
        "layer_density": dict(layer_density) if isinstance(layer_density, Mapping) else {},
    }


def collect_tickets(suite_dir: Path) -> pd.DataFrame:
    """One row per ``.ticket`` file below ``suite_dir``, from the file headers (sorted by path).

    Columns ``TICKET_COLUMNS``: absolute ``path``, ``run_id``, ``source`` (the search run's
    ``config.json`` dataset name, else the ticket's ``meta["source"]["dataset"]``), ``seed``,
    ``level``, ``density`` and ``layer_density`` (dict). Unreadable files are skipped with a warning.
    """
    suite_dir = Path(suite_dir)
    rows = []
    if suite_dir.is_dir():
        found = sorted(suite_dir.rglob(f"*{TICKET_SUFFIX}"))
        for path in in_plan(found, suite_dir, "tickets"):
            if not path.is_file():
                continue
            try:
                rows.append(ticket_record(path.resolve()))
            except TicketError as e:
                warnings.warn(f"collect_tickets: skipped {e}", stacklevel=2)
    df = pd.DataFrame(rows, columns=list(TICKET_COLUMNS))
    if df.empty:
        return df
    missing = df[["source", "seed", "level", "density"]].isna().any(axis=1)
    if missing.any():
        warnings.warn(
            f"collect_tickets: {int(missing.sum())} ticket(s) without source/seed/level/density "
            "metadata skipped",
            stacklevel=2,
        )
        df = df[~missing]
    df = df.astype({"seed": "int64", "level": "int64", "density": "float64"})
    return df.reset_index(drop=True)


def ticket_labels(tickets: pd.DataFrame) -> list[str]:
    """Display labels "source/seed" (plus "/L<level>" when levels differ; made unique)."""
    multi_level = tickets["level"].nunique() > 1
    labels: list[str] = []
    for row in tickets.itertuples():
        label = f"{row.source}/{row.seed}" + (f"/L{row.level}" if multi_level else "")
        base, k = label, 2
        while label in labels:
            label, k = f"{base}#{k}", k + 1
        labels.append(label)
    return labels


def load_masks(tickets: pd.DataFrame) -> dict[str, dict[str, torch.Tensor]]:
    """Masks of each ticket row keyed by ``ticket_labels``; unloadable tickets warn and are skipped."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for label, path in zip(ticket_labels(tickets), tickets["path"], strict=True):
        try:
            out[label] = dict(load_ticket(path).masks)
        except TicketError as e:
            warnings.warn(f"mask overlap: skipped ticket {label}: {e}", stacklevel=2)
    return out


# --------------------------------------------------------------------------------------- tables


def _as_masks(
    tickets: pd.DataFrame | Mapping[str, Masks],
) -> dict[str, Mapping[str, torch.Tensor]]:
    if isinstance(tickets, pd.DataFrame):
        if "path" not in tickets.columns:
            raise ConfigError(
                "mask overlap: the tickets frame needs a 'path' column (use collect_tickets)"
            )
        return dict(load_masks(tickets))
    return dict(tickets)


def pair_table(
    tickets: pd.DataFrame | Mapping[str, Masks], metric: str = "jaccard"
) -> pd.DataFrame:
    """Long table of ``metric`` for every unordered pair of tickets (and each with itself).

    One row per (a, b, layer) plus the pooled row ``layer == OVERALL``; ``expected_random`` is the
    chance level for masks of the same densities and ``bits`` the number of compared entries.
    Layers that one ticket lacks or that differ in shape (e.g. heads for different class counts)
    are left out of that pair (with a warning) and of its pooled value.
    """
    check_metric(metric)
    masks = _as_masks(tickets)
    labels = list(masks)
    rows = []
    skipped: set[str] = set()
    for i, a in enumerate(labels):
        for b in labels[i:]:
            pooled = ZERO
            for layer, ma in masks[a].items():
                mb = masks[b].get(layer)
                if mb is None or tuple(mb.shape) != tuple(ma.shape):
                    skipped.add(layer)
                    continue
                c = counts(ma, mb, f"{a} vs {b}, layer {layer!r}")
                pooled = pooled + c
                rows.append((a, b, layer, c.value(metric), c.expected_random(metric), c.total))
            skipped.update(set(masks[b]) - set(masks[a]))
            value = pooled.value(metric) if pooled.total else math.nan
            rows.append((a, b, OVERALL, value, pooled.expected_random(metric), pooled.total))
    if skipped:
        warnings.warn(
            f"mask overlap: layer(s) {', '.join(sorted(skipped))} missing or of different shape "
            "in some tickets; left out of those pairs",
            stacklevel=2,
        )
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))


def matrix_from_pairs(pairs: pd.DataFrame, labels: list[str], layer: str = OVERALL) -> pd.DataFrame:
    """Symmetric label x label matrix of one layer's values from a ``pair_table``."""
    mat = pd.DataFrame(np.nan, index=labels, columns=labels, dtype=float)
    for row in pairs[pairs["layer"] == layer].itertuples():
        mat.loc[row.a, row.b] = row.value
        mat.loc[row.b, row.a] = row.value
    return mat


def overlap_matrix(
    tickets: pd.DataFrame | Mapping[str, Masks], metric: str = "jaccard", layer: str | None = None
) -> pd.DataFrame:
    """Pairwise ``metric`` between tickets: a square frame indexed by ticket label.

    ``tickets`` is a ``collect_tickets`` frame (labels "source/seed") or a mapping label -> masks.
    ``layer=None`` pools over all (shared) layers; a layer name restricts to that layer (NaN for
    pairs where a ticket lacks it).
    """
    check_metric(metric)
    masks = _as_masks(tickets)
    labels = list(masks)
    if layer is not None:
        if not any(layer in m for m in masks.values()):
            known = sorted({name for m in masks.values() for name in m})
            raise ConfigError(
                f"mask overlap layer: no ticket has layer {layer!r}; use one of {', '.join(known)}"
            )
        masks = {k: {layer: m[layer]} for k, m in masks.items() if layer in m}
    pairs = pair_table(masks, metric)
    mat = matrix_from_pairs(pairs, labels, OVERALL)
    mat.attrs.update(metric=metric, layer=layer)
    return mat

"""Tickets a suite did not search (``tickets:``): find, pin, read and check their files.

An external ticket is transferred like a searched source's: the same model, the same head policy,
the same controls derived from its mask and init. What a search provides, the files provide here:

- **which file, which level** (:func:`resolve`, when the suite is planned): every path, ``zoo:``
  name or group is expanded and read far enough to know its format (``.ticket``, OpenLTH level
  folder, torch-prune state dict), its level and its digest, the sha256 of the file's bytes (of an
  OpenLTH folder: of the ``sha256sum`` lines of its mask and checkpoint, sorted by name). A pin
  (``sha256:``) must match. The digests enter the run ids, so a changed file is a new run.
- **the ticket itself** (:func:`load`): ``.ticket`` files are fully verified; OpenLTH and
  torch-prune files go through the importers, with ``weights_only`` loading, for the suite's model
  (their class count read from the stored output layer).
- **checks before training** (:func:`problems`): the ticket's model, options and input are the
  suite's, its head fits every target the head policy keeps it for, and a named ``dataset`` agrees
  with the rows the file records.
- **the source identity** (:func:`source_identity`), which seeds a re-initialized head and the
  random masks of ``shuffle_layerwise`` / ``random_global`` as a searched source's training rows
  do: the rows digest the file records (every ticket transfer-bench writes records its source's
  rows, so a ticket searched by one suite and used by another draws exactly what the first suite's
  own transfer drew), else the rows of the suite dataset named by ``dataset:``, else the file's
  own digest.

Every problem is one line naming ``tickets.<name>``, the file and the fix, raised before anything
trains or is written.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfer_bench.config import DatasetSpec, Suite
from transfer_bench.config.tickets import ZOO_PREFIX
from transfer_bench.errors import DatasetError, TicketError, TransferBenchError
from transfer_bench.fileio import sha256_file
from transfer_bench.head_policy import HeadAction, head_action
from transfer_bench.seeding import data_identity
from transfer_bench.tickets import FORMAT_NAME, read_ticket_arrays
from transfer_bench.tickets.container import looks_like_torch_save, parse_header, read_file

#: The formats a ticket file may have (``format: auto`` detects them).
FORMATS = ("ticket", "openlth", "torch-prune")


class TicketProblems(TicketError):
    """Several one-line problems with a suite's tickets; the message is the first (and a count)."""

    def __init__(self, problems: list[str]) -> None:
        more = (
            f" (and {len(problems) - 1} more problem(s) with tickets)" if len(problems) > 1 else ""
        )
        super().__init__(problems[0] + more)
        self.problems = problems


@dataclass(frozen=True)
class ExternalFile:
    """One ticket of a ``tickets:`` entry: where it is, what it is, and its digest."""

    level: int
    path: Path
    format: str
    sha256: str
    zoo: str | None = None  # the zoo entry's name, for zoo tickets
    recorded: Mapping[str, Any] | None = None  # a .ticket's meta (read at resolve time)

    @property
    def shown(self) -> str:
        """How messages and reports name the file: ``zoo:<name>`` or its path."""
        return f"{ZOO_PREFIX}{self.zoo}" if self.zoo else str(self.path)

    def key(self) -> dict[str, Any]:
        """What enters the run id: the level, the format and the digest (not the path)."""
        return {"level": self.level, "format": self.format, "sha256": self.sha256}


@dataclass(frozen=True)
class ExternalSource:
    """A ``tickets:`` entry, resolved: its files by level, and what it says of its source."""

    name: str
    files: tuple[ExternalFile, ...]
    dataset: str | None  # the suite dataset named by ``dataset:``
    source_spec: DatasetSpec | None  # the source's labels: the named dataset's, or recorded

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(sorted(f.level for f in self.files))

    def at(self, level: int) -> ExternalFile:
        return next(f for f in self.files if f.level == level)

    def config(self, suite: Suite) -> dict[str, Any]:
        """The run-config block of a transfer of this ticket (hashed into the run id)."""
        block: dict[str, Any] = {"files": [f.key() for f in sorted(self.files, key=_by_level)]}
        if self.dataset is not None:
            spec = suite.datasets[self.dataset].model_dump(mode="json", exclude_defaults=True)
            block["dataset"] = {"name": self.dataset, **spec}
        return block

    def head_action(self, policy: str, target: DatasetSpec) -> HeadAction:
        """What ``transfer.head`` does for ``target``; ``auto`` re-initializes a head whose
        source labels are unknown (neither recorded nor named)."""
        if policy == "auto" and self.source_spec is None:
            return "reinit"
        return head_action(policy, self.source_spec or target, target)


def _by_level(f: ExternalFile) -> int:
    return f.level


# ------------------------------------------------------------------------------------ resolving


def detect_format(path: Path) -> str | None:
    """``openlth`` (a folder), ``torch-prune`` (a zip archive or pickle: ``torch.save``),
    ``ticket`` (a safetensors file with the ticket format's metadata), or None."""
    if path.is_dir():
        return "openlth"
    if looks_like_torch_save(path):
        return "torch-prune"
    try:
        _, block = parse_header(path, read_file(path))
    except TicketError:
        return None
    return "ticket" if block.get("format") == FORMAT_NAME else None


def digest(path: Path, fmt: str) -> str:
    """The sha256 of a ticket file's bytes; of an OpenLTH level folder, the sha256 of the
    ``sha256sum`` lines of its mask and checkpoint, sorted by name (``sha256sum mask.pth
    model_ep0_it0.pth | sha256sum`` in the folder)."""
    if fmt != "openlth":
        return sha256_file(path)
    from transfer_bench.tickets.interop import openlth_files  # lazy: imports torch

    mask, ckpt, _ = openlth_files(path)
    lines = "".join(f"{sha256_file(p)}  {p.name}\n" for p in sorted((mask, ckpt), key=_name))
    return hashlib.sha256(lines.encode()).hexdigest()


def _name(p: Path) -> str:
    return p.name


def _expand(name: str, files: Iterable[str]) -> list[tuple[Path, str | None, int | None]]:
    """``(path, zoo name, zoo level)`` of every file of an entry, zoo names and groups expanded
    (zoo files are checked against the catalogue's sha256 and verified here)."""
    from transfer_bench.tickets.zoo import lookup, zoo_path  # lazy: only zoo entries need it

    out: list[tuple[Path, str | None, int | None]] = []
    for f in files:
        if f.startswith(ZOO_PREFIX):
            for entry in lookup(f[len(ZOO_PREFIX) :]):
                out.append((zoo_path(entry), entry.name, entry.level))
        else:
            out.append((Path(f), None, None))
    return out


def _where(name: str, shown: object) -> str:
    return f"tickets.{name}: {shown}"


def _recorded_spec(meta: Mapping[str, Any]) -> DatasetSpec | None:
    """The source dataset spec a ticket records (None when it records none, or one this version
    cannot read)."""
    spec = dict((meta.get("source") or {}).get("spec") or {})
    spec.pop("name", None)
    if not spec:
        return None
    try:
        return DatasetSpec.model_validate(spec)
    except ValueError:
        return None


def _resolve_file(
    name: str, spec: Any, path: Path, zoo: str | None, zoo_level: int | None, i: int
) -> ExternalFile:
    shown = f"{ZOO_PREFIX}{zoo}" if zoo else str(path)
    where = _where(name, shown)
    if not path.exists():
        raise TicketError(
            f"{where}: no such file or folder (paths are relative to the working directory, "
            f"{os.getcwd()}); check the path"
        )
    fmt = spec.format if spec.format != "auto" else detect_format(path)
    if fmt is None:
        raise TicketError(
            f"{where}: format not recognised (not a transfer-bench ticket, an OpenLTH level "
            "folder or a torch.save file); convert it with `transfer-bench ticket import` or "
            "set tickets.<name>.format"
        )
    try:
        found = digest(path, fmt)
    except TransferBenchError as e:
        raise TicketError(f"tickets.{name}: {e}") from None
    except OSError as e:
        raise TicketError(
            f"{where}: cannot be read ({e.strerror}); check its permissions"
        ) from None
    if spec.sha256 is not None and i < len(spec.sha256) and spec.sha256[i] != found:
        raise TicketError(
            f"{where}: sha256 is {found} but the suite pins {spec.sha256[i]}: the file is not "
            "the one pinned; get the original file, or pin the new digest if you trust it"
        )
    recorded: dict[str, Any] | None = None
    level = spec.levels[i] if spec.levels is not None and i < len(spec.levels) else None
    if fmt == "ticket":
        try:
            recorded = read_ticket_arrays(path).meta
        except TicketError as e:
            raise TicketError(f"tickets.{name}: {e}") from None
        if level is None and recorded.get("level", -1) >= 0:
            level = int(recorded["level"])
    elif fmt == "openlth" and level is None:
        from transfer_bench.tickets.interop import openlth_files  # lazy: imports torch

        level = openlth_files(path)[2]
        level = level if level >= 0 else None
    if level is None:
        level = zoo_level
    if level is None:
        raise TicketError(
            f"{where}: the file records no level (a {fmt} file); give each file's level in "
            f"tickets.{name}.levels"
        )
    return ExternalFile(level, path, fmt, found, zoo, recorded)


def _resolve_entry(suite: Suite, name: str) -> ExternalSource:
    spec = suite.tickets[name]
    try:
        expanded = _expand(name, spec.file)
    except TicketError as e:
        raise TicketError(f"tickets.{name}: {e}") from None
    for key in ("sha256", "levels"):
        values = getattr(spec, key)
        if values is not None and len(values) != len(expanded):
            raise TicketError(
                f"tickets.{name}.{key}: {len(values)} value(s) for {len(expanded)} file(s) "
                "(zoo groups expanded); give one per file, in the same order"
            )
    files = [_resolve_file(name, spec, p, z, zl, i) for i, (p, z, zl) in enumerate(expanded)]
    seen: dict[int, ExternalFile] = {}
    for f in files:
        if f.level in seen:
            raise TicketError(
                f"tickets.{name}: {seen[f.level].shown} and {f.shown} are both level {f.level}; "
                f"give them other levels in tickets.{name}.levels, or make them two tickets"
            )
        seen[f.level] = f
    recorded = {
        str(_recorded_spec(f.recorded)) for f in files if f.recorded and _recorded_spec(f.recorded)
    }
    if len(recorded) > 1:
        raise TicketError(
            f"tickets.{name}: its files record different source datasets; list each source's "
            "tickets as a ticket of its own"
        )
    source_spec = suite.datasets[spec.dataset] if spec.dataset is not None else None
    if source_spec is None:
        source_spec = next(
            (s for f in files if f.recorded and (s := _recorded_spec(f.recorded))), None
        )
    return ExternalSource(name, tuple(files), spec.dataset, source_spec)


def resolve(suite: Suite, names: Iterable[str] | None = None) -> dict[str, ExternalSource]:
    """Every ticket of ``suite`` the transfer uses (or those in ``names``), resolved; all problems
    found are raised together (``TicketProblems``: one line each, the first as the message)."""
    wanted = [n for n in (names if names is not None else suite.transfer_sources)]
    out: dict[str, ExternalSource] = {}
    problems: list[str] = []
    for name in wanted:
        if name not in suite.tickets:
            continue
        try:
            out[name] = _resolve_entry(suite, name)
        except TicketError as e:
            problems.append(str(e))
    if problems:
        raise TicketProblems(problems)
    return out


# -------------------------------------------------------------------------------------- loading


def load(suite: Suite, source: ExternalSource, f: ExternalFile):
    """The ticket of ``f`` (verified; OpenLTH and torch-prune files imported for the suite's
    model with ``weights_only`` loading); any problem is one line naming the ticket and file."""
    from transfer_bench.tickets import load_ticket  # lazy: torch
    from transfer_bench.tickets.interop import (  # lazy: torch
        import_openlth,
        import_torch_prune,
        stored_classes,
    )

    try:
        if f.format == "ticket":
            return load_ticket(f.path)
        common = {
            "in_channels": suite.input.channels,
            "image_size": suite.input.size,
            "options": dict(suite.model.options),
        }
        k = stored_classes(f.path, f.format, suite.model.name, **common)
        reader = import_openlth if f.format == "openlth" else import_torch_prune
        meta = {"dataset": source.dataset} if source.dataset else None
        return reader(f.path, suite.model.name, num_classes=k, meta_source=meta, **common)
    except TransferBenchError as e:
        raise TicketError(f"tickets.{source.name}: {e}") from None


def recorded_rows(ticket: Any) -> str | None:
    """The training-rows digest of the source a ticket records, or None."""
    try:
        return data_identity((ticket.meta.get("source") or {}).get("data") or {})
    except DatasetError:
        return None


def source_identity(ticket: Any, f: ExternalFile, dataset_rows: str | None) -> str:
    """What seeds the head and random-mask draws of a transfer of this ticket, in place of a
    searched source's rows: the rows the ticket records, else the named dataset's rows, else the
    file's digest (see the module docstring)."""
    return recorded_rows(ticket) or dataset_rows or f.sha256


def provenance(ticket: Any, f: ExternalFile) -> dict[str, Any]:
    """What a run records of the ticket it transferred (``config.json``; the report lists it)."""
    meta = ticket.meta
    src = meta.get("source") or {}
    search = meta.get("search") or {}
    return {
        "level": f.level,
        "file": f.shown,
        "format": f.format,
        "sha256": f.sha256,
        "density": ticket.density,
        "recorded": {
            "dataset": src.get("dataset"),
            "source": (src.get("spec") or {}).get("source") or src.get("imported_from"),
            "rows": recorded_rows(ticket),
            "level": meta.get("level"),
            "seed": meta.get("seed"),
            "method": search.get("method"),
            "suite": (meta.get("suite") or {}).get("name"),
            "created_by": meta.get("created_by"),
        },
    }


# --------------------------------------------------------------------------------------- checks


def _model_problem(suite: Suite, meta: Mapping[str, Any]) -> str | None:
    """Why a ticket's recorded model does not fit the suite's model and input, or None."""
    model = meta.get("model") or {}
    name, opts = model.get("name"), model.get("options") or {}
    if name != suite.model.name:
        return (
            f"a {name} ticket, but the suite's model is {suite.model.name}; use a "
            f"{suite.model.name} ticket or set model.name: {name}"
        )
    if dict(opts) != dict(suite.model.options):
        return (
            f"found with model.options {opts}, but the suite has {dict(suite.model.options)}; "
            "set model.options to the ticket's"
        )
    size, channels = model.get("image_size"), model.get("in_channels")
    if (size, channels) != (suite.input.size, suite.input.channels):
        return (
            f"found on {size}x{size}x{channels} inputs, but the suite's input is "
            f"{suite.input.size}x{suite.input.size}x{suite.input.channels}; set input.size: "
            f"{size} and input.channels: {channels}"
        )
    return None


def problems(
    suite: Suite,
    sources: Mapping[str, ExternalSource],
    classes: Mapping[str, int],
    rows: Mapping[str, str],
) -> list[str]:
    """Every problem of the suite's tickets, one line each: the model, options and input differ
    from the suite's; the file fails verification or import (a pickle that would run code); the
    head does not fit a target the head policy keeps it for; a named dataset has other rows than
    the file records. ``classes``/``rows``: per dataset, where known."""
    from transfer_bench.models import build_model  # lazy: torch
    from transfer_bench.tickets.apply import check_compatible  # lazy: torch

    out: list[str] = []
    policy = suite.transfer.head if suite.transfer is not None else "auto"
    for name, source in sources.items():
        for f in source.files:
            where = _where(name, f.shown)
            try:
                ticket = load(suite, source, f)
            except TicketError as e:
                out.append(str(e))
                continue
            why = _model_problem(suite, ticket.meta)
            if why is not None:
                out.append(f"{where}: {why}")
                continue
            k = int(ticket.meta["model"].get("num_classes") or 0)
            model = build_model(
                suite.model.name,
                num_classes=k,
                in_channels=suite.input.channels,
                image_size=suite.input.size,
                seed=0,
                options=dict(suite.model.options),
            )
            try:
                check_compatible(ticket, model)
            except TicketError as e:
                out.append(f"{where}: {e}")
                continue
            for target in suite.transfer.targets if suite.transfer is not None else ():
                action = source.head_action(policy, suite.datasets[target])
                if action == "keep" and target in classes and classes[target] != k:
                    out.append(
                        f"{where}: its output layer has {k} classes but target {target} has "
                        f"{classes[target]}, and transfer.head: {policy} keeps it; use "
                        "transfer.head: auto (or reinit) to re-initialize it"
                    )
            have = recorded_rows(ticket)
            named = rows.get(source.dataset) if source.dataset else None
            if have and named and have != named:
                out.append(
                    f"{where}: the ticket records source rows {have[:12]}... but "
                    f"datasets.{source.dataset} has rows {named[:12]}...; drop "
                    f"tickets.{name}.dataset (the file's own record is used) or name the "
                    "dataset it was found on"
                )
    return out


def describe(sources: Mapping[str, ExternalSource]) -> list[str]:
    """``plan``'s lines: each ticket's files with level, format and full digest (to pin)."""
    lines = []
    for name, source in sources.items():
        for f in sorted(source.files, key=_by_level):
            lines.append(f"ticket {name} level {f.level}: {f.shown} ({f.format}) sha256 {f.sha256}")
    return lines

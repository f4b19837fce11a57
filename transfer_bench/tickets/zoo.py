"""The ticket zoo: verified version-2 tickets from the project's own suites, with a catalogue.

The zoo is a folder (``transfer_bench/zoo/`` in the package, or ``$TRANSFER_BENCH_ZOO``) holding
``catalogue.json`` and one ``.ticket`` file per entry. Each entry says what the ticket is (model
and options, input, source data with its rows digest, level and density), how good it was where
it was found (``source_accuracy``: the search's test accuracy of that level on its source), where
it comes from (suite, scale, seed, run id, machine) and the sha256 of the file's bytes, which
every use checks. Entries are grouped (``group``: one model on one source, all its densities), so
a suite names one ticket (``zoo:<name>``) or a group (``zoo:<group>``).

Reading and checking are torch-free (the catalogue is JSON; files are verified with
:mod:`~transfer_bench.tickets.verify`). ``python -m transfer_bench.tickets.zoo build RUN_FOLDER``
(re)builds entries from a suite's results folder: for each searched source, the tickets of one
seed at the levels the suite transfers (level 0, the dense initialization, is left out).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transfer_bench.errors import TicketError, TransferBenchError
from transfer_bench.fileio import atomic_write_json, sha256_file
from transfer_bench.tickets.verify import read_ticket_arrays

ZOO_ENV = "TRANSFER_BENCH_ZOO"
CATALOGUE = "catalogue.json"
ZOO_FORMAT = "transfer-bench-zoo"
ZOO_VERSION = 1
#: What the committed zoo may weigh in all (ticket files and catalogue), checked by a test.
SIZE_BUDGET_BYTES = 3_000_000


@dataclass(frozen=True)
class ZooEntry:
    """One ticket of the zoo, as its catalogue describes it."""

    name: str
    group: str
    file: str
    sha256: str
    bytes: int
    model: dict[str, Any]
    input: dict[str, Any]
    data: dict[str, Any]
    level: int
    density: float
    source_accuracy: float
    suite: str
    suite_file: str
    scale: str | None
    seed: int
    run_id: str
    seeding: int
    machine: str

    def path(self, folder: Path | None = None) -> Path:
        return (folder or zoo_dir()) / self.file


def zoo_dir() -> Path:
    """The zoo folder: ``$TRANSFER_BENCH_ZOO`` if set, else the package's ``zoo/``."""
    env = os.environ.get(ZOO_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1] / "zoo"


def read_catalogue(folder: Path | None = None) -> list[ZooEntry]:
    """Every entry of the zoo's catalogue; a missing or malformed catalogue is one line."""
    folder = folder or zoo_dir()
    path = folder / CATALOGUE
    fix = f"point {ZOO_ENV} at a zoo folder, or reinstall transfer-bench"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise TicketError(f"{path}: no zoo catalogue here; {fix}") from None
    except (OSError, ValueError) as e:
        raise TicketError(f"{path}: cannot read the zoo catalogue ({e}); {fix}") from None
    if not isinstance(doc, dict) or doc.get("format") != ZOO_FORMAT:
        raise TicketError(f"{path}: not a {ZOO_FORMAT} catalogue; {fix}")
    if doc.get("version") != ZOO_VERSION:
        raise TicketError(
            f"{path}: zoo catalogue version {doc.get('version')!r} is not {ZOO_VERSION}; "
            "use the transfer-bench that wrote it"
        )
    entries = []
    for i, raw in enumerate(doc.get("tickets") or []):
        try:
            entries.append(ZooEntry(**raw))
        except TypeError as e:
            raise TicketError(f"{path}: tickets[{i}] is malformed ({e}); {fix}") from None
    return entries


def lookup(name: str, folder: Path | None = None) -> list[ZooEntry]:
    """The entries ``zoo:<name>`` means: the ticket of that name, or every ticket of that group
    (sparsest last); an unknown name is one line with the closest names."""
    entries = read_catalogue(folder)
    exact = [e for e in entries if e.name == name]
    if exact:
        return exact
    group = sorted((e for e in entries if e.group == name), key=lambda e: e.level)
    if group:
        return group
    names = sorted({e.name for e in entries} | {e.group for e in entries})
    hint = difflib.get_close_matches(name, names, n=1)
    extra = f"did you mean 'zoo:{hint[0]}'? " if hint else ""
    raise TicketError(
        f"zoo:{name}: no such ticket or group in the zoo; {extra}"
        "`transfer-bench ticket zoo` lists them"
    )


def verify_entry(entry: ZooEntry, folder: Path | None = None) -> str | None:
    """Why ``entry``'s file does not match its catalogue (missing, other bytes, a failed ticket
    check, another level or density), or None when it does."""
    path = entry.path(folder)
    if not path.is_file():
        return f"{path}: missing"
    digest = sha256_file(path)
    if digest != entry.sha256:
        return (
            f"{path}: sha256 {digest[:12]}... differs from the catalogue's {entry.sha256[:12]}...: "
            "the file was changed; restore it (git checkout) or rebuild the zoo"
        )
    try:
        t = read_ticket_arrays(path)
    except TicketError as e:
        return str(e)
    if t.version != 2:
        return f"{path}: format version {t.version}; the zoo holds version 2 only"
    if t.meta.get("level") != entry.level or abs(t.density - entry.density) > 1e-9:
        return f"{path}: level/density differ from the catalogue's; rebuild the zoo"
    return None


def zoo_path(entry: ZooEntry, folder: Path | None = None) -> Path:
    """The verified file of ``entry``; a file that fails :func:`verify_entry` is a TicketError."""
    problem = verify_entry(entry, folder)
    if problem is not None:
        raise TicketError(f"zoo:{entry.name}: {problem}")
    return entry.path(folder)


# ------------------------------------------------------------------------------------ building


def model_label(model: dict[str, Any]) -> str:
    """``lenet_300_100``, ``vgg19-w8``: the model and its width, for entry names."""
    width = (model.get("options") or {}).get("width")
    return f"{model['name']}-w{width}" if width is not None else str(model["name"])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise TransferBenchError(f"{path}: cannot read ({e}); rerun the suite") from None


def _machine(record: dict[str, Any]) -> str:
    m = record.get("machine") or {}
    return f"{m.get('cpu', '?')}, {m.get('threads', '?')} thread(s), torch {m.get('torch', '?')}"


def _suite_copy(run_folder: Path) -> dict[str, Any]:
    import yaml  # lazy: only building reads YAML

    path = run_folder / "suite.yaml"
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise TransferBenchError(
            f"{path}: cannot read the suite copy ({e}); pass a folder `transfer-bench run` wrote"
        ) from None
    return doc if isinstance(doc, dict) else {}


def build_entries(
    run_folder: Path,
    *,
    seed: int = 0,
    levels: Sequence[int] | None = None,
    suite_file: str = "",
    scale: str | None = None,
) -> list[tuple[ZooEntry, Path]]:
    """Zoo entries (and the ticket file each copies) from a suite's results folder: every search
    run of its current plan (``plan.json``), its ticket of ``seed`` at ``levels`` (default: the
    suite's ``transfer.levels`` without 0).

    Each ticket is verified and must be version 2; its source accuracy is its search level's
    ``result.json``."""
    suite = _suite_copy(run_folder)
    if levels is None:
        levels = [lv for lv in (suite.get("transfer") or {}).get("levels") or [] if lv > 0]
    if not levels:
        raise TransferBenchError(f"{run_folder}: the suite names no transfer levels; pass --levels")
    out: list[tuple[ZooEntry, Path]] = []
    searches = sorted(run_folder.glob(f"search-*/seed_{seed}/config.json"))
    planned = run_folder / "plan.json"
    if planned.is_file():  # folders of an older plan (another seeding rule) stay out
        current = set(_read_json(planned).get("run_ids") or [])
        searches = [p for p in searches if p.parents[1].name in current]
    if not searches:
        raise TransferBenchError(
            f"{run_folder}: no search run of seed {seed}; pass a suite's results folder "
            "(results/<suite>) and a seed it ran"
        )
    for cfg_path in searches:
        cfg = _read_json(cfg_path)
        data_name = cfg["dataset"]["name"]
        for level in levels:
            folder = cfg_path.parent / f"level_{level}"
            ticket_path, result_path = folder / "ticket.ticket", folder / "result.json"
            if not ticket_path.is_file() or not result_path.is_file():
                raise TransferBenchError(
                    f"{folder}: no ticket or result (ticket files are not committed under "
                    "results/); rerun the suite with --results DIR and build from there"
                )
            t = read_ticket_arrays(ticket_path)
            if t.version != 2:
                raise TransferBenchError(
                    f"{ticket_path}: format version {t.version}; upgrade it first "
                    "(transfer-bench ticket upgrade)"
                )
            result = _read_json(result_path)
            model = t.meta["model"]
            group = f"{model_label(model)}-{data_name}"
            name = f"{group}-{100 * t.density:.1f}"
            info = cfg.get("data") or {}
            entry = ZooEntry(
                name=name,
                group=group,
                file=f"{name}.ticket",
                sha256=sha256_file(ticket_path),
                bytes=ticket_path.stat().st_size,
                model={"name": model["name"], "options": model.get("options") or {}},
                input={"size": model["image_size"], "channels": model["in_channels"]},
                data={
                    "name": data_name,
                    "source": info.get("source"),
                    "classes": info.get("num_classes"),
                    "sizes": info.get("sizes"),
                    "train_rows_sha256": ((info.get("rows") or {}).get("train") or {}).get(
                        "sha256"
                    ),
                    "origin": info.get("origin"),
                },
                level=int(t.meta["level"]),
                density=float(t.density),
                source_accuracy=float(result["test_accuracy"]),
                suite=str(suite.get("name") or result.get("suite")),
                suite_file=suite_file,
                scale=scale,
                seed=int(t.meta["seed"]),
                run_id=str(t.meta.get("run_id")),
                seeding=int(t.meta.get("seeding") or 1),
                machine=_machine(result),
            )
            out.append((entry, ticket_path))
    return out


def write_zoo(built: Iterable[tuple[ZooEntry, Path]], folder: Path | None = None) -> list[ZooEntry]:
    """Copy the built tickets into the zoo and merge their entries into the catalogue (an entry
    of the same name is replaced); returns the whole catalogue."""
    folder = folder or zoo_dir()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        entries = {e.name: e for e in read_catalogue(folder)}
    except TicketError:
        if (folder / CATALOGUE).exists():
            raise
        entries = {}
    for entry, src in built:
        shutil.copyfile(src, folder / entry.file)
        entries[entry.name] = entry
    ordered = sorted(entries.values(), key=lambda e: (e.group, e.level))
    atomic_write_json(
        folder / CATALOGUE,
        {
            "format": ZOO_FORMAT,
            "version": ZOO_VERSION,
            "size_budget_bytes": SIZE_BUDGET_BYTES,
            "tickets": [asdict(e) for e in ordered],
        },
    )
    return ordered


def zoo_bytes(folder: Path | None = None) -> int:
    """What the zoo weighs on disk: its catalogue and ticket files."""
    folder = folder or zoo_dir()
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in (".json", ".ticket"))


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m transfer_bench.tickets.zoo",
        description="Build zoo entries from a suite's results folder.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="add a results folder's tickets to the zoo")
    b.add_argument("run_folder", type=Path, help="results/<suite> of a finished suite")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--levels", type=int, nargs="*", default=None)
    b.add_argument("--suite-file", default="", help="the suite file, for the catalogue")
    b.add_argument("--scale", default=None, help="the scale it ran at, for the catalogue")
    b.add_argument("--zoo", type=Path, default=None, help=f"zoo folder (default: {zoo_dir()})")
    args = parser.parse_args(argv)
    try:
        built = build_entries(
            args.run_folder,
            seed=args.seed,
            levels=args.levels,
            suite_file=args.suite_file,
            scale=args.scale,
        )
        entries = write_zoo(built, args.zoo)
    except TransferBenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for entry, _ in built:
        print(f"added {entry.name} ({entry.bytes:,} bytes, sha256 {entry.sha256})")
    total = zoo_bytes(args.zoo)
    print(f"zoo: {len(entries)} tickets, {total:,} bytes (budget {SIZE_BUDGET_BYTES:,})")
    if total > SIZE_BUDGET_BYTES:
        print(f"error: the zoo is over its budget of {SIZE_BUDGET_BYTES:,} bytes", file=sys.stderr)
        return 1
    return 0


__all__ = [
    "CATALOGUE",
    "SIZE_BUDGET_BYTES",
    "ZOO_ENV",
    "ZooEntry",
    "build_entries",
    "lookup",
    "read_catalogue",
    "verify_entry",
    "write_zoo",
    "zoo_bytes",
    "zoo_dir",
    "zoo_path",
]

if __name__ == "__main__":
    sys.exit(_main())

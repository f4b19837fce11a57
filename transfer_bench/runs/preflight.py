"""Checks a suite passes before anything trains or is written (``run``, ``run_suite`` and ``plan``).

A mistake that shows only when a run reaches it (a missing ``local:`` file for a target, a rewind
point past the end of training, a model that cannot take the suite's input) used to cost every
training before it, and left run folders behind. Here each is one line naming the suite key and
the fix, found first:

- worker counts are whole numbers >= 1 (``check_counts``);
- every dataset the suite trains on loads (``check_datasets``; loaded once and cached on disk, so
  the runs read it from the cache afterwards);
- the model builds for each dataset's class count and runs a forward pass at the suite's input
  (``check_model``);
- every search's rewind point, and every stability rewind point, lies before the end of its
  training on its dataset (``check_rewinds``, the rule the search stage applies);
- every ticket found elsewhere (``tickets:``) reads, verifies and fits the suite's model, input
  and targets (``ticket_problems``; its files were found and pinned when the suite was planned,
  :mod:`transfer_bench.runs.external`).

The device is checked where the context is made (``devices.resolve_device``). ``advisories`` are
what ``plan`` prints (and ``plan --strict`` enforces) for suites whose statistics cannot be
estimated well (``few_seeds``) or whose default baseline is not trained (``missing_baseline``,
which ``preflight`` also warns of before a run).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from transfer_bench.config import SearchSpec, Suite
from transfer_bench.data import load_dataset
from transfer_bench.errors import ConfigError, DatasetError, TransferBenchError
from transfer_bench.models import build_model
from transfer_bench.runs import external
from transfer_bench.seeding import data_identity

#: seeds below which no bootstrap CI exists and the paired t-test has 1 degree of freedom
MIN_SEEDS = 3


@dataclass(frozen=True)
class DatasetFacts:
    """What the other checks need of a dataset: its training-split size and class count."""

    name: str
    train: int
    classes: int
    rows: str | None = None  # the training rows' digest (``seeding.data_identity``)


def used_datasets(suite: Suite) -> list[str]:
    """The datasets a suite uses: its search sources, the datasets its tickets were found on
    (their rows seed the draws), then its transfer targets."""
    targets = suite.transfer.targets if suite.transfer is not None else ()
    found_on = [t.dataset for t in suite.tickets.values() if t.dataset is not None]
    return list(dict.fromkeys([*suite.searched_sources, *found_on, *targets]))


def check_counts(**counts: int | None) -> None:
    """Whole-number options (``--workers``, ``--runs-per-gpu``) are >= 1, or a one-line error."""
    for name, value in counts.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            flag = "--" + name.replace("_", "-")
            raise TransferBenchError(f"{flag} {value!r}: use a whole number >= 1")


def check_datasets(suite: Suite, cache_dir: Path | None) -> dict[str, DatasetFacts]:
    """Load every dataset the suite trains on (through the dataset cache); a dataset that cannot
    be loaded is a one-line ``DatasetError`` naming its key, the loader's reason and fix."""
    facts: dict[str, DatasetFacts] = {}
    failed: list[tuple[str, str]] = []
    for name in used_datasets(suite):
        try:
            ds = load_dataset(
                suite.datasets[name], suite.input, split_seed=suite.data_seed, cache_dir=cache_dir
            )
        except TransferBenchError as e:
            failed.append((name, str(e)))
            continue
        facts[name] = DatasetFacts(name, len(ds.y_train), ds.num_classes, data_identity(ds.info))
        del ds  # the runs read it from the cache; keep no copy in this process
    if failed:
        name, reason = failed[0]
        more = ""
        if len(failed) > 1:
            more = f" (also not loadable: {', '.join(n for n, _ in failed[1:])})"
        raise DatasetError(f"datasets.{name}: {reason}{more}")
    return facts


def check_model(suite: Suite, classes: Iterable[int]) -> None:
    """The suite's model builds for every class count and runs a forward pass at its input."""
    spec, inp = suite.model, suite.input
    shape = f"{inp.size}x{inp.size}x{inp.channels}"
    for k in sorted(set(classes)):
        try:
            model = build_model(
                spec.name,
                num_classes=k,
                in_channels=inp.channels,
                image_size=inp.size,
                seed=0,
                options=dict(spec.options),
            )
            model.eval()
            with torch.no_grad():
                model(torch.zeros(1, inp.channels, inp.size, inp.size))
        except TransferBenchError:
            raise  # the registry's own one-line message (unknown option, too small an input)
        except Exception as e:  # a model that cannot take this input fails inside torch
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigError(
                f"model: {spec.name} cannot run on {shape} images with {k} classes "
                f"({type(e).__name__}: {first[:160]}); change input.size or model.options"
            ) from None


def _total_iterations(suite: Suite, train_size: int) -> tuple[int, int]:
    """(steps per epoch, iterations of one training) on a training split of ``train_size``."""
    spe = math.ceil(train_size / suite.train.batch_size)
    return spe, suite.train.total_iterations(spe)


def check_rewinds(suite: Suite, train_sizes: Mapping[str, int]) -> None:
    """Each search's rewind point (and each stability rewind point) lies before the end of its
    training on its source (what the search stage would refuse after starting the run)."""
    for source in suite.searched_sources:
        if source not in train_sizes:
            continue
        spe, total = _total_iterations(suite, train_sizes[source])
        spec = suite.search_for(source)
        k = spec.rewind_iterations(spe)
        if k >= total:
            overridden = "rewind" in suite.search.per_source.get(source, {})
            key = f"search.per_source.{source}.rewind" if overridden else "search.rewind"
            raise ConfigError(
                f"{key}: rewind point {spec.rewind!r} is {k} iterations, not before the end of "
                f"training ({total} iterations on {source}, {spe} per epoch); use a smaller "
                "rewind or train longer"
            )
        if suite.stability is None:
            continue
        for i, point in enumerate(suite.stability.rewind_points):
            k = SearchSpec(sources=("x",), rewind=point).rewind_iterations(spe)
            if k >= total:
                raise ConfigError(
                    f"stability.rewind_points[{i}]: {point!r} is {k} iterations, not before the "
                    f"end of training ({total} iterations on {source}); use a smaller point"
                )


def ticket_problems(
    suite: Suite, cache_dir: Path | None, classes: Mapping[str, int] | None = None
) -> list[str]:
    """Every problem with the suite's tickets found elsewhere, one line each (the files are found,
    pinned and read again here, then loaded and checked against the suite: model, options, input,
    head size, the rows of a named dataset). ``classes``: the datasets' class counts, where known
    (loaded here otherwise)."""
    if not suite.tickets:
        return []
    try:
        sources = external.resolve(suite)
    except external.TicketProblems as e:
        return list(e.problems)
    known = dict(classes or {})
    rows: dict[str, str] = {}
    wanted = [s.dataset for s in sources.values() if s.dataset is not None]
    targets = suite.transfer.targets if suite.transfer is not None else ()
    for name in dict.fromkeys([*wanted, *(t for t in targets if t not in known)]):
        try:
            ds = load_dataset(
                suite.datasets[name], suite.input, split_seed=suite.data_seed, cache_dir=cache_dir
            )
        except TransferBenchError:
            continue  # reported by the dataset checks
        known.setdefault(name, ds.num_classes)
        rows[name] = data_identity(ds.info)
    return external.problems(suite, sources, known, rows)


def check_tickets(suite: Suite, cache_dir: Path | None, classes: Mapping[str, int]) -> None:
    """``ticket_problems`` as one ``TicketError`` (the first problem, and how many more)."""
    found = ticket_problems(suite, cache_dir, classes)
    if found:
        raise external.TicketProblems(found)


def few_seeds(suite: Suite) -> str:
    """A one-line advisory when the suite has fewer than ``MIN_SEEDS`` seeds, else ""."""
    n = len(suite.seeds)
    if n >= MIN_SEEDS:
        return ""
    what = (
        "no comparison can be tested with 1 seed"
        if n == 1
        else "2 seeds give no bootstrap CI and a paired t-test with 1 degree of freedom, which "
        "detects only differences of about 12 times the seed-to-seed spread of a difference (3 "
        "seeds: 3 times)"
    )
    return f"seeds: {what}; list at least {MIN_SEEDS} seeds (5 or more for a claim)"


def missing_baseline(suite: Suite) -> str:
    """A one-line advisory when the default ``analysis.baseline`` is not trained but other
    controls are (the report's comparison tables would be empty), else "". An explicit baseline
    that is not trained is an error of the suite itself."""
    tr, base = suite.transfer, suite.analysis.baseline
    if tr is None or base in tr.controls or "baseline" in suite.analysis.model_fields_set:
        return ""
    others = [c for c in tr.controls if c != "dense"]
    if not others:
        return ""
    return (
        f"analysis.baseline: the default baseline {base!r} is not among transfer.controls "
        f"({', '.join(tr.controls)}), so the report's comparison tables would be empty; set "
        f"analysis.baseline to one of {', '.join(others)} or add {base} to transfer.controls"
    )


def advisories(suite: Suite) -> list[str]:
    """Every one-line advisory about the suite's design (``--strict`` makes them errors)."""
    return [line for line in (few_seeds(suite), missing_baseline(suite)) if line]


def preflight(
    suite: Suite,
    cache_dir: Path | None,
    *,
    workers: int | None = None,
    runs_per_gpu: int | None = None,
) -> dict[str, DatasetFacts]:
    """Every check of this module, in order; returns the facts of each dataset the suite uses."""
    check_counts(workers=workers, runs_per_gpu=runs_per_gpu)
    facts = check_datasets(suite, cache_dir)
    check_model(suite, (f.classes for f in facts.values()))
    check_rewinds(suite, {name: f.train for name, f in facts.items()})
    check_tickets(suite, cache_dir, {name: f.classes for name, f in facts.items()})
    if line := missing_baseline(suite):
        warnings.warn(line, stacklevel=2)
    return facts

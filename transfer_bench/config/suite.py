"""The whole suite: ``Suite``, its parts, and the checks that span them.

``Suite`` holds the specs of the other modules and checks what no single part can: every name a
part refers to (sources, targets, optimizers, tickets) is defined, every source's search has the
same number of levels, levels are in range, the analysis baseline is trained. ``search_for``
applies a source's ``per_source`` overrides; the ``transfer_*`` properties fill in the defaults of
``transfer``. A suite needs a ``search``, or ``tickets`` (found elsewhere) and a ``transfer``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from transfer_bench.config.analysis import AnalysisSpec, ClaimSpec, check_primaries
from transfer_bench.config.base import _At, _distinct, _Model
from transfer_bench.config.messages import _first_error, _names, _problem
from transfer_bench.config.search import SearchSpec, StabilitySpec
from transfer_bench.config.tickets import TicketSpec
from transfer_bench.config.training import (
    DatasetSpec,
    InputSpec,
    ModelSpec,
    OptimizerSpec,
    TrainSpec,
    _default_optimizers,
)
from transfer_bench.config.transfer import TransferSpec
from transfer_bench.suite_yaml import Loc
from transfer_bench.suite_yaml import short as _short

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


#: Experiment trackers a suite may log to (``tracking.py`` implements each).
TrackerName = Literal["tensorboard", "mlflow", "wandb"]


class Suite(_Model):
    """A whole benchmark suite. See ``suites/quickstart.yaml`` for a commented example.

    ``search`` finds tickets on source datasets; ``tickets`` names tickets found elsewhere (files,
    or the zoo's). A suite needs one or both; one with only ``tickets`` needs a ``transfer``.
    """

    name: str = Field(max_length=100)
    group: str | None = Field(None, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seeds: tuple[Annotated[int, Field(ge=0, lt=2**31)], ...] = Field(min_length=1)
    data_seed: int = Field(0, ge=0, lt=2**31)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    model: ModelSpec
    input: InputSpec = InputSpec()
    datasets: dict[str, DatasetSpec] = Field(min_length=1)
    optimizers: dict[str, OptimizerSpec] = Field(default_factory=_default_optimizers)
    train: TrainSpec = TrainSpec()
    search: SearchSpec | None = None
    tickets: dict[str, TicketSpec] = Field(default_factory=dict)
    transfer: TransferSpec | None = None
    stability: StabilitySpec | None = None
    analysis: AnalysisSpec = AnalysisSpec()
    claim: ClaimSpec | None = None
    scales: dict[str, dict[str, Any]] = Field(default_factory=dict)
    track: tuple[TrackerName, ...] = ()

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        """The name is the results folder: no path separators, no leading dot."""
        if not _NAME_RE.match(v):
            raise ValueError(
                f"{_short(v)} is not a valid suite name; start with a letter or digit and use only "
                "letters, digits, '_', '.' and '-' (it names the results folder)"
            )
        return v

    @field_validator("track", mode="before")
    @classmethod
    def _tracker_list(cls, v: Any) -> Any:
        """``track: mlflow`` or ``track: "mlflow, wandb"`` mean the list of those names."""
        if isinstance(v, str):
            return tuple(x.strip() for x in v.split(",") if x.strip())
        return v

    @field_validator("track")
    @classmethod
    def _unique_trackers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        _distinct(v, "tracker")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        _distinct(v, "seed")
        return v

    @model_validator(mode="after")
    def _references(self) -> Suite:
        def check(path: Loc, names: Any, pool: Iterable[str], what: str, fix: str) -> None:
            """Every name (a list, or one name for a scalar key) must be a key of ``pool``."""
            pool = list(pool)
            items = enumerate(names) if isinstance(names, tuple) else [(None, names)]
            for i, n in items:
                if n not in pool:
                    hint = difflib.get_close_matches(str(n), pool, n=1)
                    extra = f"did you mean {hint[0]!r}? " if hint else ""
                    raise _At(
                        path if i is None else (*path, i),
                        f"{_short(n)} is not {what} of this suite; {extra}{fix} "
                        f"(defined: {_names(sorted(pool))})",
                    )

        if self.search is None:
            return self._without_search(check)
        sources = self.search.sources
        check(
            ("search", "sources"), sources, self.datasets, "a dataset", "define it under datasets"
        )
        self._check_tickets(check)
        for src in self.search.per_source:
            if src not in sources:
                hint = difflib.get_close_matches(src, list(sources), n=1)
                extra = f"did you mean {hint[0]!r}? " if hint else ""
                raise _At(
                    ("search", "per_source", src),
                    f"{_short(src)} is not in search.sources; {extra}add it there or drop this override",
                )
        counts = {}
        for src in sources:
            try:
                counts[src] = self.search_for(src).num_levels
            except ValidationError as e:
                loc, msg = _problem(_first_error(e), SearchSpec)
                raise _At(("search", "per_source", src, *loc), msg) from None
        if len(set(counts.values())) > 1:
            raise _At(
                ("search", "per_source"),
                f"every source needs the same number of levels, got {counts}; "
                "make levels / densities / early_bird.prune_fractions agree",
            )
        fix = "define it under optimizers"
        check(("train", "optimizer"), self.train.optimizer, self.optimizers, "an optimizer", fix)
        if self.search.optimizer is not None:
            check(
                ("search", "optimizer"), self.search.optimizer, self.optimizers, "an optimizer", fix
            )
        for src, over in self.search.per_source.items():
            if "optimizer" in over and over["optimizer"] is not None:
                path = ("search", "per_source", src, "optimizer")
                check(path, over["optimizer"], self.optimizers, "an optimizer", fix)
        n = self.search.num_levels
        if self.stability is not None:
            for i, lv in enumerate(self.stability.levels):
                if not 0 <= lv <= n:
                    raise _At(
                        ("stability", "levels", i),
                        f"level {lv} is outside 0..{n} (the search's levels); pick one in range",
                    )
        if self.transfer is None:  # a search-only suite (tickets, stability, Early-Bird)
            self._check_transfer_sources(check)  # tickets need a transfer
            if self.analysis.primary:
                raise _At(
                    ("analysis", "primary"),
                    "this suite transfers no tickets, so there is no comparison to name; "
                    "drop analysis.primary",
                )
            return self
        tr = self.transfer
        self._check_transfer_sources(check)
        self._check_transfer_names(check)
        if "own_ticket" in tr.controls:
            missing = [t for t in tr.targets if t not in sources]
            if missing:
                raise _At(
                    ("transfer", "controls", tr.controls.index("own_ticket")),
                    f"own_ticket needs a search on every target, but {', '.join(missing)} is "
                    "not in search.sources; add it there or drop own_ticket",
                )
        if tr.levels is not None:
            for i, lv in enumerate(tr.levels):
                if not 0 <= lv <= n:
                    raise _At(
                        ("transfer", "levels", i),
                        f"level {lv} is outside 0..{n} (the search's levels); pick one in range",
                    )
        self._check_analysis()
        return self

    def _check_tickets(self, check: Any) -> None:
        """Ticket names are not dataset names (results name a source by it), and the dataset a
        ticket was found on is one of the suite's."""
        for name, spec in self.tickets.items():
            if not _NAME_RE.match(name):
                raise _At(
                    ("tickets", name),
                    f"{_short(name)} is not a valid ticket name; use letters, digits, '_', '.' "
                    "and '-' (results name the source by it)",
                )
            if name in self.datasets:
                raise _At(
                    ("tickets", name),
                    f"{name!r} is also a dataset of this suite, and results name a source by it; "
                    "give the ticket another name",
                )
            if spec.dataset is not None:
                check(
                    ("tickets", name, "dataset"),
                    spec.dataset,
                    self.datasets,
                    "a dataset",
                    "define it under datasets or drop dataset",
                )

    def _check_transfer_sources(self, check: Any) -> None:
        """``transfer.sources`` name search sources or tickets, and every ticket is transferred."""
        tr = self.transfer
        if tr is None:
            if self.tickets:
                raise _At(
                    ("tickets",),
                    "tickets are only transferred, but this suite has no transfer section; "
                    "add transfer (targets, controls) or drop tickets",
                )
            return
        searched = self.search.sources if self.search is not None else ()
        pool = [*searched, *self.tickets]
        if tr.sources is not None:
            fix = "add it to search.sources" + (" or tickets" if self.tickets else "")
            what = "a search source or ticket" if self.tickets else "a search source"
            check(("transfer", "sources"), tr.sources, pool, what, fix)
            for name in self.tickets:
                if name not in tr.sources:
                    raise _At(
                        ("tickets", name),
                        f"ticket {name!r} is not in transfer.sources, so nothing would use it; "
                        "add it there or drop it",
                    )

    def _check_transfer_names(self, check: Any) -> None:
        """``transfer.targets`` name datasets and ``transfer.optimizers`` optimizers."""
        tr = self.transfer
        check(
            ("transfer", "targets"),
            tr.targets,
            self.datasets,
            "a dataset",
            "define it under datasets",
        )
        if tr.optimizers is not None:
            check(
                ("transfer", "optimizers"),
                tr.optimizers,
                self.optimizers,
                "an optimizer",
                "define it under optimizers",
            )

    def _without_search(self, check: Any) -> Suite:
        """A suite of tickets found elsewhere: no search, so nothing refers to search levels."""
        if not self.tickets or self.transfer is None:
            raise _At(
                ("search",),
                "required key is missing; add a search, or tickets found elsewhere and a "
                "transfer section that retrains them",
            )
        if self.stability is not None:
            raise _At(
                ("stability",),
                "stability analysis trains a search's levels, and this suite has no search; "
                "add a search or drop stability",
            )
        self._check_tickets(check)
        self._check_transfer_sources(check)
        self._check_transfer_names(check)
        tr = self.transfer
        check(
            ("train", "optimizer"),
            self.train.optimizer,
            self.optimizers,
            "an optimizer",
            "define it under optimizers",
        )
        if "own_ticket" in tr.controls:
            raise _At(
                ("transfer", "controls", tr.controls.index("own_ticket")),
                "own_ticket needs a search on every target, and this suite has no search; add a "
                "search of the targets or drop own_ticket",
            )
        if tr.levels is not None:
            raise _At(
                ("transfer", "levels"),
                "transfer.levels picks levels of a search, and this suite has none; drop it "
                "(tickets are transferred at their own levels; give a ticket's levels under "
                "tickets.<name>.levels)",
            )
        self._check_analysis()
        return self

    def _check_analysis(self) -> None:
        """The baseline is trained and every primary comparison names something of the suite."""
        tr = self.transfer
        assert tr is not None
        base = self.analysis.baseline
        own = base == "own_ticket" and set(tr.targets) & set(self.transfer_sources)
        if "baseline" in self.analysis.model_fields_set and base not in tr.controls and not own:
            raise _At(
                ("analysis", "baseline"),
                f"{base!r} is not among transfer.controls ({', '.join(tr.controls) or 'none'}), "
                "so there is nothing to compare with; add it to transfer.controls or pick one",
            )
        check_primaries(
            self.analysis.primary,
            baseline=base,
            arms=("ticket", *tr.controls),
            sources=self.transfer_sources,
            targets=tr.targets,
            optimizers=self.transfer_optimizers,
            levels=self._known_levels(),
        )

    def _known_levels(self) -> tuple[int, ...] | None:
        """Every level a transfer may train, or None where a ticket's levels are read from its
        files (known only once they are read)."""
        levels = set(self.transfer_levels)
        for name in self.transfer_sources:
            spec = self.tickets.get(name)
            if spec is None:
                continue
            if spec.levels is None:
                return None
            levels |= set(spec.levels)
        return tuple(sorted(levels))

    @property
    def results_subdir(self) -> Path:
        """Where the results go below the results root: ``<group>/<name>`` or ``<name>``."""
        return Path(self.group) / self.name if self.group else Path(self.name)

    def search_for(self, source: str) -> SearchSpec:
        """The search settings of one source: ``search`` with its ``per_source`` overrides."""
        over = self.search.per_source.get(source)
        if not over:
            return self.search
        for key in ("sources", "per_source"):
            if key in over:
                raise _At(
                    ("search", "per_source", source, key),
                    "cannot be overridden per source; set it in search",
                )
        base = self.search.model_dump(exclude={"per_source"})
        return SearchSpec.model_validate({**base, **over})

    def search_optimizer(self, source: str) -> str:
        """The optimizer key a source's tickets are searched with."""
        return self.search_for(source).optimizer or self.train.optimizer

    @property
    def searched_sources(self) -> tuple[str, ...]:
        """The datasets searched for tickets (none in a suite of tickets found elsewhere)."""
        return self.search.sources if self.search is not None else ()

    @property
    def transfer_sources(self) -> tuple[str, ...]:
        """Where transferred tickets come from: ``transfer.sources``, by default every searched
        source and every ticket of ``tickets``."""
        given = self.transfer.sources if self.transfer else None
        return given or (*self.searched_sources, *self.tickets)

    @property
    def transfer_optimizers(self) -> tuple[str, ...]:
        return (self.transfer.optimizers if self.transfer else None) or (self.train.optimizer,)

    @property
    def transfer_levels(self) -> tuple[int, ...]:
        """The levels searched sources are transferred at (tickets have their own levels)."""
        if self.search is None:
            return ()
        given = self.transfer.levels if self.transfer else None
        return given or tuple(range(self.search.num_levels + 1))

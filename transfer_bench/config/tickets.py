"""Tickets a suite did not search: ``TicketSpec``, one entry of the suite's ``tickets:`` section.

An entry names ticket files (a transfer-bench ``.ticket``, an OpenLTH level folder, a torch-prune
state dict, or ``zoo:<name>``); the suite transfers them like a searched source
(``transfer.sources``), next to controls derived from their masks. Reading, pinning and checking
the files happens before anything trains (``transfer_bench.runs.external``); this module only
states what a suite may write.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from transfer_bench.config.base import _At, _distinct, _Model
from transfer_bench.suite_yaml import short as _short

#: How a ticket file is read: ``auto`` tells the three apart by their first bytes (or a folder).
TicketFormat = Literal["auto", "ticket", "openlth", "torch-prune"]

#: A ``zoo:`` file names a ticket (or a group of tickets) of the zoo (``transfer-bench ticket zoo``).
ZOO_PREFIX = "zoo:"

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class TicketSpec(_Model):
    """A ticket found elsewhere, transferred like a searched source (name it in
    ``transfer.sources``, or leave that out to transfer every source and ticket).

    ``file`` is one ticket (one level) or a list (several densities): a transfer-bench ``.ticket``
    file (format version 1 or 2), an OpenLTH level folder (``.../level_<L>`` or its ``main``), a
    torch-prune state dict (``torch.save`` of a pruned model's ``state_dict``), or
    ``zoo:<name>`` (a ticket of the zoo, or a group of them: ``transfer-bench ticket zoo``). A
    path is relative to the working directory, as ``local:`` datasets are. An entry may be
    written as just its file(s): ``tickets: {lenet: "zoo:lenet_300_100-mnist5k"}``. ``format``
    says how to read the files (``auto``: by their first bytes, a folder is OpenLTH's); torch
    files are read with ``weights_only`` loading, so a pickle that would run code is refused.

    ``sha256`` pins each file (as ``sha256sum FILE`` prints it; ``plan`` prints every digest);
    the digest is recorded either way and enters the run ids, so a changed file is a new run.
    ``levels`` gives each file's level (default: the level the file records; a torch-prune file
    records none). ``dataset`` names the suite dataset the ticket was found on, for files that
    do not record their source (OpenLTH, torch-prune): its training rows seed the re-initialized
    head and the random masks (as a searched source's rows do) and its labels decide whether
    ``transfer.head: auto`` keeps the head. A ``.ticket`` file records its source itself; naming
    a dataset with other rows is an error. Without either, the draws are seeded by the file's
    digest and ``auto`` re-initializes the head. The model, its options and the input must be
    the suite's; every check runs before anything trains.
    """

    file: tuple[str, ...] = Field(min_length=1, max_length=100)
    format: TicketFormat = "auto"
    sha256: tuple[Sha256, ...] | None = None
    levels: tuple[Annotated[int, Field(ge=0, le=100)], ...] | None = None
    dataset: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """``name: FILE`` or ``name: [FILE, ...]`` mean ``name: {file: ...}``."""
        if isinstance(data, str | list | tuple):
            return {"file": data}
        return data

    @field_validator("file", "sha256", mode="before")
    @classmethod
    def _one_or_list(cls, v: Any, info: ValidationInfo) -> Any:
        """One value means a list of one; digests are compared in lower case."""
        if isinstance(v, str):
            v = [v]
        if info.field_name == "sha256" and isinstance(v, list | tuple):
            return [x.lower() if isinstance(x, str) else x for x in v]
        return v

    @field_validator("file")
    @classmethod
    def _distinct_files(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        _distinct(v, "file")
        return v

    @field_validator("levels")
    @classmethod
    def _distinct_levels(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        _distinct(v or (), "level")
        return v

    @model_validator(mode="after")
    def _one_per_file(self) -> TicketSpec:
        """``sha256`` and ``levels`` give one value per file (a ``zoo:`` group is checked when its
        entries are known, before anything trains)."""
        if any(f.startswith(ZOO_PREFIX) for f in self.file):
            return self
        for key in ("sha256", "levels"):
            values = getattr(self, key)
            if values is not None and len(values) != len(self.file):
                raise _At(
                    (key,),
                    f"{len(values)} value(s) for {len(self.file)} file(s) "
                    f"({_short(list(self.file))}); give one per file, in the same order",
                )
        return self

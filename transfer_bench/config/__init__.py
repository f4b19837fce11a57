"""Typed suite schema: the single source of configuration.

Suite files are untrusted input. A suite YAML file is read with a size limit, parsed by a safe
loader that rejects duplicate keys, non-text keys, deep nesting and alias bombs, and validated into
frozen pydantic models with ``extra="forbid"``, so every problem (unknown key, wrong type, value out
of range, reference to something undefined, duplicate entry) is one ``ConfigError`` line naming the
file, the line, the dotted key path and the fix. Everything downstream (planning, hashing,
training) reads these models only.

One module per job; each imports only the ones listed before it:

- ``base``: ``_Model``, the base of every spec, and the checks the specs share;
- ``messages``: pydantic's errors as the user's key path and a one-line problem with its fix;
- ``training``: input format, datasets, model, optimizers, training (``InputSpec`` ... ``TrainSpec``);
- ``search``: ticket search and stability analysis (``SearchSpec``, ``EarlyBirdSpec``,
  ``StabilitySpec``);
- ``transfer``: retraining on targets and the controls (``TransferSpec``);
- ``tickets``: tickets found elsewhere, transferred like searched ones (``TicketSpec``);
- ``analysis``: the report's comparison and paper claims (``AnalysisSpec``, ``ClaimSpec``);
- ``suite``: ``Suite`` and the checks that span its parts;
- ``load``: ``parse_suite``, ``load_suite``, ``apply_scale``, ``format_validation_error``;
- ``reference``: the suite-key reference (``docs/suite-reference.md``) generated from these models
  (not imported here: only the docs and their test use it).

This package re-exports the public names, so ``from transfer_bench.config import X`` is the way in.
"""

from __future__ import annotations

from transfer_bench.config.analysis import (
    AnalysisSpec,
    ArmSelector,
    ClaimCheck,
    ClaimExpectation,
    ClaimSpec,
    PlotKind,
    PrimaryComparison,
    check_primaries,
)
from transfer_bench.config.base import Fraction01
from transfer_bench.config.load import (
    apply_scale,
    format_validation_error,
    load_suite,
    parse_suite,
)
from transfer_bench.config.search import (
    PRUNE_AT_INIT,
    EarlyBirdSpec,
    SearchMethod,
    SearchSpec,
    StabilitySpec,
)
from transfer_bench.config.suite import Suite, TrackerName
from transfer_bench.config.tickets import TicketFormat, TicketSpec
from transfer_bench.config.training import (
    DatasetSpec,
    InputSpec,
    ModelSpec,
    OptimizerSpec,
    TrainSpec,
)
from transfer_bench.config.transfer import CONTROLS, Control, TransferSpec
from transfer_bench.errors import ConfigError

__all__ = [
    "CONTROLS",
    "PRUNE_AT_INIT",
    "AnalysisSpec",
    "ArmSelector",
    "ClaimCheck",
    "ClaimExpectation",
    "ClaimSpec",
    "ConfigError",
    "Control",
    "DatasetSpec",
    "EarlyBirdSpec",
    "Fraction01",
    "InputSpec",
    "ModelSpec",
    "OptimizerSpec",
    "PlotKind",
    "PrimaryComparison",
    "SearchMethod",
    "SearchSpec",
    "StabilitySpec",
    "Suite",
    "TicketFormat",
    "TicketSpec",
    "TrackerName",
    "TrainSpec",
    "TransferSpec",
    "apply_scale",
    "check_primaries",
    "format_validation_error",
    "load_suite",
    "parse_suite",
]

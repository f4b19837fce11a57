"""Reading suites: YAML document or file to a ``Suite``, or to one line of ``ConfigError``.

``parse_suite`` validates an already-parsed document, ``load_suite`` reads a file (safely, with
its line numbers for messages) at an optional scale, ``apply_scale`` applies a scale's overrides
and ``format_validation_error`` writes a pydantic error as ``<file>[: line N]: <key path>:
<problem; fix>``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from transfer_bench.config.base import _Model
from transfer_bench.config.messages import (
    _clean_loc,
    _consequence,
    _first_error,
    _kind,
    _names,
    _problem,
)
from transfer_bench.config.suite import Suite
from transfer_bench.errors import ConfigError
from transfer_bench.suite_yaml import Loc, line_finder, read_suite_text, read_yaml
from transfer_bench.suite_yaml import format_loc as _format_loc
from transfer_bench.suite_yaml import one_line as _one_line


def format_validation_error(
    err: ValidationError,
    where: str,
    root: type[BaseModel] | None = None,
    line_of: Callable[[Loc], int | None] | None = None,
) -> str:
    """One line ``<file>[: line N]: <key path>: <problem; fix>`` for the first error (+ a count).

    ``root`` is the model ``err`` came from (paths and "did you mean" hints are relative to it;
    by default the model named in the error); ``line_of`` maps a key path to its line in the YAML
    file, when known.
    """
    if root is None:
        models = {m.__name__: m for m in _Model.__subclasses__()}
        root = models.get(err.title, Suite)
    first = _first_error(err)
    loc, msg = _problem(first, root)
    line = line_of(loc) if line_of is not None else None
    at = f"{where}: line {line}" if line else where
    others = [(_clean_loc(tuple(e["loc"]), root)[0], e["type"]) for e in err.errors()]
    more = len({o for o, kind in others if not _consequence(o, kind, loc)})
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return _one_line(f"{at}: {_format_loc(loc)}: {msg}{tail}")


def _not_a_mapping(data: Any) -> str:
    """Why a document that is not a mapping is no suite, and what a suite looks like."""
    what = "the file is empty" if data is None else f"the document is {_kind(data)}, not a mapping"
    return (
        f"{what}; a suite is a mapping of keys (name, seeds, model, datasets, search, ...); "
        "see suites/quickstart.yaml"
    )


def parse_suite(
    data: Any, where: str = "suite", line_of: Callable[[Loc], int | None] | None = None
) -> Suite:
    """Validate an already-parsed YAML document into a ``Suite`` or raise a one-line ``ConfigError``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: {_not_a_mapping(data)}")
    try:
        return Suite.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, where, Suite, line_of)) from None
    except RecursionError:  # a self-referencing structure built in Python
        raise ConfigError(f"{where}: the suite refers to itself (a cycle); write it out") from None


def apply_scale(data: dict[str, Any], scale: str, where: str) -> dict[str, Any]:
    """Apply the overrides of ``scales.<scale>`` (dotted keys -> values) to a raw suite document.

    The scaled suite is named ``<name>-<scale>`` (unless the scale sets ``name``), so its results
    and report never mix with the full-scale ones.
    """
    scales = data.get("scales") or {}
    if not isinstance(scales, dict):
        raise ConfigError(f"{where}: scales: expected a mapping of scale names to overrides")
    if scale not in scales:
        known = _names(sorted(map(str, scales)))
        raise ConfigError(f"{where}: --scale {scale!r} is not in the suite's scales ({known})")
    out = copy.deepcopy(data)
    overrides = scales[scale] or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: scales.{scale}: must map dotted keys to values")
    for dotted, value in overrides.items():
        cur = out
        *parents, last = str(dotted).split(".")
        for part in parents:
            nxt = cur.get(part)
            if nxt is None:
                nxt = cur[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(
                    f"{where}: scales.{scale}.{dotted}: {part!r} is not a mapping; "
                    "override the whole value instead"
                )
            cur = nxt
        cur[last] = value
    if "name" not in overrides:
        out["name"] = f"{data.get('name', 'suite')}-{scale}"
    return out


def load_suite(path: str | Path, scale: str | None = None) -> Suite:
    """Read and validate a suite YAML file (optionally at one of its ``scales``).

    Every problem is a one-line ``ConfigError`` naming the file, the line when known, the key path
    and the fix.
    """
    p = Path(path)
    where = str(p)
    data, root = read_yaml(read_suite_text(p), where)
    if not isinstance(data, dict):
        line = f": line {root.start_mark.line + 1}" if root is not None and data is not None else ""
        raise ConfigError(f"{where}{line}: {_not_a_mapping(data)}")
    if scale is not None:
        data = apply_scale(data, scale, where)
    return parse_suite(data, where, line_finder(root, scale))

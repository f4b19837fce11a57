"""The pieces of a friendly validation error: key paths, one-line problems and their fixes.

``_problem`` turns one pydantic error into the user's key path (``_clean_loc``) and a one-line
message that says how to fix it (unknown key with a "did you mean", wrong type in YAML's words,
a validator's ``_At`` message at its own path); ``_first_error`` picks the error to show and
``_consequence`` tells which other errors only follow from it. ``_names`` writes a bounded list of
names for any message. The whole line (file, line number, count of further problems) is put
together by ``transfer_bench.config.load.format_validation_error``.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from transfer_bench.config.base import _At, _element_type, _unwrap
from transfer_bench.suite_yaml import Loc
from transfer_bench.suite_yaml import short as _short


def _names(names: Iterable[Any], limit: int = 12) -> str:
    """A bounded, comma-separated list of names for a message."""
    names = [str(n) for n in names]
    shown = ", ".join(names[:limit]) or "none"
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _clean_loc(loc: tuple[Any, ...], root: type[BaseModel]) -> tuple[Loc, type[BaseModel] | None]:
    """Pydantic's error location as the user's key path, and the model holding its last key.

    Union member tags (``'int'``, ``'str'``) and ``'[key]'`` markers are dropped; mapping keys become
    text, so only list indices stay integers.
    """
    ann: Any = root
    out: list[str | int] = []
    parent: type[BaseModel] | None = None
    for part in loc:
        ann = _unwrap(ann)
        origin = get_origin(ann)
        parent = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if part == "[key]":
            continue
        if origin in (Union, types.UnionType):  # pydantic names the union member tried
            ann = None
            continue
        if parent is not None:
            out.append(str(part))
            field = parent.model_fields.get(part) if isinstance(part, str) else None
            ann = field.annotation if field is not None else None
        elif origin is dict:
            out.append(str(part))
            ann = get_args(ann)[1] if get_args(ann) else None
        elif origin in (tuple, list) and isinstance(part, int):
            out.append(part)
            ann = _element_type(ann, part)
        else:
            out.append(part if isinstance(part, int) else str(part))
            ann = None
    return tuple(out), parent


def _kind(value: Any) -> str:
    """What YAML made of a value, in the user's words."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def _problem(error: Any, root: type[BaseModel]) -> tuple[Loc, str]:
    """The key path and a one-line message (with the fix) for one pydantic error."""
    loc, parent = _clean_loc(tuple(error["loc"]), root)
    kind, msg = error["type"], error["msg"]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, _At):
        return loc + cause.path, cause.msg
    got = f" (got {_short(error['input'])})" if "input" in error else ""
    if kind == "extra_forbidden":
        allowed = list(parent.model_fields) if parent is not None else []
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        msg = f"unknown key {_short(loc[-1])}; " + (
            f"did you mean {hint[0]!r}?"
            if hint
            else f"remove it (allowed here: {_names(allowed, 30)})"
        )
    elif kind == "missing":
        msg = "required key is missing; add it"
    elif "[key]" in error["loc"]:
        msg = f"keys must be text, got {_kind(error.get('input'))}{got}; quote the key"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        inp = error.get("input")
        msg = f"expected a mapping (key: value), got {_kind(inp)}: {_short(inp)}"
    elif kind in ("tuple_type", "list_type"):
        inp = error.get("input")
        msg = f"expected a list such as [a, b], got {_kind(inp)}: {_short(inp)}"
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    else:
        msg = re.sub(r"^(Tuple|List)\b", "list", msg).replace(" after validation", "")
        msg = re.sub(r"^Dictionary\b", "mapping", msg) + got
        if kind == "literal_error":
            options = re.findall(r"'([^']*)'", (error.get("ctx") or {}).get("expected", ""))
            hint = difflib.get_close_matches(str(error.get("input")), options, n=1)
            msg += f"; did you mean {hint[0]!r}?" if hint else ""
    return loc, msg


def _first_error(err: ValidationError) -> Any:
    """The error to show: an unknown key first (a misspelt key also makes a required one missing)."""
    errors = err.errors()
    return next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])


def _consequence(other: Loc, other_type: str, shown: Loc) -> bool:
    """Whether an error at ``other`` is the shown one or follows from it: a failed list item also
    makes its list too short, a misspelt key also leaves a required key missing."""
    n = min(len(other), len(shown))
    return other[:n] == shown[:n] or (other_type == "missing" and other[:-1] == shown[:-1])

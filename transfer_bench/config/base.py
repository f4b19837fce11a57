"""The base of every suite model and the checks they share.

``_Model`` is the frozen, ``extra="forbid"`` pydantic base of every spec; it refuses YAML booleans
where the field does not take one (pydantic's lax mode would read ``true`` as 1). ``_At`` is the
error a validator raises to name the key path of a problem below the field it checks, and
``_distinct`` rejects a list with a repeated entry. ``_unwrap``, ``_admits_bool`` and
``_element_type`` read field annotations (also used to turn pydantic's error locations into key
paths, in ``messages``).
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from transfer_bench.suite_yaml import Loc
from transfer_bench.suite_yaml import short as _short

Fraction01 = Annotated[float, Field(gt=0.0, lt=1.0)]


class _At(ValueError):
    """A validator's problem at ``path`` (relative to the model being validated)."""

    def __init__(self, path: Loc, msg: str) -> None:
        super().__init__(msg)
        self.path = tuple(path)
        self.msg = msg


def _distinct(items: Iterable[Any], what: str = "entry") -> None:
    """Reject a list with a repeated entry, naming the index of the repeat."""
    seen: dict[Any, int] = {}
    for i, x in enumerate(items):
        if x in seen:
            raise _At(
                (i,), f"{what} {_short(x)} is listed twice (also at [{seen[x]}]); list it once"
            )
        seen[x] = i


def _unwrap(ann: Any) -> Any:
    """Strip ``Annotated`` and ``Optional`` from an annotation (a real union is kept)."""
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(ann) if a is not type(None)]
            if len(members) != 1:
                return ann
            ann = members[0]
        else:
            return ann


def _admits_bool(ann: Any) -> bool:
    ann = _unwrap(ann)
    origin = get_origin(ann)
    if ann is bool or ann is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_admits_bool(a) for a in get_args(ann))
    if origin is Literal:
        return any(isinstance(a, bool) for a in get_args(ann))
    return False


def _element_type(ann: Any, i: int) -> Any:
    """The annotation of item ``i`` of a tuple/list annotation (``None`` if not a sequence)."""
    ann = _unwrap(ann)
    origin, args = get_origin(ann), get_args(ann)
    if origin is list and args:
        return args[0]
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        return args[i] if i < len(args) else None
    return None


_BOOL_FIX = "YAML reads true/false/yes/no/on/off as booleans; write a value of the right type"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_stray_booleans(cls, v: Any, info: ValidationInfo) -> Any:
        """Pydantic's lax mode reads ``true`` as 1 for numbers; a suite must say what it means."""
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return v
        if isinstance(v, bool) and not _admits_bool(field.annotation):
            raise ValueError(f"got the boolean {str(v).lower()}; {_BOOL_FIX}")
        if isinstance(v, list | tuple):
            for i, x in enumerate(v):
                elem = _element_type(field.annotation, i)
                if isinstance(x, bool) and elem is not None and not _admits_bool(elem):
                    raise _At((i,), f"got the boolean {str(x).lower()}; {_BOOL_FIX}")
        return v

"""The suite-key reference (``docs/suite-reference.md``), generated from the pydantic schema.

Every key of a suite, section by section in the order of ``Suite``: its type, default and allowed
values, read from the models' fields and their constraints, under each model's docstring (which
says what the keys mean). Generated, so it cannot drift from what ``load_suite`` accepts;
``tests/test_suite_reference.py`` checks the committed file is current. Regenerate with
``python -m transfer_bench.config.reference > docs/suite-reference.md``.
"""

from __future__ import annotations

import inspect
import json
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from transfer_bench.config.suite import Suite
from transfer_bench.config.training import ModelSpec

HEADER = """\
# Suite reference

Every key a suite file takes, generated from the schema (`transfer_bench/config/`) by
`python -m transfer_bench.config.reference > docs/suite-reference.md`; do not edit by hand
(`tests/test_suite_reference.py` checks that this file is current). A key left out takes its
default; an unknown key, a wrong type or a value out of range is a one-line error naming the
key's path. `suites/quickstart.yaml` is a small commented example, and the suites under `suites/`
use most keys. Cross-key rules (every name a key refers to must be defined, levels in range, ...)
are stated in each section's text.
"""

_BOUNDS = ((at.Ge, "ge", ">="), (at.Gt, "gt", ">"), (at.Le, "le", "<="), (at.Lt, "lt", "<"))
_SCALARS = {int: "integer", float: "number", str: "text", bool: "true/false", Any: "any"}


def _number(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() and abs(v) >= 1000 else f"{v:g}"


def _constraints(metadata: list[Any], text: bool = False) -> list[str]:
    """Readable constraints of a field's or an annotation's metadata ("> 0", "at least 1 item";
    lengths of ``text`` in characters)."""
    out = []
    unit = "character" if text else "item"
    for m in metadata:
        if isinstance(m, FieldInfo):
            out += _constraints(m.metadata, text)
            continue
        for kind, attr, sign in _BOUNDS:
            if isinstance(m, kind):
                out.append(f"{sign} {_number(getattr(m, attr))}")
        if isinstance(m, at.MinLen) and m.min_length:
            out.append(f"at least {m.min_length:,} {unit}{'' if m.min_length == 1 else 's'}")
        if isinstance(m, at.MaxLen):
            out.append(f"at most {m.max_length:,} {unit}s")
        pattern = getattr(m, "pattern", None)
        if pattern:
            out.append(f"matches `{pattern}`")
    return out


def _section_key(model: type[BaseModel], sections: dict[type, list[str]]) -> str:
    keys = sections[model]
    return f"[`{keys[0]}`](#{_anchor(', '.join(keys))})"


def _anchor(key: str) -> str:
    return "".join(c for c in key.lower() if c.isalnum() or c in "-_ ").replace(" ", "-")


def _type_text(ann: Any, sections: dict[type, list[str]]) -> str:
    """An annotation in words: "list of number (each > 0)", "one of `imp`, `early_bird`"."""
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        inner = _type_text(args[0], sections)
        limits = _constraints(list(args[1:]))
        return f"{inner} ({', '.join(limits)})" if limits else inner
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        text = " or ".join(_type_text(a, sections) for a in members)
        return f"{text}, or null" if len(members) < len(args) else text
    if origin in (tuple, list):
        if len(args) == 2 and args[1] is Ellipsis or origin is list:
            return f"list of {_type_text(args[0], sections)}"
        return "[" + ", ".join(_type_text(a, sections) for a in args) + "]"
    if origin is dict:
        return f"mapping of name to {_type_text(args[1], sections)}"
    if inspect.isclass(ann) and issubclass(ann, BaseModel):
        return _section_key(ann, sections)
    return _SCALARS.get(ann, getattr(ann, "__name__", str(ann)))


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, dict) and value:
            return "built-in: " + ", ".join(f"`{k}`" for k in value)
        return "`{}`" if isinstance(value, dict) else f"`{json.dumps(value)}`"
    if field.default is PydanticUndefined:
        return "**required**"
    value = field.default
    if isinstance(value, BaseModel):
        return "its defaults"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def _models(model: type[BaseModel], key: str, found: dict[type, list[str]]) -> None:
    """Every model reachable from ``model``, with the key paths it sits at (in schema order)."""
    first = model not in found
    found.setdefault(model, []).append(key)
    if not first:
        return
    for name, field in model.model_fields.items():
        for sub in _nested(field.annotation):
            child = f"{key}.{name}" if key else name
            if _is_mapping(field.annotation):
                child += ".<name>"
            elif _is_list(field.annotation):
                child += "[]"
            _models(sub, child, found)


def _nested(ann: Any) -> list[type[BaseModel]]:
    if inspect.isclass(ann) and issubclass(ann, BaseModel):
        return [ann]
    return [m for a in get_args(ann) for m in _nested(a)]


def _is_mapping(ann: Any) -> bool:
    return get_origin(ann) is dict or any(_is_mapping(a) for a in get_args(ann))


def _is_list(ann: Any) -> bool:
    origin, args = get_origin(ann), get_args(ann)
    if origin in (tuple, list) and (origin is list or (len(args) == 2 and args[1] is Ellipsis)):
        return True
    return origin in (Union, types.UnionType) and any(_is_list(a) for a in args)


def _section(model: type[BaseModel], keys: list[str], sections: dict[type, list[str]]) -> str:
    title = "## " + ", ".join(f"`{k}`" for k in keys) if keys[0] else "## Top level"
    doc = inspect.cleandoc(model.__doc__ or "")
    lines = [title, "", doc, "", "| key | type | default |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        kind = _type_text(field.annotation, sections)
        limits = _constraints(field.metadata, text=field.annotation is str)
        if limits:
            kind += f" ({', '.join(limits)})"
        lines.append(f"| `{name}` | {kind} | {_default_text(field)} |")
    if model is ModelSpec:
        from transfer_bench.models import list_models  # lazy: the registry imports torch

        names = ", ".join(f"`{n}`" for n in list_models())
        lines += ["", f"Registered models (`name`): {names}."]
    return "\n".join(lines)


def suite_reference() -> str:
    """The whole reference as Markdown (``docs/suite-reference.md``)."""
    sections: dict[type, list[str]] = {}
    _models(Suite, "", sections)
    parts = [HEADER]
    for model, keys in sections.items():
        parts.append(_section(model, keys, sections))
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    print(suite_reference(), end="")

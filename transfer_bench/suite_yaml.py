"""Reading a suite file, which is untrusted input, into plain Python data with line numbers.

The text is read with a size limit and must be UTF-8 without control characters; a ``SafeLoader``
subclass rejects duplicate keys (with both lines), non-text keys, YAML tags, deep nesting and alias
bombs (expansion is sized without expanding), so nothing reaches validation that could hang the
process or exhaust memory. Problems are one-line ``ConfigError``s with the file and line.
"""

from __future__ import annotations

import re
import reprlib
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from transfer_bench.errors import ConfigError

#: Limits on a suite file (real suites are a few KB with a few dozen keys and no aliases).
MAX_SUITE_BYTES = 1_000_000
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 20_000
MAX_YAML_DEPTH = 32

Loc = tuple[str | int, ...]


def format_loc(loc: Loc) -> str:
    """``search.per_source.a.rate``, ``transfer.controls[1]`` (long keys shortened)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if len(part) <= 40 else part[:37] + "..."
            out += f".{text}" if out else text
    return out or "(top level)"


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 50
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 2


def short(value: Any) -> str:
    """A bounded repr (inputs may be huge or deeply nested)."""
    return _REPR.repr(value)


def one_line(text: str) -> str:
    return re.sub(r"\s*[\r\n]+\s*", " ", text)


# --- ----------------------------------------------------------------

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TAG_WORDS = {
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:timestamp": "a date",
}


class _SuiteLoader(yaml.SafeLoader):
    """``SafeLoader`` that bounds aliases, nodes and nesting while composing (before anything is
    expanded), and knows the key path of the node being composed for its messages."""

    def __init__(self, stream: str, where: str) -> None:
        super().__init__(stream)
        self.where = where
        self.aliases = 0
        self.nodes = 0
        self.path: list[str | int] = []

    def _fail(self, event: Any, msg: str) -> ConfigError:
        path = f"{format_loc(tuple(self.path))}: " if self.path else ""
        return ConfigError(f"{self.where}: line {event.start_mark.line + 1}: {path}{msg}")

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(parent, MappingNode):
            part = index.value if isinstance(index, ScalarNode) else "(key)"
        elif isinstance(parent, SequenceNode):
            part = index
        else:
            part = None
        if part is not None:
            self.path.append(part)
        try:
            if isinstance(event, yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    raise self._fail(
                        event,
                        f"more than {MAX_YAML_ALIASES} YAML aliases (*name); aliases can expand "
                        "exponentially, so write the values out",
                    )
            else:
                self.nodes += 1
                if self.nodes > MAX_YAML_NODES:
                    raise self._fail(
                        event, f"more than {MAX_YAML_NODES} YAML values; a suite is far smaller"
                    )
            if len(self.path) > MAX_YAML_DEPTH:
                raise self._fail(
                    event, f"nested deeper than {MAX_YAML_DEPTH} levels; flatten the document"
                )
            return super().compose_node(parent, index)
        finally:
            if part is not None:
                self.path.pop()


def _check_tree(root: Node, where: str) -> None:
    """Reject alias cycles, alias bombs, over-deep expansion, duplicate and non-text keys.

    Sizes are memoized per node, so the walk costs the number of distinct nodes even when aliases
    would expand the document exponentially.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)
    active: set[int] = set()

    def fail(node: Node, path: Loc, msg: str) -> ConfigError:
        at = f"{format_loc(path)}: " if path else ""
        return ConfigError(f"{where}: line {node.start_mark.line + 1}: {at}{msg}")

    def visit(node: Node, path: Loc, parent: Node) -> tuple[int, int]:
        """(expanded size, height) of ``node``; ``parent`` locates an alias (the anchor's own
        mark is elsewhere)."""
        key = id(node)
        if key in active:
            raise fail(node, path, "a YAML alias refers to a value that contains it; remove it")
        if len(path) + sizes.get(key, (0, 0))[1] > MAX_YAML_DEPTH:
            raise fail(
                parent,
                path,
                f"aliases nest values deeper than {MAX_YAML_DEPTH} levels; write the values out",
            )
        if key in sizes:
            return sizes[key]
        active.add(key)
        size, height = 1, 0
        children: list[tuple[Node, Loc]] = []
        if isinstance(node, MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                if not isinstance(k, ScalarNode):
                    raise fail(k, path, "mapping keys must be plain text; quote the key")
                here = (*path, k.value)
                if k.tag == _MERGE_TAG:
                    children.append((v, path))
                    continue
                if k.tag != _STR_TAG:
                    what = _TAG_WORDS.get(k.tag, f"type {k.tag}")
                    raise fail(
                        k,
                        here,
                        f"YAML reads the key {short(k.value)} as {what}; quote it if it is a name",
                    )
                if k.value in seen:
                    raise fail(
                        k,
                        here,
                        f"duplicate key {short(k.value)} (first at line {seen[k.value]}); keep one",
                    )
                seen[k.value] = k.start_mark.line + 1
                children.append((v, here))
        elif isinstance(node, SequenceNode):
            children = [(v, (*path, i)) for i, v in enumerate(node.value)]
        for child, child_path in children:
            s, h = visit(child, child_path, node)
            size, height = size + s, max(height, h + 1)
            if size > MAX_YAML_NODES:
                raise fail(
                    node,
                    path,
                    f"YAML aliases expand to more than {MAX_YAML_NODES} values (an alias bomb?); "
                    "write the values out",
                )
        active.discard(key)
        sizes[key] = (size, height)
        return size, height

    visit(root, (), root)


def _yaml_error(e: yaml.YAMLError, text: str, where: str) -> ConfigError:
    """One line for a parser error, with its line and column."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    context = getattr(e, "context", None)
    if isinstance(e, yaml.reader.ReaderError):
        line = text[: e.position].count("\n") + 1
        return ConfigError(
            f"{where}: line {line}: unacceptable character #x{e.character:04x} in YAML; "
            "a suite must be plain UTF-8 text"
        )
    if isinstance(e, yaml.constructor.ConstructorError) and mark is not None:
        return ConfigError(
            one_line(
                f"{where}: line {mark.line + 1}, column {mark.column + 1}: YAML tag not allowed "
                f"({problem}); a suite uses plain values only, remove the tag"
            )
        )
    if context == "expected a single document in the stream" and mark is not None:
        return ConfigError(
            f"{where}: line {mark.line + 1}: a second YAML document ('---'); "
            "keep one suite per file"
        )
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = f"{problem} ({context})" if problem and context else problem or str(e)
    return ConfigError(
        one_line(f"{where}: {at}invalid YAML: {what}; check the indentation, quotes and brackets")
    )


def read_suite_text(p: Path) -> str:
    """The file's text: an existing regular file, at most ``MAX_SUITE_BYTES``, UTF-8, not binary."""
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such suite file; check the path") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read suite file ({e.strerror}); check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{p}: is a directory; give the path of a suite .yaml file in it")
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{p}: not a regular file; give the path of a suite .yaml file")
    too_big = (
        f"{p}: suite file is over the {MAX_SUITE_BYTES:,}-byte limit; "
        "a suite is a short YAML file, check the path"
    )
    if st.st_size > MAX_SUITE_BYTES:
        raise ConfigError(too_big)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_SUITE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{p}: cannot read suite file ({e.strerror}); check the path") from None
    if len(raw) > MAX_SUITE_BYTES:
        raise ConfigError(too_big)
    if b"\x00" in raw:
        raise ConfigError(f"{p}: binary file (NUL bytes), not a YAML suite; check the path")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{p}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the suite as UTF-8"
        ) from None


def read_yaml(text: str, where: str) -> tuple[Any, Node | None]:
    """Parse one untrusted YAML document into plain data (and its node tree, for line numbers)."""
    loader = None
    try:
        loader = _SuiteLoader(text, where)  # the reader checks the characters here
        node = loader.get_single_node()
        if node is None or (node.tag == "tag:yaml.org,2002:null" and node.value in ("", "~")):
            return None, node
        _check_tree(node, where)
        return loader.construct_document(node), node
    except yaml.YAMLError as e:
        raise _yaml_error(e, text, where) from None
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply; flatten the document") from None
    finally:
        if loader is not None:
            loader.dispose()


def _find_line(node: Node | None, loc: Loc) -> int | None:
    """The line of the deepest node along ``loc`` (a key's own line when the path ends at a key)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, MappingNode):
            hit = [(k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == part]
            if not hit:
                break
            key, node = hit[-1]
            line = key.start_mark.line + 1
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def line_finder(root: Node | None, scale: str | None) -> Callable[[Loc], int | None]:
    """Map a key path of the (possibly scaled) document to a line of the file."""
    overrides: list[tuple[tuple[str, ...], Node]] = []
    if scale is not None and isinstance(root, MappingNode):
        for k, v in root.value:
            if isinstance(k, ScalarNode) and k.value == "scales" and isinstance(v, MappingNode):
                for sk, sv in v.value:
                    if isinstance(sk, ScalarNode) and sk.value == scale:
                        if isinstance(sv, MappingNode):
                            overrides += [
                                (tuple(str(ok.value).split(".")), ov)
                                for ok, ov in sv.value
                                if isinstance(ok, ScalarNode)
                            ]

    def line_of(loc: Loc) -> int | None:
        for parts, value in reversed(overrides):  # the last override of a path wins
            if tuple(map(str, loc[: len(parts)])) == parts:
                return _find_line(value, loc[len(parts) :])
        return _find_line(root, loc)

    return line_of

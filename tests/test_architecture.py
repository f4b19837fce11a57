"""The layering rule of the README's "Architecture" section, checked on the import graph.

Every import of a ``transfer_bench`` module, at module level or inside a function, must go to the
same package or to a package of a lower layer; the module graph must have no cycle; and an import
inside a function (kept lazy so that start-up stays cheap) must say so in a ``# lazy`` comment on
the line above it or at its end, or the module must say it once for all its functions in a line
starting ``# lazy imports:`` (the command line, whose commands each import only what they use). The checker is tested on a small fake package first, so a broken
checker cannot pass the real package.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "transfer_bench"

#: Lowest first. A package may import its own modules and any package of a lower layer; packages
#: of one layer may import each other as long as no cycle forms. The README lists the same order.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "fileio", "seeding", "machine", "faults", "suite_yaml", "lazy"),
    ("devices",),
    ("models",),
    ("config", "head_policy"),
    ("data",),
    ("pruning",),
    ("training",),
    ("tickets",),
    ("runs",),
    ("stages",),
    ("runner",),
    ("analysis",),
    ("progress", "tracking", "api"),
    ("cli", "entry"),
)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "transfer_bench.runner.execute"
    target: str  # the imported module, e.g. "transfer_bench.stages"
    line: int
    lazy: bool  # inside a function
    commented: bool  # a "# lazy" comment above the import group or at its end


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    """Target modules of ``from X import a, b`` (a submodule when ``X.a`` is one, else ``X``)."""
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        out.append(sub if sub in known else base)
    return out


def _has_lazy_comment(lines: list[str], first: int, stmt: ast.stmt) -> bool:
    """A ``# lazy`` comment on the line above ``first`` (1-based) or on the statement's lines."""
    above = lines[first - 2].strip() if first >= 2 else ""
    own = " ".join(lines[stmt.lineno - 1 : (stmt.end_lineno or stmt.lineno)])
    return above.startswith("# lazy") or "# lazy" in own


@dataclass(frozen=True)
class _Source:
    module: str
    lines: list[str]
    is_package: bool
    whole_module: bool  # a "# lazy imports:" line covers every function of the module
    known: frozenset[str]
    top: str


def _visit(src: _Source, body: list[ast.stmt], in_function: bool) -> Iterator[Import]:
    group_start: int | None = None
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            if group_start is None:
                group_start = stmt.lineno
            if isinstance(stmt, ast.Import):
                targets = [a.name for a in stmt.names]
            else:
                targets = _resolve(stmt, src.module, src.is_package, set(src.known))
            commented = src.whole_module or _has_lazy_comment(src.lines, group_start, stmt)
            for t in targets:
                if t == src.top or t.startswith(src.top + "."):
                    yield Import(src.module, t, stmt.lineno, in_function, commented)
            continue
        group_start = None
        nested = in_function or isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef)
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                yield from _visit(src, inner, nested)
        for handler in getattr(stmt, "handlers", ()):
            yield from _visit(src, handler.body, nested)


def imports_of(root: Path) -> Iterator[Import]:
    """Every import of a module of package ``root`` by a module of it."""
    files = sorted(root.rglob("*.py"))
    known = frozenset(module_name(f, root) for f in files)
    for f in files:
        lines = f.read_text().splitlines()
        src = _Source(
            module=module_name(f, root),
            lines=lines,
            is_package=f.name == "__init__.py",
            whole_module=any(line.startswith("# lazy imports:") for line in lines),
            known=known,
            top=root.name,
        )
        yield from _visit(src, ast.parse("\n".join(lines)).body, False)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violations(root: Path, layers: tuple[tuple[str, ...], ...]) -> list[str]:
    """Every breach of the rule in package ``root``, as ``file:line: what; how to fix`` lines."""
    rank = {pkg: i for i, layer in enumerate(layers) for pkg in layer}
    found: list[str] = []
    graph: dict[str, set[str]] = {}
    packages: dict[str, set[str]] = {}
    for imp in dict.fromkeys(imports_of(root)):
        where = f"{imp.module.replace('.', '/')}.py:{imp.line}"
        src, dst = _package(imp.module), _package(imp.target)
        graph.setdefault(imp.module, set()).add(imp.target)
        if src and dst and src != dst:
            packages.setdefault(src, set()).add(dst)
        if src and dst and src != dst:
            if src not in rank or dst not in rank:
                missing = src if src not in rank else dst
                found.append(f"{where}: package {missing!r} is in no layer; add it to LAYERS")
            elif rank[dst] > rank[src]:
                found.append(
                    f"{where}: {src} imports {imp.target}, a higher layer; move the shared code "
                    "down or the caller up"
                )
        if imp.lazy and not imp.commented:
            found.append(
                f"{where}: import of {imp.target} inside a function without a '# lazy: <why>' "
                "comment; import it at the top unless that makes start-up costly"
            )
    found.extend(f"import cycle: {' -> '.join(c)}" for c in _cycles(graph))
    found.extend(f"package cycle: {' -> '.join(c)}" for c in _cycles(packages))
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append([*sorted(comp), sorted(comp)[0]])

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


# ------------------------------------------------------------------------------- the checker


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "transfer_bench"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


FAKE_LAYERS = (("runs",), ("stages",), ("runner",))


def test_checker_finds_the_old_runner_stages_cycle(tmp_path: Path) -> None:
    """Before issue 16 the runner imported the stages inside a function and the stages imported the
    runner's context back: an upward import and a cycle, hidden from a reader by the laziness."""
    root = _fake_package(
        tmp_path,
        {
            "runner/__init__.py": "",
            "runner/context.py": "class Context: ...\n",
            "runner/execute.py": (
                "from transfer_bench.runner.context import Context\n\n"
                "def run():\n    from transfer_bench.stages.imp import run_imp\n"
            ),
            "stages/__init__.py": "",
            "stages/imp.py": "from transfer_bench.runner.context import Context\n",
        },
    )
    found = violations(root, FAKE_LAYERS)
    assert any("stages imports transfer_bench.runner.context, a higher layer" in f for f in found)
    assert any("without a '# lazy" in f for f in found)


def test_checker_finds_a_package_cycle_within_a_layer(tmp_path: Path) -> None:
    """No module cycle (execute -> imp -> context), but the packages depend on each other."""
    root = _fake_package(
        tmp_path,
        {
            "runner/__init__.py": "",
            "runner/context.py": "",
            "runner/execute.py": "from transfer_bench.stages.imp import run_imp\n",
            "stages/__init__.py": "",
            "stages/imp.py": "from transfer_bench.runner.context import Context\n",
        },
    )
    found = violations(root, (("runner", "stages"),))
    assert found == ["package cycle: runner -> stages -> runner"]


def test_checker_finds_a_cycle_within_a_package(tmp_path: Path) -> None:
    root = _fake_package(
        tmp_path,
        {
            "runs/__init__.py": "",
            "runs/a.py": "from transfer_bench.runs import b\n",
            "runs/b.py": (
                "def f():\n    # lazy: start-up\n    from transfer_bench.runs.a import x\n"
            ),
        },
    )
    found = violations(root, FAKE_LAYERS)
    assert found == [
        "import cycle: transfer_bench.runs.a -> transfer_bench.runs.b -> transfer_bench.runs.a"
    ]


def test_checker_accepts_downward_and_commented_lazy_imports(tmp_path: Path) -> None:
    root = _fake_package(
        tmp_path,
        {
            "runs/__init__.py": "",
            "runs/plan.py": "X = 1\n",
            "runner/__init__.py": "",
            "runner/execute.py": (
                "from transfer_bench.runs.plan import X\n\n"
                "def f():\n    # lazy: keeps start-up cheap\n"
                "    from transfer_bench.stages import y\n    from transfer_bench.runs import plan\n"
                "    return 1\n"
                "def g():\n    from transfer_bench.runs.plan import X  # lazy: start-up\n"
            ),
            "runner/cli.py": (
                "# lazy imports: each command imports what it uses\n"
                "def h():\n    from transfer_bench.runs.plan import X\n"
            ),
            "stages/__init__.py": "y = 1\n",
        },
    )
    assert violations(root, FAKE_LAYERS) == []


def test_checker_flags_unknown_packages(tmp_path: Path) -> None:
    root = _fake_package(tmp_path, {"newpkg.py": "from transfer_bench.runs import plan\n"})
    (root / "runs").mkdir()
    (root / "runs" / "__init__.py").write_text("")
    (root / "runs" / "plan.py").write_text("")
    assert violations(root, FAKE_LAYERS) == [
        "transfer_bench/newpkg.py:1: package 'newpkg' is in no layer; add it to LAYERS"
    ]


# ------------------------------------------------------------------------------ the package


def test_package_follows_the_layering_rule() -> None:
    found = violations(PACKAGE, LAYERS)
    assert not found, "\n".join(found)


def test_every_package_is_in_a_layer() -> None:
    names = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()
    }
    names.discard("__init__")
    listed = {pkg for layer in LAYERS for pkg in layer}
    assert names == listed


def test_readme_lists_the_layers_in_order() -> None:
    """The README's Architecture section names the same packages, lowest layer first."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Architecture\n(.*?)(?=^## )", text, re.S | re.M)
    if match is None:
        pytest.fail("README.md has no '## Architecture' section")
    rows = re.findall(r"^\d+\. (.+)$", match.group(1), re.M)
    named = [tuple(re.findall(r"`(\w+)/?`", row.split(":")[0])) for row in rows]
    assert named == list(LAYERS)

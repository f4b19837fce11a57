"""docs/suite-reference.md is generated from the suite schema and current; the README links it."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from transfer_bench.config import Suite
from transfer_bench.config.reference import suite_reference

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "suite-reference.md"
REGENERATE = "python -m transfer_bench.config.reference > docs/suite-reference.md"


def _models(model: type[BaseModel], seen: set) -> set:
    seen.add(model)
    for field in model.model_fields.values():
        stack = [field.annotation]
        while stack:
            ann = stack.pop()
            if isinstance(ann, type) and issubclass(ann, BaseModel) and ann not in seen:
                _models(ann, seen)
            stack += list(getattr(ann, "__args__", ()))
    return seen


def test_the_committed_reference_is_current() -> None:
    assert DOC.read_text() == suite_reference(), f"docs/suite-reference.md is stale: {REGENERATE}"


def test_every_key_of_every_section_is_listed() -> None:
    text = suite_reference()
    models = _models(Suite, set())
    assert len(models) >= 12  # suite, model, input, datasets, optimizers, train, search, ...
    for model in models:
        for name in model.model_fields:
            assert f"| `{name}` |" in text, f"{model.__name__}.{name}"
    assert "| `rewind` | integer or text | `0` |" in text
    assert "| `seeds` | list of integer" in text and "**required**" in text


def test_the_readme_links_the_reference_and_names_build_model() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/suite-reference.md" in readme
    api_row = next(line for line in readme.splitlines() if line.startswith("| Python API |"))
    assert "build_model" in api_row and "torch-prune" in readme

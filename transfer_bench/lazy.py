"""Package names resolved on first use (PEP 562), so that importing a package stays cheap.

``import transfer_bench`` must not import torch, and ``ticket verify`` must not import anything but
numpy: packages list where each public name lives and import that module only when the name is
first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_names(
    package: str, homes: Mapping[str, str], eager: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``: ``homes`` maps each public name to its
    module, relative to the package (``"format"`` means ``<package>.format``); ``eager`` are names
    the package defines or imports itself."""
    names = sorted([*homes, *eager])

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home}"), name)

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__, names

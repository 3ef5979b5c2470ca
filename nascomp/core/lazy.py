"""Packages that export their modules' names on first use, so importing one module never loads its siblings.

Python runs a package's ``__init__`` before any of its modules; an ``__init__`` that imports every module makes a
light module (a budget parser, a preset table) as expensive as the heaviest sibling (torch, timm). With
`lazy_exports` the ``__init__`` only names where each export lives; ``from nascomp.nas import run_search`` still works,
and a command can check its arguments before torch is loaded.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose public ``exports`` map names to the modules defining them.

    An export named like a submodule (``nascomp.engine.evaluate``, the function, in the module of that name) keeps the
    name when the submodule is imported, as an eager ``__init__`` that imported the function would.
    """

    class LazyPackage(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in exports and isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{name}":
                return  # the import system binding the submodule: the export of that name wins
            super().__setattr__(name, value)

    sys.modules[package].__class__ = LazyPackage

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__

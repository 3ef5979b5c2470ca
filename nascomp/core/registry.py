"""Name registries for pluggable things: model builders, compression, adaptation and distillation methods.

A `Registry` maps a stable name to an object. Built-in entries are given as ``"module:attribute"``
strings and imported on first use, so listing the names (``nascomp --help``, ``choices=``) never imports
torch, and a lower layer can name an implementation that lives in a higher one without importing it.
Users add their own with the `Registry.register` decorator.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from nascomp.core.errors import NascompError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Stable names → objects, with built-ins imported lazily from ``"module:attribute"`` paths."""

    def __init__(self, kind: str, builtin: Mapping[str, str] | None = None):
        self.kind = kind
        self._lazy: dict[str, str] = dict(builtin or {})
        self._loaded: dict[str, T] = {}

    def names(self) -> list[str]:
        """Every registered name, built-ins first, in registration order."""
        return list(dict.fromkeys([*self._lazy, *self._loaded]))

    def __iter__(self):
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._lazy or name in self._loaded

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """``@registry.register("name")`` on a class or function, or ``registry.register("name", obj)``."""

        def add(target: T) -> T:
            if name in self._loaded and self._loaded[name] is not target:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._loaded[name] = target
            return target

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name is a user error listing the choices."""
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._lazy:
            close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise NascompError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}{hint}")
        module, _, attr = self._lazy[name].partition(":")
        obj: Any = getattr(importlib.import_module(module), attr)
        self._loaded.setdefault(name, obj)
        return self._loaded[name]

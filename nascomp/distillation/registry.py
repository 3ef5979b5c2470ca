"""Distillation methods by name (``--distill``); listing them imports no torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nascomp.core.registry import Registry

__all__ = ["DISTILLERS", "register_distiller"]

DISTILLERS: Registry = Registry(
    "distillation",
    {
        "none": "nascomp.distillation.base:NoDistillation",
        "kd": "nascomp.distillation.kd:LogitDistillation",
        "minivit": "nascomp.distillation.minivit:WeightDistillation",
        "srd": "nascomp.distillation.srd:SemanticRepresentationDistillation",
    },
)


def register_distiller(name: str) -> Callable[[type[Any]], type[Any]]:
    """Class decorator: a `nascomp.distillation.base.Distiller` subclass becomes ``--distill NAME``."""

    def register(cls: type[Any]) -> type[Any]:
        cls.name = name
        DISTILLERS.register(name, cls)
        return cls  # Registry.register(name, obj) returns obj

    return register

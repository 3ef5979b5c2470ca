"""Distillation methods by name (``--distill``); listing them imports no torch."""

from __future__ import annotations

from typing import Callable

from nascomp.core.registry import Registry

__all__ = ["DISTILLERS", "register_distiller"]

DISTILLERS: Registry = Registry("distillation", {
    "none": "nascomp.distillation.base:NoDistillation",
    "kd": "nascomp.distillation.kd:LogitDistillation",
    "minivit": "nascomp.distillation.minivit:WeightDistillation",
    "srd": "nascomp.distillation.srd:SemanticRepresentationDistillation",
})


def register_distiller(name: str) -> Callable[[type], type]:
    """Class decorator: a `nascomp.distillation.base.Distiller` subclass becomes ``--distill NAME``."""

    def register(cls: type) -> type:
        cls.name = name
        return DISTILLERS.register(name, cls)

    return register

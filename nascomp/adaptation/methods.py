"""What an adaptation method does to a timm model (`AdaptMethod`), and the methods that need no library.

Every method adds its adapter (`apply`), says which parameters it trains besides the new head
(`adapter_parameters`), and folds itself into plain timm layers for deployment (`merge`). Methods are
found by name in `nascomp.adaptation.registry.ADAPTERS`: ``kadaptation`` (here), ``lora`` / ``lokr`` (peft,
`nascomp.adaptation.peft_adapters`), ``linear`` (probe: head only) and ``full`` (fine-tune everything).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from nascomp.adaptation.kadaptation.config import SLOW_WEIGHTS_ATTR, KAdaptationConfig
from nascomp.adaptation.kadaptation.layer import KroneckerLinear
from nascomp.adaptation.kadaptation.model import apply_kadaptation, merge_kadaptation
from nascomp.adaptation.registry import ADAPTERS
from nascomp.core.errors import NascompError

__all__ = [
    "AdaptMethod",
    "KAdaptationMethod",
    "LinearProbe",
    "FullFineTuning",
    "get_method",
    "apply_method",
    "mark_trainable",
    "merge_method",
    "head_parameter_names",
    "adapter_parameter_names",
    "ParameterCount",
    "count_parameters",
]


class AdaptMethod:
    """One adaptation method; subclasses override what they change."""

    name = "base"

    def options(self, **settings) -> dict:
        """The method's settings, validated, as the JSON-serialisable dict stored in the model spec."""
        if settings:
            raise NascompError(f"method {self.name!r} takes no options, got {sorted(settings)}")
        return {}

    def apply(self, model: nn.Module, options: dict) -> nn.Module:
        """Add the adapter to ``model`` in place and return it."""
        return model

    def adapter_parameters(self, model: nn.Module) -> set[int]:
        """ids of the parameters trained besides the head."""
        return set()

    def merge(self, model: nn.Module) -> list[str]:
        """Fold the adapter into plain layers in place; returns Linears that gained a bias."""
        return []


class KAdaptationMethod(AdaptMethod):
    name = "kadaptation"

    def options(self, **settings) -> dict:
        return method_config(KAdaptationConfig, settings).to_dict()

    def apply(self, model: nn.Module, options: dict) -> nn.Module:
        return apply_kadaptation(model, KAdaptationConfig(**options))

    def adapter_parameters(self, model: nn.Module) -> set[int]:
        ids: set[int] = set()
        for module in model.modules():
            if isinstance(module, KroneckerLinear):
                frozen = {id(p) for p in module.base.parameters()}
                ids |= {id(p) for p in module.parameters() if id(p) not in frozen}
        slow = getattr(model, SLOW_WEIGHTS_ATTR, None)
        if slow is not None:
            ids |= {id(p) for p in slow.parameters()}
        return ids

    def merge(self, model: nn.Module) -> list[str]:
        return merge_kadaptation(model)


class LinearProbe(AdaptMethod):
    """Train the new head only."""

    name = "linear"


class FullFineTuning(AdaptMethod):
    """Train every parameter."""

    name = "full"

    def adapter_parameters(self, model: nn.Module) -> set[int]:
        return {id(p) for p in model.parameters()}


def method_config(cls, settings: dict):
    """``cls(**settings)``; unknown settings are a user error listing the valid ones."""
    try:
        return cls(**settings)
    except TypeError:
        valid = sorted(cls.__dataclass_fields__)
        raise NascompError(f"unknown options {sorted(set(settings) - set(valid))}; valid: {', '.join(valid)}") from None


def get_method(name: str) -> AdaptMethod:
    """An instance of the method registered as ``name``."""
    return ADAPTERS.get(name)()


def apply_method(model: nn.Module, method: str, options: dict | None = None) -> nn.Module:
    """Add the adapter of ``method`` to ``model`` in place (linear and full add nothing); returns the model."""
    return get_method(method).apply(model, dict(options or {}))


def head_parameter_names(model: nn.Module) -> set[str]:
    """Names of the classifier's parameters (timm ``get_classifier()``), which every method trains."""
    head = cast(Any, model).get_classifier() if hasattr(model, "get_classifier") else None
    if head is None:
        raise NascompError("the model has no classifier (timm get_classifier()); adaptation needs one to replace")
    ids = {id(p) for p in head.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def adapter_parameter_names(model: nn.Module, method: str) -> set[str]:
    """Names of the parameters ``method`` trains besides the head."""
    ids = get_method(method).adapter_parameters(model)
    return {n for n, p in model.named_parameters() if id(p) in ids}


def mark_trainable(model: nn.Module, method: str) -> None:
    """Freeze everything except what ``method`` trains: the head plus the adapter."""
    train = head_parameter_names(model) | adapter_parameter_names(model, method)
    for name, p in model.named_parameters():
        p.requires_grad_(name in train)


@torch.no_grad()
def merge_method(model: nn.Module, method: str) -> list[str]:
    """Fold the adapter into plain timm layers in place; returns Linears that gained a bias (see `build_adapted`)."""
    return get_method(method).merge(model)


@dataclass
class ParameterCount:
    adapter: int  # trainable parameters outside the head (the whole backbone for full fine-tuning)
    head: int
    trainable: int
    total: int

    def to_dict(self) -> dict:
        return {
            "adapter_params": self.adapter,
            "head_params": self.head,
            "trainable_params": self.trainable,
            "total_params": self.total,
            "trainable_percent": round(100.0 * self.trainable / max(1, self.total), 4),
        }


def count_parameters(model: nn.Module) -> ParameterCount:
    head = head_parameter_names(model)
    params = dict(model.named_parameters())  # shared tensors appear once
    trainable = {n: p for n, p in params.items() if p.requires_grad}
    head_n = sum(p.numel() for n, p in trainable.items() if n in head)
    total_trainable = sum(p.numel() for p in trainable.values())
    return ParameterCount(total_trainable - head_n, head_n, total_trainable, sum(p.numel() for p in params.values()))

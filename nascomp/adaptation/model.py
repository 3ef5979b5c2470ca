"""Saved adapted models: the ``adapted`` model builder and its spec (the base spec, a new head, the adapter)."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from nascomp.adaptation.methods import apply_method, mark_trainable
from nascomp.models.registry import build_from_spec, register_model

__all__ = ["build_adapted", "adapted_spec"]


def _add_biases(model: nn.Module, names: list[str]) -> None:
    for name in names:
        layer = cast(nn.Linear, model.get_submodule(name))  # the merged Linears that gained a bias
        layer.bias = nn.Parameter(torch.zeros(layer.out_features, device=layer.weight.device, dtype=layer.weight.dtype))


@register_model("adapted")
def build_adapted(
    base: dict,
    method: str,
    num_classes: int | None = None,
    options: dict | None = None,
    merged: bool = False,
    biased: list[str] | None = None,
) -> nn.Module:
    """Model builder for saved adapted models: the base spec, a new head, then the adapter (or its merged shape)."""
    model = build_from_spec(base)
    if num_classes is not None:
        model.reset_classifier(num_classes)
    if merged:
        _add_biases(model, biased or [])
    else:
        apply_method(model, method, options)
        mark_trainable(model, method)
    return model


def adapted_spec(
    base: dict, method: str, num_classes: int | None, options: dict, merged: bool = False, biased: list[str] | None = None
) -> dict:
    kwargs: dict[str, Any] = {"base": base, "method": method, "num_classes": num_classes, "options": options, "merged": merged}
    if biased:
        kwargs["biased"] = biased
    return {"builder": "adapted", "kwargs": kwargs}

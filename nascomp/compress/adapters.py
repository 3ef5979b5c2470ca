"""One entry point for every adaptation method: KAdaptation, peft LoRA / LoKr, linear probe, full fine-tuning.

LoRA and LoKr come from the installed ``peft`` library, applied to the same timm model. peft targets
whole ``nn.Linear`` modules, but timm ViT/DeiT/Swin fuse Q, K and V into one ``attn.qkv`` Linear, so
`SplitQKV` first re-expresses that Linear as three Linears ``q``, ``k``, ``v`` whose outputs are
concatenated (same function, same weights); peft then targets ``*.qkv.q`` and ``*.qkv.v``. Merging
folds the adapters in with peft's own ``merge()`` and fuses the three Linears back, so a merged model
is the original timm architecture again with a new head.

Saved adapted models name the builder `build_adapted` in their spec, so ``nascomp flops/export DIR``
rebuild them anywhere (see nascomp.models).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import torch
from torch import nn

from nascomp.compress.kadaptation import (
    LINEAR_TARGETS, QKV_PARTS, SLOW_WEIGHTS_ATTR, KAdaptationConfig, KroneckerLinear, apply_kadaptation, merge_kadaptation,
)
from nascomp.errors import NascompError
from nascomp.models import build_from_spec

__all__ = [
    "METHODS",
    "PeftOptions",
    "SplitQKV",
    "split_fused_qkv",
    "fuse_split_qkv",
    "apply_method",
    "mark_trainable",
    "merge_method",
    "head_parameter_names",
    "adapter_parameter_names",
    "adapted_spec",
    "ParameterCount",
    "count_parameters",
    "build_adapted",
]

METHODS = ("kadaptation", "lora", "lokr", "linear", "full")


class SplitQKV(nn.Module):
    """A fused qkv Linear as three Linears ``q``, ``k``, ``v``; forward concatenates their outputs."""

    def __init__(self, fused: nn.Linear):
        super().__init__()
        if fused.out_features % 3:
            raise NascompError(f"a fused qkv Linear must have 3·d outputs, got {fused.out_features}")
        width, has_bias = fused.out_features // 3, fused.bias is not None
        for i, name in enumerate(QKV_PARTS):
            part = nn.Linear(fused.in_features, width, bias=has_bias, device=fused.weight.device, dtype=fused.weight.dtype)
            with torch.no_grad():
                part.weight.copy_(fused.weight[i * width : (i + 1) * width])
                if has_bias:
                    part.bias.copy_(fused.bias[i * width : (i + 1) * width])
            part.requires_grad_(fused.weight.requires_grad)
            setattr(self, name, part)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1)

    @torch.no_grad()
    def fused(self) -> nn.Linear:
        parts = [self.q, self.k, self.v]
        if not all(isinstance(p, nn.Linear) for p in parts):
            raise NascompError("merge the adapters before fusing q, k, v back into one Linear")
        out = nn.Linear(parts[0].in_features, 3 * parts[0].out_features, bias=parts[0].bias is not None,
                        device=parts[0].weight.device, dtype=parts[0].weight.dtype)
        out.weight.copy_(torch.cat([p.weight for p in parts]))
        if out.bias is not None:
            out.bias.copy_(torch.cat([p.bias for p in parts]))
        return out


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def split_fused_qkv(model: nn.Module) -> list[str]:
    """Replace every Linear named ``qkv`` with a `SplitQKV` (in place); returns their names."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] == "qkv"]
    for name in names:
        _replace(model, name, SplitQKV(model.get_submodule(name)))
    return names


def fuse_split_qkv(model: nn.Module) -> None:
    for name, module in list(model.named_modules()):
        if isinstance(module, SplitQKV):
            _replace(model, name, module.fused())


def _peft_target_regex(targets: tuple[str, ...]) -> str:
    """peft target_modules regex (full match on module names) for q/k/v parts and whole proj/fc1/fc2."""
    alternatives = []
    qkv = [t for t in targets if t in QKV_PARTS]
    if qkv:
        alternatives.append(rf".*\.qkv\.({'|'.join(qkv)})")
    alternatives += [rf"(.*\.)?{re.escape(LINEAR_TARGETS[t])}" for t in targets if t in LINEAR_TARGETS]
    return "|".join(f"(?:{a})" for a in alternatives)


@dataclass
class PeftOptions:
    """The LoRA / LoKr settings nascomp exposes (JSON-serialisable, stored in the model spec)."""

    rank: int = 1
    alpha: float | None = None  # default: equal to rank (scaling 1)
    targets: tuple[str, ...] = ("q", "v")
    dropout: float = 0.0  # LoRA only
    decompose_factor: int = -1  # LoKr only: size of the left Kronecker factor (-1: near √d)


def _peft_config(method: str, opts: PeftOptions):
    import peft

    target = _peft_target_regex(tuple(opts.targets))
    alpha = opts.alpha if opts.alpha is not None else opts.rank
    if method == "lora":
        return peft.LoraConfig(r=opts.rank, lora_alpha=alpha, lora_dropout=opts.dropout, target_modules=target, bias="none")
    return peft.LoKrConfig(r=opts.rank, alpha=alpha, decompose_factor=opts.decompose_factor, target_modules=target)


def apply_method(model: nn.Module, method: str, options: dict | None = None) -> nn.Module:
    """Add the adapter of ``method`` to ``model`` in place (linear and full add nothing); returns the model."""
    options = dict(options or {})
    if method == "kadaptation":
        return apply_kadaptation(model, KAdaptationConfig(**options))
    if method in ("lora", "lokr"):
        import peft

        opts = PeftOptions(**options)
        if any(t in QKV_PARTS for t in opts.targets):
            if not split_fused_qkv(model):
                raise NascompError(f"--targets {','.join(opts.targets)}: the model has no fused attn.qkv Linear (timm ViT/DeiT/Swin)")
        try:
            peft.inject_adapter_in_model(_peft_config(method, opts), model)
        except ValueError as e:
            raise NascompError(f"peft could not add {method} to this model: {e}") from None
        return model
    if method in ("linear", "full"):
        return model
    raise NascompError(f"unknown adaptation method {method!r}; choose from {', '.join(METHODS)}")


def head_parameter_names(model: nn.Module) -> set[str]:
    """Names of the classifier's parameters (timm ``get_classifier()``), which every method trains."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if head is None:
        raise NascompError("the model has no classifier (timm get_classifier()); adaptation needs one to replace")
    ids = {id(p) for p in head.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def _peft_layer_type() -> type | None:
    """peft's adapter-layer base class, if peft is loaded (importing it costs seconds; no peft, no peft layers)."""
    module = sys.modules.get("peft.tuners.tuners_utils")
    return getattr(module, "BaseTunerLayer", None)


def adapter_parameter_names(model: nn.Module) -> set[str]:
    """Names of adapter parameters: KAdaptation slow/fast weights and biases, peft LoRA/LoKr weights."""
    peft_layer = _peft_layer_type()
    ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, KroneckerLinear):
            base = module.base
        elif peft_layer is not None and isinstance(module, peft_layer):
            base = module.get_base_layer()
        else:
            continue
        frozen = {id(p) for p in base.parameters()}
        ids |= {id(p) for p in module.parameters() if id(p) not in frozen}
    slow = getattr(model, SLOW_WEIGHTS_ATTR, None)
    if slow is not None:
        ids |= {id(p) for p in slow.parameters()}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def mark_trainable(model: nn.Module, method: str) -> None:
    """Freeze everything except what ``method`` trains: the head plus the adapter (all of it for full)."""
    if method == "full":
        model.requires_grad_(True)
        return
    train = head_parameter_names(model) | (adapter_parameter_names(model) if method != "linear" else set())
    for name, p in model.named_parameters():
        p.requires_grad_(name in train)


@torch.no_grad()
def merge_method(model: nn.Module, method: str) -> list[str]:
    """Fold the adapter into plain timm layers in place; returns Linears that gained a bias (see `build_adapted`)."""
    if method == "kadaptation":
        return merge_kadaptation(model)
    if method in ("lora", "lokr"):
        peft_layer = _peft_layer_type()
        for name, module in list(model.named_modules()):
            if peft_layer is not None and isinstance(module, peft_layer):
                module.merge()
                _replace(model, name, module.get_base_layer())
        fuse_split_qkv(model)
        if hasattr(model, "peft_config"):
            del model.peft_config
    return []


@dataclass
class ParameterCount:
    adapter: int  # trainable parameters outside the head (the whole backbone for full fine-tuning)
    head: int
    trainable: int
    total: int

    def to_dict(self) -> dict:
        return {
            "adapter_params": self.adapter, "head_params": self.head, "trainable_params": self.trainable,
            "total_params": self.total, "trainable_percent": round(100.0 * self.trainable / max(1, self.total), 4),
        }


def count_parameters(model: nn.Module) -> ParameterCount:
    head = head_parameter_names(model)
    params = dict(model.named_parameters())  # shared tensors appear once
    trainable = {n: p for n, p in params.items() if p.requires_grad}
    head_n = sum(p.numel() for n, p in trainable.items() if n in head)
    total_trainable = sum(p.numel() for p in trainable.values())
    return ParameterCount(total_trainable - head_n, head_n, total_trainable, sum(p.numel() for p in params.values()))


def _add_biases(model: nn.Module, names: list[str]) -> None:
    for name in names:
        layer = model.get_submodule(name)
        layer.bias = nn.Parameter(torch.zeros(layer.out_features, device=layer.weight.device, dtype=layer.weight.dtype))


def build_adapted(
    base: dict, method: str, num_classes: int | None = None, options: dict | None = None, merged: bool = False,
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


def adapted_spec(base: dict, method: str, num_classes: int | None, options: dict, merged: bool = False, biased: list[str] | None = None) -> dict:
    kwargs = {"base": base, "method": method, "num_classes": num_classes, "options": options, "merged": merged}
    if biased:
        kwargs["biased"] = biased
    return {"builder": "nascomp.compress.adapters:build_adapted", "kwargs": kwargs}

"""LoRA and LoKr from the installed ``peft`` library, applied to the same timm model (Q and V split out first).

Merging folds the adapters in with peft's own ``merge()`` and fuses the split Linears back, so a merged model
is the original timm architecture again with a new head.
"""

from __future__ import annotations

import re
import sys
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from nascomp.adaptation.configs import check_peft_options
from nascomp.adaptation.kadaptation.config import LINEAR_TARGETS, QKV_PARTS
from nascomp.adaptation.methods import AdaptMethod, method_config
from nascomp.adaptation.qkv import fuse_split_qkv, split_fused_qkv
from nascomp.core.errors import NascompError

__all__ = ["PeftOptions", "LoraMethod", "LokrMethod", "peft_layer_type"]


def _peft_target_regex(targets: tuple[str, ...]) -> str:
    """peft target_modules regex (full match on module names) for q/k/v parts and whole proj/fc1/fc2."""
    alternatives = []
    qkv = [t for t in targets if t in QKV_PARTS]
    if qkv:
        alternatives.append(rf".*\.qkv\.({'|'.join(qkv)})")
    alternatives += [rf"(.*\.)?{re.escape(LINEAR_TARGETS[t])}" for t in targets if t in LINEAR_TARGETS]
    return "|".join(f"(?:{a})" for a in alternatives)


def _peft_config(method: str, opts: PeftOptions):
    import peft

    target = _peft_target_regex(tuple(opts.targets))
    alpha = opts.alpha if opts.alpha is not None else opts.rank
    if method == "lora":
        return peft.LoraConfig(r=opts.rank, lora_alpha=alpha, lora_dropout=opts.dropout, target_modules=target, bias="none")  # type: ignore[arg-type]  # peft annotates lora_alpha int but uses it as a float (scaling = alpha / r)
    return peft.LoKrConfig(r=opts.rank, alpha=alpha, decompose_factor=opts.decompose_factor, target_modules=target)  # type: ignore[arg-type]  # peft annotates alpha int but uses it as a float


@dataclass
class PeftOptions:
    """The LoRA / LoKr settings nascomp exposes (JSON-serialisable, stored in the model spec)."""

    rank: int = 1
    alpha: float | None = None  # default: equal to rank (scaling 1)
    targets: tuple[str, ...] = ("q", "v")
    dropout: float = 0.0  # LoRA only
    decompose_factor: int = -1  # LoKr only: size of the left Kronecker factor (-1: near √d)

    def __post_init__(self):
        check_peft_options(self.rank, self.alpha, self.targets, self.dropout, self.decompose_factor)
        self.targets = tuple(self.targets)


def peft_layer_type() -> type[Any] | None:
    """peft's adapter-layer base class, if peft is loaded (importing it costs seconds; no peft, no peft layers)."""
    module = sys.modules.get("peft.tuners.tuners_utils")
    return getattr(module, "BaseTunerLayer", None)


class _PeftMethod(AdaptMethod):
    """Shared by LoRA and LoKr: split fused Q/K/V when targeted, inject with peft, merge with peft."""

    def options(self, **settings) -> dict:
        unused = "decompose_factor" if self.name == "lora" else "dropout"  # each keeps only its own setting
        opts = asdict(method_config(PeftOptions, settings))
        opts.pop(unused)
        return {**opts, "targets": list(opts["targets"])}

    def apply(self, model: nn.Module, options: dict) -> nn.Module:
        import peft

        opts = PeftOptions(**options)
        if any(t in QKV_PARTS for t in opts.targets):
            if not split_fused_qkv(model):
                raise NascompError(f"--targets {','.join(opts.targets)}: the model has no fused attn.qkv Linear (timm ViT/DeiT/Swin)")
        try:
            peft.inject_adapter_in_model(_peft_config(self.name, opts), model)
        except ValueError as e:
            raise NascompError(f"peft could not add {self.name} to this model: {e}") from None
        return model

    def adapter_parameters(self, model: nn.Module) -> set[int]:
        layer_type = peft_layer_type()
        ids: set[int] = set()
        for module in model.modules():
            if layer_type is not None and isinstance(module, layer_type):
                frozen = {id(p) for p in module.get_base_layer().parameters()}
                ids |= {id(p) for p in module.parameters() if id(p) not in frozen}
        return ids

    def merge(self, model: nn.Module) -> list[str]:
        layer_type = peft_layer_type()
        for name, module in list(model.named_modules()):
            if layer_type is not None and isinstance(module, layer_type):
                module.merge()
                model.set_submodule(name, module.get_base_layer())
        fuse_split_qkv(model)
        if hasattr(model, "peft_config"):
            del model.peft_config
        return []


class LoraMethod(_PeftMethod):
    name = "lora"


class LokrMethod(_PeftMethod):
    name = "lokr"

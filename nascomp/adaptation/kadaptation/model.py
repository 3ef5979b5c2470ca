"""KAdaptation injected into and merged out of a timm ViT/DeiT/Swin, and its entry in the adapter registry."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from nascomp.adaptation.kadaptation.config import LINEAR_TARGETS, QKV_PARTS, SLOW_WEIGHTS_ATTR, KAdaptationConfig
from nascomp.adaptation.kadaptation.layer import KroneckerLinear, SlowWeights
from nascomp.core.errors import NascompError

__all__ = ["find_targets", "apply_kadaptation", "kadaptation_layers", "merge_kadaptation"]


def find_targets(model: nn.Module, targets: tuple[str, ...]) -> dict[str, dict[str, tuple[int, int]]]:
    """Module name → {target: (start, stop) output rows} for every Linear the targets select.

    q/k/v select thirds of fused ``qkv`` Linears (timm ViT/DeiT/Swin store [q; k; v] along the output);
    proj, fc1 and fc2 select ``attn.proj``, ``mlp.fc1`` and ``mlp.fc2`` whole.
    """
    found: dict[str, dict[str, tuple[int, int]]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        if name.split(".")[-1] == "qkv":
            width = module.out_features // 3
            parts = {t: (i * width, (i + 1) * width) for i, t in enumerate(QKV_PARTS) if t in targets}
            if parts and module.out_features % 3 == 0:
                found[name] = parts
        for t, suffix in LINEAR_TARGETS.items():
            if t in targets and (name == suffix or name.endswith("." + suffix)):
                found[name] = {t: (0, module.out_features)}
    return found


def apply_kadaptation(model: nn.Module, config: KAdaptationConfig) -> nn.Module:
    """Replace the targeted Linears of ``model`` (in place) with `KroneckerLinear`s; returns the model.

    The shared slow weights are registered as ``model.kadaptation_slow`` (one `SlowWeights` per target).
    Parameters are not frozen here: the caller decides what trains.
    """
    if hasattr(model, SLOW_WEIGHTS_ATTR):
        raise NascompError("model already carries KAdaptation; merge it first")
    found = find_targets(model, config.targets)
    if not found:
        raise NascompError(
            f"no layer matches KAdaptation targets {list(config.targets)}: expected timm ViT/DeiT/Swin blocks with a fused "
            "attn.qkv Linear (targets q,k,v), attn.proj or mlp.fc1/fc2"
        )
    used = sorted({t for parts in found.values() for t in parts}, key=(*QKV_PARTS, *LINEAR_TARGETS).index)
    missing = [t for t in config.targets if t not in used]
    if missing:
        raise NascompError(f"KAdaptation targets {missing} match no layer of this model")
    ref = next(model.parameters())
    slow = nn.ModuleDict({t: SlowWeights(config.n, config.slow_rank, config.init, config.slow_init) for t in used}).to(ref.device)
    setattr(model, SLOW_WEIGHTS_ATTR, slow)
    for name, parts in found.items():
        base = cast(nn.Linear, model.get_submodule(name))  # find_targets selects Linears only
        layer = KroneckerLinear(base, parts, cast("dict[str, SlowWeights]", dict(slow.items())), config).to(ref.device)
        model.set_submodule(name, layer)
    return model


def kadaptation_layers(model: nn.Module) -> dict[str, KroneckerLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, KroneckerLinear)}


@torch.no_grad()
def merge_kadaptation(model: nn.Module) -> list[str]:
    """Fold every ΔW (and adapter bias) into plain Linears and drop the slow weights, in place.

    Returns the names of Linears that had no bias before and gained one (their model spec must add it).
    """
    gained: list[str] = []
    for name, layer in kadaptation_layers(model).items():
        if layer.base.bias is None and layer.adapter_bias is not None:
            gained.append(name)
        model.set_submodule(name, layer.merged())
    if hasattr(model, SLOW_WEIGHTS_ATTR):
        delattr(model, SLOW_WEIGHTS_ATTR)
    return gained

"""timm's fused ``attn.qkv`` Linear as three Linears ``q``, ``k``, ``v`` (same function, same weights), and back.

peft targets whole ``nn.Linear`` modules, but timm ViT/DeiT/Swin fuse Q, K and V into one Linear; splitting
it lets peft put LoRA/LoKr on Q and V alone, and fusing after merging gives back the original architecture.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from nascomp.adaptation.kadaptation.config import QKV_PARTS
from nascomp.core.errors import NascompError

__all__ = ["SplitQKV", "split_fused_qkv", "fuse_split_qkv"]


class SplitQKV(nn.Module):
    """A fused qkv Linear as three Linears ``q``, ``k``, ``v``; forward concatenates their outputs."""

    q: nn.Module  # set in __init__ (setattr over QKV_PARTS); a Linear, or a peft wrapper of one
    k: nn.Module
    v: nn.Module

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
        parts = [p for p in (self.q, self.k, self.v) if isinstance(p, nn.Linear)]
        if len(parts) != 3:
            raise NascompError("merge the adapters before fusing q, k, v back into one Linear")
        out = nn.Linear(
            parts[0].in_features,
            3 * parts[0].out_features,
            bias=parts[0].bias is not None,
            device=parts[0].weight.device,
            dtype=parts[0].weight.dtype,
        )
        out.weight.copy_(torch.cat([p.weight for p in parts]))
        if out.bias is not None:
            out.bias.copy_(torch.cat([cast(torch.Tensor, p.bias) for p in parts]))  # split from one Linear: all have a bias
        return out


def split_fused_qkv(model: nn.Module) -> list[str]:
    """Replace every Linear named ``qkv`` with a `SplitQKV` (in place); returns their names."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] == "qkv"]
    for name in names:
        model.set_submodule(name, SplitQKV(cast(nn.Linear, model.get_submodule(name))))
    return names


def fuse_split_qkv(model: nn.Module) -> None:
    for name, module in list(model.named_modules()):
        if isinstance(module, SplitQKV):
            model.set_submodule(name, module.fused())

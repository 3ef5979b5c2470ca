"""Units of a trained Swin ordered by importance, so that every leading slice is the best sub-network of its size.

A weight-entangled supernet runs a sub-network on the *leading* channels, heads and MLP units of each layer.
Sorting each layer's units by importance first (as Minitron does before pruning an LLM) makes those leading
slices the important ones. Importance is measured on a calibration batch, from activations:

- embedding channels, per stage: mean |LayerNorm output| of the channel, summed over every LayerNorm that
  reads the stage's residual stream (the stem's or the blocks' norms, and the final norm in the last stage);
- heads, per block: mean L2 norm of the head's contribution to the attention output (its context times its
  columns of the output projection), so a head's Q, K, V rows, projection columns and bias-table column move together;
- MLP hidden units, per block: mean |activation| times the L2 norm of the unit's column of ``fc2``.

The permutation is applied consistently wherever a unit appears (a stage's channels in its patch embedding or
merging, every block, the next stage's merging per 2x2 chunk, the final norm and the classifier), so the
reordered model computes exactly what the original does (up to floating-point summation order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

__all__ = ["Importance", "measure_importance", "reorder"]


@dataclass
class Importance:
    """Scores per unit: ``embed[stage]`` (C,), ``heads[stage][block]`` (H,), ``mlp[stage][block]`` (hidden,)."""

    embed: list[torch.Tensor]
    heads: list[list[torch.Tensor]]
    mlp: list[list[torch.Tensor]]


class _Mean:
    """Running mean of per-unit scores over tokens of several batches."""

    def __init__(self):
        self.total: torch.Tensor | None = None
        self.count = 0

    def add(self, scores: torch.Tensor) -> None:  # (tokens, units)
        s = scores.double().sum(0)
        self.total = s if self.total is None else self.total + s
        self.count += scores.shape[0]

    def value(self) -> torch.Tensor:
        assert self.total is not None, "no scores were added"
        return (self.total / max(1, self.count)).float()


@torch.no_grad()
def measure_importance(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> Importance:
    """Importance of embedding channels, heads and MLP units of a timm Swin from its activations on ``images``."""
    swin = cast(Any, model)  # a timm SwinTransformer: its module tree is read by attribute
    stages = list(swin.layers)
    embed = [_Mean() for _ in stages]
    heads = [[_Mean() for _ in s.blocks] for s in stages]
    mlp = [[_Mean() for _ in s.blocks] for s in stages]
    handles = []

    def norm_hook(acc: _Mean):
        return lambda m, i, out: acc.add(out.abs().reshape(-1, out.shape[-1]))

    def proj_hook(acc: _Mean, attn: nn.Module):
        def hook(module, inputs, out):
            ctx = inputs[0].reshape(-1, attn.num_heads, inputs[0].shape[-1] // attn.num_heads)  # (tokens, H, hd)
            w = module.weight.reshape(module.weight.shape[0], attn.num_heads, -1)  # (dim, H, hd)
            acc.add(torch.einsum("thd,ohd->tho", ctx, w).norm(dim=-1))

        return hook

    def fc2_hook(acc: _Mean):
        def hook(module, inputs, out):
            a = inputs[0].reshape(-1, inputs[0].shape[-1])
            acc.add(a.abs() * module.weight.norm(dim=0))

        return hook

    handles.append(swin.patch_embed.norm.register_forward_hook(norm_hook(embed[0])))
    handles.append(swin.norm.register_forward_hook(norm_hook(embed[-1])))
    for i, stage in enumerate(stages):
        for j, block in enumerate(stage.blocks):
            handles += [
                block.norm1.register_forward_hook(norm_hook(embed[i])),
                block.norm2.register_forward_hook(norm_hook(embed[i])),
                block.attn.proj.register_forward_hook(proj_hook(heads[i][j], block.attn)),
                block.mlp.fc2.register_forward_hook(fc2_hook(mlp[i][j])),
            ]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return Importance([e.value() for e in embed], [[h.value() for h in s] for s in heads], [[m.value() for m in s] for s in mlp])


def _order(scores: torch.Tensor) -> torch.Tensor:
    return torch.argsort(scores, descending=True, stable=True)


def _take(param: torch.Tensor, index: torch.Tensor, dim: int) -> None:
    param.data = param.data.index_select(dim, index.to(param.device)).contiguous()


def _channels(block_of: torch.Tensor, width: int, groups: int) -> torch.Tensor:
    """Indices that apply a per-unit order to ``groups`` consecutive copies of ``width`` units (q/k/v, 2x2 chunks)."""
    return torch.cat([g * width + block_of for g in range(groups)])


@torch.no_grad()
def reorder(model: nn.Module, importance: Importance) -> nn.Module:
    """Permute ``model``'s units (in place) most important first; the function it computes does not change."""
    swin = cast(Any, model)  # a timm SwinTransformer: its module tree is read by attribute
    stages = list(swin.layers)
    for i, stage in enumerate(stages):
        order = _order(importance.embed[i])
        dim = len(order)
        if i == 0:
            _take(swin.patch_embed.proj.weight, order, 0)
            _take(swin.patch_embed.proj.bias, order, 0)
            _take(swin.patch_embed.norm.weight, order, 0)
            _take(swin.patch_embed.norm.bias, order, 0)
        else:
            _take(stage.downsample.reduction.weight, order, 0)
        for j, block in enumerate(stage.blocks):
            attn, hd = block.attn, block.attn.qkv.out_features // 3 // block.attn.num_heads
            for p in (
                block.norm1.weight,
                block.norm1.bias,
                block.norm2.weight,
                block.norm2.bias,
                attn.proj.weight,
                attn.proj.bias,
                block.mlp.fc2.weight,
                block.mlp.fc2.bias,
            ):
                _take(p, order, 0)
            _take(attn.qkv.weight, order, 1)
            _take(block.mlp.fc1.weight, order, 1)
            heads = _order(importance.heads[i][j])
            rows = (heads[:, None] * hd + torch.arange(hd)).reshape(-1)  # a head's rows within q, k or v
            _take(attn.qkv.weight, _channels(rows, attn.num_heads * hd, 3), 0)
            _take(attn.qkv.bias, _channels(rows, attn.num_heads * hd, 3), 0)
            _take(attn.proj.weight, rows, 1)
            _take(attn.relative_position_bias_table, heads, 1)
            units = _order(importance.mlp[i][j])
            _take(block.mlp.fc1.weight, units, 0)
            _take(block.mlp.fc1.bias, units, 0)
            _take(block.mlp.fc2.weight, units, 1)
        if i + 1 < len(stages):
            merge = stages[i + 1].downsample
            chunked = _channels(order, dim, 4)
            _take(merge.norm.weight, chunked, 0)
            _take(merge.norm.bias, chunked, 0)
            _take(merge.reduction.weight, chunked, 1)
        else:
            _take(swin.norm.weight, order, 0)
            _take(swin.norm.bias, order, 0)
            _take(swin.head.fc.weight, order, 1)
    return model

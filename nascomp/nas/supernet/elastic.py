"""Elastic (weight-entangled) layers of the hierarchical ViT supernet.

Every layer owns the weights of its largest configuration and runs a smaller one on the *leading slices*
of them (AutoFormer's weight entanglement): the first ``out`` rows and ``in`` columns of a linear layer,
the first ``dim`` entries of a LayerNorm, the first ``heads`` columns of a relative-position-bias table.
Each layer both computes with a slice (``forward``) and exports that slice as the weights of the
equivalent timm module (``export``), from the same slicing code, so extraction cannot drift from training.

Where a weight has internal structure, the parameter is stored with that structure as explicit axes, so
a leading slice along each axis is always meaningful (also when a supernet is grown or shrunk for an
evolved space, see `nascomp.nas.supernet.model.Supernet.inherit_from`):

- Q-K-V projection ``(3, qkv_max, dim_max)`` (+ bias ``(3, qkv_max)``): q, k and v are sliced separately to
  their first ``qkv_dim`` rows and concatenated as ``[q; k; v]``, timm's row order; heads are the
  consecutive ``head_dim`` groups of those rows, the grouping timm's reshape uses. Weight and bias are
  sliced by the same rule (AutoFormer slices the weight de-interleaved but the bias contiguously, which
  mixes q/k/v biases: microsoft/Cream#121).
- Relative-position bias ``(2W-1, 2W-1, heads_max)`` for the largest window ``W``: a window ``w <= W``
  uses the centred ``(2w-1)²`` crop (the same relative offsets), so all window sizes share one table.
- Patch merging concatenates four ``in_dim`` chunks: its LayerNorm is ``(4, in_max)`` and its reduction
  ``(out_max, 4, in_max)``, sliced per chunk.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import cast

import torch
import torch.nn.functional as F
from timm.layers import drop_path, trunc_normal_, use_fused_attn
from timm.models.swin_transformer import window_partition, window_reverse
from torch import nn

from nascomp.spaces.layout import BlockConfig, MergeConfig

__all__ = [
    "lead",
    "ElasticLinear",
    "ElasticLayerNorm",
    "ElasticQKV",
    "ElasticWindowAttention",
    "ElasticMlp",
    "ElasticSwinBlock",
    "ElasticPatchMerging",
    "ElasticPatchEmbed",
    "ElasticHead",
    "shifted_window_mask",
    "relative_position_index",
]

LN_EPS = 1e-5  # nn.LayerNorm's default, which timm's Swin uses


def lead(tensor: torch.Tensor, *sizes: int) -> torch.Tensor:
    """``tensor[:sizes[0], :sizes[1], ...]``; the tensor itself when nothing is cut, so a subnet at full width
    adds no slicing to the autograd graph (and no full-size zero-filled gradient in the backward pass)."""
    if tuple(tensor.shape[: len(sizes)]) == sizes:
        return tensor
    return tensor[tuple(slice(0, n) for n in sizes)]


class ElasticLinear(nn.Module):
    def __init__(self, in_max: int, out_max: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_max, in_max))
        self.bias = nn.Parameter(torch.zeros(out_max)) if bias else None
        trunc_normal_(self.weight, std=0.02)

    def sliced(self, out: int, inp: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return lead(self.weight, out, inp), None if self.bias is None else lead(self.bias, out)

    def forward(self, x: torch.Tensor, out: int, inp: int) -> torch.Tensor:
        return F.linear(x, *self.sliced(out, inp))

    def export(self, prefix: str, out: int, inp: int) -> dict[str, torch.Tensor]:
        weight, bias = self.sliced(out, inp)
        return {f"{prefix}weight": weight} | ({} if bias is None else {f"{prefix}bias": bias})


class ElasticLayerNorm(nn.Module):
    def __init__(self, dim_max: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim_max))
        self.bias = nn.Parameter(torch.zeros(dim_max))

    def forward(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        return F.layer_norm(x, (dim,), lead(self.weight, dim), lead(self.bias, dim), LN_EPS)

    def export(self, prefix: str, dim: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}weight": lead(self.weight, dim), f"{prefix}bias": lead(self.bias, dim)}


class ElasticQKV(nn.Module):
    """Q, K and V projections stacked on a leading axis of 3, each sliced to its first ``qkv_dim`` rows."""

    def __init__(self, dim_max: int, qkv_max: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(3, qkv_max, dim_max))
        self.bias = nn.Parameter(torch.zeros(3, qkv_max))
        trunc_normal_(self.weight, std=0.02)

    def sliced(self, qkv_dim: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        weight = lead(self.weight, 3, qkv_dim, dim).reshape(3 * qkv_dim, dim)
        return weight, lead(self.bias, 3, qkv_dim).reshape(3 * qkv_dim)

    def forward(self, x: torch.Tensor, qkv_dim: int, dim: int) -> torch.Tensor:
        return F.linear(x, *self.sliced(qkv_dim, dim))

    def export(self, prefix: str, qkv_dim: int, dim: int) -> dict[str, torch.Tensor]:
        weight, bias = self.sliced(qkv_dim, dim)
        return {f"{prefix}weight": weight, f"{prefix}bias": bias}


@lru_cache(maxsize=256)
def relative_position_index(window: int, window_max: int, device: torch.device) -> torch.Tensor:
    """(w², w²) indices into the flattened (2W-1)² table: offset (dy, dx) → (dy+W-1)(2W-1) + (dx+W-1)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (window_max - 1)
    return (rel[0] * (2 * window_max - 1) + rel[1]).to(device)


@lru_cache(maxsize=256)
def shifted_window_mask(resolution: int, window: int, shift: int, device: torch.device) -> torch.Tensor | None:
    """(num_windows, w², w²) additive mask (0 / -100) for a cyclically shifted window partition, or None.

    Tokens that the cyclic shift brought next to each other from opposite borders must not attend to
    each other; the feature map (padded to a multiple of the window) is split into 3×3 regions and pairs
    from different regions are masked, as in Swin.
    """
    if not shift:
        return None
    side = math.ceil(resolution / window) * window
    bounds = (slice(0, side - window), slice(side - window, side - shift), slice(side - shift, side))
    regions = torch.zeros(1, side, side, 1)
    for a, rows in enumerate(bounds):
        for b, cols in enumerate(bounds):
            regions[:, rows, cols, :] = 3 * a + b
    labels = window_partition(regions, (window, window)).reshape(-1, window * window)
    different = labels.unsqueeze(1) != labels.unsqueeze(2)
    return torch.zeros(different.shape).masked_fill(different, -100.0).to(device)


class ElasticWindowAttention(nn.Module):
    def __init__(self, dim_max: int, qkv_max: int, heads_max: int, window_max: int):
        super().__init__()
        self.window_max = window_max
        self.heads_max = heads_max
        self.qkv = ElasticQKV(dim_max, qkv_max)
        self.proj = ElasticLinear(qkv_max, dim_max)
        side = 2 * window_max - 1
        self.relative_position_bias_table = nn.Parameter(torch.empty(side, side, heads_max))
        trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.fused_attn = use_fused_attn(experimental=True)  # the same switch timm's WindowAttention reads

    def bias_table(self, window: int, heads: int) -> torch.Tensor:
        """The ((2w-1)², heads) table a timm block with window ``w`` holds: the centred crop."""
        lo = self.window_max - window
        return self.relative_position_bias_table[lo : lo + 2 * window - 1, lo : lo + 2 * window - 1, :heads].reshape(-1, heads)

    def relative_position_bias(self, window: int, heads: int) -> torch.Tensor:
        index = relative_position_index(window, self.window_max, self.relative_position_bias_table.device)
        table = self.relative_position_bias_table.view(-1, self.heads_max)
        table = table if heads == self.heads_max else table[:, :heads]
        n = window * window
        return table[index.view(-1)].view(n, n, heads).permute(2, 0, 1).contiguous().unsqueeze(0)

    def forward(self, x: torch.Tensor, cfg: BlockConfig, mask: torch.Tensor | None) -> torch.Tensor:
        batch_windows, n, dim = x.shape
        heads = cfg.heads
        qkv = self.qkv(x, cfg.qkv_dim, dim).reshape(batch_windows, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        bias = self.relative_position_bias(cfg.window, heads)
        if self.fused_attn:
            if mask is not None:
                num_win = mask.shape[0]
                mask = mask.view(1, num_win, 1, n, n).expand(batch_windows // num_win, -1, heads, -1, -1)
                bias = bias + mask.reshape(-1, heads, n, n)
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            q = q * cfg.head_dim**-0.5
            attn = q @ k.transpose(-2, -1)
            attn = attn + bias
            if mask is not None:
                num_win = mask.shape[0]
                attn = attn.view(-1, num_win, heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
                attn = attn.view(-1, heads, n, n)
            x = attn.softmax(dim=-1) @ v
        x = x.transpose(1, 2).reshape(batch_windows, n, -1)
        return self.proj(x, dim, cfg.qkv_dim)

    def export(self, prefix: str, cfg: BlockConfig) -> dict[str, torch.Tensor]:
        return (
            self.qkv.export(f"{prefix}qkv.", cfg.qkv_dim, cfg.dim)
            | self.proj.export(f"{prefix}proj.", cfg.dim, cfg.qkv_dim)
            | {f"{prefix}relative_position_bias_table": self.bias_table(cfg.window, cfg.heads)}
        )


class ElasticMlp(nn.Module):
    def __init__(self, dim_max: int, hidden_max: int):
        super().__init__()
        self.fc1 = ElasticLinear(dim_max, hidden_max)
        self.fc2 = ElasticLinear(hidden_max, dim_max)

    def forward(self, x: torch.Tensor, dim: int, hidden: int) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x, hidden, dim)), dim, hidden)

    def export(self, prefix: str, dim: int, hidden: int) -> dict[str, torch.Tensor]:
        return self.fc1.export(f"{prefix}fc1.", hidden, dim) | self.fc2.export(f"{prefix}fc2.", dim, hidden)


class ElasticSwinBlock(nn.Module):
    """timm's ``SwinTransformerBlock`` (pre-norm window attention + MLP) with every width elastic."""

    def __init__(self, dim_max: int, qkv_max: int, heads_max: int, hidden_max: int, window_max: int):
        super().__init__()
        self.norm1 = ElasticLayerNorm(dim_max)
        self.attn = ElasticWindowAttention(dim_max, qkv_max, heads_max, window_max)
        self.norm2 = ElasticLayerNorm(dim_max)
        self.mlp = ElasticMlp(dim_max, hidden_max)

    def _attn(self, x: torch.Tensor, cfg: BlockConfig) -> torch.Tensor:
        batch, height, width, dim = x.shape
        window, shift = cfg.window, cfg.shift
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        pad_h, pad_w = (window - height % window) % window, (window - width % window) % window
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        padded_h, padded_w = x.shape[1], x.shape[2]
        windows = window_partition(x, (window, window)).view(-1, window * window, dim)
        mask = shifted_window_mask(cfg.resolution, window, shift, x.device)
        windows = self.attn(windows, cfg, mask)
        x = window_reverse(windows.view(-1, window, window, dim), (window, window), padded_h, padded_w)
        x = x[:, :height, :width, :].contiguous()
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x

    def forward(self, x: torch.Tensor, cfg: BlockConfig, drop_prob: float = 0.0) -> torch.Tensor:
        batch, height, width, dim = x.shape
        x = x + drop_path(self._attn(self.norm1(x, dim), cfg), drop_prob, self.training)
        x = x.reshape(batch, -1, dim)
        x = x + drop_path(self.mlp(self.norm2(x, dim), dim, cfg.hidden_dim), drop_prob, self.training)
        return x.reshape(batch, height, width, dim)

    def export(self, prefix: str, cfg: BlockConfig) -> dict[str, torch.Tensor]:
        return (
            self.norm1.export(f"{prefix}norm1.", cfg.dim)
            | self.attn.export(f"{prefix}attn.", cfg)
            | self.norm2.export(f"{prefix}norm2.", cfg.dim)
            | self.mlp.export(f"{prefix}mlp.", cfg.dim, cfg.hidden_dim)
        )


class _Weights(nn.Module):
    """A named group of parameters, so state-dict keys read like timm's (``downsample.norm.weight``)."""

    # the names ElasticPatchMerging gives (declared for the type checker only: setattr registers them as parameters)
    weight: nn.Parameter
    bias: nn.Parameter

    def __init__(self, **tensors: torch.Tensor):
        super().__init__()
        for name, tensor in tensors.items():
            setattr(self, name, nn.Parameter(tensor))


class ElasticPatchMerging(nn.Module):
    """timm's ``PatchMerging`` (2×2 concat → LayerNorm(4C) → Linear(4C → out), no bias), sliced per chunk."""

    def __init__(self, in_max: int, out_max: int):
        super().__init__()
        self.norm = _Weights(weight=torch.ones(4, in_max), bias=torch.zeros(4, in_max))
        self.reduction = _Weights(weight=torch.empty(out_max, 4, in_max))
        trunc_normal_(self.reduction.weight, std=0.02)

    def sliced(self, in_dim: int, out_dim: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            lead(self.norm.weight, 4, in_dim).reshape(4 * in_dim),
            lead(self.norm.bias, 4, in_dim).reshape(4 * in_dim),
            lead(self.reduction.weight, out_dim, 4, in_dim).reshape(out_dim, 4 * in_dim),
        )

    def forward(self, x: torch.Tensor, cfg: MergeConfig) -> torch.Tensor:
        batch, height, width, dim = x.shape
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        height, width = x.shape[1], x.shape[2]
        x = x.reshape(batch, height // 2, 2, width // 2, 2, dim).permute(0, 1, 3, 4, 2, 5).flatten(3)
        norm_w, norm_b, reduction = self.sliced(dim, cfg.out_dim)
        return F.linear(F.layer_norm(x, (4 * dim,), norm_w, norm_b, LN_EPS), reduction)

    def export(self, prefix: str, cfg: MergeConfig) -> dict[str, torch.Tensor]:
        norm_w, norm_b, reduction = self.sliced(cfg.in_dim, cfg.out_dim)
        return {f"{prefix}norm.weight": norm_w, f"{prefix}norm.bias": norm_b, f"{prefix}reduction.weight": reduction}


class ElasticPatchEmbed(nn.Module):
    """timm's ``PatchEmbed`` (conv patchify → NHWC → LayerNorm) with elastic output channels."""

    def __init__(self, in_chans: int, dim_max: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim_max, patch_size, patch_size)  # PyTorch's default init, as timm's
        self.norm = ElasticLayerNorm(dim_max)

    def forward(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        bias = cast(torch.Tensor, self.proj.bias)  # built with a bias
        x = F.conv2d(x, lead(self.proj.weight, dim), lead(bias, dim), stride=self.patch_size)
        return self.norm(x.permute(0, 2, 3, 1), dim)

    def export(self, prefix: str, dim: int) -> dict[str, torch.Tensor]:
        bias = cast(torch.Tensor, self.proj.bias)  # built with a bias
        return {f"{prefix}proj.weight": lead(self.proj.weight, dim), f"{prefix}proj.bias": lead(bias, dim)} | self.norm.export(
            f"{prefix}norm.", dim
        )


class ElasticHead(nn.Module):
    """Global average pool over the NHWC map, then Linear(dim → num_classes) on the first ``dim`` inputs."""

    def __init__(self, dim_max: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.fc = ElasticLinear(dim_max, num_classes)

    def forward(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        return self.fc(x.mean((1, 2)), self.num_classes, dim)

    def export(self, prefix: str, dim: int) -> dict[str, torch.Tensor]:
        return self.fc.export(f"{prefix}fc.", self.num_classes, dim)

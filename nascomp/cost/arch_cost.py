"""Exact params and MACs of an `Arch` without building it (microseconds; search calls it millions of times).

The formulas follow the layers timm builds for the arch (see `nascomp.spaces.layout`, which applies timm's
window clamping), and count what `nascomp.cost.counter.count_module` counts at the dispatcher: every matrix
product (linear layers, the patch-embedding convolution, Q·Kᵀ and A·V inside each window) as MACs, nothing
for norms, softmax, activations, bias adds or pooling. Windows that do not tile the feature map are padded
by timm before attention, so Q-K-V, attention and the output projection run on the padded token grid.

Convention (the papers'): MACs are what papers call FLOPs; FLOPs = 2 × MACs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import NamedTuple

from nascomp.cost.counter import CostReport
from nascomp.spaces.arch import Arch
from nascomp.spaces.layout import BlockConfig, MergeConfig, StemConfig, arch_layout

__all__ = ["ArchCost", "arch_cost", "arch_cost_report", "stem_cost", "merge_cost", "block_cost", "head_cost"]


class ArchCost(NamedTuple):
    params: int
    macs: int  # per image

    @property
    def flops(self) -> int:
        return 2 * self.macs


def stem_cost(c: StemConfig) -> ArchCost:
    grid = c.img_size // c.patch_size
    kernel = c.in_chans * c.patch_size * c.patch_size
    return ArchCost(kernel * c.dim + c.dim + 2 * c.dim, grid * grid * c.dim * kernel)


def merge_cost(c: MergeConfig) -> ArchCost:
    side = math.ceil(c.resolution / 2)
    fan_in = 4 * c.in_dim
    return ArchCost(2 * fan_in + fan_in * c.out_dim, side * side * fan_in * c.out_dim)


def block_cost(c: BlockConfig) -> ArchCost:
    return _block_cost(c.resolution, c.dim, c.heads, c.qkv_dim, c.hidden_dim, c.window)


@lru_cache(maxsize=65536)  # archs of one space share few distinct block configurations
def _block_cost(resolution: int, d: int, heads: int, q: int, hidden: int, w: int) -> ArchCost:
    params = (
        2 * d  # norm1
        + d * 3 * q
        + 3 * q  # qkv
        + q * d
        + d  # proj
        + (2 * w - 1) ** 2 * heads  # relative-position bias table of the (clamped) window
        + 2 * d  # norm2
        + d * hidden
        + hidden
        + hidden * d
        + d  # mlp
    )
    padded = math.ceil(resolution / w) * w
    padded_tokens = padded * padded
    macs = (
        padded_tokens * d * 3 * q  # qkv
        + padded_tokens * w * w * 2 * q  # Q·Kᵀ and A·V, per window of w² tokens
        + padded_tokens * q * d  # proj
        + resolution * resolution * 2 * d * hidden  # mlp (after un-padding)
    )
    return ArchCost(params, macs)


def head_cost(dim: int, num_classes: int) -> ArchCost:
    fc = dim * num_classes + num_classes if num_classes > 0 else 0
    return ArchCost(2 * dim + fc, dim * num_classes)


def arch_cost(arch: Arch | Mapping, resolution: int = 224, in_chans: int = 3, num_classes: int = 1000) -> ArchCost:
    """(params, MACs per image) of ``arch`` built at ``resolution`` — equal to counting the extracted timm model."""
    if not isinstance(arch, Arch):
        arch = Arch.from_dict(arch)
    layout = arch_layout(arch, resolution, in_chans, num_classes)
    params, macs = stem_cost(layout.stem)
    for part in layout.merges:
        p, m = merge_cost(part)
        params, macs = params + p, macs + m
    for b in layout.blocks:
        p, m = _block_cost(b.resolution, b.dim, b.heads, b.qkv_dim, int(b.dim * b.mlp_ratio), b.window)
        params, macs = params + p, macs + m
    p, m = head_cost(layout.head.dim, num_classes)
    return ArchCost(params + p, macs + m)


def arch_cost_report(arch: Arch | Mapping, resolution: int = 224, in_chans: int = 3, num_classes: int = 1000) -> CostReport:
    """`arch_cost` as a `CostReport` with the counter's MAC categories (convolution = patch embedding,
    batched matmul = Q·Kᵀ and A·V, linear/matmul = every linear layer), for ``nascomp flops ARCH.json``."""
    if not isinstance(arch, Arch):
        arch = Arch.from_dict(arch)
    layout = arch_layout(arch, resolution, in_chans, num_classes)
    total = arch_cost(arch, resolution, in_chans, num_classes)
    conv = stem_cost(layout.stem).macs
    attention = 0
    for b in layout.blocks:
        padded = math.ceil(b.resolution / b.window) * b.window
        attention += padded * padded * b.window * b.window * 2 * b.qkv_dim
    categories = {"linear/matmul": total.macs - conv - attention, "batched matmul": attention, "convolution": conv}
    return CostReport(params=total.params, macs=total.macs, resolution=resolution, in_chans=in_chans, macs_by_category=categories)

"""An `Arch` resolved at an input resolution: the exact configuration of every layer, as timm builds it.

The same `Arch` is a different network at 224 px and at a 32 px proxy: timm's Swin clamps a window that
is at least as large as the feature map to the feature map and then disables the shift (the block does
global attention). Everything that builds, counts or measures an Arch (supernet, extraction, analytic cost,
latency tables) reads this one layout so the clamping rule lives in one place and matches timm exactly.

Feature-map sides: stage 0 works on the patch grid ``img_size // patch_size``; each later stage starts with
2×2 patch merging, which pads odd sides, so side ``r_i = ceil(r_{i-1} / 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from nascomp.core.errors import NascompError
from nascomp.spaces.arch import Arch

__all__ = [
    "StemConfig",
    "MergeConfig",
    "BlockConfig",
    "HeadConfig",
    "ArchLayout",
    "arch_layout",
    "block_configs",
    "stage_resolutions",
    "clamp_window",
]


@dataclass(frozen=True)
class StemConfig:
    """Patch embedding: Conv(in_chans → dim, kernel = stride = patch_size), then LayerNorm(dim)."""

    in_chans: int
    patch_size: int
    img_size: int
    dim: int

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        return (batch, self.in_chans, self.img_size, self.img_size)


@dataclass(frozen=True)
class MergeConfig:
    """Patch merging before stage ``stage``: 2×2 concat → LayerNorm(4·in_dim) → Linear(4·in_dim → out_dim)."""

    stage: int
    resolution: int  # input side; the output side is ceil(resolution / 2)
    in_dim: int
    out_dim: int

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        return (batch, self.resolution, self.resolution, self.in_dim)  # NHWC, as timm's Swin


@dataclass(frozen=True)
class BlockConfig:
    """One Swin block as built: ``window`` and ``shift`` are after timm's clamping at this ``resolution``."""

    stage: int
    index: int  # block index within the stage (odd blocks shift)
    resolution: int  # feature-map side of the stage
    dim: int
    heads: int
    qkv_dim: int
    mlp_ratio: float
    window: int
    shift: int

    @property
    def head_dim(self) -> int:
        return self.qkv_dim // self.heads

    @property
    def hidden_dim(self) -> int:
        return int(self.dim * self.mlp_ratio)

    @property
    def signature(self) -> tuple:
        """What determines the block's cost and latency (not its position): key for lookup tables."""
        return (self.resolution, self.dim, self.heads, self.qkv_dim, self.mlp_ratio, self.window, self.shift)

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        return (batch, self.resolution, self.resolution, self.dim)  # NHWC, as timm's Swin


@dataclass(frozen=True)
class HeadConfig:
    """Final LayerNorm(dim) → global average pool → Linear(dim → num_classes)."""

    resolution: int
    dim: int
    num_classes: int

    def input_shape(self, batch: int = 1) -> tuple[int, ...]:
        return (batch, self.resolution, self.resolution, self.dim)


@dataclass(frozen=True)
class ArchLayout:
    stem: StemConfig
    merges: tuple[MergeConfig, ...]  # one per stage after the first
    blocks: tuple[BlockConfig, ...]
    head: HeadConfig
    resolutions: tuple[int, ...]  # feature-map side per stage

    def stage_blocks(self, stage: int) -> tuple[BlockConfig, ...]:
        return tuple(b for b in self.blocks if b.stage == stage)


def clamp_window(resolution: int, window: int, index: int) -> tuple[int, int]:
    """(window, shift) as timm's ``SwinTransformerBlock`` resolves them for block ``index`` of a stage.

    Odd blocks request a shift of ``window // 2``; a window >= the feature map becomes the feature map
    and the shift becomes 0 (timm compares ``resolution <= window``, so equality also disables the shift).
    """
    shift = window // 2 if index % 2 else 0
    if resolution <= window:
        return resolution, 0
    return window, shift


def stage_resolutions(img_size: int, patch_size: int, num_stages: int) -> tuple[int, ...]:
    if img_size % patch_size:
        raise NascompError(f"resolution {img_size} is not divisible by the patch size {patch_size}; choose a multiple of {patch_size}")
    sides = [img_size // patch_size]
    for _ in range(num_stages - 1):
        sides.append(math.ceil(sides[-1] / 2))
    return tuple(sides)


@lru_cache(maxsize=4096)
def arch_layout(arch: Arch, img_size: int, in_chans: int = 3, num_classes: int = 1000) -> ArchLayout:
    """Resolve ``arch`` at ``img_size`` (cached: archs are hashable and layouts immutable)."""
    sides = stage_resolutions(img_size, arch.patch_size, arch.num_stages)
    merges, blocks = [], []
    for i, stage in enumerate(arch.stages):
        if i > 0:
            merges.append(MergeConfig(i, sides[i - 1], arch.stages[i - 1].embed_dim, stage.embed_dim))
        for j, b in enumerate(stage.blocks):
            window, shift = clamp_window(sides[i], b.window, j)
            blocks.append(BlockConfig(i, j, sides[i], stage.embed_dim, b.heads, b.qkv_dim, b.mlp_ratio, window, shift))
    return ArchLayout(
        stem=StemConfig(in_chans, arch.patch_size, img_size, arch.stages[0].embed_dim),
        merges=tuple(merges),
        blocks=tuple(blocks),
        head=HeadConfig(sides[-1], arch.stages[-1].embed_dim, num_classes),
        resolutions=sides,
    )


def block_configs(arch: Arch, img_size: int) -> Iterator[BlockConfig]:
    """Every block of ``arch`` at ``img_size`` (stage, index, resolution, dim, heads, qkv_dim, mlp_ratio, window, shift)."""
    return iter(arch_layout(arch, img_size).blocks)

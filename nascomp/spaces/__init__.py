"""Architectures (`Arch`) and search spaces (`SearchSpace`) for hierarchical, Swin-like vision transformers.

- `Arch`: plain JSON-serialisable data, one per candidate network (`nascomp.spaces.arch`).
- `arch_layout` / `block_configs`: an Arch resolved at an input resolution, every layer as timm builds it
  (windows clamped to the feature map) — the single source for models, cost and latency tables.
- `SearchSpace`: YAML-defined choices per (stage, dimension); sample / mutate / crossover / contains /
  with_choices (`nascomp.spaces.space`). Shipped spaces: `list_spaces()`; reference archs: `list_archs()`.
"""

from nascomp.spaces.arch import Arch, BlockArch, StageArch
from nascomp.spaces.layout import (
    ArchLayout, BlockConfig, HeadConfig, MergeConfig, StemConfig, arch_layout, block_configs, clamp_window, stage_resolutions,
)
from nascomp.spaces.registry import list_archs, list_spaces, load_arch
from nascomp.spaces.space import BLOCK_DIMENSIONS, DIMENSIONS, STAGE_DIMENSIONS, Collapsed, SearchSpace, StageChoices, load_space

__all__ = [
    "Arch",
    "BlockArch",
    "StageArch",
    "ArchLayout",
    "BlockConfig",
    "HeadConfig",
    "MergeConfig",
    "StemConfig",
    "arch_layout",
    "block_configs",
    "clamp_window",
    "stage_resolutions",
    "list_archs",
    "list_spaces",
    "load_arch",
    "SearchSpace",
    "load_space",
    "StageChoices",
    "Collapsed",
    "DIMENSIONS",
    "STAGE_DIMENSIONS",
    "BLOCK_DIMENSIONS",
]

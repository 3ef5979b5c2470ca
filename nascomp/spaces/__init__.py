"""Architectures (`Arch`) and search spaces (`SearchSpace`) for hierarchical, Swin-like vision transformers.

- `Arch`: plain JSON-serialisable data, one per candidate network (`nascomp.spaces.arch`).
- `arch_layout` / `block_configs`: an Arch resolved at an input resolution, every layer as timm builds it
  (windows clamped to the feature map) — the single source for models, cost and latency tables.
- `SearchSpace`: YAML-defined choices per (stage, dimension); sample / mutate / crossover / contains /
  with_choices (`nascomp.spaces.space`). Shipped spaces: `list_spaces()`; reference archs: `list_archs()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nascomp.core.lazy import lazy_exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "Arch": "nascomp.spaces.arch",
    "BlockArch": "nascomp.spaces.arch",
    "StageArch": "nascomp.spaces.arch",
    "ArchLayout": "nascomp.spaces.layout",
    "BlockConfig": "nascomp.spaces.layout",
    "HeadConfig": "nascomp.spaces.layout",
    "MergeConfig": "nascomp.spaces.layout",
    "StemConfig": "nascomp.spaces.layout",
    "arch_layout": "nascomp.spaces.layout",
    "block_configs": "nascomp.spaces.layout",
    "clamp_window": "nascomp.spaces.layout",
    "stage_resolutions": "nascomp.spaces.layout",
    "list_archs": "nascomp.spaces.registry",
    "list_spaces": "nascomp.spaces.registry",
    "load_arch": "nascomp.spaces.registry",
    "SearchSpace": "nascomp.spaces.space",
    "load_space": "nascomp.spaces.space",
    "StageChoices": "nascomp.spaces.space",
    "Collapsed": "nascomp.spaces.space",
    "DIMENSIONS": "nascomp.spaces.space",
    "STAGE_DIMENSIONS": "nascomp.spaces.space",
    "BLOCK_DIMENSIONS": "nascomp.spaces.space",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from nascomp.spaces.arch import Arch, BlockArch, StageArch
    from nascomp.spaces.layout import (
        ArchLayout,
        BlockConfig,
        HeadConfig,
        MergeConfig,
        StemConfig,
        arch_layout,
        block_configs,
        clamp_window,
        stage_resolutions,
    )
    from nascomp.spaces.registry import list_archs, list_spaces, load_arch
    from nascomp.spaces.space import BLOCK_DIMENSIONS, DIMENSIONS, STAGE_DIMENSIONS, Collapsed, SearchSpace, StageChoices, load_space

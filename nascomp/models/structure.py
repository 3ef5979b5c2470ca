"""Where the transformer blocks of a timm Swin or ViT/DeiT model are.

Compression (weight multiplexing) and distillation (layer pairs, activation taps) both address layers
by *stage* and *global index* (0 = first block of the first stage), the convention of the MiniViT code
(its ``23_21_15_9_3_1`` teacher layer lists). A ViT is treated as one stage.
"""

from __future__ import annotations

from typing import cast

from timm.layers import Mlp
from timm.layers.attention import Attention
from timm.models.swin_transformer import SwinTransformer, SwinTransformerBlock, SwinTransformerStage, WindowAttention
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from nascomp.core.errors import NascompError

__all__ = ["SUPPORTED_FAMILIES", "model_family", "transformer_stages", "transformer_blocks", "stage_depths"]

SUPPORTED_FAMILIES = "timm SwinTransformer (swin_*) and VisionTransformer (vit_*, deit_*) models"


def model_family(model: nn.Module) -> str:
    """'swin' or 'vit'; anything else (CNNs, Swin V2, hybrid or exotic blocks) is a user error."""
    if isinstance(model, SwinTransformer):
        blocks = [b for stage in model.layers for b in cast(SwinTransformerStage, stage).blocks]
        if all(isinstance(b, SwinTransformerBlock) and isinstance(b.attn, WindowAttention) and isinstance(b.mlp, Mlp) for b in blocks):
            return "swin"
    elif isinstance(model, VisionTransformer):
        if all(isinstance(b, Block) and isinstance(b.attn, Attention) and isinstance(b.mlp, Mlp) for b in model.blocks):
            return "vit"
    name = getattr(model, "default_cfg", {}).get("architecture") or type(model).__name__
    raise NascompError(
        f"model {name!r} ({type(model).__name__}) is not supported: MiniViT works on {SUPPORTED_FAMILIES} "
        "with standard attention and MLP blocks; pick e.g. swin_tiny_patch4_window7_224 or deit_small_patch16_224"
    )


def transformer_stages(model: nn.Module) -> list[list[nn.Module]]:
    """Blocks grouped by stage, in execution order (a ViT has one stage)."""
    if model_family(model) == "swin":
        return [list(cast(SwinTransformerStage, stage).blocks) for stage in cast(SwinTransformer, model).layers]
    return [list(cast(VisionTransformer, model).blocks)]


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """All blocks in execution order; position in this list is the global layer index."""
    return [b for stage in transformer_stages(model) for b in stage]


def stage_depths(model: nn.Module) -> list[int]:
    return [len(s) for s in transformer_stages(model)]

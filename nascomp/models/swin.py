"""The timm ``SwinTransformer`` of an `Arch` (registered as the ``swin-arch`` model builder), and its layers alone.

The standalone model is always timm's ``SwinTransformer`` with timm's module tree and state-dict layout.
Stages whose blocks are all alike are exactly what timm builds from per-stage lists (a stage-uniform arch
with doubling widths *is* e.g. ``swin_tiny_patch4_window7_224``); a block that differs from its stage's
first block is timm's ``SwinTransformerBlock`` configured individually (heads, head_dim, window, shift,
MLP ratio), and widths that do not double get timm's ``PatchMerging(dim, out_dim)``. So any extracted
model saves, loads, fine-tunes, counts and exports like any timm Swin.

Entry points:

- ``build_from_arch(arch, num_classes=, in_chans=, img_size=, drop_path_rate=)``: the builder that
  ``nascomp.models.resolve_model("x.json", **overrides)`` calls (random init); `nascomp.nas.supernet.extract`
  builds the same model and fills it with a supernet's weights.
- ``arch_spec(arch, ...)``: the model spec to pass to ``nascomp.models.save_model`` so the saved
  directory rebuilds through ``build_from_arch``.
- ``build_stem / build_merging / build_block / build_head``: one standalone timm module per layer
  configuration of `nascomp.spaces.layout` (for latency lookup tables).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from timm.layers import ClassifierHead, PatchEmbed, calculate_drop_path_rates
from timm.models.swin_transformer import PatchMerging, SwinTransformer, SwinTransformerBlock, SwinTransformerStage
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.models.registry import register_model
from nascomp.spaces.arch import Arch
from nascomp.spaces.layout import BlockConfig, HeadConfig, MergeConfig, StemConfig, arch_layout

__all__ = ["build_from_arch", "arch_spec", "build_stem", "build_merging", "build_block", "build_head"]
_ALLOWED = ("num_classes", "in_chans", "img_size", "drop_path_rate", "drop_rate")


def _block_signature(block: SwinTransformerBlock) -> tuple:
    return (
        block.dim,
        block.attn.num_heads,
        block.attn.qkv.out_features // 3,
        tuple(block.window_size),
        tuple(block.shift_size),
        block.mlp.fc1.out_features,
    )


def _new_block(cfg: BlockConfig, drop_path: float, device=None) -> SwinTransformerBlock:
    # cfg's window/shift are already clamped; timm's own clamping leaves them unchanged
    return SwinTransformerBlock(
        dim=cfg.dim,
        input_resolution=(cfg.resolution, cfg.resolution),
        num_heads=cfg.heads,
        head_dim=cfg.head_dim,
        window_size=cfg.window,
        shift_size=cfg.shift,
        mlp_ratio=cfg.mlp_ratio,
        drop_path=drop_path,
        device=device,
    )


@register_model("swin-arch")
def build_from_arch(
    arch: Arch | Mapping,
    num_classes: int | None = None,
    in_chans: int | None = None,
    img_size: int | None = None,
    drop_path_rate: float = 0.1,
    drop_rate: float = 0.0,
    **unsupported: Any,
) -> SwinTransformer:
    """A randomly initialised timm ``SwinTransformer`` for ``arch`` at ``img_size`` (see module docstring).

    ``arch`` is an `Arch` or its JSON dict. Only sizing that the arch leaves open can be overridden; classes, channels
    and resolution default to the ones the arch records (a search's ``best_arch.json``), else 1000, 3 and 224.
    """
    if unsupported:
        raise NascompError(
            f"an arch JSON fixes the architecture; options {sorted(unsupported)} cannot change it (allowed: {', '.join(_ALLOWED)})"
        )
    arch = arch if isinstance(arch, Arch) else Arch.from_dict(arch)
    num_classes = num_classes or arch.num_classes or 1000
    in_chans = in_chans or arch.in_chans or 3
    img_size = img_size or arch.resolution or 224
    layout = arch_layout(arch, int(img_size), int(in_chans), int(num_classes))
    first = [s.blocks[0] for s in arch.stages]
    dims = arch.embed_dims
    # timm's constructor only takes one base width (doubling per stage); build the skeleton on the meta
    # device, put timm modules of the right sizes where the arch differs, then materialise and initialise.
    model = SwinTransformer(
        img_size=img_size,
        patch_size=arch.patch_size,
        in_chans=in_chans,
        num_classes=num_classes,
        embed_dim=dims[0],
        # timm expands each of these per stage (to_ntuple) and takes a per-stage list, though it annotates a single value
        depths=arch.depths,
        num_heads=[b.heads for b in first],  # type: ignore[arg-type]
        head_dim=[b.head_dim for b in first],  # type: ignore[arg-type]
        window_size=[b.window for b in first],  # type: ignore[arg-type]
        mlp_ratio=[b.mlp_ratio for b in first],  # type: ignore[arg-type]
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
        weight_init="skip",
        device="meta",
    )
    # stagewise: one list of rates per stage
    dpr = cast(list[list[float]], calculate_drop_path_rates(drop_path_rate, list(arch.depths), stagewise=True))
    for merge in layout.merges:
        stage = cast(SwinTransformerStage, model.layers[merge.stage])  # nn.Sequential indexing types a plain Module
        if (stage.downsample.dim, stage.downsample.out_dim) != (merge.in_dim, merge.out_dim):
            stage.downsample = PatchMerging(merge.in_dim, merge.out_dim, device="meta")
            stage.dim = merge.in_dim
    for cfg in layout.blocks:
        blocks = cast(SwinTransformerStage, model.layers[cfg.stage]).blocks
        wanted = (cfg.dim, cfg.heads, cfg.qkv_dim, (cfg.window,) * 2, (cfg.shift,) * 2, cfg.hidden_dim)
        if _block_signature(cast(SwinTransformerBlock, blocks[cfg.index])) != wanted:
            blocks[cfg.index] = _new_block(cfg, dpr[cfg.stage][cfg.index], device="meta")
    last = dims[-1]
    if model.num_features != last:
        model.norm = nn.LayerNorm(last, device="meta")
        model.head = ClassifierHead(last, num_classes, pool_type="avg", drop_rate=drop_rate, input_fmt="NHWC", device="meta")
        model.num_features = model.head_hidden_size = last
    for i, info in enumerate(model.feature_info):
        info["num_chs"] = dims[i]
    model.to_empty(device="cpu")
    model.init_weights(needs_reset=True)  # timm's init; also recomputes the non-persistent index/mask buffers
    return model


def arch_spec(
    arch: Arch | Mapping, num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, drop_path_rate: float | None = None
) -> dict:
    """Model spec for `nascomp.models.save_model`; the saved directory rebuilds via `build_from_arch`."""
    arch = arch if isinstance(arch, Arch) else Arch.from_dict(arch)
    kwargs: dict[str, Any] = {"arch": arch.to_dict(), "num_classes": num_classes, "in_chans": in_chans, "img_size": img_size}
    if drop_path_rate is not None:
        kwargs["drop_path_rate"] = drop_path_rate
    return {"builder": "swin-arch", "kwargs": kwargs}


# --- one module per layer configuration (latency lookup tables) -------------------------------------
def build_stem(cfg: StemConfig) -> nn.Module:
    """timm's PatchEmbed as the Swin stem builds it: (B, C, H, W) → (B, H/p, W/p, dim)."""
    return PatchEmbed(
        img_size=cfg.img_size,
        patch_size=cfg.patch_size,
        in_chans=cfg.in_chans,
        embed_dim=cfg.dim,
        norm_layer=nn.LayerNorm,
        output_fmt="NHWC",
        flatten=False,
    )


def build_merging(cfg: MergeConfig) -> nn.Module:
    """timm's PatchMerging: (B, r, r, in_dim) → (B, ceil(r/2), ceil(r/2), out_dim)."""
    return PatchMerging(cfg.in_dim, cfg.out_dim)


def build_block(cfg: BlockConfig, drop_path: float = 0.0) -> nn.Module:
    """timm's SwinTransformerBlock for ``cfg`` (window/shift already clamped): (B, r, r, dim) → same."""
    return _new_block(cfg, drop_path)


def build_head(cfg: HeadConfig) -> nn.Module:
    """Final LayerNorm + average pool + classifier: (B, r, r, dim) → (B, num_classes)."""
    return nn.Sequential(nn.LayerNorm(cfg.dim), ClassifierHead(cfg.dim, cfg.num_classes, pool_type="avg", input_fmt="NHWC"))

"""The neighbourhood of a trained Swin: the search space of its own sub-networks, and the supernet that runs them.

A trained timm ``SwinTransformer`` (or a nascomp arch model, which is one) is read back as an `Arch` (windows as
timm clamped them at the model's resolution). Its neighbourhood keeps the patch size, the windows and each
head's width, and offers per stage: 1 to all blocks (a leading run, so shifted and plain windows still
alternate as trained), and per block fewer heads, a narrower MLP and a narrower embedding, down to
``min_width`` of the original. Heads keep their width (``qkv_dim = heads x head_dim``), so a sub-network's
heads are whole heads of the model, which `ShrinkSpace` enforces on top of `SearchSpace`'s rules.

The supernet allocated for that space has exactly the model's shapes at its largest arch, so the model's
weights load into it one to one and every sub-network runs on leading slices of them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.nas.supernet.model import Supernet
from nascomp.spaces.arch import Arch, BlockArch, StageArch
from nascomp.spaces.space import SearchSpace, StageChoices

__all__ = ["WIDTHS", "swin_arch", "ShrinkSpace", "neighbourhood", "load_supernet_from"]

WIDTHS = (0.5, 0.625, 0.75, 0.875, 1.0)  # default fractions of each width offered (embedding, heads, MLP)


def _unsupported(model: nn.Module, why: str) -> NascompError:
    name = getattr(model, "default_cfg", {}).get("architecture") or type(model).__name__
    return NascompError(
        f"shrink works on timm Swin Transformers (swin_*, nascomp arch models and their saved directories); "
        f"{name!r} is not one ({why}); use --method minivit or drop-blocks for ViT/DeiT models"
    )


def _ratio(hidden: int, dim: int) -> float:
    """An MLP ratio that timm's ``int(dim * ratio)`` turns back into exactly ``hidden``."""
    ratio = hidden / dim
    while int(dim * ratio) < hidden:
        ratio = math.nextafter(ratio, math.inf)
    return ratio


def swin_arch(model: nn.Module) -> Arch:
    """The `Arch` of a plain timm Swin model as built (per block heads, Q-K-V width, MLP ratio, clamped window)."""
    from timm.layers import Mlp
    from timm.models.swin_transformer import PatchMerging, SwinTransformer, SwinTransformerBlock, WindowAttention

    if not isinstance(model, SwinTransformer):
        raise _unsupported(model, f"a {type(model).__name__}")
    proj = cast(nn.Conv2d, model.patch_embed.proj)
    if proj.kernel_size != proj.stride or proj.kernel_size[0] != proj.kernel_size[1] or model.global_pool != "avg":
        raise _unsupported(model, "its patch embedding or pooling differs from Swin's")
    stages = []
    for i, layer_ in enumerate(model.layers):
        layer = cast(Any, layer_)  # a timm SwinTransformerStage; its blocks are checked below
        if (i > 0) != isinstance(layer.downsample, PatchMerging):
            raise _unsupported(model, f"stage {i + 1} does not start with Swin's patch merging")
        blocks = []
        for block in layer.blocks:
            ok = type(block) is SwinTransformerBlock and type(block.attn) is WindowAttention and type(block.mlp) is Mlp
            if not ok or block.attn.qkv.bias is None or block.window_size[0] != block.window_size[1]:
                raise _unsupported(model, f"stage {i + 1} has a modified block ({type(block).__name__}/{type(block.attn).__name__})")
            heads, qkv = block.attn.num_heads, block.attn.qkv.out_features // 3
            blocks.append(BlockArch(heads, qkv, _ratio(block.mlp.fc1.out_features, block.dim), block.window_size[0]))
        stages.append(StageArch(layer.blocks[0].dim, tuple(blocks)))
    return Arch(tuple(stages), proj.kernel_size[0])


class ShrinkSpace(SearchSpace):
    """A `SearchSpace` whose heads are whole heads of fixed width: ``qkv_dim = heads x head_dims[stage]``."""

    def __init__(
        self, stages: Sequence[StageChoices], resolution: int, patch_size: int, name: str, head_dims: Sequence[int], description: str = ""
    ):
        super().__init__(stages, resolution, patch_size, name, description)
        self.head_dims = tuple(int(h) for h in head_dims)
        self._pairs = tuple(tuple((h, h * d) for h in s.heads) for s, d in zip(self.stages, self.head_dims))

    def violation(self, arch: Arch) -> str | None:
        why = super().violation(arch)
        if why:
            return why
        for i, j, block in arch.blocks():
            if block.head_dim != self.head_dims[i] or block.qkv_dim % block.heads:
                return f"stages[{i}].blocks[{j}] has heads of width {block.qkv_dim / block.heads:g}; this space keeps {self.head_dims[i]}"
        return None


def _fractions(full: int, widths: Sequence[float], least: int = 1) -> tuple[int, ...]:
    return tuple(sorted({max(least, round(full * w)) for w in widths}))


def neighbourhood(arch: Arch, resolution: int, widths: Sequence[float] = WIDTHS, name: str | None = None) -> ShrinkSpace:
    """The sub-networks of ``arch`` at ``resolution``; ``arch``'s blocks must be alike within each stage (as timm builds them)."""
    if any(not 0 < w <= 1 for w in widths) or 1.0 not in widths:
        raise NascompError(f"widths must lie in (0, 1] and include 1.0 (the model itself), got {list(widths)}")
    stages, head_dims = [], []
    for i, stage in enumerate(arch.stages):
        first = stage.blocks[0]
        if not stage.uniform:
            raise NascompError(
                f"shrink needs the blocks of each stage alike; stage {i + 1} of the model mixes "
                f"{sorted({(b.heads, b.qkv_dim, b.mlp_ratio) for b in stage.blocks})} (heads, qkv_dim, mlp_ratio)"
            )
        hidden = first.hidden_dim(stage.embed_dim)
        embed = _fractions(stage.embed_dim, widths)
        heads = _fractions(first.heads, widths)
        # MLP widths as fractions of the original hidden width, expressed as ratios of the full embedding
        ratios = tuple(sorted({_ratio(max(1, round(hidden * w)), stage.embed_dim) for w in widths}))
        stages.append(
            StageChoices(
                depth=tuple(range(1, stage.depth + 1)),
                embed_dim=embed,
                heads=heads,
                qkv_dim=tuple(h * first.head_dim for h in heads),
                mlp_ratio=ratios,
                window=(first.window,),
            )
        )
        head_dims.append(first.head_dim)
    digest = hashlib.sha1(f"{arch.to_json()}:{resolution}:{sorted(widths)}".encode()).hexdigest()[:10]
    return ShrinkSpace(
        stages,
        resolution,
        arch.patch_size,
        name or f"shrink-{digest}",
        head_dims,
        "the sub-networks of a trained Swin (nascomp compress --method shrink)",
    )


@torch.no_grad()
def load_supernet_from(model: nn.Module, space: ShrinkSpace, arch: Arch) -> Supernet:
    """A supernet over ``space`` holding ``model``'s weights: its largest arch computes exactly what ``model`` does.

    The largest arch's exported weights are views into the supernet's tensors (nothing is cut), so copying the
    model's state dict into them fills the supernet; the round trip is checked.
    """
    swin = cast(Any, model)  # a timm SwinTransformer (swin_arch checked it)
    drop_path = max((float(getattr(b.drop_path1, "drop_prob", 0.0)) for layer in swin.layers for b in layer.blocks), default=0.0)
    from nascomp.models.resolve import model_input_size

    in_chans, resolution = model_input_size(model)
    net = Supernet(space, num_classes=swin.num_classes, in_chans=in_chans, img_size=resolution, drop_path_rate=drop_path)
    if space.largest() != arch:
        raise NascompError("internal: the neighbourhood's largest member is not the model")
    state = model.state_dict()
    views = net.subnet_state_dict(arch)
    for key, view in views.items():
        view.copy_(state[key].reshape(view.shape))
    if any(not torch.equal(v, state[k]) for k, v in net.subnet_state_dict(arch).items()):
        raise NascompError("internal: the model's weights did not load into the supernet one to one")
    return net.eval()

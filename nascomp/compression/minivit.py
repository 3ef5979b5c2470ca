"""MiniViT weight multiplexing for timm Swin and ViT/DeiT models (Zhang et al., CVPR 2022).

Consecutive layers of a stage share one set of heavy weights: ``qkv``, ``proj``, MLP ``fc1``/``fc2``
and, for Swin, the relative-position bias table. Every layer keeps its own LayerNorms and gains small
*transforms* that let the shared weights act differently per layer:

- head mixing: a ``Linear(h, h)`` across the h attention heads, applied to the attention logits before
  the softmax and to the probabilities after it (Swin with bias, DeiT without, as in the released code);
- for Swin, an MLP-side transform: ``x <- LN(x); x <- x + DWConv7x7(x)`` between attention and MLP.

The model stays timm's: each block and attention object is kept (norms, masks, shifts, drop-path) and
only gains the transforms, by switching its class to a subclass that adds them. Depth and the number of
forward blocks do not change, so MACs rise slightly while parameters shrink (MiniViT issue #92).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.layers.attention import Attention, maybe_add_mask, resolve_self_attn_mask
from timm.models.swin_transformer import SwinTransformerBlock, WindowAttention
from torch import nn

from nascomp.compression.base import CompressionMethod, Student
from nascomp.core.errors import NascompError
from nascomp.models.registry import build_from_spec, register_model
from nascomp.models.structure import model_family, stage_depths, transformer_stages

__all__ = [
    "Multiplexing",
    "HeadMixing",
    "HeadMixingWindowAttention",
    "HeadMixingAttention",
    "MultiplexedSwinBlock",
    "default_share",
    "parse_share",
    "multiplex",
    "sharing_summary",
    "minivit_spec",
    "build_minivit",
    "MiniViTMethod",
]

SHARED_WEIGHTS = {
    "swin": ("attn.qkv", "attn.proj", "attn.relative_position_bias_table", "mlp.fc1", "mlp.fc2"),
    "vit": ("attn.qkv", "attn.proj", "attn.gate", "mlp.fc1", "mlp.fc2"),
}
TRANSFORM_INITS = ("identity", "random")


@dataclass(frozen=True)
class Multiplexing:
    """``share[i]``: how many consecutive layers of stage i use one weight set (the paper's "sharenum")."""

    share: tuple[int, ...]
    head_transform: bool = True
    mlp_transform: bool = True  # Swin only: the released Mini-DeiT has no MLP transform
    conv_kernel: int = 7  # the released Mini-Swin uses 7x7 whatever the window size

    def to_dict(self) -> dict:
        return {**asdict(self), "share": list(self.share)}


class HeadMixing(nn.Module):
    """``A[:, g] <- sum_h W[g, h] A[:, h] + b[g]`` at every (query, key) position of (B, h, N, N) attention."""

    def __init__(self, num_heads: int, bias: bool, init: str = "identity"):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_heads, num_heads))
        self.bias = nn.Parameter(torch.zeros(num_heads)) if bias else None
        if init == "identity":  # starts as a no-op, so a teacher-initialised student starts at the teacher
            nn.init.eye_(self.weight)
        else:  # the released code: trunc-normal(0.02), zero bias
            trunc_normal_(self.weight, std=0.02)

    def forward(self, attn: torch.Tensor) -> torch.Tensor:
        return F.linear(attn.transpose(1, -1), self.weight, self.bias).transpose(1, -1)


class HeadMixingWindowAttention(WindowAttention):
    """timm's Swin window attention with head mixing before and after the softmax (``mix_pre``, ``mix_post``).

    Order as in Mini-Swin: logits + relative-position bias, mix, + shift mask, softmax, mix, dropout, ·V.
    """

    mix_pre: HeadMixing
    mix_post: HeadMixing

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B_, N, _ = x.shape
        q, k, v = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = self.mix_pre((q * self.scale) @ k.transpose(-2, -1) + self._get_rel_pos_bias())
        if mask is not None:
            num_win = mask.shape[0]
            attn = (attn.view(-1, num_win, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)).view(-1, self.num_heads, N, N)
        attn = self.mix_post(attn.softmax(dim=-1))
        x = (self.attn_drop(attn) @ v).transpose(1, 2).reshape(B_, N, -1)
        return self.proj_drop(self.proj(x))


class HeadMixingAttention(Attention):
    """timm's ViT attention, computed explicitly (not fused SDPA) so heads can be mixed around the softmax."""

    mix_pre: HeadMixing
    mix_post: HeadMixing

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        B, N, _ = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        attn = self.mix_pre((q * self.scale) @ k.transpose(-2, -1))
        attn = maybe_add_mask(attn, resolve_self_attn_mask(N, attn, attn_mask, is_causal))
        attn = self.mix_post(attn.softmax(dim=-1))
        x = self.norm((self.attn_drop(attn) @ v).transpose(1, 2).reshape(B, N, self.attn_dim))
        if gate is not None:
            x = x * gate
        return self.proj_drop(self.proj(x))


class MultiplexedSwinBlock(SwinTransformerBlock):
    """timm's Swin block with Mini-Swin's per-layer MLP transform between attention and MLP.

    ``x <- x + Attn(LN1(x)); x <- LN_loc(x); x <- x + DWConv(x); x <- x + MLP(LN2(x))``. The residual
    stream is *replaced* by its LayerNorm output before the conv, as in the released code and figure.
    """

    local_norm: nn.LayerNorm
    local_conv: nn.Conv2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        x = x + self.drop_path1(self._attn(self.norm1(x)))
        x = self.local_norm(x)
        x = x + self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = x.reshape(B, -1, C)
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x.reshape(B, H, W, C)


def _extend(module: nn.Module, cls: type, **new_modules: nn.Module) -> None:
    """Switch timm's own ``module`` to the MiniViT subclass ``cls`` and attach the transforms it uses."""
    if not isinstance(module, cls.__bases__[0]) or isinstance(module, cls):
        raise TypeError(f"cannot extend {type(module).__name__} with {cls.__name__}")
    module.__class__ = cls
    for name, child in new_modules.items():
        setattr(module, name, child)


def _is_multiplexed(block: nn.Module) -> bool:
    return isinstance(block, MultiplexedSwinBlock) or isinstance(block.attn, (HeadMixingWindowAttention, HeadMixingAttention))


def default_share(model: nn.Module) -> tuple[int, ...]:
    """The paper's schedules: Swin stages of up to 6 blocks share one weight set (Mini-Swin-T: 2-2-6-2 ->
    1-1-1-1 unique), deeper stages share pairs (Mini-Swin-S/B: 18 -> 9 unique); ViT/DeiT share pairs
    (Mini-DeiT). A stage of odd depth where pairs are asked for shares one weight set instead."""
    family = model_family(model)
    out = []
    for depth in stage_depths(model):
        per = depth if family == "swin" and depth <= 6 else 2
        out.append(per if depth % per == 0 else depth)
    return tuple(out)


def parse_share(value: str | int | Sequence[int], depths: Sequence[int]) -> tuple[int, ...]:
    """``--share``: one number for every stage or one per stage; each must divide its stage's depth."""
    if isinstance(value, str):
        try:
            value = [int(p) for p in value.split(",") if p.strip()]
        except ValueError:
            raise NascompError(f"--share {value!r}: expected a number or one number per stage, e.g. 2,2,6,2") from None
    share = [value] * len(depths) if isinstance(value, int) else list(value)
    if len(share) == 1:
        share = share * len(depths)
    if len(share) != len(depths):
        raise NascompError(f"--share lists {len(share)} stages but the model has {len(depths)} (depths {list(depths)})")
    for i, (per, depth) in enumerate(zip(share, depths)):
        if per < 1 or depth % per:
            divisors = [d for d in range(1, depth + 1) if depth % d == 0]
            raise NascompError(
                f"--share {per} does not divide stage {i + 1}'s depth {depth}: each weight set must serve a whole "
                f"number of consecutive layers; use one of {divisors} for that stage (depths {list(depths)})"
            )
    return tuple(share)


def multiplex(model: nn.Module, config: Multiplexing, transform_init: str = "identity") -> nn.Module:
    """Apply weight multiplexing to a timm Swin or ViT/DeiT ``model`` in place and return it.

    Each group of ``share[i]`` consecutive layers takes its shared weights from the group's *first*
    block; the other blocks' copies are dropped. Norms stay per layer. ``transform_init="identity"`` makes
    the transforms no-ops (head mixing = I, depth-wise conv = 0) so a student copied from a teacher starts
    from the teacher's weights; ``"random"`` is the released code's initialisation (trunc-normal 0.02 head
    mixing, PyTorch-default conv) for students trained from scratch. Change the input size (timm's
    ``set_input_size``) before multiplexing: resizing afterwards gives each layer its own bias table again.
    """
    family = model_family(model)
    stages = transformer_stages(model)
    parse_share(config.share, [len(s) for s in stages])
    if transform_init not in TRANSFORM_INITS:
        raise ValueError(f"transform_init must be one of {TRANSFORM_INITS}")
    if any(_is_multiplexed(b) for s in stages for b in s):
        raise NascompError("the model is already MiniViT-compressed; compress its uncompressed teacher instead")
    for blocks, per in zip(stages, config.share):
        for start in range(0, len(blocks), per):
            owner = blocks[start]
            for block in blocks[start + 1 : start + per]:
                for name in SHARED_WEIGHTS[family]:
                    parent, _, attr = name.rpartition(".")
                    shared = getattr(owner.get_submodule(parent), attr)
                    if shared is not None:
                        setattr(block.get_submodule(parent), attr, shared)
        for block in blocks:
            _add_transforms(block, family, config, transform_init)
    return model


def _add_transforms(block: nn.Module, family: str, config: Multiplexing, transform_init: str) -> None:
    timm_block = cast(Any, block)  # a timm Swin / ViT block: its parts are read by attribute
    like = timm_block.norm1.weight
    if config.head_transform:
        heads = timm_block.attn.num_heads
        mixers = {name: HeadMixing(heads, bias=family == "swin", init=transform_init).to(like) for name in ("mix_pre", "mix_post")}
        _extend(timm_block.attn, HeadMixingWindowAttention if family == "swin" else HeadMixingAttention, **mixers)
    if family == "swin" and config.mlp_transform:
        dim, k = timm_block.dim, config.conv_kernel
        conv = nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim, bias=True)
        if transform_init == "identity":
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(cast(torch.Tensor, conv.bias))  # built with bias=True
        norm = nn.LayerNorm(dim, eps=getattr(timm_block.norm1, "eps", 1e-5))
        _extend(block, MultiplexedSwinBlock, local_norm=norm.to(like), local_conv=conv.to(like))


def sharing_summary(model: nn.Module) -> dict:
    """Unique weight sets vs layers, overall and per stage (a layer's weight set = its qkv module)."""
    per_stage = [
        {"layers": len(blocks), "unique": len({id(cast(Any, b).attn.qkv) for b in blocks})} for blocks in transformer_stages(model)
    ]
    return {
        "total_blocks": sum(s["layers"] for s in per_stage),
        "unique_blocks": sum(s["unique"] for s in per_stage),
        "per_stage": per_stage,
    }


def minivit_spec(base_spec: dict, config: Multiplexing) -> dict:
    """Model spec (see nascomp.models) of the compressed model: rebuild ``base_spec``, then multiplex it."""
    return {"builder": "minivit", "kwargs": {"base": base_spec, **config.to_dict()}}


@register_model("minivit")
def build_minivit(
    base: dict, share: Sequence[int], head_transform: bool = True, mlp_transform: bool = True, conv_kernel: int = 7
) -> nn.Module:
    """Builder behind `minivit_spec`: the structure only; weights come from the saved checkpoint."""
    config = Multiplexing(tuple(share), head_transform, mlp_transform, conv_kernel)
    return multiplex(build_from_spec(base), config, transform_init="identity")


class MiniViTMethod(CompressionMethod):
    """MiniViT weight multiplexing. Options: ``share`` (layers per weight set: one number, one per stage, or
    ``"2,2,1,1"``; default the paper's schedules), ``head_transform`` / ``mlp_transform`` (default on), and
    ``transform_init`` (``identity`` for a student copied from the teacher, ``random`` for the paper's)."""

    name = "minivit"

    def make_student(self, base: nn.Module, spec: dict, options: dict, context=None) -> Student:
        share = options.get("share")
        share = parse_share(share, stage_depths(base)) if share is not None else default_share(base)
        config = Multiplexing(share, head_transform=options.get("head_transform", True), mlp_transform=options.get("mlp_transform", True))
        multiplex(base, config, transform_init=options.get("transform_init", "identity"))
        return Student(base, minivit_spec(spec, config), config.to_dict())

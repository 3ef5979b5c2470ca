"""The S3 hierarchical supernet: one set of weights that runs any `Arch` of a search space.

``Supernet.from_space(space)`` allocates every layer at the space's largest choices (per stage: most
blocks, widest embed / Q-K-V / MLP, most heads, largest window); ``set_arch(arch)`` selects a subnet
without rebuilding anything, and ``forward`` runs it on the leading weight slices (`nascomp.nas.supernet.elastic`).
The layer configuration comes from `nascomp.spaces.layout` at the *input's* resolution, so windows are
clamped exactly as timm clamps them and `nascomp.nas.supernet.extract.extract` reproduces the outputs.

Grow / shrink for S3 space evolution: build ``Supernet.from_space(evolved_space)`` and call
``inherit_from(old)``: every tensor with the same name copies the overlapping region (leading along every
axis, centred for the relative-position tables), so all weights the new shapes allow are kept.

Saving: ``nascomp.models.save_model(dir, supernet, supernet.spec())`` (what `train_supernet` writes);
``load_supernet(dir)`` or ``nascomp.models.load_model(dir)`` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.models.registry import register_model
from nascomp.nas.supernet.elastic import ElasticHead, ElasticLayerNorm, ElasticPatchEmbed, ElasticPatchMerging, ElasticSwinBlock
from nascomp.spaces.arch import Arch
from nascomp.spaces.layout import ArchLayout, arch_layout
from nascomp.spaces.space import SearchSpace

__all__ = ["StageCapacity", "Supernet", "build_supernet", "load_supernet"]


@dataclass(frozen=True)
class StageCapacity:
    """The largest configuration one stage of the supernet can run."""

    depth: int
    embed_dim: int
    heads: int
    qkv_dim: int
    hidden_dim: int
    window: int

    @classmethod
    def of_space(cls, space: SearchSpace) -> tuple[StageCapacity, ...]:
        return tuple(
            cls(max(s.depth), max(s.embed_dim), max(s.heads), max(s.qkv_dim), int(max(s.embed_dim) * max(s.mlp_ratio)), max(s.window))
            for s in space.stages
        )


class _Stage(nn.Module):
    def __init__(self, cap: StageCapacity, prev: StageCapacity | None):
        super().__init__()
        self.downsample = ElasticPatchMerging(prev.embed_dim, cap.embed_dim) if prev is not None else None
        self.blocks = nn.ModuleList(
            ElasticSwinBlock(cap.embed_dim, cap.qkv_dim, cap.heads, cap.hidden_dim, cap.window) for _ in range(cap.depth)
        )


class Supernet(nn.Module):
    """Weight-entangled hierarchical ViT over ``space`` (see the module docstring).

    ``img_size`` is the resolution it is trained and extracted at (default: the space's); ``forward``
    accepts any square input divisible by the patch size. ``drop_path_rate`` is the stochastic-depth
    rate of the last block of the active subnet, rising linearly from 0 as in timm's Swin.
    """

    def __init__(
        self, space: SearchSpace, num_classes: int = 1000, in_chans: int = 3, img_size: int | None = None, drop_path_rate: float = 0.1
    ):
        super().__init__()
        if num_classes < 1:
            raise NascompError("a supernet needs num_classes >= 1")
        self.space = space
        self.num_classes, self.in_chans = int(num_classes), int(in_chans)
        self.img_size = int(img_size or space.resolution)
        self.drop_path_rate = float(drop_path_rate)
        self.patch_size = space.patch_size
        self.capacity = StageCapacity.of_space(space)
        caps = self.capacity
        self.patch_embed = ElasticPatchEmbed(self.in_chans, caps[0].embed_dim, space.patch_size)
        self.layers = nn.ModuleList(_Stage(cap, caps[i - 1] if i else None) for i, cap in enumerate(caps))
        self.norm = ElasticLayerNorm(caps[-1].embed_dim)
        self.head = ElasticHead(caps[-1].embed_dim, self.num_classes)
        self._layouts: dict[tuple[Arch, int], tuple[ArchLayout, tuple[float, ...]]] = {}
        self.set_arch(space.largest())

    @classmethod
    def from_space(cls, space: SearchSpace | str, **kwargs) -> Supernet:
        return cls(space if isinstance(space, SearchSpace) else SearchSpace.load(space), **kwargs)

    # --- the active subnet ---------------------------------------------------------------------
    @property
    def arch(self) -> Arch:
        return self._arch

    def set_arch(self, arch: Arch | Mapping) -> Supernet:
        """Select the subnet the next forward runs (no rebuild; raises if it exceeds the capacity)."""
        arch = Arch.from_dict(arch) if not isinstance(arch, Arch) else arch
        self._resolve(arch, self.img_size)
        self._arch = arch
        return self

    def misfit(self, arch: Arch, img_size: int | None = None) -> str | None:
        """Why the supernet cannot run ``arch`` (first problem found), or None."""
        if arch.patch_size != self.patch_size:
            return f"patch_size {arch.patch_size}, the supernet has {self.patch_size}"
        if arch.num_stages != len(self.capacity):
            return f"{arch.num_stages} stages, the supernet has {len(self.capacity)}"
        layout = arch_layout(arch, img_size or self.img_size, self.in_chans, self.num_classes)
        for i, (stage, cap) in enumerate(zip(arch.stages, self.capacity)):
            if stage.depth > cap.depth:
                return f"stages[{i}].depth {stage.depth} > {cap.depth}"
            if stage.embed_dim > cap.embed_dim:
                return f"stages[{i}].embed_dim {stage.embed_dim} > {cap.embed_dim}"
        for b in layout.blocks:
            cap = self.capacity[b.stage]
            for name, value, limit in (
                ("heads", b.heads, cap.heads),
                ("qkv_dim", b.qkv_dim, cap.qkv_dim),
                ("mlp hidden dim", b.hidden_dim, cap.hidden_dim),
                ("window", b.window, cap.window),
            ):
                if value > limit:
                    return f"stages[{b.stage}].blocks[{b.index}].{name} {value} > {limit}"
        return None

    def _resolve(self, arch: Arch, img_size: int) -> tuple[ArchLayout, tuple[float, ...]]:
        key = (arch, img_size)
        hit = self._layouts.get(key)
        if hit is None:
            why = self.misfit(arch, img_size)
            if why:
                raise NascompError(f"the supernet (space {self.space.name!r}) cannot run this arch: {why}")
            layout = arch_layout(arch, img_size, self.in_chans, self.num_classes)
            # timm's per-block rates (float32 linspace), so train-mode outputs match the extracted model too
            rates = tuple(torch.linspace(0, self.drop_path_rate, len(layout.blocks)).tolist())
            if len(self._layouts) > 4096:
                self._layouts.clear()
            hit = self._layouts[key] = (layout, rates)
        return hit

    def layout(self, img_size: int | None = None) -> ArchLayout:
        return self._resolve(self._arch, img_size or self.img_size)[0]

    def _stages(self) -> Sequence[_Stage]:
        """``self.layers`` as the type checker should see it (a ModuleList yields plain Modules)."""
        return cast("Sequence[_Stage]", self.layers)

    # --- forward -------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            raise NascompError(f"the supernet takes square inputs, got {tuple(x.shape[-2:])}")
        layout, rates = self._resolve(self._arch, x.shape[-1])
        x = self.patch_embed(x, layout.stem.dim)
        k = 0
        for i, stage in enumerate(self._stages()):
            if i:
                x = cast(ElasticPatchMerging, stage.downsample)(x, layout.merges[i - 1])  # every stage after the first merges
            for cfg in layout.blocks[k : k + self._arch.stages[i].depth]:
                x = stage.blocks[cfg.index](x, cfg, rates[k])
                k += 1
        return self.norm(x, layout.head.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x), self._arch.stages[-1].embed_dim)

    # --- weights -------------------------------------------------------------------------------
    def no_weight_decay(self) -> set[str]:
        """Norm weights, biases and relative-position tables (several are stored as 2-D/3-D tensors)."""
        return {n for n, _ in self.named_parameters() if "norm" in n or n.endswith("bias") or "relative_position" in n}

    def subnet_state_dict(self, arch: Arch | None = None) -> dict[str, torch.Tensor]:
        """The weights of ``arch`` (default: the active one) in the state-dict layout of timm's SwinTransformer
        as `nascomp.nas.supernet.extract.build_from_arch` builds it (views into the supernet's tensors)."""
        arch = arch or self._arch
        layout = self._resolve(arch, self.img_size)[0]
        out = self.patch_embed.export("patch_embed.", layout.stem.dim)
        stages = self._stages()
        for merge in layout.merges:
            downsample = cast(ElasticPatchMerging, stages[merge.stage].downsample)  # merges name stages after the first
            out |= downsample.export(f"layers.{merge.stage}.downsample.", merge)
        for b in layout.blocks:
            block = cast(ElasticSwinBlock, stages[b.stage].blocks[b.index])
            out |= block.export(f"layers.{b.stage}.blocks.{b.index}.", b)
        out |= self.norm.export("norm.", layout.head.dim)
        out |= self.head.export("head.", layout.head.dim)
        return out

    @torch.no_grad()
    def inherit_from(self, source: Supernet | Mapping[str, torch.Tensor]) -> dict[str, list[str]]:
        """Copy every overlapping region of same-named tensors from another supernet's weights.

        Leading slices along every axis (the elastic layers store structured weights with explicit axes),
        except relative-position tables, which are aligned at their centre (offset 0). Returns the names
        that were copied fully, partially, and not at all, so callers can report what was inherited.
        """
        state = source.state_dict() if isinstance(source, nn.Module) else source
        report: dict[str, list[str]] = {"full": [], "partial": [], "new": []}
        for name, target in self.state_dict().items():
            src = state.get(name)
            if src is None or src.ndim != target.ndim:
                report["new"].append(name)
                continue
            if name.endswith("relative_position_bias_table"):
                ts, ss = target.shape[0], src.shape[0]
                n = min(ts, ss)
                t_lo, s_lo = (ts - n) // 2, (ss - n) // 2
                h = min(target.shape[2], src.shape[2])
                target[t_lo : t_lo + n, t_lo : t_lo + n, :h].copy_(src[s_lo : s_lo + n, s_lo : s_lo + n, :h])
            else:
                region = tuple(slice(0, min(a, b)) for a, b in zip(target.shape, src.shape))
                target[region].copy_(src[region])
            report["full" if tuple(src.shape) == tuple(target.shape) else "partial"].append(name)
        return report

    def spec(self) -> dict:
        """A `nascomp.models` spec that rebuilds this supernet (weights go in model.safetensors)."""
        return {
            "builder": "supernet",
            "kwargs": {
                "space": self.space.to_dict(),
                "num_classes": self.num_classes,
                "in_chans": self.in_chans,
                "img_size": self.img_size,
                "drop_path_rate": self.drop_path_rate,
            },
        }


@register_model("supernet")
def build_supernet(
    space: Mapping | str, num_classes: int = 1000, in_chans: int = 3, img_size: int | None = None, drop_path_rate: float = 0.1
) -> Supernet:
    """Model-spec builder: ``space`` is a space dict (as saved) or a space name / YAML path."""
    resolved = SearchSpace.from_dict(space, "saved space") if isinstance(space, Mapping) else SearchSpace.load(space)
    return Supernet(resolved, num_classes=num_classes, in_chans=in_chans, img_size=img_size, drop_path_rate=drop_path_rate)


def load_supernet(directory: str | Path) -> Supernet:
    """A trained supernet from a run directory written by `train_supernet` / ``nascomp supernet train``."""
    from nascomp.models import load_model

    model, meta = load_model(directory)
    if not isinstance(model, Supernet):
        raise NascompError(f"{directory} holds a {type(model).__name__}, not a supernet; pass a `nascomp supernet train` run directory")
    return model

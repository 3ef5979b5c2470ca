"""`Arch`: one hierarchical (Swin-like) ViT architecture as plain, hashable, JSON-serialisable data.

An architecture has a fixed patch size and a list of stages; each stage has an embed dim and a list of
blocks, and each block chooses its own number of heads, Q-K-V dim (``heads × head_dim``, may differ from
the embed dim), MLP ratio and window size. Depth is the number of blocks. Shifted windows are not part of
the data: as in Swin/S3, odd blocks of a stage shift by half their window (see `nascomp.spaces.layout`).

JSON form (what search writes and ``nascomp flops ARCH.json`` reads)::

    {"patch_size": 4,
     "stages": [{"embed_dim": 96, "blocks": [{"heads": 3, "qkv_dim": 96, "mlp_ratio": 4.0, "window": 7}, ...]},
                ...]}

A stage may instead be written compactly as ``{"embed_dim": 96, "depth": 2, "heads": 3, "qkv_dim": 96,
"mlp_ratio": 4.0, "window": 7}`` (all blocks alike); `Arch.to_dict` always writes the per-block form.
Objects are frozen and hashable so search can deduplicate candidates and cache their costs.

An arch may also carry the model it was priced as (``num_classes``, ``in_chans``, ``resolution``; a search's
``best_arch.json`` records them), so counting or building it again gives the same params and MACs as the run
reported. They are context, not architecture: two archs that differ only there are equal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nascomp.core.errors import NascompError

__all__ = ["BlockArch", "StageArch", "Arch", "BLOCK_FIELDS"]

BLOCK_FIELDS = ("heads", "qkv_dim", "mlp_ratio", "window")
# the largest value of each field nascomp builds: far beyond any published ViT, and below what makes a build exhaust memory
LIMITS = {
    "depth": 256,
    "embed_dim": 65536,
    "heads": 1024,
    "qkv_dim": 65536,
    "mlp_ratio": 64.0,
    "window": 4096,
    "patch_size": 256,
    "resolution": 16384,
    "num_classes": 1_000_000,
    "in_chans": 64,
}


def check_limit(field: str, value: float, where: str) -> None:
    """A value past `LIMITS` is a user error (a typo'd depth of 10**9 would otherwise run out of memory, not fail)."""
    limit = LIMITS.get(field)
    if limit is not None and value > limit:
        raise NascompError(f"{where}: {value:g} is beyond the largest {field} nascomp builds ({limit:g})")


_CONTEXT = ("num_classes", "in_chans", "resolution")


def _int(value: Any, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or int(value) != value or value < minimum:
        raise NascompError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    check_limit(where.rsplit(".", 1)[-1], value, where)
    return int(value)


def _ratio(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not value > 0:
        raise NascompError(f"{where}: expected a positive, finite number, got {value!r}")
    check_limit(where.rsplit(".", 1)[-1], value, where)
    return float(value)


@dataclass(frozen=True)
class BlockArch:
    """One transformer block: attention width is ``qkv_dim`` split into ``heads`` heads of ``qkv_dim // heads``."""

    heads: int
    qkv_dim: int
    mlp_ratio: float
    window: int

    @property
    def head_dim(self) -> int:
        return self.qkv_dim // self.heads

    def hidden_dim(self, embed_dim: int) -> int:
        """MLP hidden width, rounded down exactly as timm's ``int(dim * mlp_ratio)``."""
        return int(embed_dim * self.mlp_ratio)

    def to_dict(self) -> dict:
        return {"heads": self.heads, "qkv_dim": self.qkv_dim, "mlp_ratio": self.mlp_ratio, "window": self.window}

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "block") -> BlockArch:
        if not isinstance(d, Mapping):
            raise NascompError(f"{where}: expected an object with {', '.join(BLOCK_FIELDS)}")
        unknown = sorted(set(d) - set(BLOCK_FIELDS))
        missing = [k for k in BLOCK_FIELDS if k not in d]
        if unknown or missing:
            raise NascompError(
                f"{where}: "
                + "; ".join(([f"unknown keys {unknown}"] if unknown else []) + ([f"missing keys {missing}"] if missing else []))
                + f" (a block has exactly {', '.join(BLOCK_FIELDS)})"
            )
        block = cls(
            heads=_int(d["heads"], f"{where}.heads"),
            qkv_dim=_int(d["qkv_dim"], f"{where}.qkv_dim"),
            mlp_ratio=_ratio(d["mlp_ratio"], f"{where}.mlp_ratio"),
            window=_int(d["window"], f"{where}.window"),
        )
        if block.qkv_dim % block.heads:
            raise NascompError(
                f"{where}: qkv_dim {block.qkv_dim} is not divisible by heads {block.heads}; qkv_dim must be heads × head_dim"
            )
        return block


@dataclass(frozen=True)
class StageArch:
    embed_dim: int
    blocks: tuple[BlockArch, ...]

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def uniform(self) -> bool:
        """True when every block is alike, i.e. the stage is exactly a timm ``SwinTransformerStage``."""
        return all(b == self.blocks[0] for b in self.blocks)

    def to_dict(self) -> dict:
        return {"embed_dim": self.embed_dim, "blocks": [b.to_dict() for b in self.blocks]}

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "stage") -> StageArch:
        if not isinstance(d, Mapping) or "embed_dim" not in d:
            raise NascompError(f"{where}: expected an object with 'embed_dim' and 'blocks' (or 'depth' + block fields)")
        embed = _int(d["embed_dim"], f"{where}.embed_dim")
        if "blocks" in d:
            extra = sorted(set(d) - {"embed_dim", "blocks"})
            if extra:
                raise NascompError(f"{where}: unknown keys {extra} next to 'blocks'")
            if not isinstance(d["blocks"], Sequence) or isinstance(d["blocks"], str) or not d["blocks"]:
                raise NascompError(f"{where}.blocks: expected a non-empty list of blocks")
            blocks = tuple(BlockArch.from_dict(b, f"{where}.blocks[{j}]") for j, b in enumerate(d["blocks"]))
        else:
            extra = sorted(set(d) - {"embed_dim", "depth", *BLOCK_FIELDS})
            if extra:
                raise NascompError(f"{where}: unknown keys {extra}")
            depth = _int(d.get("depth"), f"{where}.depth")
            block = BlockArch.from_dict({k: d.get(k) for k in BLOCK_FIELDS if k in d}, where)
            blocks = (block,) * depth
        return cls(embed, blocks)


@dataclass(frozen=True)
class Arch:
    """A hierarchical ViT: ``patch_size`` and one `StageArch` per stage (patch merging between stages)."""

    stages: tuple[StageArch, ...]
    patch_size: int = 4
    name: str | None = field(default=None, compare=False)
    num_classes: int | None = field(default=None, compare=False)  # the classifier it was priced with (None: 1000)
    in_chans: int | None = field(default=None, compare=False)  # input channels (None: 3)
    resolution: int | None = field(default=None, compare=False)  # input side in px (None: 224)

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(s.depth for s in self.stages)

    @property
    def embed_dims(self) -> tuple[int, ...]:
        return tuple(s.embed_dim for s in self.stages)

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def blocks(self) -> Iterator[tuple[int, int, BlockArch]]:
        """(stage index, block index within the stage, block) for every block in order."""
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage.blocks):
                yield i, j, block

    def replace_stage(self, index: int, stage: StageArch) -> Arch:
        stages = list(self.stages)
        stages[index] = stage
        return replace(self, stages=tuple(stages))

    # --- serialisation -------------------------------------------------------------------------
    def with_context(self, num_classes: int | None = None, in_chans: int | None = None, resolution: int | None = None) -> Arch:
        """The same arch priced as a model with these classes, input channels and resolution."""
        return replace(self, num_classes=num_classes, in_chans=in_chans, resolution=resolution)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"patch_size": self.patch_size, "stages": [s.to_dict() for s in self.stages]}
        if self.name:
            d = {"name": self.name, **d}
        d.update({k: getattr(self, k) for k in _CONTEXT if getattr(self, k) is not None})
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Mapping, where: str = "arch") -> Arch:
        if isinstance(d, Arch):
            return d
        if isinstance(d, Mapping) and "stages" not in d and isinstance(d.get("arch"), Mapping):
            # a search result (best_arch.json): the arch next to its costs and accuracy, and the model it was priced as
            d = {**{k: d[k] for k in _CONTEXT if d.get(k) is not None}, **d["arch"]}
        if not isinstance(d, Mapping) or "stages" not in d:
            raise NascompError(f"{where}: expected an object with 'stages' (see nascomp.spaces.arch for the format)")
        unknown = sorted(set(d) - {"stages", "patch_size", "name", *_CONTEXT})
        if unknown:
            raise NascompError(
                f"{where}: unknown keys {unknown} (an arch has 'patch_size', 'stages' and optionally 'name', {', '.join(_CONTEXT)})"
            )
        stages = d["stages"]
        if not isinstance(stages, Sequence) or isinstance(stages, str) or not stages:
            raise NascompError(f"{where}.stages: expected a non-empty list of stages")
        name = d.get("name")
        return cls(
            stages=tuple(StageArch.from_dict(s, f"{where}.stages[{i}]") for i, s in enumerate(stages)),
            patch_size=_int(d.get("patch_size", 4), f"{where}.patch_size"),
            name=str(name) if name is not None else None,
            **{k: _int(d[k], f"{where}.{k}") for k in _CONTEXT if d.get(k) is not None},
        )

    @classmethod
    def load(cls, path: str | Path) -> Arch:
        """Read an arch JSON file (errors name the file and the offending key)."""
        path = Path(path)
        from nascomp.core.io import parse_json

        try:
            doc = parse_json(path.read_text())
        except FileNotFoundError:
            raise NascompError(f"arch file {path} not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
            raise NascompError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(doc, where=str(path))

    @classmethod
    def swin(
        cls,
        depths: Sequence[int],
        embed_dims: Sequence[int],
        heads: Sequence[int],
        windows: Sequence[int] | int = 7,
        mlp_ratio: float = 4.0,
        head_dim: int | None = None,
        patch_size: int = 4,
        name: str | None = None,
    ) -> Arch:
        """A stage-uniform arch from timm-style per-stage lists (``head_dim`` defaults to ``dim // heads``)."""
        windows = [windows] * len(depths) if isinstance(windows, int) else list(windows)
        stages = []
        for depth, dim, h, w in zip(depths, embed_dims, heads, windows, strict=True):
            qkv = h * (head_dim or dim // h)
            stages.append(StageArch(int(dim), (BlockArch(int(h), int(qkv), float(mlp_ratio), int(w)),) * int(depth)))
        arch = cls(tuple(stages), patch_size, name)
        return cls.from_dict(arch.to_dict())  # validates

"""`SearchSpace`: per-(stage, dimension) choices for hierarchical ViTs, loaded from YAML.

A space fixes the patch size, its deployment ``resolution`` (budgets are measured there) and, per stage,
the choices of six dimensions: ``depth`` and ``embed_dim`` (one value per stage) and ``heads``,
``qkv_dim``, ``mlp_ratio`` and ``window`` (one value per block). It is the product of those choices,
restricted by two consistency rules that validation enforces and every operation preserves:

- a block's ``qkv_dim`` must be divisible by its ``heads`` (``qkv_dim = heads × head_dim``); every heads
  choice must divide some qkv choice and vice versa, otherwise a choice could never be used;
- a window must not exceed its stage's feature map at the deployment resolution and must tile it
  (a larger window would be clamped by timm to the feature map and duplicate another choice).

Sampling follows AutoFormer/S3: every dimension is drawn uniformly from its choices, per stage and per
block; (heads, qkv_dim) is drawn uniformly from the compatible pairs. S3's space evolution rewrites the
choices of one (stage, dimension) at a time: `SearchSpace.choices` / `subspaces` enumerate them and
`with_choices` returns the rewritten, re-validated space.

YAML form::

    name: s3-vit
    resolution: 224
    patch_size: 4
    stages:
      - {depth: [1, 2, 3], embed_dim: [80, 96, 112], heads: [2, 3, 4], qkv_dim: [80, 96, 112],
         mlp_ratio: [3.0, 3.5, 4.0], window: [7, 14]}
      - ...
"""

from __future__ import annotations

import difflib
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_text, parse_yaml
from nascomp.spaces.arch import Arch, BlockArch, StageArch, check_limit
from nascomp.spaces.layout import clamp_window, stage_resolutions
from nascomp.spaces.registry import space_path

__all__ = ["DIMENSIONS", "STAGE_DIMENSIONS", "BLOCK_DIMENSIONS", "StageChoices", "Collapsed", "SearchSpace", "load_space"]

STAGE_DIMENSIONS = ("depth", "embed_dim")
BLOCK_DIMENSIONS = ("heads", "qkv_dim", "mlp_ratio", "window")
DIMENSIONS = STAGE_DIMENSIONS + BLOCK_DIMENSIONS

Rng = random.Random | int | None


def _as_rng(rng: Rng) -> random.Random:
    return rng if isinstance(rng, random.Random) else random.Random(rng)


@dataclass(frozen=True)
class StageChoices:
    """The choices of one stage; each is a sorted tuple of distinct values."""

    depth: tuple[int, ...]
    embed_dim: tuple[int, ...]
    heads: tuple[int, ...]
    qkv_dim: tuple[int, ...]
    mlp_ratio: tuple[float, ...]
    window: tuple[int, ...]

    @property
    def attention_pairs(self) -> tuple[tuple[int, int], ...]:
        """All (heads, qkv_dim) combinations with qkv_dim divisible by heads."""
        return tuple((h, q) for h in self.heads for q in self.qkv_dim if q % h == 0)

    def to_dict(self) -> dict:
        return {d: list(getattr(self, d)) for d in DIMENSIONS}


@dataclass(frozen=True)
class Collapsed:
    """One (stage, dimension) whose choices a proxy resolution makes one function: it is fixed, not searched."""

    stage: int  # 0-based
    dimension: str
    choices: tuple
    fixed: int | float  # the value every candidate uses at that proxy
    reason: str

    def to_dict(self) -> dict:
        """JSON for users: stages numbered from 1, as every printed line and report names them."""
        return {
            "stage": self.stage + 1,
            "dimension": self.dimension,
            "choices": list(self.choices),
            "fixed": self.fixed,
            "reason": self.reason,
        }

    def describe(self) -> str:
        return f"stage {self.stage + 1} {self.dimension} {list(self.choices)} fixed to {self.fixed}: {self.reason}"


def _middle(values: Sequence) -> Any:
    """The middle choice (the lower one of an even count: Swin-T's 7 of windows {7, 14})."""
    return values[(len(values) - 1) // 2]


def _parse_values(value: Any, where: str, is_ratio: bool) -> tuple:
    if not isinstance(value, (list, tuple)) or not value:
        raise NascompError(f"{where}: expected a non-empty list of choices, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not v > 0 or (not is_ratio and int(v) != v):
            kind = "positive, finite numbers" if is_ratio else "positive integers"
            raise NascompError(f"{where}: choices must be {kind}, got {v!r}")
        check_limit(where.rsplit(".", 1)[-1], v, where)
        out.append(float(v) if is_ratio else int(v))
    if len(set(out)) != len(out):
        raise NascompError(f"{where}: duplicate choices in {list(value)}")
    return tuple(sorted(out))


class SearchSpace:
    """An immutable, validated search space (see the module docstring for rules and YAML form)."""

    def __init__(
        self,
        stages: Sequence[StageChoices],
        resolution: int,
        patch_size: int = 4,
        name: str = "space",
        description: str = "",
        source: str | None = None,
    ):
        self.stages = tuple(stages)
        self.resolution = int(resolution)
        self.patch_size = int(patch_size)
        self.name = name
        self.description = description
        self._source = source or name
        self._validate()
        self._pairs = tuple(s.attention_pairs for s in self.stages)

    # --- construction / serialisation ----------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping, source: str = "space") -> SearchSpace:
        if not isinstance(d, Mapping):
            raise NascompError(f"{source}: a search space is a mapping with 'resolution', 'patch_size' and 'stages'")
        allowed = {"name", "description", "resolution", "patch_size", "stages"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise NascompError(f"{source}: unknown keys {unknown}{_suggest(unknown[0], allowed)}")
        for key in ("resolution", "stages"):
            if key not in d:
                raise NascompError(f"{source}: missing key {key!r}")
        stages_raw = d["stages"]
        if not isinstance(stages_raw, list) or not stages_raw:
            raise NascompError(f"{source}: 'stages' must be a non-empty list of stage choices")
        stages = []
        for i, s in enumerate(stages_raw):
            where = f"{source}: stages[{i}]"
            if not isinstance(s, Mapping):
                raise NascompError(f"{where}: expected a mapping of dimension -> list of choices")
            unknown = sorted(set(s) - set(DIMENSIONS))
            if unknown:
                raise NascompError(
                    f"{where}: unknown dimension {unknown[0]!r}{_suggest(unknown[0], DIMENSIONS)} (dimensions: {', '.join(DIMENSIONS)})"
                )
            missing = [k for k in DIMENSIONS if k not in s]
            if missing:
                raise NascompError(f"{where}: missing dimensions {missing}")
            stages.append(StageChoices(**{k: _parse_values(s[k], f"{where}.{k}", k == "mlp_ratio") for k in DIMENSIONS}))
        for key in ("resolution", "patch_size"):
            v = d.get(key, 4)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise NascompError(f"{source}: {key} must be a positive integer, got {v!r}")
        return cls(
            stages,
            d["resolution"],
            d.get("patch_size", 4),
            str(d.get("name", Path(source).stem)),
            str(d.get("description", "")).strip(),
            source,
        )

    @classmethod
    def load(cls, name_or_path: str | Path) -> SearchSpace:
        """Load a shipped space by name (``s3-vit``; see `nascomp.spaces.list_spaces`) or a YAML path."""
        path = space_path(name_or_path)
        try:
            doc = parse_yaml(path.read_text())
        except yaml.YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise NascompError(f"{path}: not valid YAML ({problem})") from None
        return cls.from_dict(doc, source=str(path))

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"name": self.name}
        if self.description:
            d["description"] = self.description
        d.update(resolution=self.resolution, patch_size=self.patch_size, stages=[s.to_dict() for s in self.stages])
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=120)

    def save(self, path: str | Path) -> Path:
        atomic_write_text(path, self.to_yaml())
        return Path(path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and (self.stages, self.resolution, self.patch_size) == (
            other.stages,
            other.resolution,
            other.patch_size,
        )

    def __hash__(self) -> int:
        return hash((self.stages, self.resolution, self.patch_size))

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, {self.num_stages} stages, {self.resolution} px, ~{float(self.size()):.2e} archs)"

    # --- validation ------------------------------------------------------------------------------
    def _validate(self) -> None:
        src = self._source
        if self.resolution % self.patch_size:
            raise NascompError(f"{src}: resolution {self.resolution} is not divisible by patch_size {self.patch_size}")
        sides = stage_resolutions(self.resolution, self.patch_size, self.num_stages)
        for i, s in enumerate(self.stages):
            where = f"{src}: stages[{i}]"
            for h in s.heads:
                if not any(q % h == 0 for q in s.qkv_dim):
                    raise NascompError(
                        f"{where}.heads: {h} heads divide none of the qkv_dim choices {list(s.qkv_dim)}; qkv_dim must be heads × head_dim"
                    )
            for q in s.qkv_dim:
                if not any(q % h == 0 for h in s.heads):
                    raise NascompError(f"{where}.qkv_dim: {q} is divisible by none of the heads choices {list(s.heads)}")
            side = sides[i]
            for w in s.window:
                if w > side:
                    raise NascompError(
                        f"{where}.window: {w} is larger than stage {i + 1}'s {side}x{side} feature map at {self.resolution} px "
                        f"(timm would clamp it to {side}, duplicating a smaller choice); use windows <= {side}"
                    )
                if side % w:
                    raise NascompError(
                        f"{where}.window: {w} does not tile stage {i + 1}'s {side}x{side} feature map "
                        f"at {self.resolution} px; use a divisor of {side}"
                    )

    # --- choices (space evolution) ---------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.stages)

    def attention_pairs(self, stage: int) -> tuple[tuple[int, int], ...]:
        """The (heads, qkv_dim) pairs members of ``stage`` may use (a subclass may allow fewer than the divisible ones)."""
        return self._pairs[stage]

    def choices(self, stage: int, dimension: str) -> tuple:
        if dimension not in DIMENSIONS:
            raise NascompError(f"unknown dimension {dimension!r}; dimensions are {', '.join(DIMENSIONS)}")
        if not 0 <= stage < self.num_stages:
            raise NascompError(f"stage {stage} out of range: the space has {self.num_stages} stages (0-based)")
        return getattr(self.stages[stage], dimension)

    def subspaces(self) -> list[tuple[int, str, tuple]]:
        """(stage, dimension, choices) for every (stage, dimension) pair: S3's decomposition A = S_1 × … × S_D."""
        return [(i, d, getattr(s, d)) for i, s in enumerate(self.stages) for d in DIMENSIONS]

    def with_choices(self, changes: Mapping[tuple[int, str], Iterable], name: str | None = None) -> SearchSpace:
        """A new space with ``{(stage, dimension): new choices}`` replaced; raises NascompError if invalid."""
        stages = list(self.stages)
        for (stage, dim), values in changes.items():
            self.choices(stage, dim)  # validates the key
            parsed = _parse_values(list(values), f"{name or self.name}: stages[{stage}].{dim}", dim == "mlp_ratio")
            stages[stage] = replace(stages[stage], **{dim: parsed})
        new_name = name or self.name
        return SearchSpace(stages, self.resolution, self.patch_size, new_name, self.description, new_name)

    def size(self) -> int:
        """Exact number of distinct architectures in the space."""
        total = 1
        for i, s in enumerate(self.stages):
            per_block = len(self.attention_pairs(i)) * len(s.mlp_ratio) * len(s.window)
            total *= len(s.embed_dim) * sum(per_block**d for d in s.depth)
        return total

    def degenerate_windows(self, resolution: int) -> list[str]:
        """Human-readable notes on window choices that a (proxy) ``resolution`` makes degenerate.

        timm clamps a window >= the feature map to the feature map (global attention, no shift), so at a
        proxy resolution several choices can become the same layer; the training report lists them.
        """
        notes = []
        sides = stage_resolutions(resolution, self.patch_size, self.num_stages)
        for i, (s, side) in enumerate(zip(self.stages, sides)):
            effective = {w: min(w, side) for w in s.window}
            distinct = sorted(set(effective.values()))
            if len(s.window) > 1 and len(distinct) < len(s.window):
                notes.append(
                    f"stage {i + 1}: window choices {list(s.window)} become {distinct} on its {side}x{side} feature map "
                    f"at {resolution} px, so they are not distinguished there"
                )
            elif any(w >= side for w in s.window):
                notes.append(
                    f"stage {i + 1}: window {[w for w in s.window if w >= side]} is global attention (no shift) on its "
                    f"{side}x{side} feature map at {resolution} px"
                )
            padded = [w for w in distinct if side % w]
            if padded:
                notes.append(f"stage {i + 1}: window {padded} does not tile the {side}x{side} feature map at {resolution} px; timm pads it")
        return notes

    def indistinct(self, resolution: int) -> list[tuple[int, str, tuple[tuple, ...], str]]:
        """The (stage, dimension)s where training at ``resolution`` makes two or more choices one function:
        ``(stage, dimension, groups, reason)``, each group a tuple of choices that build the same layer there.

        - ``window``: choices that resolve to the same (window, shift) in even and odd blocks on the stage's map
          (timm clamps a window >= the map to the map, global and unshifted).
        - ``heads`` on a 1x1 map: attention over a single token gives it weight 1 in every head, so the block
          computes the same function for every head count.
        - ``qkv_dim`` on a 1x1 map: Q and K never reach the output (softmax of one logit is 1), so what the
          choice sets at deployment, the width of attention, is not measured; only a V-to-output width is.

        Depth, embed dim and MLP ratio act on each token whatever the map size, so no resolution merges them.
        A 2x2 map is not a collapse: attention over 4 tokens still depends on the heads and the Q-K-V width.
        """
        out = []
        sides = stage_resolutions(resolution, self.patch_size, self.num_stages)
        at = f"at {resolution} px"
        for i, (ch, side) in enumerate(zip(self.stages, sides)):
            layers: dict[tuple, list] = {}
            for w in ch.window:
                layers.setdefault(tuple(clamp_window(side, w, index) for index in (0, 1)), []).append(w)
            groups = tuple(tuple(g) for g in layers.values() if len(g) > 1)
            if groups:
                desc = "; ".join(
                    f"windows {list(g)} all become {k[0][0]}x{k[0][0]}" + (" (global, unshifted)" if k[0][0] >= side else "")
                    for k, g in layers.items()
                    if len(g) > 1
                )
                out.append((i, "window", groups, f"{desc} on the {side}x{side} map {at}"))
            if side == 1:
                if len(ch.qkv_dim) > 1:
                    out.append(
                        (
                            i,
                            "qkv_dim",
                            (ch.qkv_dim,),
                            f"on the 1x1 map {at} Q and K never reach the output (one token); only V's width is measured",
                        )
                    )
                if len(ch.heads) > 1:
                    out.append(
                        (i, "heads", (ch.heads,), f"on the 1x1 map {at} every head attends to the one token with weight 1: same function")
                    )
        return out

    def collapsed(self, resolution: int) -> list[Collapsed]:
        """The (stage, dimension)s whose every choice training at ``resolution`` turns into one function (`indistinct`).

        Each is fixed to its middle choice (heads: the middle of those dividing every remaining Q-K-V choice); `pinned`
        returns the space that way.
        """
        out = []
        whole = {
            (stage, dim): reason
            for stage, dim, groups, reason in self.indistinct(resolution)
            if len(groups) == 1 and set(groups[0]) == set(self.choices(stage, dim))
        }
        for i, ch in enumerate(self.stages):
            if (i, "window") in whole:
                out.append(Collapsed(i, "window", ch.window, _middle(ch.window), whole[i, "window"]))
            qkv = ch.qkv_dim
            if (i, "qkv_dim") in whole:
                qkv = (_middle(qkv),)
                out.append(Collapsed(i, "qkv_dim", ch.qkv_dim, qkv[0], whole[i, "qkv_dim"]))
            if (i, "heads") in whole:
                fits = [h for h in ch.heads if all(q % h == 0 for q in qkv)] or list(ch.heads)
                out.append(Collapsed(i, "heads", ch.heads, _middle(fits), whole[i, "heads"]))
        return out

    def pinned(self, resolution: int) -> SearchSpace:
        """This space with every dimension that ``resolution`` collapses fixed to one value (`collapsed`)."""
        return self.with_choices({(c.stage, c.dimension): [c.fixed] for c in self.collapsed(resolution)})

    # --- membership ------------------------------------------------------------------------------
    def violation(self, arch: Arch) -> str | None:
        """Why ``arch`` is not a member (the first offending key), or None if it is."""
        if arch.patch_size != self.patch_size:
            return f"patch_size {arch.patch_size} is not the space's {self.patch_size}"
        if arch.num_stages != self.num_stages:
            return f"{arch.num_stages} stages, the space has {self.num_stages}"
        for i, (stage, ch) in enumerate(zip(arch.stages, self.stages)):
            if stage.depth not in ch.depth:
                return f"stages[{i}].depth {stage.depth} not in {list(ch.depth)}"
            if stage.embed_dim not in ch.embed_dim:
                return f"stages[{i}].embed_dim {stage.embed_dim} not in {list(ch.embed_dim)}"
            for j, b in enumerate(stage.blocks):
                for dim in BLOCK_DIMENSIONS:
                    if getattr(b, dim) not in getattr(ch, dim):
                        return f"stages[{i}].blocks[{j}].{dim} {getattr(b, dim)} not in {list(getattr(ch, dim))}"
        return None

    def contains(self, arch: Arch) -> bool:
        return self.violation(arch) is None

    def __contains__(self, arch: Arch) -> bool:
        return self.contains(arch)

    def check(self, arch: Arch) -> Arch:
        """Return ``arch`` if it is a member, else raise a NascompError naming the offending key."""
        why = self.violation(arch)
        if why:
            raise NascompError(f"arch is not in search space {self.name!r}: {why}")
        return arch

    # --- sampling and variation ------------------------------------------------------------------
    def _block(self, stage: int, rng: random.Random) -> BlockArch:
        ch = self.stages[stage]
        heads, qkv = rng.choice(self._pairs[stage])
        return BlockArch(heads, qkv, rng.choice(ch.mlp_ratio), rng.choice(ch.window))

    def _sample_once(self, rng: random.Random) -> Arch:
        stages = []
        for i, ch in enumerate(self.stages):
            depth, embed = rng.choice(ch.depth), rng.choice(ch.embed_dim)
            stages.append(StageArch(embed, tuple(self._block(i, rng) for _ in range(depth))))
        return Arch(tuple(stages), self.patch_size)

    def sample(self, rng: Rng = None, constraint: Callable[[Arch], bool] | None = None, max_tries: int = 10_000) -> Arch:
        """A uniformly drawn member; with ``constraint``, the first of up to ``max_tries`` draws it accepts."""
        rng = _as_rng(rng)
        for _ in range(max_tries if constraint else 1):
            arch = self._sample_once(rng)
            if constraint is None or constraint(arch):
                return arch
        raise NascompError(
            f"no architecture of space {self.name!r} met the constraint in {max_tries} random draws; loosen the budget or narrow the space"
        )

    def mutate(self, arch: Arch, rng: Rng = None, prob: float = 0.2, stage_prob: float = 0.4) -> Arch:
        """AutoFormer-style mutation: per stage, resample depth (truncate / append random blocks) and embed dim
        with ``stage_prob``; per block, resample (heads, qkv_dim), mlp_ratio and window each with ``prob``."""
        self.check(arch)
        rng = _as_rng(rng)
        stages = []
        for i, (stage, ch) in enumerate(zip(arch.stages, self.stages)):
            depth = rng.choice(ch.depth) if rng.random() < stage_prob else stage.depth
            embed = rng.choice(ch.embed_dim) if rng.random() < stage_prob else stage.embed_dim
            blocks = list(stage.blocks[:depth]) + [self._block(i, rng) for _ in range(depth - stage.depth)]
            out = []
            for b in blocks:
                heads, qkv = rng.choice(self._pairs[i]) if rng.random() < prob else (b.heads, b.qkv_dim)
                mlp = rng.choice(ch.mlp_ratio) if rng.random() < prob else b.mlp_ratio
                window = rng.choice(ch.window) if rng.random() < prob else b.window
                out.append(BlockArch(heads, qkv, mlp, window))
            stages.append(StageArch(embed, tuple(out)))
        return Arch(tuple(stages), self.patch_size)

    def crossover(self, a: Arch, b: Arch, rng: Rng = None) -> Arch:
        """Uniform crossover: each stage's depth and embed dim and each block's genes come from either parent
        ((heads, qkv_dim) travel together so they stay compatible); blocks only one parent has are copied."""
        self.check(a)
        self.check(b)
        rng = _as_rng(rng)
        stages = []
        for sa, sb in zip(a.stages, b.stages):
            depth = rng.choice((sa.depth, sb.depth))
            embed = rng.choice((sa.embed_dim, sb.embed_dim))
            blocks = []
            for j in range(depth):
                options = [s.blocks[j] for s in (sa, sb) if j < s.depth]
                if len(options) == 1:
                    blocks.append(options[0])
                    continue
                attn = rng.choice(options)
                blocks.append(BlockArch(attn.heads, attn.qkv_dim, rng.choice(options).mlp_ratio, rng.choice(options).window))
            stages.append(StageArch(embed, tuple(blocks)))
        return Arch(tuple(stages), self.patch_size)

    def largest(self) -> Arch:
        """Every dimension at its maximum (heads: the most that divide the largest qkv_dim): the sandwich top."""
        stages = []
        for ch in self.stages:
            qkv = max(ch.qkv_dim)
            heads = max(h for h in ch.heads if qkv % h == 0)
            block = BlockArch(heads, qkv, max(ch.mlp_ratio), max(ch.window))
            stages.append(StageArch(max(ch.embed_dim), (block,) * max(ch.depth)))
        return Arch(tuple(stages), self.patch_size)

    def smallest(self) -> Arch:
        """Every dimension at its minimum (heads: the fewest that divide the smallest qkv_dim): the sandwich bottom."""
        stages = []
        for ch in self.stages:
            qkv = min(ch.qkv_dim)
            heads = min(h for h in ch.heads if qkv % h == 0)
            block = BlockArch(heads, qkv, min(ch.mlp_ratio), min(ch.window))
            stages.append(StageArch(min(ch.embed_dim), (block,) * min(ch.depth)))
        return Arch(tuple(stages), self.patch_size)


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_space(name_or_path: str | Path) -> SearchSpace:
    """A shipped search space by name (``s3-vit``, ``s3-vit-cpu``; see `list_spaces`) or a space YAML file.

    Args:
        name_or_path: the space's name or the path of a YAML file in the format of ``nascomp/spaces/builtin``.

    Returns:
        The `SearchSpace` (its choices per stage and dimension, resolution and patch size).
    """
    return SearchSpace.load(name_or_path)

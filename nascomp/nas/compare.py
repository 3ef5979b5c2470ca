"""The search's winner against a hand-designed arch of the same budget, both trained stand-alone alike.

An inherited-weight score says how a subnet ranks inside one supernet, not whether the search beat what a
person would have written. So the run ends by training two archs from scratch under one short fixed recipe,
over several seeds: the winner, and `hand_designed_arch` — Swin-T when the space holds it (s3-vit does), else
the space's centre member (every dimension at its middle choice), with blocks dropped from its deepest stage
until it meets the budget (Swin-T at 4 G MACs: 2-2-4-2 blocks, 3.78 G). `difference_ci` says whether the
seeds tell the two apart.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from scipy import stats

from nascomp.spaces import Arch, BlockArch, SearchSpace, StageArch

__all__ = ["hand_designed_arch", "difference_ci"]

SWIN_T = Arch.swin([2, 2, 6, 2], [96, 192, 384, 768], [3, 6, 12, 24], 7, name="Swin-T")


def _middle(values: Sequence):
    return values[(len(values) - 1) // 2]


def _centre(space: SearchSpace) -> Arch:
    stages = []
    for ch in space.stages:
        qkv = _middle(ch.qkv_dim)
        heads = _middle([h for h in ch.heads if qkv % h == 0])
        block = BlockArch(heads, qkv, _middle(ch.mlp_ratio), _middle(ch.window))
        stages.append(StageArch(_middle(ch.embed_dim), (block,) * _middle(ch.depth)))
    return Arch(tuple(stages), space.patch_size)


def hand_designed_arch(space: SearchSpace, fits: Callable[[Arch], bool]) -> Arch | None:
    """Swin-T (or the space's centre member) with blocks dropped from its deepest stage until ``fits``; None if none does.

    The arch is named after what it is (``Swin-T with 2-2-4-2 blocks``); dropping stops at each stage's
    smallest depth choice, so the result stays a member of the space.
    """
    swin = Arch(SWIN_T.stages, space.patch_size)
    base, label = (
        (swin, "Swin-T") if len(swin.stages) == space.num_stages and space.contains(swin) else (_centre(space), "centre of the space")
    )
    arch = base
    while not fits(arch):
        shrinkable = [i for i, (s, ch) in enumerate(zip(arch.stages, space.stages)) if s.depth > min(ch.depth)]
        if not shrinkable:
            return None
        i = max(shrinkable, key=lambda i: (arch.stages[i].depth, i))
        arch = arch.replace_stage(i, StageArch(arch.stages[i].embed_dim, arch.stages[i].blocks[:-1]))
    depths = "-".join(map(str, arch.depths))
    return Arch(arch.stages, arch.patch_size, name=label if arch == base else f"{label} with {depths} blocks")


def difference_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """Mean of ``a`` minus mean of ``b`` with a pooled two-sample t interval (seeds as the replicates).

    ``separated`` is False when the interval holds 0 (or cannot be computed from one seed each): the recipe
    cannot tell the two apart.
    """
    n, m = len(a), len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    df = n + m - 2
    if df < 1:
        return {"difference": diff, "ci": None, "level": level, "separated": False, "df": df}
    pooled = ((n - 1) * (statistics.variance(a) if n > 1 else 0.0) + (m - 1) * (statistics.variance(b) if m > 1 else 0.0)) / df
    half = float(stats.t.ppf(0.5 + level / 2, df)) * math.sqrt(pooled * (1 / n + 1 / m))
    lo, hi = diff - half, diff + half
    return {"difference": diff, "ci": [float(lo), float(hi)], "level": level, "separated": bool(lo > 0 or hi < 0), "df": df}

"""S3's E-T error: how good a search space is under a budget, for the whole space and for each choice.

For N subnets sampled uniformly from the space among those that meet the budget, with supernet-inherited
weights and validation top-1 error e (S3: Chen et al., "Searching the Search Space of Vision Transformer", NeurIPS 2021, Sec. 3):

- E, the expected error: the mean of e;
- T, the top-tier error: the mean of the best k errors (the paper: top 50 of ~1000; here k scales with N,
  ``k = round(N × 50 / 1000)``, at least 1);
- Q = (E + T) / 2, the E-T error (lower is better).

Per (stage, dimension, choice) the same statistics are taken over the subnets that use that choice. Stage
dimensions (depth, embed dim) have one value per subnet, so this is exactly the paper's restriction. Block
dimensions (heads, Q-K-V dim, MLP ratio, window) may differ between the blocks of a stage, so a subnet
counts for each choice with the share of that stage's blocks that use it (weights 0..1): E is the weighted
mean and T the weighted mean of the best subnets holding the same share k/N of the choice's weight.
With 0/1 weights both reduce to the unweighted definitions.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from nascomp.core.errors import NascompError
from nascomp.spaces import STAGE_DIMENSIONS, Arch, SearchSpace

__all__ = [
    "PAPER_N",
    "PAPER_TOP_K",
    "top_k_for",
    "sample_candidates",
    "et_error",
    "weighted_et_error",
    "choice_weights",
    "ETResult",
    "et_table",
]

PAPER_N, PAPER_TOP_K = 1000, 50


def top_k_for(n: int) -> int:
    """The top-tier size for N samples, scaled from the paper's 50 of 1000."""
    return max(1, round(n * PAPER_TOP_K / PAPER_N))


def sample_candidates(
    space: SearchSpace, n: int, constraint: Callable[[Arch], bool], rng: random.Random, max_draws: int | None = None
) -> list[Arch]:
    """Up to ``n`` distinct members of ``space`` that meet ``constraint``, drawn uniformly (rejection sampling).

    Fewer come back only when the space holds fewer distinct feasible members than ``max_draws`` draws find.
    """
    seen: dict[Arch, None] = {}
    max_draws = max_draws or 200 * n
    draws = 0
    while len(seen) < n and draws < max_draws:
        draws += 1
        arch = space.sample(rng)
        if arch not in seen and constraint(arch):
            seen[arch] = None
    if not seen:
        raise NascompError(f"no member of space {space.name!r} met the budget in {max_draws} random draws; raise the budget")
    return list(seen)


def weighted_et_error(errors: Sequence[float] | np.ndarray, weights: Sequence[float] | np.ndarray, top_fraction: float) -> dict:
    """E, T and Q of ``errors`` with per-subnet ``weights``; T covers the best ``top_fraction`` of the weight."""
    e = np.asarray(errors, dtype=float)
    w = np.asarray(weights, dtype=float)
    total = w.sum()
    if total <= 0:
        return {"E": None, "T": None, "Q": None, "weight": 0.0}
    order = np.argsort(e, kind="stable")
    e, w = e[order], w[order]
    mass = top_fraction * total
    before = np.concatenate([[0.0], np.cumsum(w)[:-1]])
    take = np.clip(mass - before, 0.0, w)  # the last subnet of the top tier counts in part
    expected = float((e * w).sum() / total)
    top = float((e * take).sum() / take.sum())
    return {"E": expected, "T": top, "Q": (expected + top) / 2, "weight": float(total)}


def et_error(errors: Sequence[float], top_k: int | None = None) -> dict:
    """Whole-space E, T, Q (in % error) of a list of subnet errors; ``top_k`` defaults to `top_k_for`."""
    n = len(errors)
    if n == 0:
        raise NascompError("E-T error needs at least one evaluated subnet")
    k = min(n, top_k or top_k_for(n))
    out = weighted_et_error(errors, np.ones(n), k / n)
    return {"E": out["E"], "T": out["T"], "Q": out["Q"], "n": n, "k": k}


def choice_weights(archs: Sequence[Arch], stage: int, dimension: str, choices: Sequence) -> np.ndarray:
    """(subnets × choices) weights: 0/1 for stage dimensions, the share of the stage's blocks for block dimensions."""
    index = {v: j for j, v in enumerate(choices)}
    w = np.zeros((len(archs), len(choices)))
    for i, arch in enumerate(archs):
        s = arch.stages[stage]
        if dimension in STAGE_DIMENSIONS:
            value = s.depth if dimension == "depth" else s.embed_dim
            if value in index:
                w[i, index[value]] = 1.0
        else:
            for b in s.blocks:
                j = index.get(getattr(b, dimension))
                if j is not None:
                    w[i, j] += 1.0 / s.depth
    return w


@dataclass
class ETResult:
    """The E-T error of one space: whole space and one row per (stage, dimension, choice)."""

    space: str
    n: int
    k: int
    E: float
    T: float
    Q: float
    rows: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"space": self.space, "n": self.n, "k": self.k, "E": self.E, "T": self.T, "Q": self.Q, "choices": self.rows}

    @classmethod
    def from_dict(cls, d: dict) -> ETResult:
        return cls(d["space"], d["n"], d["k"], d["E"], d["T"], d["Q"], list(d["choices"]))

    def choice_q(self, stage: int, dimension: str) -> dict:
        """{choice value: Q} of one (stage, dimension) (choices no subnet used are left out)."""
        return {r["value"]: r["Q"] for r in self.rows if r["stage"] == stage and r["dimension"] == dimension and r["Q"] is not None}


def et_table(space: SearchSpace, archs: Sequence[Arch], errors: Sequence[float], top_k: int | None = None) -> ETResult:
    """Whole-space and per-choice E-T error of evaluated subnets ``archs`` (errors in %) of ``space``."""
    whole = et_error(errors, top_k)
    fraction = whole["k"] / whole["n"]
    rows = []
    for stage, dim, choices in space.subspaces():
        w = choice_weights(archs, stage, dim, choices)
        for j, value in enumerate(choices):
            stats = weighted_et_error(errors, w[:, j], fraction)
            rows.append({"stage": stage, "dimension": dim, "value": value, **stats})
    return ETResult(space.name, whole["n"], whole["k"], whole["E"], whole["T"], whole["Q"], rows)

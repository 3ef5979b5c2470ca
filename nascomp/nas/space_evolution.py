"""S3 space evolution: move each (stage, dimension)'s choices against the slope of its E-T error.

S3 (Chen et al., NeurIPS 2021, Alg. 1) decomposes the space into one subspace per (stage, dimension), fits a line
Q ≈ w·v + b through the per-choice E-T errors of each, and shifts the choices against the slope. The
published update formula was not recovered, so this implements the documented safe rule:

    slope w in E-T points per step γ;  w > τ: shift every choice down by γ;  w < -τ: shift up;  else keep.

Per-choice E-T errors from a few dozen subnets are noisy, and one step tests 21-23 (stage, dimension)s, so
a shift also needs the slope to be told from noise: a permutation test of each slope (the subnets' errors
shuffled against their archs, the slope recomputed exactly as observed; p = (1 + #|w*| ≥ |w|) / (B + 1)),
with Holm's correction over every tested (stage, dimension) of the step. A move needs |w| > τ (the
smallest effect worth a move) and a Holm-adjusted p ≤ α, so when no dimension matters, the chance that a
step moves anything is at most α (``alpha=1`` turns the guard off and gives the bare rule). A bootstrap
SE guard did not hold that: its SE of a slope of top-k means is ~1.4x too small, and without a correction
9-15 % of the pairs moved under pure noise (experiments/evolution-calibration/README.md measures both rules).

The test is exact whatever the noise (the errors only need to be exchangeable when nothing matters), and
it keeps the budget-induced correlation between dimensions, since the archs stay as sampled. B = 1999 by
default: Holm's smallest threshold is α/m (0.05/21 = 0.0024 on s3-vit at 32 px), and p cannot go below 1/(B+1),
so B must be well above m/α for a strong slope to pass; at 1999 that threshold still allows 3 exceedances.
All B permuted slopes of every dimension come from one vectorised pass (`_choice_q`), not B × 70 calls
of `weighted_et_error`: about 0.1 s per step for N = 60 on one CPU core.

Steps γ (configurable per dimension, or per stage as ``"3:depth"``, 1-based): by default the spacing of
the current choices (S3's natural steps on s3-vit: depth 1, MLP ratio 0.5, widths one choice apart), or
`DEFAULT_STEPS` for a dimension with a single choice. Windows move along the ladder of valid windows of
their stage (multiples of γ, default the choices' gcd, that tile the feature map at the deployment
resolution), so a shift never produces a window timm would pad or clamp. Values pushed off the end of
their range (depth 0, a window beyond the ladder) are dropped, which is how a subspace shrinks — S3
reports the stage-1 window space shrinking this way.

The evolved space is always valid: a shift that would break the heads / Q-K-V divisibility rule drops
the offending new values, and a shift that still fails validation, or that the caller's ``validator``
rejects (the budget no longer reachable, a latency table that cannot price it), is not applied. Every
(stage, dimension) gets a decision record: choices, slope, its permutation p-value and Holm-adjusted
p-value, the step, what was done and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import cast

import numpy as np

from nascomp.core.errors import NascompError
from nascomp.core.validate import fraction, non_negative, positive
from nascomp.nas.et_error import choice_weights, weighted_et_error
from nascomp.spaces import DIMENSIONS, Arch, SearchSpace, stage_resolutions

__all__ = ["DEFAULT_STEPS", "EvolutionRule", "fit_slopes", "holm", "shifted_choices", "evolve_space"]

DEFAULT_STEPS = {"depth": 1, "embed_dim": 32, "heads": 1, "qkv_dim": 32, "mlp_ratio": 0.5, "window": 7}
INT_DIMENSIONS = ("depth", "embed_dim", "heads", "qkv_dim", "window")


@dataclass(frozen=True)
class EvolutionRule:
    """Minimum effect τ (E-T points per step), steps, and the permutation test that guards a move (module docstring)."""

    tau: float = 0.5
    steps: Mapping[str, float] = field(default_factory=dict)
    alpha: float = 0.05  # family-wise rate of false moves per evolution step (Holm over the step's tests)
    min_weight: float = 2.0  # a choice enters the line fit only if this many subnets' weight used it
    permutations: int = 1999

    def __post_init__(self):
        for key in self.steps:
            dim = key.split(":", 1)[-1]
            if dim not in DIMENSIONS:
                raise NascompError(f"evolution step for unknown dimension {dim!r}; dimensions are {', '.join(DIMENSIONS)}")
            stage = key.split(":", 1)[0] if ":" in key else None
            if stage is not None and not (stage.isdigit() and int(stage) >= 1):
                raise NascompError(f"evolution step {key}: the stage before ':' must be a stage number from 1, got {stage!r}")
            positive(f"--evolve-step {key}", self.steps[key], integer=False)
        non_negative("--tau", self.tau, integer=False)
        fraction("--alpha", self.alpha, high_open=False)
        positive("--permutations", self.permutations)
        positive("min_weight", self.min_weight, integer=False)

    def check_stages(self, space: SearchSpace) -> None:
        """Steps naming a stage the space does not have are refused (before any work, not at the first evolution step)."""
        for key in self.steps:
            if ":" in key and int(key.split(":", 1)[0]) > space.num_stages:
                raise NascompError(f"--evolve-step {key}: {space.name} has {space.num_stages} stages (1..{space.num_stages})")

    def step(self, space: SearchSpace, stage: int, dimension: str) -> float:
        """γ for one (stage, dimension): an explicit ``"stage:dim"`` or ``"dim"`` step, else the choices' spacing."""
        for key in (f"{stage + 1}:{dimension}", dimension):
            if key in self.steps:
                return float(self.steps[key])
        values = space.choices(stage, dimension)
        if dimension == "window":
            return float(math.gcd(*values))
        if len(values) > 1:
            return float(min(b - a for a, b in zip(values, values[1:])))
        return float(DEFAULT_STEPS[dimension])

    def to_dict(self) -> dict:
        return {**asdict(self), "steps": dict(self.steps)}


def _window_ladder(space: SearchSpace, stage: int, base: float) -> list[int]:
    side = stage_resolutions(space.resolution, space.patch_size, space.num_stages)[stage]
    base = max(1, int(base))
    return [v for v in range(base, side + 1, base) if side % v == 0]


def _positions(space: SearchSpace, stage: int, dimension: str, step: float) -> tuple[np.ndarray, list | None]:
    """Choice values in units of steps (windows: their index on the ladder)."""
    values = space.choices(stage, dimension)
    if dimension == "window":
        ladder = _window_ladder(space, stage, step)
        return np.array([ladder.index(v) if v in ladder else v / step for v in values], dtype=float), ladder
    return np.array(values, dtype=float) / step, None


def _choice_q(ranked: np.ndarray, rows: np.ndarray, totals: np.ndarray, fraction: float) -> np.ndarray:
    """(..., C) per-choice Q for errors ``ranked`` ascending whose subnets have weight ``rows`` (..., n, C) in that order.

    `weighted_et_error` for many subnet orders at once: E is the weighted mean; the top tier takes the best
    subnets' weight up to ``fraction`` of each choice's total, the last one in part.
    """
    mass = fraction * totals
    take = np.cumsum(rows, axis=-2)
    take -= rows  # the weight ahead of each subnet
    np.subtract(mass, take, out=take)
    np.clip(take, 0.0, rows, out=take)
    return (ranked @ rows / totals + ranked @ take / mass) / 2


def _permutation_test(
    errors: np.ndarray, weights: np.ndarray, fraction: float, contrasts: np.ndarray, permutations: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Observed slopes and their two-sided permutation p-values (errors shuffled against the archs' weights).

    ``weights`` (n × C) holds every tested choice's column, ``contrasts`` (C × D) turns per-choice Q into
    each dimension's least-squares slope; the observed slope takes the same path as the permuted ones.
    """
    n = len(errors)
    totals = weights.sum(axis=0)
    order = np.argsort(errors, kind="stable")
    ranked = errors[order]
    observed = _choice_q(ranked, weights[order], totals, fraction) @ contrasts
    # a random permutation hands the k-th smallest error to subnet perms[b, k]; one draw serves every dimension
    perms = np.random.default_rng(seed).permuted(np.tile(np.arange(n), (permutations, 1)), axis=1)
    threshold = np.abs(observed) - 1e-9 * np.abs(ranked).max()  # equal slopes differ in the last bits: count them
    exceed = np.zeros(len(observed))
    chunk = max(1, 131_072 // weights.size)  # blocks that stay in cache: ~4x faster than one big array
    for lo in range(0, permutations, chunk):
        slopes = _choice_q(ranked, weights[perms[lo : lo + chunk]], totals, fraction) @ contrasts
        exceed += (np.abs(slopes) >= threshold).sum(axis=0)
    return observed, (1 + exceed) / (permutations + 1)


def fit_slopes(
    space: SearchSpace,
    archs: Sequence[Arch],
    errors: Sequence[float] | np.ndarray,
    top_k: int,
    rule: EvolutionRule,
    seed: int = 0,
    train_resolution: int | None = None,
) -> list[dict]:
    """One record per (stage, dimension): per-choice Q, the fitted slope (E-T points per step) and its permutation p.

    The p-values come from ``rule.permutations`` shuffles drawn from ``seed`` (the same shuffles for every
    dimension); they are not yet corrected for multiplicity — `evolve_space` applies Holm over the step.
    Dimensions that the supernet's ``train_resolution`` collapses (`SearchSpace.collapsed`: windows clamped
    alike, heads and Q-K-V dim on a 1x1 map) carry no signal there, so they get no slope and are kept.
    """
    errors = np.asarray(errors, dtype=float)
    fraction = top_k / len(errors)
    records, tested, columns, lines = [], [], [], []
    collapsed = {(c.stage, c.dimension): c for c in space.collapsed(train_resolution)} if train_resolution else {}
    for stage, dim, choices in space.subspaces():
        step = rule.step(space, stage, dim)
        x_all, _ = _positions(space, stage, dim, step)
        w = choice_weights(archs, stage, dim, choices)
        stats = [weighted_et_error(errors, w[:, j], fraction) for j in range(len(choices))]
        used = [j for j in range(len(choices)) if stats[j]["weight"] >= rule.min_weight]
        record = {
            "stage": stage,
            "dimension": dim,
            "choices": list(choices),
            "step": step,
            "Q": [s["Q"] for s in stats],
            "weight": [s["weight"] for s in stats],
            "slope": None,
            "p": None,
        }
        if (stage, dim) in collapsed:
            record["note"] = f"collapsed at the proxy: {collapsed[stage, dim].reason}"
        elif len(used) >= 2:
            dx = x_all[used] - x_all[used].mean()
            tested.append(record)
            columns.append(w[:, used])
            lines.append(dx / (dx @ dx))  # least-squares slope = these weights · the choices' Q
        records.append(record)
    if tested:
        weights = np.concatenate(columns, axis=1)
        contrasts = np.zeros((weights.shape[1], len(tested)))
        offsets = np.cumsum([0] + [len(c) for c in lines])
        for d, c in enumerate(lines):
            contrasts[offsets[d] : offsets[d + 1], d] = c
        slopes, p = _permutation_test(errors, weights, fraction, contrasts, rule.permutations, seed)
        for record, slope, pv in zip(tested, slopes, p):
            record["slope"], record["p"] = float(slope), float(pv)
    return records


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: rejecting those ≤ α keeps the family-wise error rate at α under any dependence."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def shifted_choices(space: SearchSpace, stage: int, dimension: str, step: float, direction: int) -> list:
    """The choices moved one step up (+1) or down (-1); values pushed out of their range are dropped."""
    values = space.choices(stage, dimension)
    if dimension == "window":
        ladder = _window_ladder(space, stage, step)
        out = {ladder[ladder.index(v) + direction] for v in values if v in ladder and 0 <= ladder.index(v) + direction < len(ladder)}
    else:
        moved = [v + direction * step for v in values]
        if dimension in INT_DIMENSIONS:
            moved = [int(round(v)) for v in moved]
        else:
            moved = [round(v, 6) for v in moved]
        out = {v for v in moved if v > 0}
    return sorted(out)


def _repair_attention(space: SearchSpace, stage: int, dimension: str, values: list) -> list:
    """Drop new heads (Q-K-V dims) that divide (are divisible by) none of the stage's Q-K-V dims (heads)."""
    s = space.stages[stage]
    if dimension == "heads":
        return [h for h in values if any(q % h == 0 for q in s.qkv_dim)]
    if dimension == "qkv_dim":
        return [q for q in values if any(q % h == 0 for h in s.heads)]
    return values


def _merged_by_proxy(before: SearchSpace, after: SearchSpace, stage: int, dimension: str, resolution: int | None) -> str | None:
    """Why ``after``'s choices of (stage, dimension) include ones that training at ``resolution`` cannot tell apart
    where ``before``'s did not (None: the move keeps every choice distinguishable)."""
    if not resolution:
        return None
    old = {(s, d): g for s, d, g, _ in before.indistinct(resolution)}
    for s, d, groups, reason in after.indistinct(resolution):
        if (s, d) == (stage, dimension) and groups != old.get((s, d)):
            return f"the {resolution} px proxy could not tell the new choices apart ({reason})"
    return None


def evolve_space(
    space: SearchSpace,
    slopes: Sequence[dict],
    rule: EvolutionRule,
    name: str,
    validator: Callable[[SearchSpace], str | None] | None = None,
    train_resolution: int | None = None,
) -> tuple[SearchSpace, list[dict]]:
    """Apply the shift rule to every (stage, dimension) of ``slopes``; returns the new space and the decisions.

    ``slopes`` is one step's family: Holm's correction runs over every record with a slope. A move is refused when it
    would put choices the supernet's ``train_resolution`` cannot tell apart into the space (`SearchSpace.indistinct`:
    windows clamped alike, heads or Q-K-V widths on a 1x1 map): the search would then pick among them blind, while
    their deployment costs differ.
    """
    current = space
    decisions = []
    tested = [i for i, rec in enumerate(slopes) if rec["slope"] is not None]
    adjusted = dict(zip(tested, holm([slopes[i]["p"] for i in tested]).tolist()))
    for i, rec in enumerate(slopes):
        stage, dim, w, p = rec["stage"], rec["dimension"], rec["slope"], rec["p"]
        p_adj = adjusted.get(i)
        decision = {**rec, "p_adjusted": p_adj, "action": "keep", "new_choices": list(rec["choices"]), "reason": ""}
        evidence = f"permutation p {p:.4f}, Holm-adjusted {p_adj:.4f}" if w is not None else ""
        if w is None:
            decision["reason"] = rec.get("note") or "fewer than two choices with enough subnets to fit a line"
        elif abs(w) <= rule.tau:
            decision["reason"] = f"|slope| {abs(w):.3f} <= tau {rule.tau} ({evidence})"
        elif cast(float, p_adj) > rule.alpha:  # a fitted slope (w not None) was tested, so Holm adjusted its p
            decision["reason"] = f"slope {w:+.3f} beyond tau {rule.tau} but not told from noise: {evidence} > alpha {rule.alpha}"
        else:
            direction = -1 if w > 0 else 1
            label = "shift down" if direction < 0 else "shift up"
            values = _repair_attention(current, stage, dim, shifted_choices(current, stage, dim, rec["step"], direction))
            if not values or values == list(current.choices(stage, dim)):
                decision["reason"] = f"{label} wanted, but no valid value lies that way"
            else:
                try:
                    candidate = current.with_choices({(stage, dim): values}, name=name)
                    why = _merged_by_proxy(current, candidate, stage, dim, train_resolution) or (
                        validator(candidate) if validator else None
                    )
                except NascompError as e:
                    why = str(e)
                if why:
                    decision["reason"] = f"{label} wanted, but the result would be invalid: {why}"
                else:
                    current = candidate
                    decision.update(
                        action=label,
                        new_choices=values,
                        reason=f"slope {w:+.3f} E-T points per step beyond tau {rule.tau}; {evidence} <= alpha {rule.alpha}",
                    )
        decisions.append(decision)
    if current is space:
        current = space.with_choices({}, name=name)
    return current, decisions

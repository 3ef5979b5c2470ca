"""S3 space evolution: move each (stage, dimension)'s choices against the slope of its E-T error.

S3 (Alg. 1; research/s3.md §3) decomposes the space into one subspace per (stage, dimension), fits a line
Q ≈ w·v + b through the per-choice E-T errors of each, and shifts the choices against the slope. The
published update formula was not recovered, so this implements the documented safe rule:

    slope w in E-T points per step γ;  w > τ: shift every choice down by γ;  w < -τ: shift up;  else keep.

and, because per-choice E-T errors from a few hundred subnets are noisy, an optional noise guard:
a shift also needs ``|w| > significance × SE(w)``, where SE is the bootstrap standard error of the slope
over the evaluated subnets (``significance=0`` turns the guard off and gives the bare rule).

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
(stage, dimension) gets a decision record: choices, slope, its standard error, the step, what was done
and why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from nascomp.core.errors import NascompError
from nascomp.nas.et_error import choice_weights, weighted_et_error
from nascomp.spaces import DIMENSIONS, Arch, SearchSpace, clamp_window, stage_resolutions

__all__ = ["DEFAULT_STEPS", "EvolutionRule", "fit_slopes", "shifted_choices", "evolve_space"]

DEFAULT_STEPS = {"depth": 1, "embed_dim": 32, "heads": 1, "qkv_dim": 32, "mlp_ratio": 0.5, "window": 7}
INT_DIMENSIONS = ("depth", "embed_dim", "heads", "qkv_dim", "window")


@dataclass(frozen=True)
class EvolutionRule:
    """Threshold τ (E-T points per step), steps, and the noise guard of the shift rule (module docstring)."""

    tau: float = 0.5
    steps: Mapping[str, float] = field(default_factory=dict)
    significance: float = 1.0
    min_weight: float = 2.0  # a choice enters the line fit only if this many subnets' weight used it
    bootstrap: int = 200

    def __post_init__(self):
        for key in self.steps:
            dim = key.split(":", 1)[-1]
            if dim not in DIMENSIONS:
                raise NascompError(f"evolution step for unknown dimension {dim!r}; dimensions are {', '.join(DIMENSIONS)}")
            if not self.steps[key] > 0:
                raise NascompError(f"evolution step {key}={self.steps[key]} must be positive")
        if self.tau < 0 or self.significance < 0:
            raise NascompError("evolution tau and significance must be >= 0")

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


def _slope(x: np.ndarray, q: np.ndarray) -> float:
    return float(np.polyfit(x, q, 1)[0])


def _same_layer_at(space: SearchSpace, stage: int, resolution: int | None) -> bool:
    """True when every window choice of ``stage`` is clamped to the same window at the training ``resolution``."""
    if resolution is None:
        return False
    side = stage_resolutions(resolution, space.patch_size, space.num_stages)[stage]
    return len({clamp_window(side, w, 0)[0] for w in space.choices(stage, "window")}) < 2


def fit_slopes(space: SearchSpace, archs: Sequence[Arch], errors: Sequence[float], top_k: int, rule: EvolutionRule,
               seed: int = 0, train_resolution: int | None = None) -> list[dict]:
    """One record per (stage, dimension): per-choice Q, the fitted slope (E-T points per step) and its bootstrap SE.

    Window choices that the supernet's ``train_resolution`` turns into the same layer (all clamped to the
    feature map) carry no signal, so they get no slope (a proxy-resolution run keeps them as they are).
    """
    errors = np.asarray(errors, dtype=float)
    n = len(errors)
    fraction = top_k / n
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, n, n) for _ in range(rule.bootstrap)]
    records = []
    for stage, dim, choices in space.subspaces():
        step = rule.step(space, stage, dim)
        x_all, _ = _positions(space, stage, dim, step)
        w = choice_weights(archs, stage, dim, choices)
        stats = [weighted_et_error(errors, w[:, j], fraction) for j in range(len(choices))]
        used = [j for j in range(len(choices)) if stats[j]["weight"] >= rule.min_weight]
        record = {"stage": stage, "dimension": dim, "choices": list(choices), "step": step,
                  "Q": [s["Q"] for s in stats], "weight": [s["weight"] for s in stats], "slope": None, "se": None}
        if dim == "window" and len(choices) > 1 and _same_layer_at(space, stage, train_resolution):
            record["note"] = f"the window choices are one and the same layer at the {train_resolution} px training resolution"
        elif len(used) >= 2:
            x = x_all[used]
            record["slope"] = _slope(x, np.array([stats[j]["Q"] for j in used]))
            slopes = []
            for idx in boots:
                q = [weighted_et_error(errors[idx], w[idx, j], fraction)["Q"] for j in used]
                if all(v is not None for v in q):
                    slopes.append(_slope(x, np.array(q)))
            record["se"] = float(np.std(slopes, ddof=1)) if len(slopes) > 1 else None
        records.append(record)
    return records


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


def evolve_space(space: SearchSpace, slopes: Sequence[dict], rule: EvolutionRule, name: str,
                 validator: Callable[[SearchSpace], str | None] | None = None) -> tuple[SearchSpace, list[dict]]:
    """Apply the shift rule to every (stage, dimension) of ``slopes``; returns the new space and the decisions."""
    current = space
    decisions = []
    for rec in slopes:
        stage, dim, w, se = rec["stage"], rec["dimension"], rec["slope"], rec["se"]
        decision = {**rec, "action": "keep", "new_choices": list(rec["choices"]), "reason": ""}
        if w is None:
            decision["reason"] = rec.get("note") or "fewer than two choices with enough subnets to fit a line"
        elif abs(w) <= rule.tau:
            decision["reason"] = f"|slope| {abs(w):.3f} <= tau {rule.tau}"
        elif rule.significance and (se is None or abs(w) <= rule.significance * se):
            decision["reason"] = f"|slope| {abs(w):.3f} within {rule.significance} x its bootstrap SE {se if se is None else round(se, 3)}"
        else:
            direction = -1 if w > 0 else 1
            label = "shift down" if direction < 0 else "shift up"
            values = _repair_attention(current, stage, dim, shifted_choices(current, stage, dim, rec["step"], direction))
            if not values or values == list(current.choices(stage, dim)):
                decision["reason"] = f"{label} wanted, but no valid value lies that way"
            else:
                try:
                    candidate = current.with_choices({(stage, dim): values}, name=name)
                    why = validator(candidate) if validator else None
                except NascompError as e:
                    why = str(e)
                if why:
                    decision["reason"] = f"{label} wanted, but the result would be invalid: {why}"
                else:
                    current = candidate
                    decision.update(action=label, new_choices=values,
                                    reason=f"slope {w:+.3f} E-T points per step beyond tau {rule.tau}")
        decisions.append(decision)
    if current is space:
        current = space.with_choices({}, name=name)
    return current, decisions

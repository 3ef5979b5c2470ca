"""Non-dominated sorting and exact hypervolume for any number of objectives, each minimised or maximised.

Objectives are columns with a sense: minimise (latency, energy, MACs, params) or maximise (accuracy).
`objective_sense` guesses the sense from the column name; callers can override it. Hypervolume is computed
exactly (slicing over objectives) after turning every objective into one to minimise; it is meant for the
small sets a search front or a model zoo produces (tens to a few hundred points).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["objective_sense", "dominates", "non_dominated_sort", "front_indices", "hypervolume", "default_reference"]

_MAXIMISE_HINTS = ("top1", "top5", "acc", "accuracy", "map", "miou", "score", "fps", "throughput", "hypervolume")


def objective_sense(column: str) -> str:
    """'max' for accuracy-like columns (top1, acc, mAP, fps...), 'min' otherwise (latency, energy, MACs, params)."""
    name = column.lower()
    return "max" if any(h in name for h in _MAXIMISE_HINTS) and "err" not in name else "min"


def _as_minimisation(values: np.ndarray, senses: Sequence[str]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(senses):
        raise ValueError(f"values must be (n, {len(senses)}), got {values.shape}")
    for s in senses:
        if s not in ("min", "max"):
            raise ValueError(f"sense must be 'min' or 'max', got {s!r}")
    flip = np.array([-1.0 if s == "max" else 1.0 for s in senses])
    return values * flip


def dominates(a: Sequence[float], b: Sequence[float], senses: Sequence[str]) -> bool:
    """a is at least as good as b in every objective and strictly better in one."""
    a_, b_ = _as_minimisation(np.array([a, b]), senses)
    return bool(np.all(a_ <= b_) and np.any(a_ < b_))


def non_dominated_sort(values: np.ndarray, senses: Sequence[str]) -> list[list[int]]:
    """Fronts of indices, best first (Deb et al.'s fast non-dominated sort, O(m n^2)). Duplicates share a front."""
    v = _as_minimisation(values, senses)
    n = len(v)
    if n == 0:
        return []
    le = np.all(v[:, None, :] <= v[None, :, :], axis=2)
    lt = np.any(v[:, None, :] < v[None, :, :], axis=2)
    dom = le & lt  # dom[i, j]: i dominates j
    counts = dom.sum(axis=0)
    fronts, current = [], [i for i in range(n) if counts[i] == 0]
    while current:
        fronts.append(sorted(current))
        nxt = []
        for i in current:
            for j in np.flatnonzero(dom[i]):
                counts[j] -= 1
                if counts[j] == 0:
                    nxt.append(int(j))
        current = nxt
    return fronts


def front_indices(values: np.ndarray, senses: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, ordered by the first objective (best first)."""
    fronts = non_dominated_sort(values, senses)
    if not fronts:
        return []
    v = _as_minimisation(values, senses)
    return sorted(fronts[0], key=lambda i: tuple(v[i]))


def default_reference(values: np.ndarray, senses: Sequence[str], margin: float = 0.1) -> np.ndarray:
    """The worst value of each objective pushed ``margin`` of its range further out (in the objective's own units)."""
    values = np.asarray(values, dtype=float)
    lo, hi = values.min(axis=0), values.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi), 1.0))
    return np.array([hi[k] + margin * span[k] if s == "min" else lo[k] - margin * span[k] for k, s in enumerate(senses)])


def _hv_min(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume of minimisation points strictly better than ``ref`` in every objective."""
    if len(points) == 0:
        return 0.0
    m = points.shape[1]
    if m == 1:
        return float(ref[0] - points[:, 0].min())
    if m == 2:
        pts = points[np.lexsort((points[:, 1], points[:, 0]))]
        volume, best_y = 0.0, ref[1]
        for x, y in pts:
            if y < best_y:
                volume += (ref[0] - x) * (best_y - y)
                best_y = y
        return float(volume)
    pts = points[np.argsort(points[:, -1], kind="stable")]
    volume = 0.0
    for i in range(len(pts)):
        upper = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        depth = upper - pts[i, -1]
        if depth > 0:
            volume += depth * _hv_min(pts[: i + 1, :-1], ref[:-1])
    return float(volume)


def hypervolume(values: np.ndarray, senses: Sequence[str], reference: Sequence[float] | None = None) -> float:
    """Volume of objective space dominated by ``values`` and bounded by ``reference`` (default: `default_reference`).

    Points that do not beat the reference in every objective add nothing.
    """
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return 0.0
    ref = np.asarray(reference if reference is not None else default_reference(values, senses), dtype=float)
    v = _as_minimisation(values, senses)
    r = _as_minimisation(ref[None, :], senses)[0]
    inside = v[np.all(v < r, axis=1)]
    if len(inside) == 0:
        return 0.0
    front = inside[non_dominated_sort(inside, ["min"] * v.shape[1])[0]]
    return _hv_min(front, r)


# ---------------------------------------------------------------------------------------------- tables

"""The correction from a lookup table's layer sums to end-to-end latency, fitted on subnets measured end to end.

One model serves a table built on its own target (fitted on its calibration subnets) and a table transferred
from another target (fitted on a few subnets measured on the new one)::

    latency = sum_g w_g x S_g  +  c x layers  +  b

``S_g`` is the sum of the table's layer latencies per group (per stage, the plain blocks and the shifted-window
blocks; the stem, patch mergings and head together), ``layers`` the number of layers summed. Why these terms:

- a new runtime, precision or thread count does not speed every layer up alike: int8 gains most on the wide
  matrix products of late stages, a second thread on large maps, so each stage gets its own scale ``w_g``;
  shifted windows run other kernels (roll, attention mask), whose speed a new runtime or exporter changes on
  its own: between 2026-11-22 and today they became 1.4-2.3x slower relative to plain blocks on ONNX Runtime
  (benchmarks/bench_predictor.md);
- every layer timed alone pays the per-run overhead of its own session once (``c``, negative), which for small
  models is most of the sum: the Fashion-MNIST Swin's layer sum overshoots its latency ~1.9x;
- ``b``: what a whole network adds once (its own session, input copy).

With 5-20 subnets that is too many free numbers, so the fit is ridge regression around the simplest model:
one scale ``a`` for all groups (``w_g = a + d_g``), no overhead and no offset; the penalty on ``d_g``, ``c``
and ``b`` is in units of the typical prediction, and its weight is chosen by leave-one-out error with the
one-standard-error rule (the strongest penalty whose error is within one standard error of the best), so few
subnets give the one-scale model and many subnets buy the detail the data supports. Errors are relative
(least squares on ``residual / measured``). The leave-one-out fits are kept: they give the intervals
(`nascomp.profiling.intervals.jackknife_plus`).

``offset`` (``sum + median residual``) and ``affine`` (``scale x sum + offset``), the corrections of tables
built before, remain available and are what format-1 tables hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from nascomp.core.errors import NascompError
from nascomp.spaces.layout import BlockConfig

__all__ = ["FIT_METHODS", "LAMBDAS", "feature_names", "arch_features", "Correction", "fit_correction"]

FIT_METHODS = ("ridge", "offset", "affine")
LAMBDAS = (0.0, 1e-5, 1e-4, 1e-3, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1e4)


def feature_names(num_stages: int) -> list[str]:
    stages = [f"stage{i + 1}" for i in range(num_stages)]
    return stages + [f"{s}-shifted" for s in stages] + ["other", "layers", "bias"]


def _group(cfg, num_stages: int) -> int:
    if not isinstance(cfg, BlockConfig):
        return 2 * num_stages
    return cfg.stage + (num_stages if cfg.shift else 0)


def arch_features(layers: Sequence, entries: Mapping[str, Mapping], keys: Sequence[str], num_stages: int) -> np.ndarray:
    """The model's inputs for one arch: its layer latencies summed per group, its number of layers, 1."""
    x = np.zeros(2 * num_stages + 3)
    for cfg, key in zip(layers, keys):
        x[_group(cfg, num_stages)] += entries[key]["ms"]
    x[-2] = len(keys)
    x[-1] = 1.0
    return x


@dataclass
class Correction:
    """``predict(x) = x . weights``; ``loo_weights`` are the fits without each calibration point, ``loo_errors`` their
    |log(measured / predicted)| on it (what intervals are made of)."""

    method: str
    names: list[str]
    weights: np.ndarray
    loo_weights: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    loo_errors: np.ndarray = field(default_factory=lambda: np.zeros(0))
    penalty: float | None = None

    def __post_init__(self) -> None:
        self.loo_weights = np.asarray(self.loo_weights, dtype=float).reshape(-1, len(self.names))

    def predict(self, x: np.ndarray) -> float:
        return float(max(x @ self.weights, 1e-9))

    def loo_predict(self, x: np.ndarray) -> np.ndarray:
        return np.maximum(self.loo_weights @ x, 1e-9)

    def summary(self) -> dict:
        """What the fit means in the legacy terms: one overall scale (mean of the group weights) and the constant terms."""
        return {
            "method": self.method,
            "scale": float(np.mean(self.weights[:-2])),
            "offset_ms": float(self.weights[-1]),
            "per_layer_ms": float(self.weights[-2]),
            "penalty": self.penalty,
        }

    def to_dict(self) -> dict:
        return {
            **self.summary(),
            "names": list(self.names),
            "weights": [float(w) for w in self.weights],
            "loo_weights": [[float(w) for w in row] for row in self.loo_weights],
            "loo_errors": [float(e) for e in self.loo_errors],
        }

    @classmethod
    def from_fit(cls, fit: Mapping | None, num_stages: int) -> Correction:
        """A stored fit: a ridge fit as written, a format-1 ``scale x sum + offset`` as the same scale on every group."""
        names = feature_names(num_stages)
        if fit and fit.get("weights") is not None:
            if list(fit["names"]) != names:
                raise NascompError(f"the table's correction is over {fit['names']}, not this space's {names}; rebuild the table")
            return cls(
                fit["method"],
                names,
                np.asarray(fit["weights"], dtype=float),
                np.asarray(fit.get("loo_weights") or []),
                np.asarray(fit.get("loo_errors") or [], dtype=float),
                fit.get("penalty"),
            )
        fit = fit or {"method": "none", "scale": 1.0, "offset_ms": 0.0}
        return cls(fit["method"], names, np.array([float(fit["scale"])] * (len(names) - 2) + [0.0, float(fit["offset_ms"])]))


def _design(X: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """The weighted design (rows / measured) and the penalty matrix of the shared-scale parametrisation:
    columns [sum of groups, groups..., layers, 1], coefficients (a, d_g..., c, b) with w_g = a + d_g and a unpenalised."""
    Z = np.column_stack([X[:, : X.shape[1] - 2].sum(1), X])
    scale = np.abs(Z).mean(0) / np.mean(y)
    weights = np.concatenate([[0.0], np.full(X.shape[1], penalty)]) * scale**2
    return Z / y[:, None], np.diag(weights) + 1e-12 * np.eye(Z.shape[1])


def _ridge(X: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    """Relative least squares around one shared scale: min sum((y - X w) / y)^2 + penalty x sum((d_j m_j) / m_y)^2."""
    A, D = _design(X, y, penalty)
    theta = np.linalg.solve(A.T @ A + D, A.sum(0))
    groups = X.shape[1] - 2
    return np.concatenate([theta[0] + theta[1 : groups + 1], theta[groups + 1 :]])


def _select(X: np.ndarray, y: np.ndarray) -> float:
    """The strongest penalty whose mean leave-one-out |log error| is within one standard error of the best one's.

    Leave-one-out of a weighted ridge fit is exact in closed form: residual_i / (1 - hat_ii) (the weights of the
    other points do not depend on the point left out)."""
    scores = []
    for penalty in LAMBDAS:
        A, D = _design(X, y, penalty)
        M = np.linalg.inv(A.T @ A + D)
        residual = 1.0 - A @ (M @ A.sum(0))
        hat = np.einsum("ij,jk,ik->i", A, M, A)
        relative = residual / np.maximum(1.0 - hat, 1e-9)  # (y_i - prediction without i) / y_i
        errors = np.abs(np.log(np.maximum(1.0 - relative, 1e-9)))
        scores.append((penalty, float(np.mean(errors)), float(np.std(errors, ddof=1) / np.sqrt(len(y)))))
    best = min(scores, key=lambda s: s[1])
    return max(s[0] for s in scores if s[1] <= best[1] + best[2] + 1e-12)


def _simple(X: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    groups = X.shape[1] - 2
    total = X[:, :groups].sum(1)
    scale, offset = 1.0, float(np.median(y - total))
    if method == "affine" and len(y) >= 6 and np.ptp(total) > 0:
        s, o = np.polyfit(total, y, 1)
        if s > 0:
            scale, offset = float(s), float(o)
    return np.array([scale] * groups + [0.0, offset])


def _loo(X: np.ndarray, y: np.ndarray, fit) -> tuple[np.ndarray, np.ndarray]:
    rows = [fit(np.delete(X, i, 0), np.delete(y, i)) for i in range(len(y))]
    W = np.array(rows)
    errors = np.abs(np.log(y / np.maximum(np.einsum("ij,ij->i", X, W), 1e-9)))
    return W, errors


def fit_correction(X: np.ndarray, y: np.ndarray, names: Sequence[str], method: str = "ridge") -> Correction:
    """Fit the correction on calibration points (features ``X``, measured ms ``y``); see the module docstring.

    Args:
        X: one row of `arch_features` per calibration subnet. y: their measured latencies (ms, > 0).
        names: the feature names (`feature_names`). method: ``ridge`` (default), ``offset`` or ``affine``.

    Returns:
        The `Correction`, with its leave-one-out fits (none with fewer than 3 points).
    """
    if method not in FIT_METHODS:
        raise NascompError(f"unknown fit {method!r}; choose one of {', '.join(FIT_METHODS)}")
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if len(y) == 0:
        return Correction("none", list(names), np.array([1.0] * (len(names) - 2) + [0.0, 0.0]))
    if np.any(y <= 0):
        raise NascompError("measured latencies must be positive to fit a correction")
    if method != "ridge" or len(y) < 3:
        simple = "offset" if method == "ridge" else method
        weights = _simple(X, y, simple)
        loo = _loo(X, y, lambda a, b: _simple(a, b, simple)) if len(y) >= 3 else (np.zeros((0, len(names))), np.zeros(0))
        return Correction(simple, list(names), weights, *loo)
    penalty = _select(X, y)
    # jackknife+ needs the whole procedure without each point, the penalty's choice included: honest held-out errors
    W, errors = _loo(X, y, lambda a, b: _ridge(a, b, _select(a, b)))
    return Correction("ridge", list(names), _ridge(X, y, penalty), W, errors, penalty)

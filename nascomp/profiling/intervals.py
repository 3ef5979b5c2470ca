"""Prediction intervals for predicted latency: how far a measurement may fall from the prediction, at a stated level.

Why conformal: a latency predictor is a few fitted numbers over a lookup table, and its errors come from
what the table cannot see (cache effects across layers, a drifting machine, measurement noise), whose
distribution nobody knows. Conformal prediction needs no model of them: the errors the predictor made on
subnets it was *not* fitted on are exchangeable with the error it will make on the next candidate, so their
``ceil((n + 1) x level)``-th smallest value bounds the next error with probability >= level.

Errors are measured as ``|log(measured / predicted)|``: latency errors are relative (a 5 % miss on a 2 ms
model is as likely as on a 200 ms one), and a symmetric log band keeps the interval positive.

Three sources of held-out errors, in order of preference:
- **split-conformal** on measured subnets the fit never saw (a table's validation subnets);
- **jackknife+** (Barber et al., 2021) on the fit's own calibration subnets: each one's error under the fit
  refitted without it, combined with the leave-one-out predictions for the new arch;
- too few subnets for the level (``n < level / (1 - level)``: 9 at 90 %): a **Student-t** band on the
  leave-one-out log errors, which assumes they are roughly normal, and says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from nascomp.core.errors import NascompError

__all__ = ["DEFAULT_LEVEL", "Prediction", "check_level", "conformal_rank", "split_conformal", "jackknife_plus", "t_band"]

DEFAULT_LEVEL = 0.9


@dataclass(frozen=True)
class Prediction:
    """A predicted cost with its interval: ``low <= measured <= high`` with probability ``level`` (None: no interval)."""

    value: float
    low: float | None
    high: float | None
    level: float | None
    method: str
    unit: str = "ms"

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def straddles(self, limit: float) -> bool:
        """The budget lies inside the interval: whether the arch meets it is not settled by the prediction."""
        return self.low is not None and self.high is not None and self.low <= limit <= self.high

    def covers(self, measured: float) -> bool | None:
        return (self.low <= measured <= self.high) if self.low is not None and self.high is not None else None

    def scaled(self, factor: float, unit: str) -> Prediction:
        """The same prediction in another unit (latency x watts = energy)."""
        low = None if self.low is None else self.low * factor
        high = None if self.high is None else self.high * factor
        return Prediction(self.value * factor, low, high, self.level, self.method, unit)

    def text(self, digits: int = 2) -> str:
        """``12.30 ms [11.10, 13.60] (90 %)``, or the value alone when there is no interval."""
        if not self.has_interval:
            return f"{self.value:.{digits}f} {self.unit}"
        return f"{self.value:.{digits}f} {self.unit} [{self.low:.{digits}f}, {self.high:.{digits}f}] ({self.level:.0%})"

    def to_dict(self) -> dict:
        return asdict(self)

    def columns(self, name: str, limit: float | None = None) -> dict:
        """Flat record fields (e.g. candidates.csv): ``name``, ``name_low``, ``name_high``, ``interval_level``, and with a budget
        ``straddles_budget`` (1 when the interval holds the limit: whether the candidate fits is not settled)."""
        out = {name: self.value, f"{name}_low": self.low, f"{name}_high": self.high, "interval_level": self.level}
        if limit is not None:
            out["straddles_budget"] = int(self.straddles(limit))
        return out


def check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise NascompError(f"interval level must be a fraction between 0 and 1 (e.g. 0.9), got {level!r}")
    return float(level)


def conformal_rank(n: int, level: float) -> int | None:
    """The rank (1-based) of the held-out error that bounds the next one at ``level``; None when ``n`` is too small."""
    rank = math.ceil((n + 1) * level - 1e-9)
    return rank if rank <= n else None


def split_conformal(value: float, scores: Sequence[float], level: float, what: str) -> Prediction | None:
    """``value x exp(+-q)``, q the conformal quantile of held-out ``scores`` = |log(measured / predicted)|; None if too few."""
    rank = conformal_rank(len(scores), level)
    if rank is None:
        return None
    q = float(np.sort(np.asarray(scores, dtype=float))[rank - 1])
    return Prediction(value, value * math.exp(-q), value * math.exp(q), level, f"split-conformal on {len(scores)} {what}")


def jackknife_plus(
    value: float, loo_values: Sequence[float] | np.ndarray, loo_scores: Sequence[float] | np.ndarray, level: float, what: str
) -> Prediction | None:
    """Jackknife+: the interval from each leave-one-out fit's prediction for the new arch (``loo_values``) widened by that
    fit's error on the point it left out (``loo_scores``, log); None when there are too few points for ``level``."""
    n = len(loo_scores)
    rank = conformal_rank(n, level)
    if rank is None:
        return None
    logs = np.log(np.maximum(np.asarray(loo_values, dtype=float), 1e-12))
    scores = np.asarray(loo_scores, dtype=float)
    high = float(np.sort(logs + scores)[rank - 1])
    low = float(-np.sort(-(logs - scores))[rank - 1])
    return Prediction(value, min(value, math.exp(low)), max(value, math.exp(high)), level, f"jackknife+ on {n} {what}")


def t_band(value: float, loo_scores: Sequence[float] | np.ndarray, level: float, what: str) -> Prediction | None:
    """``value x exp(+-t s sqrt(1 + 1/n))`` with s the root mean square leave-one-out log error: for n too small for
    conformal intervals; assumes roughly normal log errors. None with fewer than 3 points."""
    from scipy import stats

    n = len(loo_scores)
    if n < 3:
        return None
    s = float(np.sqrt(np.mean(np.square(loo_scores))))
    q = float(stats.t.ppf(0.5 + level / 2, n - 1)) * s * math.sqrt(1 + 1 / n)
    return Prediction(
        value,
        value * math.exp(-q),
        value * math.exp(q),
        level,
        f"Student-t on {n} leave-one-out {what} (too few for a conformal interval at {level:.0%})",
    )

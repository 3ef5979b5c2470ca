"""Predicted vs measured: the finalists of a latency- or energy-budgeted run, measured end to end on the predictor's protocol.

Why: a search or shrink picks its finalists by predicted cost; measuring the few it keeps costs seconds to
minutes and says whether the prediction (and its interval) held for exactly the archs that matter, and
whether a finalist that the prediction put under the budget really is. Each finalist is measured the way
the table was (same runtime, precision, threads, timer, and the table's reference probe when it has one), so
the measurement is on the scale of the prediction.

An energy predictor is checked through its latency: the measured latency times the table's power, which is
what its prediction means (energy counters are not read here).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nascomp.profiling.intervals import Prediction
from nascomp.profiling.predictor import EnergyPredictor, LatencyPredictor, LutProtocol, ReferenceProbe, measure_subnets
from nascomp.spaces import Arch

__all__ = ["PredictionCheck", "PredictionReport", "check_predictions"]


@dataclass(frozen=True)
class PredictionCheck:
    """One arch: its prediction (with interval), its measurement in the same unit, and the budget if any."""

    name: str
    prediction: Prediction
    measured: float
    limit: float | None = None

    @property
    def error(self) -> float:
        """predicted / measured - 1."""
        return self.prediction.value / self.measured - 1

    @property
    def covered(self) -> bool | None:
        return self.prediction.covers(self.measured)

    @property
    def straddles(self) -> bool:
        return self.limit is not None and self.prediction.straddles(self.limit)

    @property
    def meets_measured(self) -> bool | None:
        return None if self.limit is None else self.measured <= self.limit

    def to_row(self) -> dict:
        """Flat fields for a CSV or JSON record (``predicted``, ``low``, ``high`` in the unit of ``unit``)."""
        p = self.prediction
        return {
            "name": self.name,
            "unit": p.unit,
            "predicted": round(p.value, 4),
            "low": p.low and round(p.low, 4),
            "high": p.high and round(p.high, 4),
            "level": p.level,
            "measured": round(self.measured, 4),
            "error": round(self.error, 5),
            "covered": self.covered,
            "limit": self.limit,
            "straddles_limit": self.straddles,
            "meets_measured": self.meets_measured,
        }

    def line(self) -> str:
        """``name: predicted 24.10 ms [22.00, 26.30] (90 %), measured 23.50 ms (+2.6 %, inside); meets 25 ms``."""
        where = {True: ", inside", False: ", outside", None: ""}[self.covered]
        unit = self.prediction.unit
        text = f"{self.name}: predicted {self.prediction.text()}, measured {self.measured:.2f} {unit} ({self.error:+.1%}{where})"
        if self.limit is not None:
            text += f"; {'meets' if self.meets_measured else 'exceeds'} {self.limit:g} {self.prediction.unit}"
            text += " (the interval straddles the budget)" if self.straddles else ""
        return text


@dataclass
class PredictionReport:
    """Every check, how the measurements were taken, and the summary a run records."""

    checks: list[PredictionCheck]
    protocol: dict
    method: str
    notes: list[str] = field(default_factory=list)

    def within(self, tolerance: float = 0.10) -> float:
        return float(np.mean([abs(c.error) <= tolerance for c in self.checks])) if self.checks else float("nan")

    @property
    def coverage(self) -> float | None:
        covered = [c.covered for c in self.checks if c.covered is not None]
        return float(np.mean(covered)) if covered else None

    def to_dict(self) -> dict:
        return {
            "protocol": self.protocol,
            "interval_method": self.method,
            "notes": self.notes,
            "within_10pct": self.within(0.10),
            "within_5pct": self.within(0.05),
            "interval_coverage": self.coverage,
            "rows": [c.to_row() for c in self.checks],
        }


def check_predictions(
    predictor: LatencyPredictor | EnergyPredictor,
    archs: Sequence[Arch],
    names: Sequence[str] | None = None,
    limit: float | None = None,
    level: float | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> PredictionReport:
    """Measure ``archs`` end to end on ``predictor``'s protocol and set each beside its prediction and interval.

    Args:
        predictor: from `nascomp.profiling.predictor.load_predictor` / `budget_predictor`.
        archs: the archs to check (a run's finalists). names: their labels (default ``#1``, ``#2``...).
        limit: the budget in the predictor's unit (ms or mJ), to flag intervals that straddle it.
        level: the interval level (default: the predictor's, 90 %). progress: ``progress(stage, done, total)``.

    Returns:
        `PredictionReport`: one `PredictionCheck` per arch, the protocol, the interval method.
    """
    latency = predictor.latency if isinstance(predictor, EnergyPredictor) else predictor
    watts = predictor.watts if isinstance(predictor, EnergyPredictor) else 1.0
    proto = LutProtocol(**latency.protocol)
    predictions = [predictor.predict_interval(a, level) for a in archs]
    with tempfile.TemporaryDirectory(prefix="nascomp-check-") as tmp:
        probe = ReferenceProbe(proto, Path(tmp), latency.table["probe"]["reference_ms"]) if proto.probe else None
        points = measure_subnets(list(archs), proto, probe, Path(tmp), progress=progress, stage="finalists measured")
    labels = list(names) if names is not None else [f"#{i + 1}" for i in range(len(archs))]
    checks = [PredictionCheck(n, p, pt["measured_ms"] * watts, limit) for n, p, pt in zip(labels, predictions, points)]
    notes = []
    if probe is not None:
        notes.append("measured with the table's reference probe: milliseconds at the machine speed of the table's build")
    if watts != 1.0:
        notes.append(f"energy = measured latency x {watts:.2f} W ({predictor.kind} power of the table), not an energy counter")
    return PredictionReport(checks, latency.protocol, predictor.predict_interval(archs[0], level).method if archs else "", notes)

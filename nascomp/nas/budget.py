"""Budget strings: ``4gflops``, ``4e9macs``, ``25mparams``, ``25ms@mobile-cpu``, ``50mj@cuda``.

The field (Swin, S3, timm tables) reports multiply-accumulates and calls them FLOPs, so ``4gflops`` is
4 G *MACs* (the papers' convention); ``flops`` and ``macs`` are the same metric here and outputs state both
(FLOPs = 2 × MACs). Cost budgets take an optional SI prefix (k, m, g, t; case-insensitive, so ``m`` is
mega in ``25mparams``). Latency (``ms``) and energy (``mj``, millijoules) budgets name the profiler
target they are predicted for after ``@``; the profiler's lookup table turns an arch into milliseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nascomp.core.errors import NascompError

__all__ = ["Budget", "parse_budget", "BUDGET_FORMS", "METRIC_UNITS"]

BUDGET_FORMS = (
    "4gflops (= 4e9 MACs: papers' FLOPs are MACs)",
    "4e9macs",
    "4.5gmacs",
    "25mparams",
    "25ms@mobile-cpu (predicted latency)",
    "50mj@cuda (predicted energy)",
)
METRIC_UNITS = {"macs": "MACs", "params": "params", "latency": "ms", "energy": "mJ"}
_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_COST_UNITS = {"flops": "macs", "flop": "macs", "macs": "macs", "mac": "macs", "params": "params", "param": "params"}
_MEASURED_UNITS = {"ms": "latency", "mj": "energy"}
_NUMBER = r"(?P<value>\d+(?:\.\d*)?(?:e[+-]?\d+)?|\.\d+(?:e[+-]?\d+)?)"
_COST_RE = re.compile(_NUMBER + r"\s*(?P<prefix>[kmgt]?)(?P<unit>flops?|macs?|params?)$")
_MEASURED_RE = re.compile(_NUMBER + r"\s*(?P<unit>ms|mj)\s*@\s*(?P<target>\S+)$")


@dataclass(frozen=True)
class Budget:
    """An upper bound on one metric: ``macs`` / ``params`` (analytic) or ``latency`` / ``energy`` (predicted)."""

    metric: str
    limit: float  # in MACs, params, ms or mJ
    text: str
    target: str | None = None  # profiler target for latency / energy

    @property
    def unit(self) -> str:
        return METRIC_UNITS[self.metric]

    @property
    def measured(self) -> bool:
        return self.metric in ("latency", "energy")

    def format(self, value: float) -> str:
        """A value of this budget's metric in its own unit (``3.980 G MACs``, ``24.10 M params``, ``12.30 ms on cpu``).

        No "GFLOPs" beside it: a reader of ``4gflops`` takes "7.96 GFLOPs" (2 x MACs) for a violation.
        """
        if self.metric == "macs":
            return f"{value / 1e9:.3f} G MACs"
        if self.metric == "params":
            return f"{value / 1e6:.2f} M params"
        return f"{value:.2f} {self.unit} on {self.target}"

    def share(self, value: float) -> str:
        """A cost next to the limit in the budget's unit: ``3.62 G of the 4 G budget (4gflops; papers' FLOPs = MACs)``."""
        if self.metric == "macs":
            return f"{value / 1e9:.2f} G of the {self.limit / 1e9:g} G budget ({self.text}; papers' FLOPs = MACs)"
        if self.metric == "params":
            return f"{value / 1e6:.2f} M of the {self.limit / 1e6:g} M params budget ({self.text})"
        return f"{value:.2f} of the {self.limit:g} {self.unit} budget on {self.target} ({self.text})"

    def describe(self) -> str:
        note = " (papers' FLOPs = MACs)" if self.metric == "macs" else ""
        return f"{self.text} = at most {self.format(self.limit)}{note}"

    def to_dict(self) -> dict:
        return {"text": self.text, "metric": self.metric, "limit": self.limit, "unit": self.unit, "target": self.target}


def parse_budget(text: str) -> Budget:
    """Parse a ``--budget`` string; a `NascompError` lists the accepted forms if it does not parse."""
    raw = str(text).strip()
    s = raw.lower().replace("_", "")
    m = _COST_RE.match(s)
    if m:
        value = float(m["value"]) * _PREFIX[m["prefix"]]
        metric = _COST_UNITS[m["unit"]]
    else:
        m = _MEASURED_RE.match(s)
        if not m:
            raise NascompError(f"cannot parse budget {raw!r}; accepted forms: {', '.join(BUDGET_FORMS)}")
        value, metric = float(m["value"]), _MEASURED_UNITS[m["unit"]]
    if not value > 0 or value == float("inf"):
        raise NascompError(f"budget {raw!r} must be a positive, finite number")
    target = raw.split("@", 1)[1].strip() if metric in ("latency", "energy") else None  # serials are case-sensitive
    return Budget(metric, value, raw, target)

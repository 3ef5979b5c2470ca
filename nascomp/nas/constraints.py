"""Resource constraints g(α) < c for search: one interface for analytic cost and predicted latency / energy.

A `Constraint` turns an `Arch` into its cost in the budget's unit and says whether it fits. Costs are
cached per arch (archs are hashable), so constraint-aware sampling can call it thousands of times.

- ``macs`` / ``params``: exact analytic counts (`nascomp.cost.arch_cost`) at the space's deployment
  resolution (224 px for s3-vit), even when the supernet trains at a proxy resolution.
- ``latency`` / ``energy``: the profiler's lookup-table predictor for the budget's target and runtime
  (`nascomp.profiling.predictor.budget_predictor`); a missing table is a `NascompError` that names the
  ``nascomp profile --build-lut`` command. ``supports(space)`` tells space evolution which evolved spaces
  the table cannot predict, so evolution keeps the old choices instead of failing later.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nascomp.core.errors import NascompError
from nascomp.cost.arch_cost import arch_cost
from nascomp.nas.budget import Budget
from nascomp.spaces import Arch, SearchSpace

__all__ = ["Constraint", "make_constraint", "deploy_cost", "check_feasible"]


def deploy_cost(arch: Arch, space: SearchSpace, in_chans: int = 3, num_classes: int = 1000) -> dict:
    """Params, MACs and FLOPs of ``arch`` at the space's deployment resolution (what outputs report)."""
    cost = arch_cost(arch, space.resolution, in_chans, num_classes)
    return {"params": cost.params, "macs": cost.macs, "flops": cost.flops}


class Constraint:
    """``cost(arch)`` in the budget's unit; ``arch`` meets the constraint iff ``cost(arch) <= budget.limit``."""

    def __init__(
        self,
        budget: Budget,
        cost_fn: Callable[[Arch], float],
        description: str,
        supports: Callable[[SearchSpace], str | None] | None = None,
        predictor: Any = None,
    ):
        self.budget = budget
        self.predictor = predictor  # a latency / energy budget's predictor (intervals, end-to-end checks); None for analytic costs
        self._cost_fn = cost_fn
        self._description = description
        self._supports = supports
        self._cache: dict[Arch, float] = {}

    @property
    def metric(self) -> str:
        return self.budget.metric

    @property
    def limit(self) -> float:
        return self.budget.limit

    def cost(self, arch: Arch) -> float:
        hit = self._cache.get(arch)
        if hit is None:
            if len(self._cache) > 200_000:
                self._cache.clear()
            hit = self._cache[arch] = float(self._cost_fn(arch))
        return hit

    def __call__(self, arch: Arch) -> bool:
        return self.cost(arch) <= self.limit

    def supports(self, space: SearchSpace) -> str | None:
        """Why this constraint cannot price members of ``space`` (e.g. a lookup table lacks layers), or None."""
        return self._supports(space) if self._supports else None

    def describe(self) -> str:
        return f"{self.budget.describe()}; {self._description}"

    def interval_row(self, arch: Arch) -> dict:
        """A predicted cost's interval and whether it straddles the limit (``{}`` for analytic costs, which are exact)."""
        if self.predictor is None:
            return {}
        p = self.predictor.predict_interval(arch)
        return {"cost_low": p.low, "cost_high": p.high, "cost_level": p.level, "straddles_budget": p.straddles(self.limit)}


def make_constraint(
    budget: Budget,
    space: SearchSpace,
    in_chans: int = 3,
    num_classes: int = 1000,
    lut: str | Path | None = None,
    runtime: str | None = None,
) -> Constraint:
    """The constraint for ``budget`` on members of ``space`` (and of spaces evolved from it); a latency or energy budget is
    predicted for ``runtime`` (None: the table's, by default the target's default runtime)."""
    if budget.metric in ("macs", "params"):
        resolution = space.resolution

        def cost(arch: Arch) -> float:
            c = arch_cost(arch, resolution, in_chans, num_classes)
            return c.macs if budget.metric == "macs" else c.params

        what = "MACs (papers' FLOPs; FLOPs = 2 x MACs)" if budget.metric == "macs" else "parameters"
        return Constraint(budget, cost, f"analytic {what} at {resolution} px, {in_chans} input channels, {num_classes} classes")

    from nascomp.profiling.predictor import EnergyPredictor, budget_predictor

    assert budget.target is not None  # parse_budget gives every latency / energy budget its "@target"
    predictor = budget_predictor(budget.unit.lower(), budget.target, space, lut, runtime)
    latency = predictor.latency if isinstance(predictor, EnergyPredictor) else predictor  # an EnergyPredictor wraps the latency one

    def supports(candidate: SearchSpace) -> str | None:
        missing = latency.missing(candidate)
        return f"the {budget.target} lookup table lacks {len(missing)} of its layers (e.g. {missing[0]})" if missing else None

    return Constraint(budget, predictor.predict, predictor.describe(), supports, predictor)


def check_feasible(constraint: Constraint, space: SearchSpace) -> float:
    """The cost of the space's cheapest member (its smallest arch); raises if even that exceeds the budget."""
    cheapest = constraint.cost(space.smallest())
    if cheapest > constraint.limit:
        b = constraint.budget
        raise NascompError(
            f"budget {b.text} is below the cheapest member of search space {space.name!r}: its smallest arch "
            f"costs {b.format(cheapest)}; raise the budget to at least that, or use a smaller space"
        )
    why = constraint.supports(space)
    if why:
        raise NascompError(f"cannot price space {space.name!r} for budget {constraint.budget.text}: {why}")
    return cheapest

"""What a search logs through `nascomp.core.runlog` while it runs, so a long search can be watched.

- per space-evolution step t (step = t): ``evolution/E``, ``evolution/T``, ``evolution/Q`` (the E-T error, (E + T) / 2),
  ``evolution/supernet_top1``, each fitted slope and its permutation p-value (``evolution/slope/stage2/depth``,
  ``evolution/p/stage2/depth``), the slopes and the decisions as tables and the moved choices as a note;
- per generation g of the evolutionary search (step = g): ``search/best_top1`` and ``search/best_cost`` (best so far),
  ``search/population_mean_top1``, ``search/front_size``, ``search/hypervolume`` of the accuracy-cost front of every
  candidate so far, and that generation's new candidates as a table.

The hypervolume is taken in (top-1 %, cost / budget) against the reference (0 %, 1): the area the front dominates
inside the budget, in percentage points, comparable between generations and runs of one budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from nascomp.core.runlog import RunLogger
from nascomp.pareto import hypervolume
from nascomp.spaces import Arch

__all__ = ["log_et_step", "GenerationLog"]


def _dash(values: Sequence) -> str:
    return "-".join(str(v) for v in values)


def log_et_step(logger: RunLogger, record: dict) -> None:
    """One space-evolution step's E-T error, slopes and decisions (``record`` as written to ``evolution/step-T/et.json``,
    stages numbered from 1)."""
    step, et = record["step"], record["et"]
    values = {"evolution/E": et["E"], "evolution/T": et["T"], "evolution/Q": et["Q"], "evolution/supernet_top1": record["supernet"]["top1"]}
    for s in record["slopes"]:
        if s.get("slope") is not None:
            values[f"evolution/slope/stage{s['stage']}/{s['dimension']}"] = s["slope"]
            values[f"evolution/p/stage{s['stage']}/{s['dimension']}"] = s["p"]
    logger.scalars(values, step)
    logger.table(
        "evolution/slopes",
        [
            {
                "stage": s["stage"],
                "dimension": s["dimension"],
                "choices": s["choices"],
                "Q": s["Q"],
                "slope": s.get("slope"),
                "p": s.get("p"),
                "note": s.get("note"),
            }
            for s in record["slopes"]
        ],
        step,
    )
    decisions = record.get("decisions")
    if decisions:
        logger.table(
            "evolution/decisions",
            [
                {
                    "stage": d["stage"],
                    "dimension": d["dimension"],
                    "action": d["action"],
                    "choices": d["choices"],
                    "new_choices": d["new_choices"],
                    "p_adjusted": d.get("p_adjusted"),
                    "reason": d.get("reason"),
                }
                for d in decisions
            ],
            step,
        )
        moved = [f"stage {d['stage']} {d['dimension']} {d['choices']} -> {d['new_choices']}" for d in decisions if d["action"] != "keep"]
        logger.text("evolution/moves", "; ".join(moved) if moved else "no choice moved", step)


class GenerationLog:
    """Wraps the search's score function to see every candidate, and logs each generation (`evolutionary_search`'s
    ``on_generation``); ``cost`` prices an arch in the budget's unit and ``limit`` is the budget."""

    def __init__(self, logger: RunLogger, score: Callable[[list[Arch]], list[float]], cost: Callable[[Arch], float], limit: float):
        self.logger, self._score, self.cost, self.limit = logger, score, cost, limit
        self.scored: list[tuple[Arch, float, float]] = []  # (arch, top-1, cost) in scoring order

    def score(self, archs: list[Arch]) -> list[float]:
        tops = self._score(archs)
        self.scored += [(a, float(t), float(self.cost(a))) for a, t in zip(archs, tops)]
        return tops

    def __call__(self, rec: dict) -> None:
        g = rec["generation"]
        points = np.array([[top1, cost / self.limit] for _, top1, cost in self.scored])
        self.logger.scalars(
            {
                "search/best_top1": rec["best_top1"],
                "search/best_cost": rec["best_cost"],
                "search/population_mean_top1": rec["population_mean_top1"],
                "search/front_size": rec["front_size"],
                "search/hypervolume": hypervolume(points, ["max", "min"], [0.0, 1.0]),
            },
            g,
        )
        new = self.scored[len(self.scored) - rec["evaluated"] :] if rec["evaluated"] else []
        if new:
            self.logger.table(
                "search/candidates",
                [{"val_top1": top1, "cost": cost, "depths": _dash(a.depths), "embed_dims": _dash(a.embed_dims)} for a, top1, cost in new],
                g,
            )

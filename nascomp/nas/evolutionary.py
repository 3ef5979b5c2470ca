"""Evolutionary search in the final space: AutoFormer v1's algorithm (S3 searches with it), budget-aware.

Defaults are AutoFormer v1's ``evolution.py`` (microsoft/Cream, the code S3 builds on): population 50, 20 generations, the top
10 as parents, 25 children by mutation and 25 by crossover per generation, topped up with random
candidates; mutation resamples a stage's depth and embed dim with probability ``stage_prob`` 0.4 and each
block's genes with ``mutation_prob`` 0.2 (`SearchSpace.mutate`); crossover takes each gene from one of two
parents (`SearchSpace.crossover`); each operator makes at most ``retry_factor`` × its target attempts.

- Constraint-aware: only children that meet the constraint count; random candidates are drawn by
  rejection sampling under the constraint.
- Duplicates are skipped: an arch evaluated once is never evaluated or counted again.
- Objective ``accuracy`` (S3/AutoFormer: maximise accuracy under the budget) keeps the most accurate
  candidates as parents and returns one winner. Objective ``pareto`` keeps parents by non-dominated rank
  (accuracy up, cost down; NSGA-II crowding distance breaks ties) and returns the front instead.

The search is a pure function of its seed and the scores it is given: each generation draws from its own
``random.Random(seed, generation)``, so replaying a search over memoised scores (`SupernetScorer`)
reproduces it exactly — that is how an interrupted run resumes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from nascomp.core.errors import NascompError
from nascomp.pareto import front_indices, non_dominated_sort
from nascomp.spaces import Arch, SearchSpace

__all__ = ["EvolutionConfig", "Candidate", "EvolutionResult", "evolutionary_search", "OBJECTIVES"]

OBJECTIVES = ("accuracy", "pareto")


@dataclass(frozen=True)
class EvolutionConfig:
    population: int = 50
    generations: int = 20
    parents: int = 10
    mutations: int = 25
    crossovers: int = 25
    mutation_prob: float = 0.2  # AutoFormer's m_prob: per block gene
    stage_prob: float = 0.4  # AutoFormer's s_prob: per stage depth / embed dim
    retry_factor: int = 10
    objective: str = "accuracy"

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise NascompError(f"unknown search objective {self.objective!r}; choose {' or '.join(OBJECTIVES)}")
        if min(self.population, self.parents) < 1 or self.generations < 0 or min(self.mutations, self.crossovers) < 0:
            raise NascompError("search needs population >= 1, parents >= 1, generations >= 0 and non-negative offspring counts")
        if not (0 <= self.mutation_prob <= 1 and 0 <= self.stage_prob <= 1):
            raise NascompError("mutation and stage probabilities must lie in [0, 1]")


@dataclass
class Candidate:
    arch: Arch
    top1: float  # validation top-1 (%) with inherited weights
    cost: float  # in the constraint's unit
    generation: int
    origin: str  # seed | random | mutation | crossover


@dataclass
class EvolutionResult:
    candidates: list[Candidate]  # every evaluated candidate, in evaluation order
    history: list[dict]  # one record per generation
    best: Candidate
    front: list[Candidate]  # non-dominated (top-1 up, cost down) over all candidates, cheapest first


def _ranked(pool: list[Candidate], objective: str) -> list[Candidate]:
    """Best first: by accuracy (ties: cheaper, then earlier), or by non-dominated rank and crowding."""
    if objective == "accuracy" or len(pool) < 2:
        return sorted(pool, key=lambda c: (-c.top1, c.cost))
    values = np.array([[c.top1, c.cost] for c in pool])
    out = []
    for front in non_dominated_sort(values, ["max", "min"]):
        crowd = _crowding(values[front])
        out += [pool[front[i]] for i in sorted(range(len(front)), key=lambda i: (-crowd[i], -pool[front[i]].top1))]
    return out


def _crowding(values: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance (extremes infinite): prefers spread-out points on a front."""
    n = len(values)
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(values.shape[1]):
        order = np.argsort(values[:, k], kind="stable")
        span = values[order[-1], k] - values[order[0], k]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span > 0:
            dist[order[1:-1]] += (values[order[2:], k] - values[order[:-2], k]) / span
    return dist


def evolutionary_search(
    space: SearchSpace,
    constraint: Callable[[Arch], bool],
    cost: Callable[[Arch], float],
    score: Callable[[list[Arch]], list[float]],
    config: EvolutionConfig | None = None,
    seed: int = 0,
    initial: Sequence[Arch] = (),
    on_generation: Callable[[dict], None] | None = None,
) -> EvolutionResult:
    """Search ``space`` for archs meeting ``constraint``; ``score(archs)`` returns their validation top-1 (%).

    ``initial`` candidates (e.g. the E-T samples of the final space, already scored) all join generation 0;
    random candidates fill it up to the population size. ``on_generation`` gets each generation's record (progress).
    ``config`` defaults to ``EvolutionConfig()``.
    """
    config = EvolutionConfig() if config is None else config
    seen: dict[Arch, Candidate] = {}
    candidates: list[Candidate] = []
    history: list[dict] = []

    def add(offspring: list[tuple[Arch, str]], generation: int) -> list[Candidate]:
        """Score new (arch, origin) pairs in one batch; archs seen before are skipped (first origin wins)."""
        origin: dict[Arch, str] = {}
        for a, o in offspring:
            if a not in seen:
                origin.setdefault(a, o)
        if not origin:
            return []
        archs = list(origin)
        tops = score(archs)
        new = [Candidate(a, float(t), float(cost(a)), generation, origin[a]) for a, t in zip(archs, tops)]
        for c in new:
            seen[c.arch] = c
        candidates.extend(new)
        return new

    def random_fill(target: int, rng: random.Random, exclude: set) -> list[Arch]:
        out: list[Arch] = []
        for _ in range(config.retry_factor * max(1, target)):
            if len(out) >= target:
                break
            a = space.sample(rng, constraint=constraint)
            if a not in seen and a not in exclude and a not in out:
                out.append(a)
        return out

    def breed(children: list[tuple[Arch, str]], taken: set[Arch], target: int, make: Callable[[], Arch], origin: str) -> None:
        """Up to ``target`` new children meeting the constraint, from at most retry_factor x target attempts."""
        made = 0
        for _ in range(config.retry_factor * target):
            if made >= target:
                break
            arch = make()
            if arch not in seen and arch not in taken and constraint(arch):
                taken.add(arch)
                children.append((arch, origin))
                made += 1

    def mutant(rng: random.Random, parents: list[Candidate]) -> Arch:
        return space.mutate(rng.choice(parents).arch, rng, prob=config.mutation_prob, stage_prob=config.stage_prob)

    def crossed(rng: random.Random, parents: list[Candidate]) -> Arch:
        a, b = rng.sample(parents, 2)
        return space.crossover(a.arch, b.arch, rng)

    def record(generation: int, new: list[Candidate], population: list[Candidate]) -> None:
        best = _ranked(candidates, "accuracy")[0]
        front = front_indices(np.array([[c.top1, c.cost] for c in candidates]), ["max", "min"])
        rec = {
            "generation": generation,
            "evaluated": len(new),
            "total": len(candidates),
            "best_top1": best.top1,
            "best_cost": best.cost,
            "population_mean_top1": float(np.mean([c.top1 for c in population])),
            "front_size": len(front),
            "origins": {o: sum(c.origin == o for c in new) for o in ("seed", "random", "mutation", "crossover")},
        }
        history.append(rec)
        if on_generation:
            on_generation(rec)

    seeds = [a for a in dict.fromkeys(initial) if space.contains(a) and constraint(a)]  # already scored: all join generation 0
    rng0 = random.Random(f"{seed}:0")
    fill = random_fill(max(0, config.population - len(seeds)), rng0, set(seeds))
    new = add([(a, "seed") for a in seeds] + [(a, "random") for a in fill], 0)
    if not candidates:
        raise NascompError(f"no member of space {space.name!r} met the budget; raise the budget")
    population = list(new)
    record(0, new, population)

    for generation in range(1, config.generations + 1):
        rng = random.Random(f"{seed}:{generation}")
        parents = _ranked(list(seen.values()), config.objective)[: config.parents]
        children: list[tuple[Arch, str]] = []
        taken: set[Arch] = set()
        breed(children, taken, config.mutations, partial(mutant, rng, parents), "mutation")
        if len(parents) >= 2:
            breed(children, taken, config.crossovers, partial(crossed, rng, parents), "crossover")
        fill = random_fill(max(0, config.population - len(children)), rng, taken)
        new = add(children + [(a, "random") for a in fill], generation)
        population = new or population
        record(generation, new, population)

    ranked = _ranked(candidates, "accuracy")
    values = np.array([[c.top1, c.cost] for c in candidates])
    front = sorted((candidates[i] for i in front_indices(values, ["max", "min"])), key=lambda c: c.cost)
    return EvolutionResult(candidates, history, ranked[0], front)

"""The space-evolution rule is calibrated: a small, seeded copy of experiments/evolution-calibration.

One step of the ``cpu`` preset on real members of the space it searches (s3-vit with the dimensions its 32 px
proxy collapses fixed) under the 4gflops budget, with the preset's N, k, τ and α (160, 8, 0.1, 0.04: 19
pairs tested); errors on a 0.2-point grid (500 validation images) with the real subnets' SD of 1.2 points. Fewer
permutations than the preset's 1999 keep the file at a few seconds: the null rate does not depend on B, and B = 999 costs a little power.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from nascomp.nas import PRESETS, evolve_space, fit_slopes, make_constraint, parse_budget, sample_candidates, top_k_for
from nascomp.nas.et_error import choice_weights
from nascomp.spaces import SearchSpace

PRESET = PRESETS["cpu"]
SPACE = SearchSpace.load("s3-vit").pinned(PRESET.supernet.resolution)
RULE = replace(PRESET.rule, permutations=999)
NULL_RULE = replace(PRESET.rule, permutations=499)  # 1/(B+1) = 0.002 still clears Holm's 0.04/19 = 0.0021
N, K, RESOLUTION = PRESET.et_samples, top_k_for(PRESET.et_samples), PRESET.supernet.resolution
SD = 1.2  # per-subnet validation-error SD of the cpu preset's step-0 E-T table (experiments/evolution-calibration)
EFFECT = 1.2  # the effect the experiment justifies: one step moves a subnet's expected error by one SD


@pytest.fixture(scope="module")
def tables():
    constraint = make_constraint(parse_budget("4gflops"), SPACE, in_chans=3, num_classes=10)
    return [sample_candidates(SPACE, N, constraint, random.Random(f"calibration-test:{i}")) for i in range(20)]


def _errors(rng: np.random.Generator, shift: np.ndarray | float = 0.0) -> np.ndarray:
    return np.round((23.5 + SD * rng.standard_normal(N) + shift) * 5) / 5  # 500 images: multiples of 0.2 %


def _step(archs, errors, rule, seed):
    records = fit_slopes(SPACE, archs, errors, K, rule, seed=seed, train_resolution=RESOLUTION)
    return [d for d in evolve_space(SPACE, records, rule, "x")[1] if d["slope"] is not None]


def _passes(d: dict, rule) -> bool:
    return abs(d["slope"]) > rule.tau and d["p_adjusted"] <= rule.alpha


def test_with_no_effect_a_step_moves_anything_at_most_alpha_of_the_time(tables):
    rng = np.random.default_rng(0)
    moved = uncorrected = 0
    p = []
    for i in range(100):
        decisions = _step(tables[i % len(tables)], _errors(rng), NULL_RULE, seed=i)
        moved += any(_passes(d, NULL_RULE) for d in decisions)
        uncorrected += any(abs(d["slope"]) > NULL_RULE.tau and d["p"] <= NULL_RULE.alpha for d in decisions)
        p += [d["p"] for d in decisions]
    bound = 13  # the 99.9 % quantile of Binomial(100, 0.05): a rule with a 5 % rate exceeds it once in 2000 seeds
    assert moved <= bound
    assert uncorrected > 3 * bound  # the same tests without Holm's correction move in most null steps
    assert 0.03 <= np.mean(np.array(p) <= 0.05) <= 0.07  # each raw permutation p is uniform under the null


def test_a_planted_effect_of_the_justified_size_is_found(tables):
    """Stage dimensions planted one at a time, half rising and half falling; also: B too small can never pass Holm."""
    rng = np.random.default_rng(1)
    found = total = 0
    for i, (stage, dim) in enumerate([(0, "depth"), (1, "embed_dim"), (2, "depth"), (3, "embed_dim")] * 10):
        archs = tables[i % len(tables)]
        step = RULE.step(SPACE, stage, dim)
        choices = SPACE.choices(stage, dim)
        sign = 1 if i % 8 < 4 else -1
        position = choice_weights(archs, stage, dim, choices) @ (np.array(choices, dtype=float) / step)
        decisions = _step(archs, _errors(rng, sign * EFFECT * position), RULE, seed=i)
        hit = [d for d in decisions if (d["stage"], d["dimension"]) == (stage, dim) and _passes(d, RULE)]
        found += bool(hit) and np.sign(hit[0]["slope"]) == sign
        total += 1
        if i == 0:  # 1/(B+1) = 0.01 > 0.04/19: no slope however strong clears Holm's first threshold
            assert not any(_passes(d, RULE) for d in _step(archs, _errors(rng, 10 * position), replace(RULE, permutations=99), i))
    assert found / total >= 0.8

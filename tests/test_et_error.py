"""E-T error: whole-space statistics, per-choice weighting, candidate sampling, and the memoised scorer."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from nascomp.core.errors import NascompError
from nascomp.data import load_data
from nascomp.nas import SupernetScorer, et_error, et_table, make_constraint, parse_budget, sample_candidates, top_k_for
from nascomp.nas.et_error import choice_weights, weighted_et_error
from nascomp.nas.supernet import Supernet, evaluate_archs
from nascomp.spaces import Arch, BlockArch, SearchSpace, StageArch
from tests.conftest import TINY_SPACE

S3_VIT = SearchSpace.load("s3-vit")
TINY = SearchSpace.from_dict({**TINY_SPACE, "name": "tiny-search"})


def test_top_k_scales_the_papers_50_of_1000():
    assert top_k_for(1000) == 50
    assert top_k_for(60) == 3
    assert top_k_for(10) == 1


def test_whole_space_et_error_by_hand():
    errors = list(range(1, 101))  # 100 subnets, k = 5
    r = et_error(random.Random(0).sample(errors, 100))
    assert (r["n"], r["k"]) == (100, 5)
    assert r["E"] == pytest.approx(50.5)
    assert r["T"] == pytest.approx(3.0)  # mean of 1..5
    assert r["Q"] == pytest.approx(26.75)


def test_weighted_et_error_by_hand():
    # weights 0.5, 1, 1, 0.5 (total 3); the top 25% is 0.75 of weight: half of e=10 (0.5) and a quarter of e=20
    r = weighted_et_error([30, 10, 40, 20], [1, 0.5, 0.5, 1], 0.25)
    assert r["E"] == pytest.approx((30 + 5 + 20 + 20) / 3)
    assert r["T"] == pytest.approx((0.5 * 10 + 0.25 * 20) / 0.75)
    assert weighted_et_error([1, 2], [0, 0], 0.5)["Q"] is None


def test_zero_one_weights_reduce_to_the_restricted_et_error():
    rng = np.random.default_rng(0)
    errors = rng.uniform(10, 60, 200)
    member = rng.random(200) < 0.4
    fraction = 10 / 200
    w = weighted_et_error(errors, member.astype(float), fraction)
    subset = errors[member]
    k = fraction * len(subset)
    best = np.sort(subset)
    expected_t = (best[: int(k)].sum() + (k - int(k)) * best[int(k)]) / k
    assert w["E"] == pytest.approx(subset.mean())
    assert w["T"] == pytest.approx(expected_t)


def _stage(embed: int, blocks: list[tuple[int, int, float, int]]) -> StageArch:
    return StageArch(embed, tuple(BlockArch(*b) for b in blocks))


def test_block_dimensions_count_by_share_of_the_stage():
    arch = Arch((_stage(8, [(1, 8, 1.0, 4), (2, 16, 2.0, 4)]), _stage(16, [(2, 8, 1.0, 2)])), patch_size=2)
    assert choice_weights([arch], 0, "heads", (1, 2)).tolist() == [[0.5, 0.5]]
    assert choice_weights([arch], 0, "window", (4, 8)).tolist() == [[1.0, 0.0]]
    assert choice_weights([arch], 0, "depth", (1, 2)).tolist() == [[0.0, 1.0]]
    assert choice_weights([arch], 1, "embed_dim", (16, 24)).tolist() == [[1.0, 0.0]]


def test_et_table_follows_a_planted_dependence():
    """Errors that grow with stage-3 depth give per-choice Q that grows with it; unrelated dims stay flat."""
    rng = random.Random(0)
    archs = sample_candidates(S3_VIT, 400, lambda a: True, rng)
    noise = np.random.default_rng(1).normal(0, 0.5, len(archs))
    errors = [30 + 3 * a.stages[2].depth + e for a, e in zip(archs, noise)]
    table = et_table(S3_VIT, archs, errors)
    depth_q = table.choice_q(2, "depth")
    assert list(depth_q) == [4, 5, 6, 7, 8]
    assert all(b - a > 1.5 for a, b in zip(list(depth_q.values()), list(depth_q.values())[1:]))
    mlp_q = list(table.choice_q(0, "mlp_ratio").values())
    assert max(mlp_q) - min(mlp_q) < 2
    assert table.k == 20 and table.Q == pytest.approx(et_error(errors)["Q"])
    assert {(r["stage"], r["dimension"]) for r in table.rows} == {(s, d) for s, d, _ in S3_VIT.subspaces()}


def test_sample_candidates_are_distinct_and_meet_the_budget():
    c = make_constraint(parse_budget("4gflops"), S3_VIT, num_classes=10)
    archs = sample_candidates(S3_VIT, 50, c, random.Random(3))
    assert len(archs) == 50 and len(set(archs)) == 50
    assert all(c.cost(a) <= 4e9 and S3_VIT.contains(a) for a in archs)
    assert archs == sample_candidates(S3_VIT, 50, c, random.Random(3))
    with pytest.raises(NascompError, match="raise the budget"):
        sample_candidates(S3_VIT, 5, lambda a: False, random.Random(0), max_draws=50)


@pytest.fixture(scope="module")
def tiny_net():
    torch.manual_seed(0)
    return Supernet(TINY, num_classes=10, in_chans=1, img_size=16, drop_path_rate=0.0)


def test_scorer_matches_evaluate_archs_and_memoises(tiny_net, fake_fmnist, tmp_path):
    torch.set_num_threads(1)
    data = load_data("fashion-mnist", fake_fmnist, limit_val=40)
    tf = data.transform(16, 1, train=False)
    archs = sample_candidates(TINY, 6, lambda a: True, random.Random(0))
    memo = tmp_path / "scores.jsonl"
    scorer = SupernetScorer(tiny_net, data.val, tf, batch_size=16, memo=memo)
    first = scorer.score(archs[:4])
    both = scorer.score(archs)  # the first four come from the scorer's memory
    assert scorer.evaluated == 6 and both[:4] == first
    assert both == evaluate_archs(tiny_net, archs, data.val, tf, batch_size=16)
    with open(memo, "a") as f:
        f.write('{"arch": {"patch_size": 2, "sta')  # a line cut short by a kill
    again = SupernetScorer(tiny_net, data.val, tf, batch_size=16, memo=memo)
    assert again.score(archs) == both and again.evaluated == 0
    extra = sample_candidates(TINY, 8, lambda a: a not in set(archs), random.Random(1))[:1]
    again.score(extra)
    assert len(SupernetScorer(tiny_net, data.val, tf, memo=memo)) == 7  # the torn line was cut, the new one kept

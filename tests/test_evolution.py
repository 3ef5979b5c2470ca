"""Space evolution (slopes, shift rule, validity) and the evolutionary search (constraint, duplicates, Pareto)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nascomp.core.errors import NascompError
from nascomp.cost.arch_cost import arch_cost
from nascomp.nas import EvolutionConfig, EvolutionRule, et_table, evolutionary_search, evolve_space, fit_slopes, sample_candidates
from nascomp.nas.space_evolution import holm, shifted_choices
from nascomp.pareto import dominates
from nascomp.spaces import SearchSpace

S3_VIT = SearchSpace.load("s3-vit")
S3_CPU = SearchSpace.load("s3-vit-cpu")


def _planted(space: SearchSpace, n: int = 400, seed: int = 0):
    """Subnets whose error rises 3 points per stage-3 block and falls 2 points per 0.5 of stage-1 MLP ratio."""
    archs = sample_candidates(space, n, lambda a: True, random.Random(seed))
    noise = np.random.default_rng(seed).normal(0, 0.3, n)
    errors = [40 + 3 * a.stages[2].depth - 4 * np.mean([b.mlp_ratio for b in a.stages[0].blocks]) + e for a, e in zip(archs, noise)]
    return archs, errors


def test_slopes_recover_planted_trends_and_shift_against_them():
    archs, errors = _planted(S3_VIT)
    table = et_table(S3_VIT, archs, errors)
    rule = EvolutionRule(tau=1.0, alpha=0.05, permutations=999)
    slopes = fit_slopes(S3_VIT, archs, errors, table.k, rule, seed=0)
    by_key = {(r["stage"], r["dimension"]): r for r in slopes}
    assert by_key[(2, "depth")]["slope"] == pytest.approx(3.0, abs=0.6)  # E-T points per step of 1 block
    # -2 per step of 0.5 on the stage mean; a block counts for its choice with its share of the stage, which
    # dilutes the per-choice contrast in stages of 2-3 mixed blocks (by ~(1 + 1/2 + 1/3) / 3)
    assert -2.0 < by_key[(0, "mlp_ratio")]["slope"] < -0.8
    new, decisions = evolve_space(S3_VIT, slopes, rule, "evolved")
    assert new.choices(2, "depth") == (3, 4, 5, 6, 7)  # error grows with depth: shift down by 1
    assert new.choices(0, "mlp_ratio") == (3.5, 4.0, 4.5)  # error falls with the ratio: shift up by 0.5
    moved = {(d["stage"], d["dimension"]) for d in decisions if d["action"] != "keep"}
    assert moved == {(2, "depth"), (0, "mlp_ratio")}
    assert all(d["reason"] for d in decisions) and len(decisions) == len(S3_VIT.subspaces())
    assert by_key[(2, "depth")]["p"] == 1 / 1000  # no shuffle comes near a planted slope
    assert all(d["p_adjusted"] <= 0.05 and "Holm-adjusted" in d["reason"] for d in decisions if d["action"] != "keep")


def test_tau_keeps_choices():
    archs, errors = _planted(S3_VIT)
    slopes = fit_slopes(S3_VIT, archs, errors, 20, EvolutionRule(permutations=20), seed=0)
    new, decisions = evolve_space(S3_VIT, slopes, EvolutionRule(tau=10.0), "kept")
    assert new == S3_VIT and all(d["action"] == "keep" and "tau" in d["reason"] for d in decisions if d["slope"] is not None)


def test_window_shifts_walk_the_ladder_of_tiling_windows():
    assert shifted_choices(S3_VIT, 0, "window", 7, +1) == [14, 28]  # 56x56: 7, 14, 28, 56 tile it
    assert shifted_choices(S3_VIT, 0, "window", 7, -1) == [7]  # S3: the stage-1 window space shrinks
    assert shifted_choices(S3_VIT, 2, "window", 7, +1) == [14]  # 14x14: 14 is global
    assert shifted_choices(S3_VIT, 3, "window", 7, +1) == []  # 7x7: nothing beyond 7
    assert shifted_choices(S3_VIT, 0, "depth", 1, -1) == [1, 2]  # depth 0 is dropped
    assert shifted_choices(S3_VIT, 1, "embed_dim", 32, +1) == [192, 224, 256]


def _record(stage, dim, space, slope, step):
    return {"stage": stage, "dimension": dim, "choices": list(space.choices(stage, dim)), "step": step, "slope": slope, "p": 0.0}


def test_invalid_shifts_are_repaired_or_refused():
    space = S3_VIT.with_choices({(0, "qkv_dim"): [96]})
    new, [d] = evolve_space(space, [_record(0, "heads", space, -3.0, 1.0)], EvolutionRule(), "x")
    assert new.choices(0, "heads") == (3, 4)  # {3, 4, 5}: 5 heads divide no qkv_dim choice
    new, [d] = evolve_space(
        S3_VIT, [_record(2, "depth", S3_VIT, -3.0, 1.0)], EvolutionRule(), "x", validator=lambda s: "its smallest arch exceeds the budget"
    )
    assert new == S3_VIT and d["action"] == "keep" and "exceeds the budget" in d["reason"]
    new, [d] = evolve_space(S3_VIT, [_record(3, "window", S3_VIT, -3.0, 7.0)], EvolutionRule(), "x")
    assert new == S3_VIT and "no valid value" in d["reason"]


def test_evolution_on_a_proxy_never_moves_a_dimension_into_choices_the_proxy_merges():
    """The digits run of issue 19: stage-1 windows [7, 14] shifted up to [14, 28], which a 32 px proxy (8x8 map) builds as one
    global 8x8 window. The move is refused there, and allowed at the space's own resolution (56x56: 14 and 28 differ)."""
    record = _record(0, "window", S3_VIT, -3.0, 7.0)  # error falls as the window grows: shift up
    assert S3_VIT.choices(0, "window") == (7, 14)
    new, [d] = evolve_space(S3_VIT, [record], EvolutionRule(), "x", train_resolution=32)
    assert new == S3_VIT and d["action"] == "keep" and "32 px proxy could not tell the new choices apart" in d["reason"]
    assert "windows [14, 28] all become 8x8 (global, unshifted)" in d["reason"]
    moved, [d] = evolve_space(S3_VIT, [record], EvolutionRule(), "x", train_resolution=224)
    assert moved.choices(0, "window") == (14, 28) and d["action"] == "shift up"
    # a move that keeps its choices apart at the proxy still happens there: stage-1 depth is never merged
    depth, [d] = evolve_space(S3_VIT, [_record(0, "depth", S3_VIT, -3.0, 1.0)], EvolutionRule(), "x", train_resolution=32)
    assert depth.choices(0, "depth") != S3_VIT.choices(0, "depth")


def test_indistinct_lists_partial_merges_and_collapsed_only_whole_ones():
    space = S3_VIT.with_choices({(0, "window"): [7, 14, 28]})
    merged = {(s, d): groups for s, d, groups, _ in space.indistinct(32)}
    assert merged[0, "window"] == ((14, 28),)  # 7 stays a shifted 7x7 window on the 8x8 map
    assert (0, "window") not in {(c.stage, c.dimension) for c in space.collapsed(32)}
    assert {(c.stage, c.dimension) for c in S3_VIT.collapsed(32)} == {(1, "window"), (2, "window"), (3, "qkv_dim"), (3, "heads")}
    assert all(c.to_dict()["stage"] == c.stage + 1 for c in S3_VIT.collapsed(32))  # users read stages from 1


def test_dimensions_the_training_resolution_collapses_get_no_slope_even_under_a_strong_trend():
    archs, errors = _planted(S3_VIT, n=100)
    errors = [e + 5 * a.stages[3].blocks[0].heads / 8 + 5 * (a.stages[1].blocks[0].window == 14) for a, e in zip(archs, errors)]
    rule = EvolutionRule(tau=0.0, alpha=1.0, permutations=5)  # any slope would move
    slopes = fit_slopes(S3_VIT, archs, errors, 5, rule, train_resolution=32)
    by = {(r["stage"], r["dimension"]): r for r in slopes}
    assert by[0, "window"]["slope"] is not None  # 8x8 at 32 px: 7 (padded, local) vs 14 (global) differ
    for key in ((1, "window"), (2, "window"), (3, "heads"), (3, "qkv_dim")):
        assert by[key]["slope"] is None and "collapsed at the proxy" in by[key]["note"], key
    assert by[2, "heads"]["slope"] is not None  # a 2x2 map is not a collapse
    new, decisions = evolve_space(S3_VIT, slopes, rule, "x")
    assert all(new.choices(*key) == S3_VIT.choices(*key) for key in ((1, "window"), (2, "window"), (3, "heads"), (3, "qkv_dim")))
    assert new.choices(2, "depth") != S3_VIT.choices(2, "depth")  # the live planted trend still moves


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([S3_VIT, S3_CPU]), st.lists(st.sampled_from([-5.0, 0.0, 5.0]), min_size=24, max_size=24), st.integers(0, 3))
def test_evolved_spaces_are_always_valid(space, signs, rounds):
    for _ in range(rounds + 1):
        rule = EvolutionRule()
        slopes = [_record(s, d, space, signs[i % len(signs)], rule.step(space, s, d)) for i, (s, d, _) in enumerate(space.subspaces())]
        space, _ = evolve_space(space, slopes, rule, "evolved")
        SearchSpace.from_dict(space.to_dict())  # re-validates
        arch = space.sample(random.Random(0))
        assert space.contains(arch)


def test_slopes_and_permutation_p_values():
    """The slope is the least-squares line through the per-choice Q; p is seeded and never below 1/(B+1)."""
    archs = sample_candidates(S3_VIT, 60, lambda a: True, random.Random(3))
    errors = np.random.default_rng(3).normal(20, 1.5, 60)
    rule = EvolutionRule(permutations=199)
    a, b, c = (fit_slopes(S3_VIT, archs, errors, 3, rule, seed=s) for s in (0, 0, 1))
    assert a == b and [r["p"] for r in a] != [r["p"] for r in c]
    for r in a:
        if r["slope"] is None:
            continue
        used = [j for j, w in enumerate(r["weight"]) if w >= rule.min_weight]
        x = np.array([r["choices"][j] for j in used], dtype=float) / r["step"]
        if r["dimension"] != "window":
            assert r["slope"] == pytest.approx(np.polyfit(x, np.array(r["Q"])[used], 1)[0], abs=1e-9)
        assert 1 / 200 <= r["p"] <= 1 and round(r["p"] * 200) == pytest.approx(r["p"] * 200)
    flat = fit_slopes(S3_VIT, archs, np.full(60, 20.0), 3, rule)  # no variation: every shuffle ties, p = 1
    assert all(r["p"] == 1.0 for r in flat if r["slope"] is not None)


def test_holm_adjusted_p_values_by_hand():
    assert holm([0.01, 0.04, 0.03, 0.2]).tolist() == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.5]).tolist() == [1.0, 1.0]


def test_a_slope_beyond_tau_moves_only_when_its_holm_adjusted_p_clears_alpha():
    """Four tested pairs: p 0.01 alone passes at α = 0.05 (raw), but Holm multiplies it by 4."""
    recs = [_record(2, "depth", S3_VIT, 3.0, 1.0), *(_record(0, d, S3_VIT, 0.0, 1.0) for d in ("depth", "heads", "qkv_dim"))]
    recs[0]["p"] = 0.01
    for r in recs[1:]:
        r["p"] = 0.9
    new, decisions = evolve_space(S3_VIT, recs, EvolutionRule(tau=0.1, alpha=0.05), "x")
    assert decisions[0]["p_adjusted"] == pytest.approx(0.04) and decisions[0]["action"] == "shift down"
    assert new.choices(2, "depth") == (3, 4, 5, 6, 7) and [d["p_adjusted"] for d in decisions[1:]] == [1.0] * 3
    new, decisions = evolve_space(S3_VIT, recs, EvolutionRule(tau=0.1, alpha=0.03), "x")
    assert new == S3_VIT and "not told from noise" in decisions[0]["reason"] and "0.0400 > alpha 0.03" in decisions[0]["reason"]
    new, decisions = evolve_space(S3_VIT, recs, EvolutionRule(tau=0.1, alpha=1.0), "x")  # alpha = 1: the bare τ rule
    assert decisions[0]["action"] == "shift down"


def test_evolution_rule_rejects_unknown_dimensions():
    with pytest.raises(NascompError, match="unknown dimension"):
        EvolutionRule(steps={"depht": 1})
    with pytest.raises(NascompError, match="alpha"):
        EvolutionRule(alpha=0.0)
    assert EvolutionRule(steps={"3:depth": 2}).step(S3_VIT, 2, "depth") == 2
    assert EvolutionRule().step(S3_VIT, 2, "depth") == 1 and EvolutionRule().step(S3_VIT, 0, "mlp_ratio") == 0.5


# --- evolutionary search -----------------------------------------------------------------------------------------


def _macs(arch):
    return arch_cost(arch, 224, num_classes=10).macs


def test_autoformer_defaults():
    c = EvolutionConfig()  # AutoFormer v1 evolution.py (microsoft/Cream)
    assert (c.population, c.generations, c.parents, c.mutations, c.crossovers) == (50, 20, 10, 25, 25)
    assert (c.mutation_prob, c.stage_prob) == (0.2, 0.4)


def test_search_climbs_a_known_fitness_under_the_budget_without_duplicates():
    """Fitness = MACs: the best member under 4 G MACs sits just below the budget; random search does worse."""
    limit = 4e9
    scored = []

    def score(archs):
        scored.extend(archs)
        return [_macs(a) / 1e8 for a in archs]

    cfg = EvolutionConfig(population=20, generations=8, parents=5, mutations=10, crossovers=10)
    result = evolutionary_search(S3_VIT, lambda a: _macs(a) <= limit, _macs, score, cfg, seed=1)
    assert len(scored) == len(set(scored)) == len(result.candidates)  # no arch evaluated twice
    assert all(c.cost <= limit and S3_VIT.contains(c.arch) for c in result.candidates)
    gen0 = max(c.top1 for c in result.candidates if c.generation == 0)
    assert result.best.top1 > gen0
    assert result.best.cost > 0.97 * limit
    assert [h["generation"] for h in result.history] == list(range(9))
    assert {c.origin for c in result.candidates} >= {"random", "mutation", "crossover"}


def test_search_is_a_pure_function_of_seed_and_scores():
    def score(archs):
        return [float(sum(a.depths)) + a.stages[0].embed_dim / 100 for a in archs]

    cfg = EvolutionConfig(population=10, generations=3, parents=4, mutations=5, crossovers=5)
    run = lambda seed: evolutionary_search(S3_VIT, lambda a: _macs(a) <= 4e9, _macs, score, cfg, seed=seed)  # noqa: E731
    a, b = run(0), run(0)
    assert [c.arch for c in a.candidates] == [c.arch for c in b.candidates]
    assert [c.arch for c in run(1).candidates] != [c.arch for c in a.candidates]


def test_seeds_join_generation_zero():
    seeds = sample_candidates(S3_VIT, 30, lambda a: _macs(a) <= 4e9, random.Random(5))
    cfg = EvolutionConfig(population=10, generations=1, parents=3, mutations=2, crossovers=2)
    result = evolutionary_search(S3_VIT, lambda a: _macs(a) <= 4e9, _macs, lambda archs: [1.0] * len(archs), cfg, initial=seeds)
    assert [c.arch for c in result.candidates if c.generation == 0] == seeds


def test_pareto_mode_returns_a_non_dominated_front():
    def score(archs):  # accuracy rises with cost, with a bonus for deep stage 3: a real trade-off
        return [_macs(a) / 1e8 + 3 * a.stages[2].depth for a in archs]

    cfg = EvolutionConfig(population=16, generations=4, parents=6, mutations=8, crossovers=8, objective="pareto")
    result = evolutionary_search(S3_VIT, lambda a: _macs(a) <= 5e9, _macs, score, cfg, seed=0)
    front, rest = result.front, [c for c in result.candidates if c not in result.front]
    senses = ["max", "min"]
    assert len(front) >= 3 and [c.cost for c in front] == sorted(c.cost for c in front)
    assert not any(dominates((o.top1, o.cost), (f.top1, f.cost), senses) for f in front for o in result.candidates)
    assert all(
        any(dominates((f.top1, f.cost), (r.top1, r.cost), senses) or (f.top1, f.cost) == (r.top1, r.cost) for f in front) for r in rest
    )
    with pytest.raises(NascompError, match="objective"):
        EvolutionConfig(objective="latency")


def test_the_hand_designed_baseline_is_swin_t_cut_to_the_budget():
    from nascomp.nas import make_constraint, parse_budget
    from nascomp.nas.compare import difference_ci, hand_designed_arch

    arch = hand_designed_arch(S3_VIT, make_constraint(parse_budget("4gflops"), S3_VIT, in_chans=3, num_classes=10))
    assert arch.depths == (2, 2, 4, 2) and arch.embed_dims == (96, 192, 384, 768) and arch.name == "Swin-T with 2-2-4-2 blocks"
    assert hand_designed_arch(S3_VIT, make_constraint(parse_budget("5gflops"), S3_VIT, in_chans=3, num_classes=10)).name == "Swin-T"
    assert hand_designed_arch(S3_VIT, lambda a: False) is None
    d = difference_ci([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])  # pooled SD 1, SE sqrt(2/3), t(0.975, 4) = 2.776
    assert d["difference"] == pytest.approx(1.0) and d["ci"] == pytest.approx([1 - 2.2666, 1 + 2.2666], abs=1e-3) and not d["separated"]
    assert difference_ci([10.0, 10.5], [1.0, 1.5])["separated"] and difference_ci([1.0], [0.0])["ci"] is None

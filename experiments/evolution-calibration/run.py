"""Is space evolution's move rule calibrated, and what can it detect? Simulated E-T tables, real archs.

Every replicate is one evolution step of the ``cpu`` preset, run through the library: N members (the
preset's ``et_samples``) of the space the default search searches — s3-vit with the dimensions its 32 px
proxy collapses fixed (`SearchSpace.pinned`: stage 2-3 windows, stage 4 heads and Q-K-V dim) — drawn by
`sample_candidates` under the 4gflops budget (4 G MACs at 224 px, 10 classes, as the search prices them),
`fit_slopes` (k = N x 50/1000) and `evolve_space` with the preset's rule (τ = 0.1, Holm-corrected
permutation test at the preset's α, B = 1999). Only the subnets' errors are simulated, by three noise models:

- ``normal``: i.i.d. N(20, 1.5), the setting of issue 13;
- ``images``: each subnet's error is the share of 500 validation images it gets wrong, all subnets scored
  on the same images, as in the search: image j is wrong with probability sigmoid(b_j + a_i), the image
  difficulties b_j drawn from the 500 real ones (real_step0.json), the subnet abilities a_i spread so the
  errors' SD is the real table's (heteroscedastic, on the 0.2-point grid with its ties, and correlated
  through the shared images; independent Binomial(500, p) noise would already be 1.9 points, well above
  the real 1.2);
- ``real``: errors drawn with replacement from the 60 real validation errors of the cpu preset's step-0
  supernet (real_step0.json: their skew and grid as measured).

(a) Null: the error depends on no dimension. ``null_step_move_rate`` is the share of steps in which any
    (stage, dimension) passes the rule; the per-dimension rate is the share of tested pairs that pass.
(b) Planted effects: error += β × the subnet's position in one (stage, dimension), in steps of that
    dimension (block dimensions: the mean over the stage's blocks, so β is what moving the whole
    subspace one step does to a subnet's error). Power = share of planted effects the rule moves the right
    way; "collateral" = share of those steps that also move another pair.

The old rule (2 bootstrap SEs of the slope, 200 resamples, no correction), removed from the library, is
reimplemented here and judged on the same tables.

Usage: nice -n 10 .venv/bin/python experiments/evolution-calibration/run.py [--null 500] [--power 10] [--seed 0]
       [--null-models images ...] [--power-models images ...] [--betas ...] [--larger-n N ...]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

from nascomp.nas import PRESETS, evolve_space, fit_slopes, make_constraint, parse_budget, sample_candidates, top_k_for
from nascomp.nas.et_error import choice_weights
from nascomp.spaces import STAGE_DIMENSIONS, SearchSpace

HERE = Path(__file__).resolve().parent
PRESET = PRESETS["cpu"]
RULE = PRESET.rule
N, K = PRESET.et_samples, top_k_for(PRESET.et_samples)
TRAIN_RESOLUTION = PRESET.supernet.resolution
IMAGES = PRESET.supernet.limit_val  # 500 validation images score every subnet
OLD_SIGNIFICANCE, OLD_BOOTSTRAP = 2.0, 200
MODELS = ("normal", "images", "real")


def wilson(hits: int, n: int) -> list[float]:
    """95 % Wilson score interval of a rate."""
    if n == 0:
        return [0.0, 1.0]
    z, p = 1.959964, hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def rate(hits: int, n: int) -> dict:
    return {"rate": hits / n if n else None, "hits": hits, "n": n, "ci95_wilson": wilson(hits, n)}


class Noise:
    """The three error models; ``shift`` (per subnet, E-T points) is the planted effect, added to the error."""

    def __init__(self, real: dict, seed: int):
        wrong = np.array([[c == "1" for c in row] for row in real["wrong"]], dtype=float)  # subnets x images
        self.real = 100.0 * wrong.mean(axis=1)
        self.mean, self.sd = float(self.real.mean()), float(self.real.std(ddof=1))
        rate = (wrong.sum(axis=0) + 0.5) / (len(wrong) + 1)  # each image's share of subnets that get it wrong
        self.difficulty = np.log(rate / (1 - rate))
        d = wrong[:, None, :] != wrong[None, :, :]
        gap = (self.real[:, None] - self.real[None, :]) / 100
        pairs = np.triu_indices(len(wrong), 1)
        # sampling SD of one subnet's error on 500 shared images: Var(e_i - e_j) = (disagreement - gap²) / images
        self.evaluation_sd = float(100 * np.sqrt(((d.mean(axis=2) - gap ** 2)[pairs]).mean() / wrong.shape[1] / 2))
        self.independent_binomial_sd = math.sqrt(self.mean * (100 - self.mean) / IMAGES)
        self.ability_sd = self._fit_ability_sd(np.random.default_rng([seed, 0]))

    def _images(self, rng: np.random.Generator, ability: np.ndarray) -> np.ndarray:
        """Errors (%) of subnets of logit ``ability`` offsets on 500 images drawn from the real ones."""
        b = rng.choice(self.difficulty, IMAGES)
        p = 1 / (1 + np.exp(-(b[None, :] + ability[:, None])))
        return 100.0 * (rng.random(p.shape) < p).mean(axis=1)

    def _fit_ability_sd(self, rng: np.random.Generator) -> float:
        """The spread of subnet abilities that, with the shared images' noise, gives the real table's SD (bisection)."""
        lo, hi = 0.0, 1.0
        for _ in range(14):
            mid = (lo + hi) / 2
            sd = np.mean([self._images(rng, mid * rng.standard_normal(N)).std(ddof=1) for _ in range(100)])
            lo, hi = (mid, hi) if sd < self.sd else (lo, mid)
        return (lo + hi) / 2

    def draw(self, model: str, rng: np.random.Generator, shift: np.ndarray) -> np.ndarray:
        n = len(shift)
        if model == "normal":
            return rng.normal(20.0, 1.5, n) + shift
        if model == "images":
            return self._images(rng, self.ability_sd * rng.standard_normal(n)) + shift
        return rng.choice(self.real, n) + shift


def tested(records: list[dict]) -> list[dict]:
    return [r for r in records if r["slope"] is not None]


def new_rule_fires(decisions: list[dict]) -> list[tuple[int, str, int]]:
    """(stage, dimension, sign of the slope) of every pair that passes the rule, whether or not its shift is valid."""
    return [(d["stage"], d["dimension"], int(np.sign(d["slope"]))) for d in decisions
            if d["slope"] is not None and abs(d["slope"]) > RULE.tau and d["p_adjusted"] <= RULE.alpha]


def old_rule(archs, errors: np.ndarray, k: int, records: list[dict], rng: np.random.Generator):
    """The removed guard: |slope| > τ and > 2 bootstrap SEs of the slope, no correction. Returns (fires, SEs)."""
    recs = tested(records)
    columns, lines = [], []
    for r in recs:
        used = [j for j, w in enumerate(r["weight"]) if w >= RULE.min_weight]
        x = np.array([r["choices"][j] for j in used], dtype=float) / r["step"]
        columns.append(choice_weights(archs, r["stage"], r["dimension"], r["choices"])[:, used])
        lines.append((x - x.mean()) / ((x - x.mean()) @ (x - x.mean())))
    weights = np.concatenate(columns, axis=1)
    contrasts = np.zeros((weights.shape[1], len(recs)))
    owner = np.repeat(np.arange(len(recs)), [len(c) for c in lines])
    contrasts[np.arange(weights.shape[1]), owner] = np.concatenate(lines)
    n = len(errors)
    idx = rng.integers(0, n, (OLD_BOOTSTRAP, n))
    e = errors[idx]
    order = np.argsort(e, axis=1, kind="stable")
    ranked = np.take_along_axis(e, order, axis=1)
    rows = weights[np.take_along_axis(idx, order, axis=1)]  # (bootstrap, n, C), best subnet first
    totals = rows.sum(axis=1, keepdims=True)
    mass = (k / n) * totals
    take = np.clip(mass - (np.cumsum(rows, axis=1) - rows), 0.0, rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = (np.einsum("bn,bnc->bc", ranked, rows) / totals[:, 0] + np.einsum("bn,bnc->bc", ranked, take) / mass[:, 0]) / 2
    slopes = np.where(np.isfinite(q), q, 0.0) @ contrasts
    member = np.zeros_like(contrasts)
    member[np.arange(len(owner)), owner] = 1.0
    slopes[(~np.isfinite(q)).astype(float) @ member > 0] = np.nan  # a resample that lost a used choice has no slope
    se = np.nanstd(slopes, axis=0, ddof=1)
    fires = [(r["stage"], r["dimension"], int(np.sign(r["slope"]))) for r, s in zip(recs, se)
             if abs(r["slope"]) > RULE.tau and abs(r["slope"]) > OLD_SIGNIFICANCE * s]
    return fires, {(r["stage"], r["dimension"]): float(s) for r, s in zip(recs, se)}


class Sim:
    def __init__(self, seed: int, real: dict, n: int = N, permutations: int = RULE.permutations):
        self.n, self.k = n, top_k_for(n)
        self.rule = replace(RULE, permutations=permutations)
        self.space = SearchSpace.load("s3-vit").pinned(TRAIN_RESOLUTION)  # what the default search searches
        self.constraint = make_constraint(parse_budget("4gflops"), self.space, in_chans=3, num_classes=10)
        self.seed = seed
        self.noise = Noise(real, seed)
        self.tables: dict[int, list] = {}

    def archs(self, i: int) -> list:
        if i not in self.tables:
            self.tables[i] = sample_candidates(self.space, self.n, self.constraint, random.Random(f"calibration:{self.seed}:{self.n}:{i}"))
        return self.tables[i]

    def validator(self, space: SearchSpace) -> str | None:
        """As the search's: the evolved space must still hold an arch within the budget."""
        return "its smallest arch exceeds the budget" if self.constraint.cost(space.smallest()) > self.constraint.limit else None

    def step(self, i: int, errors: np.ndarray, rng: np.random.Generator):
        """One evolution step on table ``i``: the new rule's decisions and the old rule's verdicts."""
        archs = self.archs(i)
        records = fit_slopes(self.space, archs, errors, self.k, self.rule, seed=self.seed * 7919 + i, train_resolution=TRAIN_RESOLUTION)
        _, decisions = evolve_space(self.space, records, self.rule, "evolved", self.validator)
        old_fires, se = old_rule(archs, errors, self.k, records, rng)
        return decisions, old_fires, se

    def position(self, i: int, stage: int, dim: str, step: float) -> np.ndarray:
        """Each subnet's position in (stage, dim), in steps; block dimensions: the mean over the stage's blocks."""
        choices = self.space.choices(stage, dim)
        return choice_weights(self.archs(i), stage, dim, choices) @ (np.array(choices, dtype=float) / step)


def null_study(sim: Sim, model: str, replicates: int, log) -> dict:
    rng = np.random.default_rng([sim.seed, 1, MODELS.index(model)])
    steps_new = steps_old = pairs_new = pairs_old = pairs = moved = 0
    slopes, ses, p_values = {}, {}, []
    t0 = time.process_time()
    for i in range(replicates):
        errors = sim.noise.draw(model, rng, np.zeros(sim.n))
        decisions, old_fires, se = sim.step(i, errors, rng)
        fires = new_rule_fires(decisions)
        steps_new += bool(fires)
        steps_old += bool(old_fires)
        pairs_new += len(fires)
        pairs_old += len(old_fires)
        moved += any(d["action"] != "keep" for d in decisions)
        for d in tested(decisions):
            key = (d["stage"], d["dimension"])
            pairs += 1
            p_values.append(d["p"])
            slopes.setdefault(key, []).append(d["slope"])
            ses.setdefault(key, []).append(se[key])
        if (i + 1) % 100 == 0:
            print(f"  null {model}: {i + 1}/{replicates}, new {steps_new}, old {steps_old} steps moved", file=log, flush=True)
    sd_over_se = [float(np.std(slopes[k], ddof=1) / np.median(ses[k])) for k in slopes]
    p = np.array(p_values)
    return {
        "replicates": replicates, "tested_pairs_per_step": pairs / replicates,
        "new_rule": {"step_move_rate": rate(steps_new, replicates), "pair_move_rate": rate(pairs_new, pairs),
                     "steps_with_a_valid_move": rate(moved, replicates),
                     "raw_p_below": {str(a): float((p <= a).mean()) for a in (0.01, 0.05, 0.1, 0.5)}},
        "old_rule": {"step_move_rate": rate(steps_old, replicates), "pair_move_rate": rate(pairs_old, pairs),
                     "slope_sd_over_median_bootstrap_se": {"median": float(np.median(sd_over_se)),
                                                           "min": float(min(sd_over_se)), "max": float(max(sd_over_se))}},
        "cpu_s": round(time.process_time() - t0, 1),
    }


def power_study(sim: Sim, model: str, betas: list[float], per_pair: int, log) -> dict:
    """Each β: every testable (stage, dimension) planted ``per_pair`` times, on fresh tables, alternating sign."""
    rng = np.random.default_rng([sim.seed, 2, MODELS.index(model)])
    probe = tested(fit_slopes(sim.space, sim.archs(0), sim.noise.draw(model, rng, np.zeros(sim.n)), sim.k, sim.rule,
                              train_resolution=TRAIN_RESOLUTION))
    pairs = [(r["stage"], r["dimension"], r["step"]) for r in probe]
    out = {}
    table = 10_000  # power tables are not the null study's
    for beta in betas:
        found_new = found_old = collateral_new = collateral_old = total = 0
        by_pair: dict[str, list[int]] = {}
        by_kind: dict[str, list[int]] = {"stage": [], "block": []}
        for rep in range(per_pair):
            for stage, dim, step in pairs:
                sign = 1 if rep % 2 == 0 else -1
                shift = sign * beta * sim.position(table, stage, dim, step)
                errors = sim.noise.draw(model, rng, shift - shift.mean())
                decisions, old_fires, _ = sim.step(table, errors, rng)
                fires = new_rule_fires(decisions)
                hit_new = (stage, dim, sign) in fires  # error rising with the value: a positive slope, shift down
                hit_old = (stage, dim, sign) in old_fires
                found_new += hit_new
                found_old += hit_old
                collateral_new += any((s, d) != (stage, dim) for s, d, _ in fires)
                collateral_old += any((s, d) != (stage, dim) for s, d, _ in old_fires)
                by_pair.setdefault(f"{stage + 1}:{dim}", []).append(hit_new)
                by_kind["stage" if dim in STAGE_DIMENSIONS else "block"].append(hit_new)
                total += 1
                table += 1
        out[str(beta)] = {
            "new_rule": {"power": rate(found_new, total), "collateral_step_rate": rate(collateral_new, total),
                         "power_stage_dimensions": rate(sum(by_kind["stage"]), len(by_kind["stage"])),
                         "power_block_dimensions": rate(sum(by_kind["block"]), len(by_kind["block"])),
                         "power_by_pair": {k: sum(v) / len(v) for k, v in by_pair.items()}},
            "old_rule": {"power": rate(found_old, total), "collateral_step_rate": rate(collateral_old, total)},
        }
        print(f"  power {model} beta {beta}: new {found_new}/{total}, old {found_old}/{total}", file=log, flush=True)
    return out


def real_table(sim: Sim, real: dict) -> dict:
    """The rule on the real step-0 table: which pairs would it move, with which p-values."""
    from nascomp.spaces import Arch

    archs = [Arch.from_dict(s["arch"]) for s in real["samples"]]
    errors = np.array([100.0 - s["val_top1"] for s in real["samples"]])
    space = SearchSpace.load("s3-vit")  # the table was sampled before the proxy's collapsed dimensions were fixed
    k = top_k_for(len(archs))
    records = fit_slopes(space, archs, errors, k, sim.rule, seed=sim.seed * 7919, train_resolution=TRAIN_RESOLUTION)
    _, decisions = evolve_space(space, records, sim.rule, "evolved", sim.validator)
    old_fires, se = old_rule(archs, errors, k, records, np.random.default_rng(sim.seed))
    return {"decisions": [{"pair": f"{d['stage'] + 1}:{d['dimension']}", "slope": round(d["slope"], 4), "p": d["p"],
                           "p_adjusted": d["p_adjusted"], "bootstrap_se": round(se[(d["stage"], d["dimension"])], 4),
                           "new_rule_moves": d["action"] != "keep",
                           "old_rule_moves": (d["stage"], d["dimension"], int(np.sign(d["slope"]))) in old_fires}
                          for d in tested(decisions)]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--null", type=int, default=500, help="null replicates (steps) per noise model")
    ap.add_argument("--power", type=int, default=10, help="replicates per planted (stage, dimension) per effect size")
    ap.add_argument("--betas", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0],
                    help="planted effects (E-T points per step) besides the justified one")
    ap.add_argument("--null-models", nargs="*", default=list(MODELS), choices=MODELS)
    ap.add_argument("--power-models", nargs="+", default=["images", "real"])
    ap.add_argument("--larger-n", type=int, nargs="*", default=[120, 240],
                    help="E-T sample sizes for a smaller power study (first noise model, --larger-n-betas, 5 per pair)")
    ap.add_argument("--larger-n-betas", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--permutations", type=int, default=RULE.permutations, help="B (default: the cpu preset's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    args = ap.parse_args(argv)
    real = json.loads((HERE / "real_step0.json").read_text())
    sim = Sim(args.seed, real, permutations=args.permutations)
    # the justified effect: a one-step move that shifts a subnet's expected error by one SD of the real subnets' errors
    effect = round(sim.noise.sd, 1)
    betas = sorted(set(args.betas) | {effect})
    log = sys.stdout
    t0 = time.time()
    null = {model: null_study(sim, model, args.null, log) for model in args.null_models} if args.null else {}
    power = {model: power_study(sim, model, betas, args.power, log) for model in args.power_models}
    headline = args.power_models[0]
    larger_n = {str(n): power_study(Sim(args.seed, real, n, args.permutations), headline, args.larger_n_betas, 5, log)
                for n in args.larger_n}
    results = {
        "null_step_move_rate": null[headline]["new_rule"]["step_move_rate"]["rate"] if null else None,
        "power": power[headline][str(effect)]["new_rule"]["power"]["rate"],
        "headline": {"noise_model": headline, "effect_size": effect,
                     "null_step_move_rate": null[headline]["new_rule"]["step_move_rate"] if null else None,
                     "power": power[headline][str(effect)]["new_rule"]["power"]},
        "settings": {"space": "s3-vit, collapsed dimensions fixed at the 32 px proxy", "tested_pairs": sorted(
                         f"{r['stage'] + 1}:{r['dimension']}" for r in tested(fit_slopes(sim.space, sim.archs(0), np.zeros(N) + np.arange(N), K, sim.rule,
                                                                                       train_resolution=TRAIN_RESOLUTION))),
                     "budget": "4gflops (4 G MACs at 224 px, 10 classes)", "N": N, "k": K, "tau": RULE.tau,
                     "alpha": RULE.alpha, "permutations": sim.rule.permutations, "min_weight": RULE.min_weight,
                     "train_resolution": TRAIN_RESOLUTION, "images": IMAGES, "null_replicates": args.null,
                     "power_replicates_per_pair": args.power, "seed": args.seed,
                     "old_rule": {"significance": OLD_SIGNIFICANCE, "bootstrap": OLD_BOOTSTRAP, "correction": None}},
        "real_step0": {"source": real["source"], "mean": sim.noise.mean, "sd": sim.noise.sd,
                       "evaluation_sd": sim.noise.evaluation_sd, "independent_binomial_sd": sim.noise.independent_binomial_sd,
                       "ability_sd_logit": sim.noise.ability_sd, **real_table(sim, real)},
        "null": null, "power_curve": power, "power_at_larger_n": {"noise_model": headline, "per_pair": 5, "by_n": larger_n},
        "machine": f"{platform.machine()} VM, {os.cpu_count()} cores, shared", "date": date.today().isoformat(),
        "wall_s": round(time.time() - t0), "command": " ".join(["python", *sys.argv]),
    }
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""S3 on Fashion-MNIST: does the evolved space beat the initial one, and does the found arch beat random and Swin?

Steps (each skipped when its output exists, so the script resumes after an interruption):

1. the main job with the default preset:  nascomp.search("s3-vit", "4gflops", out=..., seed=...)
   (the same as `nascomp search --space s3-vit --budget 4gflops`);
2. two controls with the same supernet budget (4 + 2 x 2 = 8 epochs) on the initial space, so the evolved space's
   E-T error is compared with the initial space's after equal training: `control` trains 8 epochs in one schedule
   (evolve_steps=0, epochs=8); `control-restarts` runs the main pipeline with a threshold no slope reaches
   (tau=1000), so it has the same three warm-up + cosine legs as the main run and only the space decisions differ;
   an ablation repeats the main run and control-restarts with evolution steps that re-warm to step 0's peak rate
   (evolve_lr=2e-3, the preset before this experiment);
3. one fixed stand-alone recipe (nascomp.train, from scratch) for: the found arch (best_arch.json), 5 uniform random
   members of s3-vit that meet the same 4 G MACs budget, and a hand-designed Swin-like baseline under the budget
   (Swin-T with 4 instead of 6 stage-3 blocks: 3.78 G MACs);
4. results.json (README.md reports it).

Usage: nice -n 10 .venv/bin/python experiments/s3-fashion-mnist/run.py [--out runs/s3exp] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

import nascomp  # noqa: E402
from nascomp.core.io import atomic_write_json, read_json  # noqa: E402
from nascomp.cost.arch_cost import arch_cost  # noqa: E402
from nascomp.nas import et_error, make_constraint, parse_budget, sample_candidates  # noqa: E402
from nascomp.spaces import Arch, SearchSpace  # noqa: E402

HERE = Path(__file__).resolve().parent
SPACE, BUDGET = "s3-vit", "4gflops"
# One stand-alone recipe for every arch: 32 px (the search's proxy resolution), the first 3000 images of the
# training split, 5 epochs, AdamW 2e-3 with half an epoch of warm-up and cosine decay, batch 64, no drop-path
# (and the CLI's other defaults: min lr 1e-5, weight decay 0.05, label smoothing 0.1, clip 5, flip/shift).
RETRAIN = {"epochs": 5, "batch_size": 64, "lr": 2e-3, "warmup_epochs": 0.5}
RETRAIN_MODEL = {"img_size": 32, "drop_path_rate": 0.0}
RETRAIN_DATA = {"limit_train": 3000, "limit_val": 1000}


def run(what: str, call, log):
    """Log and time one library call (commands.log of earlier versions listed the equivalent CLI lines)."""
    print(f"$ {what}", file=log, flush=True)
    t0, c0 = time.time(), time.process_time()
    result = call()
    print(f"  -> done in {time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU", file=log, flush=True)
    return result


def search(out: Path, seed: int, log, **overrides) -> dict:
    if not (out / "best_arch.json").is_file():
        run(f"search {SPACE} {BUDGET} seed {seed} {overrides} -> {out}",
            lambda: nascomp.search(SPACE, BUDGET, seed=seed, out=out, resume=True, quiet=True, **overrides), log)
    return read_json(out / "best_arch.json")


WINNERS = ("found", "found-no-evolution", "found-rewarm")  # main, control, main-rewarm


def archs_to_retrain(winners: dict[str, dict], seed: int, n_random: int) -> dict[str, Arch]:
    space = SearchSpace.load(SPACE)
    constraint = make_constraint(parse_budget(BUDGET), space, in_chans=3, num_classes=10)
    archs = {name: Arch.from_dict(best) for name, best in winners.items()}
    archs["swin-like"] = Arch.swin([2, 2, 4, 2], [96, 192, 384, 768], [3, 6, 12, 24], 7, name="swin-t with 2-2-4-2 blocks")
    for i, a in enumerate(sample_candidates(space, n_random, constraint, random.Random(f"random-archs:{seed}"))):
        archs[f"random-{i}"] = a
    for name, a in archs.items():
        assert constraint(a), f"{name} exceeds the budget"
    return archs


def retrain(archs: dict[str, Arch], out: Path, seeds: list[int], seed: int, log) -> list[dict]:
    """Train every arch from scratch with the one fixed recipe; the found and Swin-like archs with each of ``seeds``."""
    arch_dir = out / "archs"
    arch_dir.mkdir(exist_ok=True)
    rows = []
    for name, arch in archs.items():
        path = arch_dir / f"{name}.json"
        path.write_text(arch.to_json(indent=1))
        for s in (seeds if name in (*WINNERS, "swin-like") else [seed]):
            run_dir = out / "retrain" / f"{name}-seed{s}"
            if not (run_dir / "metrics.json").is_file():
                run(f"train {path.name} seed {s} -> {run_dir}", lambda: nascomp.train(
                    path, "fashion-mnist", run_dir, model_kwargs=RETRAIN_MODEL, data_options=RETRAIN_DATA, resume=True, quiet=True,
                    seed=s, **RETRAIN), log)
            m = read_json(run_dir / "metrics.json")
            cost = arch_cost(arch, 224, num_classes=10)
            rows.append({"arch": name, "seed": s, "gmacs_224": cost.macs / 1e9, "params_m": cost.params / 1e6,
                         "depths": arch.depths, "embed_dims": arch.embed_dims, "val_top1": m["val"]["top1"],
                         "test_top1": m["test"]["top1"], "train_seconds": m["train_seconds"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/s3exp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain-seeds", default="0,1", help="seeds for the found and the Swin-like arch")
    parser.add_argument("--random", type=int, default=5, help="random archs meeting the budget (one seed each)")
    parser.add_argument("--baselines-only", action="store_true", help="only retrain the random and Swin-like archs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "commands.log", "a")
    seeds = [int(s) for s in args.retrain_seeds.split(",")]
    if args.baselines_only:  # the random and Swin-like retrains do not need the search: run them alongside it
        retrain(archs_to_retrain({}, args.seed, args.random), out, seeds, args.seed, log)
        return

    runs = {  # run directory -> search options beyond the default preset
        "main": {},
        "control": {"evolve_steps": 0, "epochs": 8},
        "control-restarts": {"tau": 1000},
        "main-rewarm": {"evolve_lr": 2e-3},
        "control-restarts-rewarm": {"tau": 1000, "evolve_lr": 2e-3},
    }
    best = {name: search(out / name, args.seed, log, **extra) for name, extra in runs.items()}
    steps = {name: read_json(out / name / "evolution" / "history.json")["steps"] for name in runs}
    finals = {"evolved_space_final": "main", "initial_space_same_budget": "control", "initial_space_same_schedule": "control-restarts",
              "evolved_space_rewarm": "main-rewarm", "initial_space_rewarm": "control-restarts-rewarm"}
    et = {key: {k: steps[name][-1][k] for k in ("Q", "E", "T", "n", "k")} for key, name in finals.items()}
    et |= {
        "steps": {name: [{k: s[k] for k in ("step", "Q", "E", "T")} | {"space": s["space"]["name"]} for s in st] for name, st in steps.items()},
        "supernet_epochs": {"main": "4 + 2 + 2 (inherited across evolution steps)", "control": "8",
                            "control-restarts": "4 + 2 + 2, nothing moves (tau 1000)", "*-rewarm": "the same, evolution legs peak at 2e-3"},
    }
    # the same subnets' errors cannot be paired across spaces, so report the bootstrap SE of each Q
    for key, name in finals.items():
        samples = read_json(out / name / "evolution" / f"step-{steps[name][-1]['step']}" / "et.json")["samples"]
        errors = [100 - s["val_top1"] for s in samples]
        rng = random.Random(0)
        boots = [et_error([errors[rng.randrange(len(errors))] for _ in errors])["Q"] for _ in range(1000)]
        et[key]["Q_bootstrap_se"] = statistics.stdev(boots)

    winners = dict(zip(WINNERS, (best["main"], best["control"], best["main-rewarm"])))
    rows = retrain(archs_to_retrain(winners, args.seed, args.random), out, seeds, args.seed, log)
    random_test = [r["test_top1"] for r in rows if r["arch"].startswith("random")]
    mean = lambda name: statistics.mean(r["test_top1"] for r in rows if r["arch"] == name)  # noqa: E731
    result = {
        "space": SPACE, "budget": BUDGET, "seed": args.seed, "et_error": et,
        "search": {name: {k: b[k] for k in ("gmacs", "params", "val_top1", "test_top1")} for name, b in best.items()}
                  | {"timings": {name: read_json(out / name / "timings.json") for name in runs}},
        "retrain_recipe": {**RETRAIN, **RETRAIN_MODEL, **RETRAIN_DATA}, "retrain": rows,
        "summary": {**{f"{name.replace('-', '_')}_mean_test": mean(name) for name in WINNERS}, "swin_like_mean_test": mean("swin-like"),
                    "random_median_test": statistics.median(random_test)},
        "torch_threads": torch.get_num_threads(),
    }
    atomic_write_json(HERE / "results.json", result)
    print(json.dumps({"et_error": {k: v for k, v in et.items() if k != "steps"}, "summary": result["summary"]}, indent=1))
    for r in rows:
        print(f"{r['arch']:<10} seed {r['seed']}  {r['gmacs_224']:.3f} G MACs  {r['params_m']:6.2f} M  val {r['val_top1']:6.2f}  "
              f"test {r['test_top1']:6.2f}")


if __name__ == "__main__":
    sys.exit(main())

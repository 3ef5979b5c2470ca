"""Ranking fidelity of the S3 supernet: inherited vs stand-alone accuracy of archs spread over a space.

Steps (each skipped when its output exists, so the script resumes after an interruption):

1. train the supernet:   nascomp.train_supernet("s3-vit-cpu", data, RUN, preset="cpu", ...);
2. pick N archs spread over the space: 1000 uniform samples sorted by MACs, taken at evenly spaced ranks;
3. stand-alone accuracy: nascomp.train(A.json, ...) (one short recipe, same training subset, random init);
   (two training seeds; the ground truth is their mean);
4. inherited accuracy:   nascomp.evaluate_supernet(RUN, [A.json, ...]) on the full validation split, and the
   stand-alone models re-evaluated on the same split;
5. Kendall's tau between the two accuracy lists, per supernet variant (sandwich, sandwich + in-place
   distillation, ...) -> results.json (README.md reports it).

Usage: nice -n 10 .venv/bin/python experiments/supernet-ranking/run.py [--out runs/supernet-ranking] [--archs 10]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
from scipy.stats import kendalltau, spearmanr  # noqa: E402

import nascomp  # noqa: E402
from nascomp.core.io import atomic_write_json, read_json  # noqa: E402
from nascomp.cost.arch_cost import arch_cost  # noqa: E402
from nascomp.spaces import SearchSpace  # noqa: E402

HERE = Path(__file__).resolve().parent
SPACE = "s3-vit-cpu"
DATA = {"limit_train": 2000, "limit_val": 1000}  # Fashion-MNIST
# One short stand-alone recipe for every arch: the supernet's data, resolution and optimiser settings (and the
# CLI's other defaults: AdamW, min lr 1e-5, weight decay 0.05, label smoothing 0.1, clip 5, flip/shift augmentation).
STANDALONE = {"epochs": 5, "batch_size": 64, "lr": 2e-3, "warmup_epochs": 1}
STANDALONE_MODEL = {"img_size": 32, "drop_path_rate": 0.0}


def run(what: str, call, log) -> None:
    """Log and time one library call (the commands.log of earlier versions listed the equivalent CLI lines)."""
    print(f"$ {what}", file=log, flush=True)
    t0 = time.time()
    call()
    print(f"  -> done in {time.time() - t0:.0f}s", file=log, flush=True)


def pick_archs(space: SearchSpace, n: int, seed: int = 0) -> list:
    """n archs at evenly spaced MAC ranks of 1000 uniform samples: spread from small to large."""
    rng = random.Random(seed)
    pool = sorted((space.sample(rng) for _ in range(1000)), key=lambda a: arch_cost(a, space.resolution, num_classes=10).macs)
    return [pool[round(i * (len(pool) - 1) / (n - 1))] for i in range(n)]


# Supernet training variants compared (all: s3-vit-cpu, the same 2000 images, seed 0): name -> (run dir, recipe overrides).
VARIANTS = {
    "cpu-preset": ("supernet-r2e12", {}),  # sandwich: smallest + 2 random + largest per step, 12 epochs
    "sandwich-1random-8ep": ("supernet", {"num_random": 1, "epochs": 8}),
    "sandwich-1random-8ep-distill": ("supernet-distill", {"num_random": 1, "epochs": 8, "distill": True}),
}


STANDALONE_SEEDS = (0, 1)  # stand-alone accuracy = mean over these training seeds


def standalone_dir(out: Path, seed: int) -> Path:
    return out / ("standalone" if seed == 0 else f"standalone-seed{seed}")


def evaluate_standalone(run_dir: Path, data) -> dict:
    """Top-1 of a trained stand-alone model on the full validation split (python API; no CLI command evaluates)."""
    from nascomp.models import load_model
    from nascomp.engine import evaluate

    model, _ = load_model(run_dir)
    return evaluate(model, data.val, data.transform(32, 3, train=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/supernet-ranking")
    parser.add_argument("--archs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "commands.log", "a")
    space = SearchSpace.load(SPACE)

    data = nascomp.load_data("fashion-mnist", **DATA)
    for variant, (name, overrides) in VARIANTS.items():
        supernet_dir = out / name
        if not (supernet_dir / "metrics.json").is_file():
            run(f"train_supernet {SPACE} {variant} -> {supernet_dir}", lambda: nascomp.train_supernet(
                SPACE, data, supernet_dir, preset="cpu", resume=True, quiet=True, seed=args.seed, **overrides), log)

    archs = pick_archs(space, args.archs)
    paths = []
    for i, arch in enumerate(archs):
        path = out / "archs" / f"arch-{i:02d}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(arch.to_json(indent=1))
        paths.append(path)

    for seed in STANDALONE_SEEDS:
        for path in paths:
            run_dir = standalone_dir(out, seed) / path.stem
            if not (run_dir / "metrics.json").is_file():
                run(f"train {path.name} seed {seed} -> {run_dir}", lambda: nascomp.train(
                    path, "fashion-mnist", run_dir, model_kwargs=STANDALONE_MODEL, data_options={**DATA, "limit_test": 1000},
                    resume=True, quiet=True, seed=seed, **STANDALONE), log)
    standalone = [read_json(standalone_dir(out, STANDALONE_SEEDS[0]) / p.stem / "metrics.json") for p in paths]

    # Every accuracy below is on the full fixed validation split (6000 images): 1000 images leave a standard
    # error of ~1.5 points at 70 %, as large as the differences being ranked.
    from nascomp.data import load_data

    full_val = load_data("fashion-mnist", limit_train=1)
    per_seed = {}
    for seed in STANDALONE_SEEDS:
        full_file = out / f"standalone-seed{seed}-full-val.json"
        if not full_file.is_file():
            atomic_write_json(full_file, [evaluate_standalone(standalone_dir(out, seed) / p.stem, full_val) for p in paths])
        per_seed[seed] = [r["top1"] for r in read_json(full_file)]
    # ground truth: the mean over training seeds of the stand-alone accuracy
    standalone_full = [{"top1": sum(v) / len(v)} for v in zip(*per_seed.values())]

    result: dict = {"space": SPACE, "n_archs": len(archs), "variants": {}, "standalone_recipe": {**STANDALONE, **STANDALONE_MODEL},
                    "data": DATA,
                    "validation": f"full fixed validation split ({len(full_val.val)} images)", "torch_threads": torch.get_num_threads()}
    y = [r["top1"] for r in standalone_full]
    macs = [arch_cost(a, space.resolution, num_classes=10).macs / 1e6 for a in archs]
    result["kendall_tau_macs_vs_standalone"] = kendalltau(macs, y)[0]
    result["standalone_seeds"] = {str(k): v for k, v in per_seed.items()}
    if len(STANDALONE_SEEDS) > 1:  # how well one stand-alone run ranks another: the ceiling for any proxy
        a, b = (per_seed[s] for s in STANDALONE_SEEDS[:2])
        result["kendall_tau_seed_vs_seed"] = kendalltau(a, b)[0]
    for variant, (name, _) in VARIANTS.items():
        supernet_dir = out / name
        inherited_file = out / f"inherited-{name}.json"
        if not inherited_file.is_file():
            rows = nascomp.evaluate_supernet(supernet_dir, paths, "fashion-mnist")
            atomic_write_json(inherited_file, [{"arch": str(p), **r.to_dict()} for p, r in zip(paths, rows)])
        x = [r["top1"] for r in read_json(inherited_file)]
        tau, p_tau = kendalltau(x, y)
        metrics = read_json(supernet_dir / "metrics.json")
        result["variants"][variant] = {
            "kendall_tau": tau, "kendall_p": p_tau, "spearman_rho": spearmanr(x, y)[0], "inherited_val_top1": x,
            "supernet_train_seconds": metrics["train_seconds"], "supernet_val_subnets": metrics["val"]["subnets"],
            "supernet_history": metrics["history"], "recipe": metrics["supernet"]["recipe"], "notes": metrics["supernet"]["notes"],
        }
    result["rows"] = [
        {"arch": p.stem, "depths": a.depths, "embed_dims": a.embed_dims, "mmacs": m,
         "params": arch_cost(a, space.resolution, num_classes=10).params, "standalone_val_top1": s["top1"],
         **{f"standalone_seed{k}_val_top1": v[i] for k, v in per_seed.items()},
         "standalone_val1000_top1": alone["val"]["top1"], "standalone_test1000_top1": alone["test"]["top1"],
         "standalone_seconds": alone["train_seconds"],
         **{f"inherited_{v}": result["variants"][v]["inherited_val_top1"][i] for v in VARIANTS}}
        for i, (p, a, m, s, alone) in enumerate(zip(paths, archs, macs, standalone_full, standalone))
    ]
    atomic_write_json(HERE / "results.json", result)
    for v, r in result["variants"].items():
        print(f"{v:<18} Kendall tau {r['kendall_tau']:.3f} (p {r['kendall_p']:.3f})  Spearman {r['spearman_rho']:.3f}")
    print(f"MACs alone         Kendall tau {result['kendall_tau_macs_vs_standalone']:.3f}")
    if "kendall_tau_seed_vs_seed" in result:
        print(f"seed 0 vs seed 1   Kendall tau {result['kendall_tau_seed_vs_seed']:.3f}")
    for r in result["rows"]:
        inh = "  ".join(f"{v} {r[f'inherited_{v}']:6.2f}" for v in VARIANTS)
        print(f"{r['arch']}  {r['mmacs']:6.2f} MMACs  {r['params'] / 1e6:5.3f} M  stand-alone {r['standalone_val_top1']:6.2f}  {inh}")


if __name__ == "__main__":
    sys.exit(main())

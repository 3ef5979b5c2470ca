"""The default S3 search on Fashion-MNIST: its cost, its selection-vs-test gap, its own ranking fidelity, and
whether its winner beats random archs, the search without evolution and a hand-designed arch — with seeds.

Steps (each skipped when its output exists, so the script resumes; ``--steps`` runs a subset):

- ``main``: the default command, ``nascomp.search("s3-vit", "4gflops", seed=0)`` (= ``nascomp search --space
  s3-vit --budget 4gflops``): wall and CPU time per stage, the collapsed dimensions it fixed, the winner's
  selection score vs its test score, and its own stand-alone check against Swin-T shrunk to the budget;
- ``noevo``: the same preset without space evolution and the same 8 supernet epochs in one schedule
  (``evolve_steps=0, epochs=8``);
- ``train``: one fixed stand-alone recipe (the default run's stand-alone check: from scratch at 32 px, the
  search's 4000 training images, 3 epochs, AdamW 2e-3, batch 64; `nascomp.train`), seeds 0-2, for: the found
  arch, the no-evolution winner, the hand-designed arch, 20 uniform random budget-meeting members of the
  space the search searched (s3-vit with the proxy's collapsed dimensions fixed), and 5 random members
  within ±10 % of the found arch's MACs (cost-matched);
- ``tau``: 20 uniform budget-meeting members of the main run's *final* space (the one its last supernet
  was trained on and ranked the search's candidates in; the random archs above when evolution moved
  nothing, else 20 more, ``tau-*``, trained alike): their inherited validation top-1 under that supernet
  against their stand-alone validation top-1 (mean of the seeds): Kendall τ with a bootstrap CI over archs,
  and the seed-to-seed τ of the stand-alone runs;
- ``results``: results.json (README.md reports it).

Usage: OMP_NUM_THREADS=1 nice -n 10 python experiments/s3-found-vs-random/run.py [--out runs/s3-found-vs-random]
       [--steps main noevo train tau results] [--seeds 0 1 2] [--random 20] [--matched 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

import nascomp  # noqa: E402
from nascomp.core.io import atomic_write_json, read_json  # noqa: E402
from nascomp.nas import PRESETS, make_constraint, parse_budget, sample_candidates  # noqa: E402
from nascomp.nas.compare import difference_ci, hand_designed_arch  # noqa: E402
from nascomp.spaces import Arch, SearchSpace  # noqa: E402

HERE = Path(__file__).resolve().parent
SPACE, BUDGET = "s3-vit", "4gflops"
PRESET = PRESETS["cpu"]
# the default run's stand-alone check, as a `nascomp.train` recipe
RECIPE = {"epochs": PRESET.compare_epochs, "batch_size": PRESET.supernet.train.batch_size, "lr": PRESET.supernet.train.lr,
          "warmup_epochs": min(PRESET.supernet.train.warmup_epochs, PRESET.compare_epochs / 4)}
MODEL = {"img_size": PRESET.supernet.resolution, "drop_path_rate": 0.0}
DATA = {"limit_train": PRESET.supernet.limit_train}  # the search's training images; all 6000 validation, 10000 test images
STEPS = ("main", "noevo", "train", "tau", "results")


def log(text: str, out: Path) -> None:
    with open(out / "commands.log", "a") as f:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", file=f, flush=True)


def run_search(out: Path, name: str, **overrides) -> dict:
    folder = out / name
    if not (folder / "best_arch.json").is_file():
        log(f"nascomp.search({SPACE!r}, {BUDGET!r}, seed=0, out={str(folder)!r}, resume=True, **{overrides})", out)
        t0, c0 = time.time(), time.process_time()
        nascomp.search(SPACE, BUDGET, seed=0, out=folder, resume=True, quiet=True, **overrides)
        log(f"  done: {time.time() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU, load {os.getloadavg()}", out)
    return read_json(folder / "best_arch.json")


def archs_to_train(out: Path, n_random: int, n_matched: int, n_tau: int) -> dict[str, Arch]:
    main = read_json(out / "main" / "best_arch.json")
    space = SearchSpace.load(SPACE)
    searched = space.pinned(PRESET.supernet.resolution)
    constraint = make_constraint(parse_budget(BUDGET), space, in_chans=3, num_classes=10)
    found = Arch.from_dict(main)
    archs = {"found": found, "hand-designed": hand_designed_arch(space, constraint)}
    if (out / "noevo" / "best_arch.json").is_file():
        archs["found-no-evolution"] = Arch.from_dict(read_json(out / "noevo" / "best_arch.json"))
    for i, a in enumerate(sample_candidates(searched, n_random, constraint, random.Random("found-vs-random:random")) if n_random else []):
        archs[f"random-{i:02d}"] = a
    lo, hi = 0.9 * constraint.cost(found), min(1.1 * constraint.cost(found), constraint.limit)
    matched = sample_candidates(searched, n_matched, lambda a: lo <= constraint.cost(a) <= hi, random.Random("found-vs-random:matched"),
                                max_draws=200_000)
    for i, a in enumerate(matched):
        archs[f"matched-{i:02d}"] = a
    final = SearchSpace.load(final_space_file(out))
    if final != searched:
        for i, a in enumerate(sample_candidates(final, n_tau, constraint, random.Random("found-vs-random:tau"))):
            archs[f"tau-{i:02d}"] = a
    return archs


def final_space_file(out: Path) -> Path:
    steps = read_json(out / "main" / "evolution" / "history.json")["steps"]
    return out / "main" / "evolution" / f"step-{len(steps) - 1}" / "space.yaml"


def tau_names(archs: dict[str, Arch]) -> list[str]:
    """The archs ranked for τ: members of the final space (``tau-*`` when evolution moved something)."""
    return [n for n in archs if n.startswith("tau-")] or [n for n in archs if n.startswith("random-")]


def train_all(out: Path, archs: dict[str, Arch], seeds: list[int], recipe: dict, shard: tuple[int, int] = (0, 1)) -> None:
    """Train every (seed, arch) job of this shard: ``i/n`` takes every n-th of the jobs not yet done, so n processes
    started together (and nothing else training) share the remaining work evenly."""
    folder = out / "archs"
    folder.mkdir(parents=True, exist_ok=True)
    # seed-major: an interrupted run has every arch at the first seeds
    todo = [(seed, name) for seed in seeds for name in archs if not (run_dir(out, name, seed) / "metrics.json").is_file()]
    for seed, name in todo[shard[0]::shard[1]]:
        path = folder / f"{name}.json"
        path.write_text(archs[name].to_json(indent=1))
        log(f"nascomp.train({str(path)!r}, 'fashion-mnist', {str(run_dir(out, name, seed))!r}, seed={seed}, model_kwargs={MODEL}, "
            f"data_options={DATA}, **{recipe})", out)
        nascomp.train(path, "fashion-mnist", run_dir(out, name, seed), model_kwargs=MODEL, data_options=DATA, resume=True, quiet=True,
                      seed=seed, **recipe)


def run_dir(out: Path, name: str, seed: int) -> Path:
    return out / "train" / f"{name}-seed{seed}"


def trained(out: Path, archs: dict[str, Arch], seeds: list[int]) -> dict[str, list[dict]]:
    rows = {}
    for name in archs:
        runs = [read_json(out / "train" / f"{name}-seed{s}" / "metrics.json") for s in seeds
                if (out / "train" / f"{name}-seed{s}" / "metrics.json").is_file()]
        rows[name] = [{"seed": m["config"]["seed"], "val_top1": m["val"]["top1"], "test_top1": m["test"]["top1"],
                       "train_seconds": m["train_seconds"]} for m in runs]
    return rows


def inherited(out: Path, archs: dict[str, Arch]) -> dict[str, float]:
    """Validation top-1 (all 6000 images) of the τ archs with the main run's final supernet's weights."""
    path = out / "inherited.json"
    if not path.is_file():
        final = out / "main" / "supernet" / final_space_file(out).parent.name
        names = tau_names(archs)
        data = nascomp.load_data("fashion-mnist", limit_train=1)
        rows = nascomp.evaluate_supernet(final, [archs[n] for n in names], data)
        atomic_write_json(path, {"supernet": str(final), "val_images": len(data.val), "top1": {n: r.top1 for n, r in zip(names, rows)}})
    return read_json(path)["top1"]


def tau_ci(x: list[float], y: list[float], resamples: int = 2000, seed: int = 0) -> dict:
    """Kendall τ (tau-b) and a percentile bootstrap 95 % interval over the archs."""
    x, y = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(resamples):
        i = rng.integers(0, len(x), len(x))
        t = kendalltau(x[i], y[i])[0]
        if np.isfinite(t):
            boots.append(t)
    return {"tau": float(kendalltau(x, y)[0]), "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))], "n": len(x)}


def mean_ci(values: list[float]) -> dict:
    """Mean and 95 % t interval."""
    from scipy import stats

    m = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": m, "ci95": None, "n": len(values)}
    half = float(stats.t.ppf(0.975, len(values) - 1)) * statistics.stdev(values) / len(values) ** 0.5
    return {"mean": m, "ci95": [m - half, m + half], "sd": statistics.stdev(values), "n": len(values)}


def versus_population(found: list[float], population: list[list[float]]) -> dict:
    """Found minus the mean of a population of archs (each the mean of its seeds): a 95 % interval that counts
    the found arch's seed noise and the spread between archs."""
    from scipy import stats

    means = [statistics.fmean(p) for p in population]
    diff = statistics.fmean(found) - statistics.fmean(means)
    var = (statistics.variance(found) / len(found) if len(found) > 1 else 0.0) + statistics.variance(means) / len(means)
    df = len(means) - 1
    half = float(stats.t.ppf(0.975, df)) * var ** 0.5
    beaten = sum(statistics.fmean(found) > m for m in means)
    return {"difference": diff, "ci95": [diff - half, diff + half], "separated": bool(diff - half > 0 or diff + half < 0),
            "archs": len(means), "found_beats": beaten}


def results(out: Path, archs: dict[str, Arch], seeds: list[int], recipe: dict) -> dict:
    constraint = make_constraint(parse_budget(BUDGET), SearchSpace.load(SPACE), in_chans=3, num_classes=10)
    rows = trained(out, archs, seeds)
    test = {n: [r["test_top1"] for r in rs] for n, rs in rows.items() if rs}
    doc: dict = {"recipe": {**recipe, **MODEL, **DATA, "seeds": seeds, "val_images": 6000, "test_images": 10000},
                 "archs": {n: {"gmacs": constraint.cost(a) / 1e9, "depths": a.depths, "embed_dims": a.embed_dims, "name": a.name,
                               "runs": rows[n], "test": mean_ci(test[n]) if n in test else None} for n, a in archs.items()}}
    main = read_json(out / "main" / "best_arch.json")
    doc["main"] = {k: main[k] for k in ("gmacs", "params", "val_top1", "test_top1", "selection", "compare", "collapsed", "budget")}
    doc["main"]["timings"] = read_json(out / "main" / "timings.json")
    if (out / "noevo" / "best_arch.json").is_file():
        doc["noevo"] = {k: v for k, v in read_json(out / "noevo" / "best_arch.json").items() if k in ("gmacs", "val_top1", "test_top1", "selection")}
    full = [n for n in test if len(test[n]) == len(seeds)]
    randoms = [test[n] for n in full if n.startswith("random-")]
    final_randoms = [test[n] for n in full if n.startswith("tau-")]
    matched = [test[n] for n in full if n.startswith("matched-")]
    cmp = {}
    if "found" in full:
        if len(randoms) >= 2:
            cmp["found_vs_random"] = versus_population(test["found"], randoms)
        if len(final_randoms) >= 2:
            cmp["found_vs_random_of_final_space"] = versus_population(test["found"], final_randoms)
        if len(matched) >= 2:
            cmp["found_vs_cost_matched_random"] = versus_population(test["found"], matched)
        for other in ("found-no-evolution", "hand-designed"):
            if other in full:
                cmp[f"found_vs_{other.replace('-', '_')}"] = difference_ci(test["found"], test[other])
    doc["comparisons"] = cmp
    inh_path = out / "inherited.json"
    if inh_path.is_file():
        inh = read_json(inh_path)["top1"]
        names = [n for n in inh if n in full]
        val = {n: [r["val_top1"] for r in rows[n]] for n in names}
        doc["tau"] = {"archs": names, "inherited_val_top1": [inh[n] for n in names],
                      "standalone_val_top1_mean": [statistics.fmean(val[n]) for n in names],
                      "inherited_vs_standalone_mean": tau_ci([inh[n] for n in names], [statistics.fmean(val[n]) for n in names]),
                      "seed_vs_seed": {f"{a}-{b}": tau_ci([val[n][i] for n in names], [val[n][j] for n in names])
                                       for i, a in enumerate(seeds) for j, b in enumerate(seeds) if i < j},
                      "inherited_vs_each_seed": {str(s): tau_ci([inh[n] for n in names], [val[n][i] for n in names])
                                                 for i, s in enumerate(seeds)}}
    doc.update(machine=f"{platform.machine()} VM, {os.cpu_count()} cores, shared", date=date.today().isoformat(),
               command=" ".join(["python", *sys.argv]), torch_threads=torch.get_num_threads())
    atomic_write_json(HERE / "results.json", doc)
    return doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/s3-found-vs-random"))
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--random", type=int, default=20)
    ap.add_argument("--matched", type=int, default=5)
    ap.add_argument("--tau", type=int, default=20, help="members of the final space ranked for Kendall tau")
    ap.add_argument("--epochs", type=int, default=PRESET.compare_epochs, help="stand-alone epochs (the default run's check by default)")
    ap.add_argument("--shard", default="0/1", help="i/n: train every n-th (seed, arch) job, for n processes side by side")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    if "main" in args.steps:
        run_search(args.out, "main")
    if "noevo" in args.steps:
        # its winner is trained in `train` with the others, so its own stand-alone check is skipped
        run_search(args.out, "noevo", evolve_steps=0, compare_epochs=0,
                   epochs=PRESET.supernet.train.epochs + PRESET.evolve_steps * PRESET.evolve_epochs)
    recipe = {**RECIPE, "epochs": args.epochs, "warmup_epochs": min(PRESET.supernet.train.warmup_epochs, args.epochs / 4)}
    archs = archs_to_train(args.out, args.random, args.matched, args.tau)
    if "train" in args.steps:
        i, n = (int(v) for v in args.shard.split("/"))
        train_all(args.out, archs, args.seeds, recipe, (i, n))
    if "tau" in args.steps:
        inherited(args.out, archs)
    if "results" in args.steps:
        results(args.out, archs, args.seeds, recipe)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

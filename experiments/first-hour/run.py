"""Does `nascomp train` learn a small image folder at its defaults? The defaults against hand-set recipes, on two folders.

    python experiments/first-hour/run.py                 # repository root; writes experiments/first-hour/results.json

Each recipe trains the same small ViT (32 px, patch 4, width 64, depth 4) with `nascomp.train`, over ``--seeds`` seeds;
everything else is nascomp's default. Studies:

- ``digits``: scikit-learn's digits as a 32 px PNG folder (`digits.py`), 20 epochs; the best hand-set recipe is chosen on
  the validation split and compared with the defaults on the test split, seed by seed;
- ``fashion-folder``: 1,500 Fashion-MNIST images as a 32 px PNG folder, a held-out check of the rule (it was not set on it);
- ``digits-5-epochs``: the issue's setting (5 epochs), where DeiT's recipe never left chance level.

Each seed fixes the model's initial weights and the training run. When the defaults resolve to the auto tier 'none'
(no augmentation at all), the "no augmentation" recipe is the same run and is taken from the defaults' (marked
``reused_from``). Every run also records whether the training-loss stall warning fired: its false alarms on runs that learned, and its
catches on runs that stayed at chance.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import nascomp  # noqa: E402
from digits import write_digits  # noqa: E402

MODEL = dict(img_size=32, patch_size=4, in_chans=1, embed_dim=64, depth=4, num_heads=2, num_classes=10)
HAND = {
    "no augmentation": {"augment": False},
    "flip + crop 0.5": {"auto_augment": "none", "random_erasing": 0.0, "color_jitter": 0.0, "crop_scale": 0.5},
    "flip + crop 0.25": {"auto_augment": "none", "random_erasing": 0.0, "color_jitter": 0.0, "crop_scale": 0.25},
    "RandAugment m5, erasing 0.1, crop 0.25": {"auto_augment": "rand-m5-mstd0.5-inc1", "random_erasing": 0.1, "color_jitter": 0.4,
                                              "crop_scale": 0.25},
    "DeiT (RandAugment m9, erasing 0.25, crop 0.08)": {"auto_augment": "rand-m9-mstd0.5-inc1", "random_erasing": 0.25, "color_jitter": 0.4,
                                                      "crop_scale": 0.08},
}
DEFAULTS = "defaults (auto)"
STUDIES = {
    "digits": ("digits", 20, [DEFAULTS, *HAND]),
    "fashion-folder": ("fashion-folder", 20, [DEFAULTS, "no augmentation", "flip + crop 0.5", "DeiT (RandAugment m9, erasing 0.25, crop 0.08)"]),
    "digits-5-epochs": ("digits", 5, [DEFAULTS, "DeiT (RandAugment m9, erasing 0.25, crop 0.08)"]),
}


def write_fashion_folder(root: Path, train: int = 1500, test: int = 500, seed: int = 0) -> Path:
    """Fashion-MNIST images (Debian's package or $NASCOMP_DATA) as 32 px PNGs: root/train/<class>/, root/test/<class>/."""
    from PIL import Image

    bundle = nascomp.load_data("fashion-mnist")
    rng = np.random.default_rng(seed)
    for split, source, n in (("train", bundle.train, train), ("test", bundle.test, test)):
        for i in rng.permutation(len(source))[:n].tolist():
            image, label = source[i]
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0].numpy(), mode="L").resize((32, 32), Image.BILINEAR).save(folder / f"{split}-{i:05d}.png")
    return root


def mean_ci(values: list[float]) -> dict:
    """Mean, sample standard deviation and a t-based 95 % CI over seeds."""
    from scipy import stats

    n = len(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n > 1 else 0.0
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": round(mean, 3), "sd": round(sd, 3), "ci95": [round(mean - half, 3), round(mean + half, 3)], "values": values}


def _same_as_defaults(recipe: str, runs: list[dict], seed: int) -> dict | None:
    """The defaults' run of ``seed`` when they resolved to the auto tier 'none' (every augmentation off), which is exactly
    what "no augmentation" sets; None otherwise."""
    if HAND.get(recipe) != {"augment": False}:
        return None
    done = next((r for r in runs if r["recipe"] == DEFAULTS and r["seed"] == seed), None)
    return done if done is not None and "auto recipe 'none'" in done["image_recipe"] else None


def run_study(name: str, folder: Path, epochs: int, recipes: list[str], seeds: int) -> dict:
    bundle = nascomp.load_data(f"imagefolder:{folder}")
    import torch

    runs = []
    for recipe in recipes:
        for seed in range(seeds):
            same = _same_as_defaults(recipe, runs, seed)
            if same is not None:  # the defaults resolved to this very recipe: the run would repeat theirs bit for bit
                runs.append({**same, "recipe": recipe, "reused_from": DEFAULTS})
                continue
            torch.manual_seed(seed)  # the initial weights depend on the seed only, not on the runs before
            model = nascomp.create_model("vit_tiny_patch16_224", **MODEL)
            t = time.process_time()
            slug = recipe.split(" (")[0].replace(" ", "-").replace(",", "").replace("+", "")
            r = nascomp.train(model, bundle, HERE / "runs" / name / f"{slug}-s{seed}", epochs=epochs, seed=seed, quiet=True, num_workers=0,
                              overwrite=True, **HAND.get(recipe, {}))
            runs.append({"recipe": recipe, "seed": seed, "val_top1": r.val_top1, "test_top1": r.test_top1, "cpu_s": round(time.process_time() - t, 1),
                         "train_loss": [round(h["train_loss"], 4) for h in r.metrics["history"]], "stall_warning": bool(r.metrics["warnings"]),
                         "image_recipe": r.metrics["image_recipe"]})
            print(f"{name:<16} {recipe:<48} seed {seed}: val {r.val_top1:5.1f}  test {r.test_top1:5.1f}  warned {bool(r.metrics['warnings'])}",
                  flush=True)
    summary = {rec: {"val_top1": mean_ci([r["val_top1"] for r in runs if r["recipe"] == rec]),
                     "test_top1": mean_ci([r["test_top1"] for r in runs if r["recipe"] == rec]),
                     "stall_warnings": sum(r["stall_warning"] for r in runs if r["recipe"] == rec)} for rec in recipes}
    hand = [r for r in recipes if r != DEFAULTS]
    best = max(hand, key=lambda rec: summary[rec]["val_top1"]["mean"])
    by_seed = {r["seed"]: r["test_top1"] for r in runs if r["recipe"] == DEFAULTS}
    gaps = [by_seed[r["seed"]] - r["test_top1"] for r in runs if r["recipe"] == best]
    return {"data": bundle.describe(), "epochs": epochs, "summary": summary, "best_hand_set_on_val": best,
            "defaults_minus_best_test": mean_ci(gaps), "defaults_within_2_points": statistics.fmean(gaps) >= -2.0,
            "defaults_recipe": next(r["image_recipe"] for r in runs if r["recipe"] == DEFAULTS), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--studies", nargs="*", default=list(STUDIES), choices=list(STUDIES))
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    folders = {"digits": HERE / "runs" / "digits", "fashion-folder": HERE / "runs" / "fashion-folder"}
    if not (folders["digits"] / "train").is_dir():
        write_digits(folders["digits"])
    if not (folders["fashion-folder"] / "train").is_dir():
        write_fashion_folder(folders["fashion-folder"])
    start = time.time()
    record = json.loads(args.out.read_text()) if args.out.is_file() and len(args.studies) < len(STUDIES) else {}
    record.update({
        "question": "does nascomp train learn a small image folder at its defaults, within 2 points of the best hand-set recipe?",
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "command": f"python experiments/first-hour/run.py --seeds {args.seeds}", "model": MODEL, "seeds": args.seeds,
    })
    studies = record.setdefault("studies", {})
    for name in args.studies:
        dataset, epochs, recipes = STUDIES[name]
        studies[name] = run_study(name, folders[dataset], epochs, recipes, args.seeds)
    runs = [r for s in studies.values() for r in s["runs"]]
    learned, stuck = [r for r in runs if r["test_top1"] >= 30.0], [r for r in runs if r["test_top1"] < 15.0]
    record["stall_warning"] = {"false_alarms": sum(r["stall_warning"] for r in learned), "runs_that_learned": len(learned),
                               "caught": sum(r["stall_warning"] for r in stuck), "runs_stuck_at_chance": len(stuck),
                               "rule": "after half the run, an epoch's mean training loss >= 0.97 x min(chance ln 10, first 20 steps)"}
    record["wall_s"] = round(time.time() - start, 1)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({n: {k: s[k] for k in ("best_hand_set_on_val", "defaults_minus_best_test", "defaults_within_2_points")}
                      for n, s in studies.items()} | {"stall_warning": record["stall_warning"]}, indent=2))


if __name__ == "__main__":
    main()

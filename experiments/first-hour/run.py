"""Does `nascomp train` learn a small image folder at its defaults? The defaults against hand-set recipes on digits.

    python experiments/first-hour/run.py                 # repository root; writes experiments/first-hour/results.json

Each recipe trains the same small ViT (32 px, patch 4, width 64, depth 4) on scikit-learn's digits written as a 32 px
PNG folder (`digits.py`) for ``--epochs`` epochs with `nascomp.train`, over ``--seeds`` seeds; everything else is
nascomp's default. The best hand-set recipe is chosen on the validation split and compared on the test split.
Every run also says whether the training-loss stall warning fired, which measures its false alarms on runs that learn.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import nascomp  # noqa: E402
from digits import write_digits  # noqa: E402

MODEL = dict(img_size=32, patch_size=4, in_chans=1, embed_dim=64, depth=4, num_heads=2, num_classes=10)
RECIPES = {
    "defaults (auto)": {},
    "no augmentation": {"augment": False},
    "flip + crop 0.8": {"auto_augment": "none", "random_erasing": 0.0, "color_jitter": 0.0, "crop_scale": 0.8},
    "flip + crop 0.5": {"auto_augment": "none", "random_erasing": 0.0, "color_jitter": 0.0, "crop_scale": 0.5},
    "flip + crop 0.25": {"auto_augment": "none", "random_erasing": 0.0, "color_jitter": 0.0, "crop_scale": 0.25},
    "RandAugment m5, erasing 0.1, crop 0.25": {"auto_augment": "rand-m5-mstd0.5-inc1", "random_erasing": 0.1, "color_jitter": 0.4,
                                              "crop_scale": 0.25},
    "DeiT (RandAugment m9, erasing 0.25, crop 0.08)": {"auto_augment": "rand-m9-mstd0.5-inc1", "random_erasing": 0.25, "color_jitter": 0.4,
                                                      "crop_scale": 0.08},
}


def mean_ci(values: list[float]) -> dict:
    """Mean, sample standard deviation and a t-based 95 % CI over seeds."""
    from scipy import stats

    n = len(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n > 1 else 0.0
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": round(mean, 3), "sd": round(sd, 3), "ci95": [round(mean - half, 3), round(mean + half, 3)], "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=HERE / "runs" / "digits")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    if not (args.data / "train").is_dir():
        write_digits(args.data)
    bundle = nascomp.load_data(f"imagefolder:{args.data}")
    runs, start = [], time.time()
    for name, recipe in RECIPES.items():
        for seed in range(args.seeds):
            model = nascomp.create_model("vit_tiny_patch16_224", **MODEL)
            t = time.process_time()
            r = nascomp.train(model, bundle, HERE / "runs" / f"{name.split(' (')[0].replace(' ', '-').replace(',', '')}-s{seed}",
                              epochs=args.epochs, seed=seed, quiet=True, num_workers=0, **recipe)
            runs.append({"recipe": name, "seed": seed, "val_top1": r.val_top1, "test_top1": r.test_top1, "cpu_s": round(time.process_time() - t, 1),
                         "train_loss": [round(h["train_loss"], 4) for h in r.metrics["history"]], "stall_warning": bool(r.metrics["warnings"]),
                         "image_recipe": r.metrics["image_recipe"], "config": {k: r.metrics["config"][k] for k in
                                                                              ("auto_augment", "random_erasing", "color_jitter", "crop_scale", "augment")}})
            print(f"{name:<48} seed {seed}: val {r.val_top1:5.1f}  test {r.test_top1:5.1f}  warned {bool(r.metrics['warnings'])}", flush=True)
    summary = {}
    for name in RECIPES:
        rows = [r for r in runs if r["recipe"] == name]
        summary[name] = {"val_top1": mean_ci([r["val_top1"] for r in rows]), "test_top1": mean_ci([r["test_top1"] for r in rows]),
                         "stall_warnings": sum(r["stall_warning"] for r in rows)}
    hand = [n for n in RECIPES if n != "defaults (auto)"]
    best = max(hand, key=lambda n: summary[n]["val_top1"]["mean"])
    by_seed = {r["seed"]: r["test_top1"] for r in runs if r["recipe"] == "defaults (auto)"}
    gaps = [by_seed[r["seed"]] - r["test_top1"] for r in runs if r["recipe"] == best]
    learned = [r for r in runs if r["test_top1"] >= 30.0]
    stuck = [r for r in runs if r["test_top1"] < 15.0]
    record = {
        "question": "does nascomp train learn a small image folder at its defaults, within 2 points of the best hand-set recipe?",
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "command": f"python experiments/first-hour/run.py --epochs {args.epochs} --seeds {args.seeds}", "model": MODEL,
        "data": bundle.describe(), "epochs": args.epochs, "seeds": args.seeds, "summary": summary, "best_hand_set": best,
        "defaults_minus_best_test": mean_ci(gaps), "within_2_points": statistics.fmean(gaps) >= -2.0,
        "stall_warning": {"false_alarms": sum(r["stall_warning"] for r in learned), "runs_that_learned": len(learned),
                          "caught": sum(r["stall_warning"] for r in stuck), "runs_stuck_at_chance": len(stuck),
                          "rule": "after half the run, an epoch's mean training loss >= 0.97 x min(chance ln 10, first 20 steps)"},
        "runs": runs, "wall_s": round(time.time() - start, 1),
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("best_hand_set", "defaults_minus_best_test", "within_2_points", "stall_warning")}, indent=2))


if __name__ == "__main__":
    main()

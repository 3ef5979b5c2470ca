"""SRD vs KD vs no distillation on Fashion-MNIST: a Swin teacher and a 4x smaller ViT student.

Every run is one `nascomp.train` / `nascomp.distill` call (the Python API the CLI calls); finished runs are
skipped, so the script resumes. Usage:

    nice -n 10 python experiments/srd-distill/run.py teacher   # the Swin teacher (two legs, see TEACHER and TEACHER_CONTINUE)
    nice -n 10 python experiments/srd-distill/run.py students [SEED...]  # none / kd / srd x SEEDS, same recipe
    python experiments/srd-distill/run.py table                 # README table from results.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

import nascomp

HERE = Path(__file__).resolve().parent
RUNS = Path("runs/srd")
TEACHER = RUNS / "teacher"
RESULTS = HERE / "results.jsonl"

# The teacher is trained in two legs: from scratch on 15,000 images, then continued on 30,000 at a lower rate
# (the first leg alone reached only 72% test top-1, too weak to teach).
TEACHER_LEGS = {  # run -> (model, model options, data options, recipe); the CLI's other defaults (AdamW, wd 0.05, ls 0.1, clip 5)
    "teacher-swin": ("swin_tiny_patch4_window7_224",
                     dict(img_size=28, patch_size=2, window_size=7, embed_dim=64, depths=(2, 2), num_heads=(2, 4), in_chans=1),
                     {"limit_train": 15000}, {"epochs": 5, "lr": 2e-3, "seed": 0}),
    "teacher": (str(RUNS / "teacher-swin"), {}, {"limit_train": 30000}, {"epochs": 3, "lr": 1e-3, "warmup_epochs": 0.2, "seed": 1}),
}
STUDENT = ("vit_tiny_patch16_224", dict(img_size=28, patch_size=4, embed_dim=48, depth=4, num_heads=2, in_chans=1),
           {"limit_train": 5000, "limit_val": 1000}, {"epochs": 6, "lr": 2e-3})
METHODS = {  # name -> (distillation method, its options); KD and SRD learn from TEACHER
    "none": ("none", {}),
    # the registry's KD is (1 - alpha) * soft CE(z_s/T, z_t/T) + alpha * CE(z_s, y), no T^2 factor, so T = 1
    "kd": ("kd", {"alpha": 0.5, "temperature": 1.0}),
    # SRD's released settings: CE + (logit MSE + 1 x pooled-feature MSE), no KL term
    "srd": ("srd", {}),
}
SEEDS = (1, 2, 3)


def train(tag: str, model: str, model_kwargs: dict, data_options: dict, recipe: dict, distill: str = "none", options: dict | None = None) -> dict:
    out = RUNS / tag
    if not (out / "metrics.json").is_file():
        common = dict(model_kwargs=model_kwargs, data_options=data_options, quiet=True, **recipe)
        if distill == "none":
            nascomp.train(model, "fashion-mnist", out, **common)
        else:
            nascomp.distill(model, str(TEACHER), "fashion-mnist", out, method=distill, options=options, **common)
    return json.loads((out / "metrics.json").read_text())


def record(tag: str, method: str, seed: int | None, metrics: dict) -> None:
    row = {
        "tag": tag, "method": method, "seed": seed, "val_top1": metrics["val"]["top1"], "test_top1": metrics["test"]["top1"],
        "test_n": metrics["test"]["n"], "params": metrics["params"], "train_seconds": round(metrics["train_seconds"], 1),
    }
    done = {json.loads(line)["tag"] for line in RESULTS.read_text().splitlines()} if RESULTS.is_file() else set()
    if tag not in done:
        with RESULTS.open("a") as f:
            f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def table() -> str:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()]
    lines = ["| model | distillation | params | test top-1 (%) mean ± std | per seed |", "|---|---|---|---|---|"]
    for r in rows:
        if r["method"].startswith("teacher"):
            leg = "first leg only" if r["method"] == "teacher-first-leg" else "teacher used"
            lines.append(f"| Swin teacher ({leg}) | - | {r['params']:,} | {r['test_top1']:.2f} | - |")
    for name in METHODS:
        accs = [r["test_top1"] for r in sorted(rows, key=lambda r: r["seed"] or 0) if r["method"] == name]
        if accs:
            spread = f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
            params = next(r["params"] for r in rows if r["method"] == name)
            lines.append(f"| ViT student | {name} | {params:,} | {statistics.mean(accs):.2f}{spread} | {', '.join(f'{a:.2f}' for a in accs)} |")
    by_seed = {name: {r["seed"]: r["test_top1"] for r in rows if r["method"] == name} for name in METHODS}
    paired = ["| difference | mean ± std over seeds | per seed |", "|---|---|---|"]
    for a, b in (("srd", "kd"), ("srd", "none"), ("kd", "none")):
        seeds = sorted(set(by_seed[a]) & set(by_seed[b]))
        diffs = [by_seed[a][s] - by_seed[b][s] for s in seeds]
        if len(diffs) > 1:
            paired.append(f"| {a} − {b} | {statistics.mean(diffs):+.2f} ± {statistics.stdev(diffs):.2f} | "
                          + ", ".join(f"seed {s}: {d:+.2f}" for s, d in zip(seeds, diffs)) + " |")
    return "\n".join(lines) + "\n\nPaired differences in test top-1 (points; a --seed fixes the initial student weights and the per-epoch data order for every method):\n\n" + "\n".join(paired)


if __name__ == "__main__":
    torch.set_num_threads(1)
    stage = sys.argv[1] if len(sys.argv) > 1 else "table"
    if stage in ("teacher", "students"):
        record("teacher-swin", "teacher-first-leg", None, train("teacher-swin", *TEACHER_LEGS["teacher-swin"]))
        record("teacher", "teacher", None, train("teacher", *TEACHER_LEGS["teacher"]))
    if stage == "students":  # optional further arguments: only these seeds (one process per seed ran side by side)
        for seed in [int(a) for a in sys.argv[2:]] or SEEDS:
            for name, (method, options) in METHODS.items():
                tag = f"{name}-s{seed}"
                model, kwargs, data, recipe = STUDENT
                record(tag, name, seed, train(tag, model, kwargs, data, {**recipe, "seed": seed}, method, options))
    print(table())

"""Few-shot transfer on Fashion-MNIST: KAdaptation vs LoRA vs LoKr vs linear probe vs full fine-tuning.

A ViT trained on classes 0-4 (`nascomp.train`, see README) is adapted to classes 5-9 with K images per
class. Every run is one `nascomp.adapt` call (the Python API the CLI calls); finished runs are skipped, so
the script resumes. Usage:

    nice -n 10 python experiments/kadaptation-fewshot/run.py backbone  # nascomp.train on classes 0-4 (BACKBONE)
    nice -n 10 python experiments/kadaptation-fewshot/run.py sweep   # learning rate per method, dev seed 0, K=5
    nice -n 10 python experiments/kadaptation-fewshot/run.py main [METHOD...]  # K in SHOTS x seeds 1-3 at the chosen rates
    python experiments/kadaptation-fewshot/run.py table              # README tables from results.jsonl
    python experiments/kadaptation-fewshot/run.py delta-norms        # ||ΔW||/||W|| of the K=5 KAdaptation runs
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

import nascomp

HERE = Path(__file__).resolve().parent
RUNS = Path("runs/kad")
BACKBONE = RUNS / "backbone"
RESULTS = HERE / "results.jsonl"

# Trainable budgets on the 96-d, 6-block backbone (Q and V of every block): KAdaptation n=8 r=1 with shared
# rank-1 slow weights and the per-layer bias 3,136; LoRA r=1 2,304; LoKr r=4 (8x8 (x) rank-4 12x12) 1,920.
# "kadaptation" keeps the public code's scale s = 160; under AdamW that makes ΔW outgrow W within the 100 steps
# (README), so s is also swept (kadaptation-s1, kadaptation-s10) like a learning rate.
KADAPTATION = {"n": 8, "rank": 1}  # slow rank 1, q and v, bias, paired init, scale 160: the CLI's defaults
METHODS = {  # name -> (nascomp.adapt method, its options)
    "kadaptation": ("kadaptation", KADAPTATION),
    "kadaptation-s1": ("kadaptation", {**KADAPTATION, "scale": 1.0}),
    "kadaptation-s10": ("kadaptation", {**KADAPTATION, "scale": 10.0}),
    "kadaptation-zero-init": ("kadaptation", {**KADAPTATION, "init": "zero"}),
    "lora": ("lora", {"rank": 1}),
    "lokr": ("lokr", {"rank": 4, "decompose_factor": 8}),
    "linear": ("linear", {}),
    "full": ("full", {}),
}
MAIN_METHODS = [m for m in METHODS if m != "kadaptation-s10"]  # s = 1 and s = 10 tied on validation; keep the smaller
SWEEP_LRS = {name: ["1e-3", "3e-3", "1e-2", "3e-2"] for name in METHODS} | {"full": ["1e-4", "3e-4", "1e-3", "3e-3"]}
SHOTS = (1, 5)  # K=25 dropped: only kadaptation-s1 was run there (README)
SEEDS = (1, 2, 3)
DATA = {"classes": [5, 6, 7, 8, 9], "limit_test": 2000}
RECIPE = {"epochs": 10, "batch_size": 16, "warmup_epochs": 1}  # with the CLI's other defaults (AdamW, wd 0.05, ls 0.1, clip 5)


def adapt(tag: str, method: str, shots: int, seed: int, lr: str, limit_val: int) -> dict:
    out = RUNS / tag
    if not (out / "metrics.json").is_file():
        torch.manual_seed(seed)
        kind, options = METHODS[method]
        nascomp.adapt(BACKBONE, kind, "fashion-mnist", out, options=options, data_options={**DATA, "limit_val": limit_val},
                      shots=shots, min_epoch_size=160, merge=False, seed=seed, lr=float(lr), quiet=True, **RECIPE)
    metrics = json.loads((out / "metrics.json").read_text())
    row = {
        "tag": tag, "method": method, "shots": shots, "seed": seed, "lr": float(lr), "val_top1": metrics["val"]["top1"],
        "test_top1": metrics["test"]["top1"], "test_n": metrics["test"]["n"], "trainable_params": metrics["adaptation"]["trainable_params"],
        "adapter_params": metrics["adaptation"]["adapter_params"], "train_seconds": round(metrics["train_seconds"], 1),
    }
    done = {json.loads(line)["tag"] for line in RESULTS.read_text().splitlines()} if RESULTS.is_file() else set()
    if tag not in done:
        with RESULTS.open("a") as f:
            f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)
    return row


def chosen_lrs() -> dict[str, str]:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()]
    best = {}
    for name in METHODS:
        sweep = [r for r in rows if r["method"] == name and r["tag"].startswith("sweep-")]
        best[name] = f"{max(sweep, key=lambda r: r['val_top1'])['lr']:g}"
    return best


BACKBONE_MODEL = dict(img_size=28, patch_size=4, in_chans=1, embed_dim=96, depth=6, num_heads=3)  # vit_tiny_patch16_224 resized
BACKBONE_DATA = {"classes": [0, 1, 2, 3, 4], "limit_train": 15000}  # 15,000 images of classes 0-4
BACKBONE_RECIPE = {"epochs": 6, "lr": 2e-3, "seed": 0}  # the recorded config of runs/kad/backbone (metrics.json)
BACKBONE_PARAMS = 678_245  # the backbone with its 5-class head; the percentages below are of this


def _main_rows(rows: list[dict], name: str, k: int) -> list[dict]:
    return sorted((r for r in rows if r["method"] == name and r["shots"] == k and r["tag"].startswith("main-")), key=lambda r: r["seed"])


def table() -> str:
    """README tables: mean ± sample std over seeds (a cell with fewer than every seed prints as missing), per-seed values, sweep."""
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()]
    lrs = chosen_lrs()
    lines = ["| method | lr | adapter params | trainable params (% of backbone) | "
             + " | ".join(f"K={k} test top-1 (%)" for k in SHOTS) + " |", "|---|---|---|---|" + "---|" * len(SHOTS)]
    per_seed = ["| method | " + " | ".join(f"K={k}, seeds {', '.join(map(str, SEEDS))}" for k in SHOTS) + " |",
                "|---|" + "---|" * len(SHOTS)]
    for name in MAIN_METHODS:
        cells, seeds_cells = [], []
        for k in SHOTS:
            rs = _main_rows(rows, name, k)
            accs = [r["test_top1"] for r in rs]
            complete = [r["seed"] for r in rs] == list(SEEDS)
            cells.append(f"{statistics.mean(accs):.1f} ± {statistics.stdev(accs):.1f}" if complete else "missing")
            seeds_cells.append(", ".join(f"{a:.2f}" for a in accs))
        r0 = next(r for r in rows if r["method"] == name)
        adapter = "-" if name in ("linear", "full") else f"{r0['adapter_params']:,}"
        lines.append(f"| {name} | {lrs[name]} | {adapter} | {r0['trainable_params']:,} ({100 * r0['trainable_params'] / BACKBONE_PARAMS:.2f}%) | "
                     + " | ".join(cells) + " |")
        per_seed.append(f"| {name} | " + " | ".join(seeds_cells) + " |")
    sweep = ["| method | val top-1 (%) at each lr (test top-1 in brackets, not used for the choice) |", "|---|---|"]
    for name in METHODS:
        rs = sorted((r for r in rows if r["method"] == name and r["tag"].startswith("sweep-")), key=lambda r: r["lr"])
        sweep.append(f"| {name} | " + ", ".join(f"{r['lr']:g}: {r['val_top1']:.1f} ({r['test_top1']:.1f})" for r in rs) + " |")
    paired = ["| KAdaptation variant minus | " + " | ".join(f"K={k}" for k in SHOTS) + " |", "|---|" + "---|" * len(SHOTS)]
    for ref in ("kadaptation", "kadaptation-s1"):
        for name in MAIN_METHODS:
            if name.startswith("kadaptation"):
                continue
            cells = []
            for k in SHOTS:
                diffs = [a["test_top1"] - b["test_top1"] for a, b in zip(_main_rows(rows, ref, k), _main_rows(rows, name, k))]
                cells.append(f"{statistics.mean(diffs):+.1f} ± {statistics.stdev(diffs):.1f} ({', '.join(f'{d:+.1f}' for d in diffs)})")
            paired.append(f"| {ref} − {name} | " + " | ".join(cells) + " |")
    extra = [r for r in rows if r["tag"].startswith("main-") and r["shots"] not in SHOTS]
    out = "\n".join(lines) + "\n\nPer seed (test top-1, %):\n\n" + "\n".join(per_seed)
    out += ("\n\nPaired differences in test top-1 (points; a seed fixes the same K images for every method), "
            "mean ± std over seeds (per seed):\n\n" + "\n".join(paired))
    out += "\n\nLearning-rate sweep (K=5, seed 0, 500 validation images):\n\n" + "\n".join(sweep)
    if extra:
        out += "\n\nOutside the table (no other method was run there):\n\n" + "\n".join(
            f"- {r['tag']}: test top-1 {r['test_top1']:.2f}" for r in sorted(extra, key=lambda r: r["tag"]))
    return out


def delta_norms() -> str:
    """||ΔW|| / ||W|| of every adapted Q and V weight in the K=5 KAdaptation runs (why s = 160 fails here)."""
    from nascomp.adaptation.kadaptation.model import kadaptation_layers
    from nascomp.models import load_model

    lines = ["| run | median ‖ΔW‖/‖W‖ | max |", "|---|---|---|"]
    for name in ("kadaptation", "kadaptation-s1"):
        for seed in SEEDS:
            tag = f"main-{name}-k5-s{seed}"
            model, _ = load_model(RUNS / tag)
            ratios = []
            with torch.no_grad():
                for layer in kadaptation_layers(model).values():
                    for part, (start, stop) in layer.parts.items():
                        ratios.append((layer.delta_weight(part).norm() / layer.base.weight[start:stop].norm()).item())
            lines.append(f"| {tag} | {statistics.median(ratios):.2f} | {max(ratios):.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    stage = sys.argv[1] if len(sys.argv) > 1 else "table"
    if stage == "backbone":
        if not (BACKBONE / "metrics.json").is_file():
            nascomp.train("vit_tiny_patch16_224", "fashion-mnist", BACKBONE, model_kwargs=BACKBONE_MODEL, data_options=BACKBONE_DATA,
                          quiet=True, **BACKBONE_RECIPE)
    elif stage == "delta-norms":
        print(delta_norms())
        raise SystemExit(0)
    elif stage == "sweep":
        for name in METHODS:
            for lr in SWEEP_LRS[name]:
                adapt(f"sweep-{name}-lr{lr}", name, 5, 0, lr, limit_val=500)
    elif stage == "main":  # optional further arguments: only these methods
        lrs = chosen_lrs()
        for shots in SHOTS:
            for seed in SEEDS:
                for name in sys.argv[2:] or MAIN_METHODS:
                    adapt(f"main-{name}-k{shots}-s{seed}", name, shots, seed, lrs[name], limit_val=100)
    print(table())

"""Collect the runs of this experiment into the README's table (Markdown) and results.json.

Params and MACs are counted here (nascomp.cost.counter.count_module at the model's resolution); checkpoint size
is the size of model.safetensors; latencies come from the `nascomp profile ... --out` JSON files; top-1 from
each run's metrics.json (test split, 10,000 images).

    python experiments/minivit-swin/table.py experiments/minivit-swin/runs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nascomp.models import load_model, model_input_size
from nascomp.cost.counter import count_module

ROWS = [
    ("teacher", "Teacher: Swin (2-2-6-2), `nascomp train`"),
    ("minivit", "MiniViT student, weight distillation"),
    ("minivit-nodistill", "MiniViT student, no distillation (labels only)"),
    ("minivit-random-init", "MiniViT student, random init (paper), weight distillation"),
    ("dropblocks", "Naive baseline: keep blocks 2-2-1-1, weight distillation"),
    ("dropblocks-nodistill", "Naive baseline: keep blocks 2-2-1-1, no distillation"),
    ("teacher-plus4", "Control: teacher + the students' 4 epochs (labels only)"),
]


def _latency(run: Path, target: str) -> dict | None:
    path = run / f"profile-{target}.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return {"ms": doc["latency_ms"], "iqr_ms": doc["iqr_ms"], "runtime": doc["runtime"], "protocol": doc["protocol"]}


def collect(root: Path) -> list[dict]:
    rows = []
    for name, label in ROWS:
        run = root / name
        if not (run / "metrics.json").is_file():
            continue
        metrics = json.loads((run / "metrics.json").read_text())
        model, _ = load_model(run)
        in_chans, resolution = model_input_size(model)
        cost = count_module(model, resolution, in_chans)
        rows.append({
            "run": name, "label": label, "params": cost.params, "macs": cost.macs, "resolution": resolution,
            "checkpoint_bytes": (run / "model.safetensors").stat().st_size,
            "test_top1": metrics["test"]["top1"], "val_top1": metrics["val"]["top1"], "epochs": metrics["epochs"],
            "train_seconds": round(metrics["train_seconds"]), "latency_cpu": _latency(run, "cpu"),
            "latency_mobile_cpu": _latency(run, "mobile-cpu"), "compress": metrics.get("compress"),
        })
    return rows


def markdown(rows: list[dict]) -> str:
    teacher = next((r for r in rows if r["run"] == "teacher"), None)
    out = ["| model | params | vs teacher | MACs | checkpoint | ORT cpu (ms) | ORT mobile-cpu (ms) | test top-1 | vs teacher |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        rel = f"{r['params'] / teacher['params']:.1%}" if teacher else "-"
        delta = f"{r['test_top1'] - teacher['test_top1']:+.2f}" if teacher else "-"
        cpu = f"{r['latency_cpu']['ms']:.3f}" if r["latency_cpu"] else "-"
        mobile = f"{r['latency_mobile_cpu']['ms']:.3f}" if r["latency_mobile_cpu"] else "-"
        out.append(f"| {r['label']} | {r['params'] / 1e6:.3f} M | {rel} | {r['macs'] / 1e6:.2f} M | {r['checkpoint_bytes'] / 1e6:.2f} MB "
                   f"| {cpu} | {mobile} | {r['test_top1']:.2f} | {delta} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("runs", type=Path)
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    rows = collect(args.runs)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Profile the models in top1.csv with `nascomp.profile(..., "mobile-cpu")`, merge into results.csv, plot the front.

Usage (from the repository root):
    nice -n 10 .venv/bin/python experiments/pareto-timm/run.py            # profiles (resumable), results.csv, the plot
    .venv/bin/python experiments/pareto-timm/run.py --csv-only            # results.csv and the plot from the profiles
Models are built by timm with random weights (offline): latency does not depend on the weight values.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import nascomp

HERE = Path(__file__).resolve().parent
WARMUP, REPEAT = 5, 30
# The shared 2-core VM ran at load 8-11 while this was measured: wall-clock latency was inflated 2.5-16x by
# time-sharing, so the latency axis is the inference thread's own CPU time (1 pinned thread, all work on it).
TIMER = "thread-cpu"


def profile_all() -> None:
    (HERE / "profiles").mkdir(exist_ok=True)
    for row in csv.DictReader((HERE / "top1.csv").open()):
        out = HERE / "profiles" / f"{row['model']}.json"
        if out.exists():
            continue
        print(f"profile {row['model']} --target mobile-cpu --resolution {row['resolution']} --timer {TIMER}", flush=True)
        try:
            nascomp.profile(row["model"], "mobile-cpu", resolution=int(row["resolution"]), timer=TIMER, warmup=WARMUP, repeat=REPEAT, out=out)
        except nascomp.NascompError as e:
            print(f"  FAILED: {e}", flush=True)


def build_csv() -> None:
    rows = []
    for row in csv.DictReader((HERE / "top1.csv").open()):
        path = HERE / "profiles" / f"{row['model']}.json"
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        fp32 = next(m for m in doc["measurements"] if m["precision"] == "fp32" and "skipped" not in m)
        int8 = next((m for m in doc["measurements"] if m["precision"] == "int8" and "skipped" not in m), None)
        p = doc["protocol"]
        rows.append({
            "model": row["model"], "name": row["name"], "family": row["family"], "top1": row["top1"], "top1_source": row["top1_source"],
            "resolution": p["resolution"], "latency_ms": fp32["latency_ms"], "iqr_ms": fp32["iqr_ms"],
            "wall_ms": fp32["details"].get("wall_ms_median"),
            "int8_latency_ms": int8["latency_ms"] if int8 else "", "int8_wall_ms": int8["details"].get("wall_ms_median") if int8 else "",
            "params_m": round(doc["params"] / 1e6, 3), "gmacs": doc["gmacs"],
            "load_average_1m": (fp32["details"].get("load_average_before") or [None])[0], "date": p["date"],
            "protocol": (f"nascomp profile --target mobile-cpu --timer thread-cpu: host CPU ({p['cpu_model']}, 2-core VM shared with other jobs; "
                         f"not a phone), ONNX Runtime {p['versions']['onnxruntime']} fp32, 1 thread pinned to core {p['affinity'][0]}, batch 1, "
                         f"each model at its evaluation resolution, {p['warmup']} warm-up + {p['repetitions']} timed runs, median of the "
                         "inference thread's CPU time; random weights; top-1: timm results-imagenet.csv"),
        })
    with (HERE / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {HERE / 'results.csv'} ({len(rows)} models)")


def plot() -> None:
    front = nascomp.pareto_front(HERE / "results.csv", "latency_ms", "top1", label="name", group="family", log_x=True, label_dominated=True,
                                 plot=HERE / "pareto_mobile_cpu.png",
                                 xlabel="Latency on one pinned host core (ms, log scale; median CPU time of the inference thread)")
    print(f"front: {', '.join(r['name'] for r in front.front)}; wrote {', '.join(map(str, front.plots))}")


if __name__ == "__main__":
    if "--csv-only" not in sys.argv:
        profile_all()
    build_csv()
    plot()

"""Print README.md's table from results.json (written by run.py): python experiments/shrink-swin/table.py"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    doc = json.loads((HERE / "results.json").read_text())
    print("| model | runtime | params | MACs | size (MB) | latency, fastest round (ms) | × teacher | median round (ms) | val top-1 | test top-1 | Δ test |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in doc["rows"]:
        print(f"| {r['name']} | {r['runtime']} | {r['params'] / 1e6:.3f} M | {r['macs'] / 1e6:.2f} M | {r['size_mb']:.2f} | "
              f"{r['latency_round_min_ms']:.3f} | {r['latency_vs_teacher']:.2f} | {r['latency_ms']:.3f} | "
              f"{r['val_top1']:.2f} | {r['test_top1']:.2f} | {r['test_vs_teacher']:+.2f} |")
    for name, s in doc["seeds_summary"].items():
        print(f"\n{name}: test top-1 mean {s['test_top1_mean']:.2f} (seeds {doc['seeds']}: {s['test_top1_spread'][0]:.2f}–"
              f"{s['test_top1_spread'][1]:.2f}, std {s['test_top1_std']})")


if __name__ == "__main__":
    main()

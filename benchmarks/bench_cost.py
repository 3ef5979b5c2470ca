"""Benchmark the MAC counter: time per count and agreement with fvcore, ptflops, thop and torch.

    python benchmarks/bench_cost.py [--models a,b,...] [--repeats 3] [--out benchmarks/results/bench_cost.json]

Writes the JSON (with date, machine and command) and a Markdown rendering beside it (.md).

For each model every counter runs on the same model and input in one process, interleaved, so the
time ratios are comparable on a noisy shared machine. Agreement is each tool's MACs / ours, with the
reason for any gap (see nascomp.cost.crosscheck).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import timm
import torch

from nascomp.cost.counter import count_module
from nascomp.cost.crosscheck import TOOLS, explain_difference

DEFAULT_MODELS = [
    "deit_tiny_patch16_224",
    "deit_small_patch16_224",
    "vit_base_patch16_224",
    "swin_tiny_patch4_window7_224",
    "swin_s3_tiny_224",
    "swin_small_patch4_window7_224",
    "resnet50",
    "mobilenetv3_large_100",
    "efficientnet_b0",
    "convnext_tiny",
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_model(name: str, repeats: int) -> dict:
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, 224, 224)
    times = {k: [] for k in ["nascomp", *TOOLS]}
    macs = {}
    for _ in range(repeats):  # interleave the tools in every round
        t = time.perf_counter()
        ours = count_module(model, 224)
        times["nascomp"].append(time.perf_counter() - t)
        for tool, fn in TOOLS.items():
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    m = copy.deepcopy(model)
                    t = time.perf_counter()
                    macs[tool] = fn(m, x)[0]
                    times[tool].append(time.perf_counter() - t)
            except Exception as e:  # record, do not hide, a tool that cannot count this model
                macs[tool] = f"failed: {type(e).__name__}"
    base = statistics.median(times["nascomp"])
    row = {"model": name, "params": ours.params, "macs": ours.macs, "seconds": {"nascomp": base}, "time_ratio": {}, "agreement": {}}
    for tool in TOOLS:
        if isinstance(macs[tool], int):
            row["seconds"][tool] = statistics.median(times[tool])
            row["time_ratio"][tool] = row["seconds"][tool] / base
            row["agreement"][tool] = {"macs": macs[tool], "ratio": macs[tool] / ours.macs, "why": explain_difference(ours, macs[tool])}
        else:
            row["agreement"][tool] = {"macs": None, "ratio": None, "why": macs[tool]}
    return row


def to_markdown(doc: dict) -> str:
    """The results as two tables: agreement (MACs / ours, with the reason) and time per count (ratio to ours)."""
    tools = list(TOOLS)
    m = doc["machine"]
    lines = [
        f"Measured {doc['date']} on {m['cpu']} ({m['cores']} cores, load average {m['load_avg'][0]:.1f}), torch {m['torch']}, "
        f"timm {m['timm']}. Command: `{doc['command']}`.",
        "",
        "| model | params | G MACs (ours) | " + " | ".join(tools) + " |",
        "|---|---:|---:|" + "---:|" * len(tools),
    ]
    reasons: dict[str, list[str]] = {}
    for r in doc["rows"]:
        cells = []
        for t in tools:
            a = r["agreement"][t]
            if a["ratio"] is None:
                cells.append("failed")
                continue
            mark = ""
            if a["why"] != "agrees":
                key = a["why"]
                reasons.setdefault(key, []).append(f"{t} on {r['model']}")
                mark = f" [{list(reasons).index(key) + 1}]"
            cells.append(f"{a['ratio']:.3f}{mark}")
        lines.append(f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['macs'] / 1e9:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "Why counts differ (ratio = tool / ours):", ""]
    lines += [f"{i}. {why}" for i, why in enumerate(reasons, 1)]
    lines += ["", "| model | ours (ms) | " + " | ".join(f"{t} / ours" for t in tools) + " |", "|---|---:|" + "---:|" * len(tools)]
    for r in doc["rows"]:
        ratios = [f"{r['time_ratio'][t]:.2f}" if t in r["time_ratio"] else "-" for t in tools]
        lines.append(f"| {r['model']} | {r['seconds']['nascomp'] * 1e3:.0f} | " + " | ".join(ratios) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_cost.json"))
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        row = bench_model(name, args.repeats)
        rows.append(row)
        agree = "  ".join(f"{t}={a['ratio']:.3f}" if a["ratio"] else f"{t}=fail" for t, a in row["agreement"].items())
        print(f"{name:32s} {row['macs'] / 1e9:7.3f} G  ours {row['seconds']['nascomp'] * 1e3:7.1f} ms  {agree}", flush=True)
    doc = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "load_avg": os.getloadavg(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "timm": timm.__version__,
        },
        "command": "python benchmarks/bench_cost.py "
        + (f"--models {args.models} " if args.models != ",".join(DEFAULT_MODELS) else "")
        + f"--repeats {args.repeats}",
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    Path(args.out).with_suffix(".md").write_text(to_markdown(doc))
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.md')}")


if __name__ == "__main__":
    main()

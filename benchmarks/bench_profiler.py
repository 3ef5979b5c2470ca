"""Profiler benchmarks: repeatability, latency-predictor accuracy and build time, torch eager vs ONNX Runtime.

Sections (each writes benchmarks/results/bench_profiler_<section>[_<target>].json with date, machine,
load and the exact command; benchmarks/bench_profiler.md summarises the numbers):

    python benchmarks/bench_profiler.py repeatability [--target mobile-cpu] [--models deit_tiny_patch16_224 ...] [--runs 5]
        CV of the median latency across `--runs` complete, independent profiles of the same model
        (fresh export, session and warm-up each time). Both the wall clock and the inference thread's
        CPU time are recorded in the same runs, side by side. Goal: CV <= 3 % on mobile-cpu.
    python benchmarks/bench_profiler.py predictor --target cpu|mobile-cpu [--probe] [--space s3-vit] [--calibrate 12] [--validate 50]
                                                  [--skip-build]
        Builds (or resumes) the latency lookup table, then measures >= 50 random subnets end to end:
        share predicted within +-10 %, mean and max error, build time. Goal: >= 95 % within +-10 %.
        --skip-build validates an existing complete table only (its build time is the one it recorded).
    python benchmarks/bench_profiler.py runtimes [--models ...] [--rounds 2]
        torch eager vs ONNX Runtime fp32 (and ORT int8) on the host CPU, 1 pinned thread, measured in the
        same profile, repeated in interleaved rounds; reports per-model ratios.

Use `--timer thread-cpu` (default here) on a shared, loaded machine: see the results file for why.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from record import run_header

from nascomp.core.io import atomic_write_json, read_json
from nascomp.profiling.host import allowed_cores, load_average

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_MODELS = ["deit_tiny_patch16_224", "swin_tiny_patch4_window7_224"]
RUNTIME_MODELS = ["deit_tiny_patch16_224", "deit_small_patch16_224", "swin_tiny_patch4_window7_224", "mobilevit_xs", "efficientnet_b0"]


def _header(args: argparse.Namespace) -> dict:
    return {**run_header(), "torch_threads_outside_measurements": torch.get_num_threads()}


def _save(name: str, doc: dict) -> Path:
    doc["load_average_end"] = load_average()
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, doc)
    print(f"wrote {path}")
    return path


def _model(name: str):
    import timm

    torch.manual_seed(0)
    return timm.create_model(name).eval()


def repeatability(args: argparse.Namespace) -> None:
    from nascomp.profiling.profiler import ProfileOptions, profile_model
    from nascomp.profiling.targets import parse_target

    doc = {**_header(args), "section": "repeatability", "target": args.target, "runs": args.runs, "models": {}}
    for name in args.models:
        model = _model(name)
        opts = ProfileOptions(parse_target(args.target), precisions=["fp32"], warmup=args.warmup, repeat=args.repeat, count_cost=False)
        rows = []
        for i in range(args.runs):
            m = profile_model(model, opts, name=name).primary
            rows.append(
                {
                    "wall_median_ms": m.stats.median_ms,
                    "wall_iqr_ms": m.stats.iqr_ms,
                    "thread_cpu_median_ms": m.details.get("thread_cpu_ms_median"),
                    "load_average": m.details["load_average_before"],
                    "process_cpu_per_thread": m.details.get("process_cpu_per_thread"),
                    "exporter": m.details.get("exporter"),
                }
            )
            print(
                f"{name} run {i + 1}: wall {rows[-1]['wall_median_ms']:.2f} ms, thread cpu {rows[-1]['thread_cpu_median_ms']:.2f} ms, "
                f"load {rows[-1]['load_average']}",
                flush=True,
            )
        out = {"per_run": rows}
        for key in ("wall_median_ms", "thread_cpu_median_ms"):
            values = [r[key] for r in rows if r[key] is not None]
            if len(values) > 1:
                out[key.replace("_median_ms", "_cv")] = statistics.stdev(values) / statistics.mean(values)
                out[key.replace("_median_ms", "_mean_ms")] = statistics.mean(values)
        doc["models"][name] = out
        print(f"{name}: CV wall {out.get('wall_cv', float('nan')):.2%}, CV thread-cpu {out.get('thread_cpu_cv', float('nan')):.2%}")
    _save(f"bench_profiler_repeatability_{args.target}", doc)


def predictor(args: argparse.Namespace) -> None:
    from nascomp.profiling.predictor import LutProtocol, build_lut, validate_lut
    from nascomp.spaces import SearchSpace

    space = SearchSpace.load(args.space)
    suffix = f"{args.target}{'_probe' if args.probe else ''}"
    lut = RESULTS / f"lut_{space.name}_{suffix}.json"
    proto = LutProtocol(
        target=args.target,
        threads=1,
        timer=args.timer,
        probe=args.probe,
        warmup=args.warmup,
        repeat=args.repeat,
        resolution=space.resolution,
    )
    doc = {**_header(args), "section": "predictor", "target": args.target, "space": space.name, "lut": str(lut.relative_to(RESULTS.parent))}
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if time.time() - last[0] > 60 or done == total:
            last[0] = time.time()
            print(f"{stage}: {done}/{total} (load {load_average()})", flush=True)

    if args.skip_build:  # validate a finished table again (e.g. after a killed validation) without re-measuring it
        table = read_json(lut) if lut.exists() else {}
        if not table.get("complete"):
            sys.exit(f"{lut} is missing or incomplete; run without --skip-build to build it")
    else:
        table = build_lut(space, proto, lut, calibrate=args.calibrate, seed=0, progress=progress)
    result = validate_lut(table, space, n=args.validate, seed=1000, path=lut, progress=progress)
    doc.update(
        {
            "entries": len(table["entries"]),
            "build_seconds": table["build_seconds"],
            "protocol": table["protocol"],
            "fit": {k: v for k, v in table["fit"].items() if k != "calibration"},
            "validation": {k: v for k, v in result.items() if k != "rows"},
            "validation_rows": result["rows"],
        }
    )
    print(
        f"{args.target}: {result['within_tolerance']:.1%} of {result['subnets']} within ±10 % "
        f"(mean |err| {result['mean_abs_error']:.2%}, max {result['max_abs_error']:.2%}); build {table['build_seconds']:.0f} s"
    )
    doc["probe"] = table.get("probe")
    _save(f"bench_profiler_predictor_{suffix}", doc)


def runtimes(args: argparse.Namespace) -> None:
    from nascomp.profiling.profiler import ProfileOptions, profile_model
    from nascomp.profiling.targets import parse_target

    doc = {**_header(args), "section": "runtimes", "rounds": args.rounds, "models": {}}
    opts = ProfileOptions(
        parse_target("cpu"),
        runtimes=["torch", "onnxruntime"],
        precisions=["fp32", "int8"],
        threads=1,
        cores=allowed_cores()[-1:],
        timer=args.timer,
        warmup=args.warmup,
        repeat=args.repeat,
        count_cost=False,
    )
    for r in range(args.rounds):
        for name in args.models:  # interleaved rounds: slow drifts of the machine hit every model alike
            report = profile_model(_model(name), opts, name=name)
            t, o, q = report.find("torch"), report.find("onnxruntime"), report.find("onnxruntime", "int8")
            row = {
                "torch_ms": t.stats.median_ms,
                "ort_fp32_ms": o.stats.median_ms if o else None,
                "ort_int8_ms": q.stats.median_ms if q else None,
                "exporter": o.details.get("exporter") if o else None,
                "load_average": t.details["load_average_before"],
            }
            doc["models"].setdefault(name, []).append(row)
            print(
                f"round {r + 1} {name}: torch {row['torch_ms']:.2f} ms, ORT fp32 {row['ort_fp32_ms']:.2f} ms, "
                f"ORT int8 {row['ort_int8_ms']:.2f} ms",
                flush=True,
            )
    summary = {}
    for name, rows in doc["models"].items():
        summary[name] = {
            "torch_ms": statistics.median(r["torch_ms"] for r in rows),
            "ort_fp32_ms": statistics.median(r["ort_fp32_ms"] for r in rows),
            "ort_int8_ms": statistics.median(r["ort_int8_ms"] for r in rows),
            "torch_over_ort": statistics.median(r["torch_ms"] / r["ort_fp32_ms"] for r in rows),
            "ort_fp32_over_int8": statistics.median(r["ort_fp32_ms"] / r["ort_int8_ms"] for r in rows),
        }
    doc["summary"] = summary
    _save("bench_profiler_runtimes_cpu", doc)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="section", required=True)
    r = sub.add_parser("repeatability")
    r.add_argument("--target", default="mobile-cpu")
    r.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    r.add_argument("--runs", type=int, default=5)
    r.add_argument("--warmup", type=int, default=10)
    r.add_argument("--repeat", type=int, default=50)
    q = sub.add_parser("predictor")
    q.add_argument("--target", default="mobile-cpu", choices=["cpu", "mobile-cpu"])
    q.add_argument("--space", default="s3-vit")
    q.add_argument("--calibrate", type=int, default=12)
    q.add_argument("--validate", type=int, default=50)
    q.add_argument("--timer", default="thread-cpu", choices=["wall", "thread-cpu"])
    q.add_argument("--probe", action="store_true", help="reference-probe mode (see nascomp.profiling.predictor.ReferenceProbe)")
    q.add_argument("--warmup", type=int, default=3)
    q.add_argument("--repeat", type=int, default=15)
    q.add_argument("--skip-build", action="store_true", help="only validate the existing, complete table")
    t = sub.add_parser("runtimes")
    t.add_argument("--models", nargs="+", default=RUNTIME_MODELS)
    t.add_argument("--rounds", type=int, default=2)
    t.add_argument("--timer", default="thread-cpu", choices=["wall", "thread-cpu"])
    t.add_argument("--warmup", type=int, default=5)
    t.add_argument("--repeat", type=int, default=20)
    args = p.parse_args()
    {"repeatability": repeatability, "predictor": predictor, "runtimes": runtimes}[args.section](args)


if __name__ == "__main__":
    main()

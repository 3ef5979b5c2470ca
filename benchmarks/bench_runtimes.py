"""Eager PyTorch vs ONNX Runtime vs ExecuTorch (XNNPACK), fp32 and static int8, side by side in one run (issue 18).

    python benchmarks/bench_runtimes.py [--models deit_tiny_patch16_224 ... fmnist-swin-teacher fmnist-swin-student]
        [--runs-dir benchmarks/runs] [--accuracy-images 0] [--out benchmarks/results/bench_runtimes.json] [--quick]

For every model:

- **export**: ONNX fp32 (`nascomp.export(format="onnx")`), ONNX Runtime static int8 (`nascomp.deploy.quantize.quantize_static_int8`
  on the same training images ExecuTorch calibrates on), ExecuTorch fp32 and PT2E static int8 (`nascomp.export(format="pte")`);
  wall seconds of each call (a `.pte` export also reports its lowering time alone) and, for every `.pte`, the delegation report
  (share of the graph's compute nodes inside the XNNPACK delegate, ops left on portable kernels).
- **latency**: the `mobile-cpu` protocol (1 thread pinned to one core, batch 1, warm-up, timed runs, thread-CPU timer with the
  wall clock recorded beside it) through `nascomp.profile`, one call per runtime, in interleaved rounds
  (torch fp32, ORT fp32, ORT int8, ET fp32, ET int8; again; ...) so slow drifts of a shared machine hit every variant alike.
  Per round, each variant's median; reported: the median over rounds, and the ratio to ORT fp32 and to ET fp32 as the median of
  the per-round ratios with a distribution-free 95 % interval (order statistics of the per-round ratios, binomial coverage;
  the coverage actually reached is recorded).
- **int8 accuracy** (trained Fashion-MNIST models only, from ``--runs-dir``): the test split image by image in ONNX Runtime
  (fp32, int8) and ExecuTorch (fp32, int8) against eager fp32; the top-1 difference with a paired 95 % bootstrap interval
  over images (and McNemar's exact test on the discordant pairs).

Models named ``fmnist-swin-*-arch`` are the Fashion-MNIST Swin teacher's architecture with random weights (latency and export
only; used when the trained runs are not on this machine). Writes the JSON (date, machine, command, host, load average start
and end) and a Markdown table beside it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from record import portable, run_header

from nascomp.core.io import atomic_write_json, atomic_write_text
from nascomp.profiling.host import load_average

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "benchmarks" / "runs"

# (runtime, precision) in the order every round measures them
VARIANTS = [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("executorch", "fp32"), ("executorch", "int8")]
LABEL = {
    ("torch", "fp32"): "torch fp32",
    ("onnxruntime", "fp32"): "ORT fp32",
    ("onnxruntime", "int8"): "ORT int8",
    ("executorch", "fp32"): "ET fp32",
    ("executorch", "int8"): "ET int8",
}
REFERENCES = {"ort_fp32": ("onnxruntime", "fp32"), "et_fp32": ("executorch", "fp32"), "ort_int8": ("onnxruntime", "int8")}

# the Fashion-MNIST Swin of experiments/shrink-swin (its teacher), as timm keyword arguments
FMNIST_SWIN = {
    "img_size": 32,
    "patch_size": 4,
    "window_size": 4,
    "embed_dim": 32,
    "num_heads": (1, 2, 4, 8),
    "in_chans": 1,
    "num_classes": 10,
}
TIMM_MODELS = ["deit_tiny_patch16_224", "deit_small_patch16_224", "swin_tiny_patch4_window7_224"]
RUN_MODELS = ["fmnist-swin-teacher", "fmnist-swin-student"]
# rounds x timed runs (after warm-up) per variant and round; calibration and check images; sized to the CPU budget
PLAN = {
    "deit_tiny_patch16_224": {"rounds": 15, "runs": 8, "warmup": 2, "calib": 32, "check": 8},
    "deit_small_patch16_224": {"rounds": 11, "runs": 5, "warmup": 2, "calib": 32, "check": 8},
    "swin_tiny_patch4_window7_224": {"rounds": 11, "runs": 4, "warmup": 1, "calib": 16, "check": 8},
    "small": {"rounds": 15, "runs": 20, "warmup": 5, "calib": 256, "check": 32},
}


# ---------------------------------------------------------------------------------------------------- statistics


def order_statistic_ci(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Distribution-free interval for the median of ``values``: (x_(k), x_(n+1-k)) with the largest k whose binomial coverage
    1 - 2 P(Bin(n, 1/2) < k) is still >= ``level``; returns (low, high, coverage). Fewer than 6 values cannot reach 95 %:
    the range is returned with its lower coverage."""
    xs = sorted(values)
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    cdf = lambda k: sum(math.comb(n, i) for i in range(k)) / 2**n  # noqa: E731  P(Bin(n, 1/2) < k)
    k = 1
    while k + 1 <= (n + 1) // 2 and 1 - 2 * cdf(k + 1) >= level:
        k += 1
    return xs[k - 1], xs[n - k], 1 - 2 * cdf(k)


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 20000, seed: int = 0) -> dict:
    """Top-1 of b minus top-1 of a on the same images, with a paired bootstrap 95 % interval over images and McNemar's exact
    two-sided p-value. Each image's difference is -1, 0 or +1, so resampling images is a multinomial draw of those three counts
    (exact, and cheap for 10,000 images)."""
    d = correct_b.astype(int) - correct_a.astype(int)
    n = len(d)
    worse, better = int((d < 0).sum()), int((d > 0).sum())
    counts = np.random.default_rng(seed).multinomial(n, [worse / n, 1 - (worse + better) / n, better / n], size=resamples)
    boot = (counts[:, 2] - counts[:, 0]) / n
    discordant = worse + better
    p = min(1.0, 2 * sum(math.comb(discordant, i) for i in range(min(worse, better) + 1)) / 2**discordant) if discordant else 1.0
    return {
        "images": n,
        "top1_a": float(correct_a.mean()),
        "top1_b": float(correct_b.mean()),
        "diff": float(d.mean()),
        "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "b_right_a_wrong": better,
        "a_right_b_wrong": worse,
        "mcnemar_exact_p": p,
        "interval": f"paired bootstrap over images, {resamples} resamples",
    }


# ---------------------------------------------------------------------------------------------------- models


def build(name: str, runs_dir: Path):
    """(module, description) of a model name: a timm name (random init), a ``fmnist-swin-*-arch`` or a saved run."""
    import timm

    torch.manual_seed(0)
    if name.endswith("-arch"):
        return timm.create_model(
            "swin_tiny_patch4_window7_224", pretrained=False, **FMNIST_SWIN
        ).eval(), "Fashion-MNIST Swin teacher architecture (experiments/shrink-swin), random init"
    if name in RUN_MODELS or (runs_dir / name).is_dir():
        from nascomp.models.io import load_model

        model, meta = load_model(runs_dir / name)
        return model.eval(), f"trained run {runs_dir / name}"
    return timm.create_model(name, pretrained=False).eval(), "timm, random init (pretrained=False)"


def plan_for(name: str, quick: bool) -> dict:
    plan = dict(PLAN.get(name, PLAN["small"]))
    if quick:
        plan.update(rounds=3, runs=2, warmup=1, calib=8, check=2)
    return plan


# ---------------------------------------------------------------------------------------------------- export


def export_all(module, work: Path, plan: dict, log, int8_tolerance: float | None = None) -> tuple[dict, dict]:
    """Export the four deployment files; returns ({(runtime, precision): path}, per-variant export facts).

    ``int8_tolerance`` loosens the ExecuTorch int8 file's check against the PT2E simulation (random-init models only: their logits
    are tiny, so the default absolute 0.05 is a few quantization steps); whether the default check would have passed is recorded."""
    import nascomp
    from nascomp.deploy.api import real_images
    from nascomp.deploy.quantize import quantize_static_int8
    from nascomp.models.resolve import model_input_size

    in_chans, resolution = model_input_size(module)
    files, facts = {}, {}

    def attempt(key, fn):
        start, cpu = time.perf_counter(), time.process_time()
        try:
            path, info = fn()
        except Exception as e:  # a failed export is a result too: record it, measure the rest
            facts[key] = {
                "error": f"{type(e).__name__}: {str(e)[:400]}",
                "wall_s": round(time.perf_counter() - start, 2),
                "process_cpu_s": round(time.process_time() - cpu, 2),
            }
            log(f"  export {LABEL[key]} FAILED: {facts[key]['error']}")
            traceback.print_exc()
            return
        facts[key] = {"wall_s": round(time.perf_counter() - start, 2), "process_cpu_s": round(time.process_time() - cpu, 2), **info}
        files[key] = str(path)
        log(
            f"  export {LABEL[key]}: {facts[key]['wall_s']:.1f} s wall, {facts[key]['process_cpu_s']:.1f} s CPU"
            + (f", {info['delegation_text']}" if "delegation_text" in info else "")
        )

    def onnx_fp32():
        e = nascomp.export(module, work / "model.onnx", format="onnx")
        return e.path, {
            "exporter": e.exporter,
            "opset": e.opset,
            "bytes": e.size_bytes,
            "max_abs_diff_vs_torch": e.max_abs_diff,
            "what": "nascomp.export(format='onnx'): torch.onnx export + ONNX Runtime check",
        }

    def onnx_int8():
        if ("onnxruntime", "fp32") not in files:
            raise RuntimeError("no ONNX fp32 file to quantize")
        _, calibration, source = real_images("fashion-mnist", None, resolution, in_chans, check=0, calibrate=plan["calib"], seed=0)
        start = time.perf_counter()
        path = quantize_static_int8(files["onnxruntime", "fp32"], work / "model.int8.onnx", calibration.numpy())
        quant = time.perf_counter() - start
        return path, {
            "bytes": path.stat().st_size,
            "quantize_s": round(quant, 2),
            "calib_images": len(calibration),
            "total_with_fp32_export_s": round(facts["onnxruntime", "fp32"]["wall_s"] + (time.perf_counter() - start), 2),
            "what": "quantize_static_int8 (QDQ, minmax, per-channel) of the fp32 file, calibrated on training images; "
            "wall_s includes loading the calibration images",
        }

    def pte(precision):
        def run():
            tolerance = int8_tolerance if precision == "int8" else None
            e = nascomp.export(
                module,
                work / f"et-{precision}",
                format="pte",
                precision=precision,
                quantization="static",
                data="fashion-mnist",
                calib_images=plan["calib"],
                check_images=plan["check"],
                tolerance=tolerance,
            )
            loosened = {}
            if tolerance is not None and e.check is not None:
                from nascomp.deploy.pte import INT8_TOLERANCE

                allowed = INT8_TOLERANCE * e.check.scale
                loosened = {
                    "check_tolerance": tolerance,
                    "default_check_passed": bool(e.check.max_abs_diff <= allowed and e.check.noise_max_abs_diff <= allowed),
                    "default_allowed_abs_diff": allowed,
                }
            return e.path, {
                **loosened,
                "lowering_s": round(e.export_seconds, 2),
                "bytes": e.size_bytes,
                "delegation": e.delegation.to_dict(),
                "delegation_text": e.delegation.describe(),
                "check": e.check.to_dict() if e.check else None,
                **({"calib_images": plan["calib"]} if precision == "int8" else {}),
                "what": "nascomp.export(format='pte'): wall_s includes loading images and the check in ExecuTorch's runtime; "
                "lowering_s is torch.export (+ PT2E calibration) + XNNPACK lowering alone",
            }

        return run

    attempt(("onnxruntime", "fp32"), onnx_fp32)
    attempt(("onnxruntime", "int8"), onnx_int8)
    attempt(("executorch", "fp32"), pte("fp32"))
    attempt(("executorch", "int8"), pte("int8"))
    return files, facts


# ---------------------------------------------------------------------------------------------------- latency


def summarize(rounds: list[dict]) -> dict:
    """Per variant: the median over rounds of its per-round medians (thread CPU and wall), and its per-round ratio to each
    reference variant (median and order-statistic 95 % interval over rounds)."""
    summary = {}
    for key in [LABEL[v] for v in VARIANTS if any(LABEL[v] in row for row in rounds)]:
        entry = {}
        for clock in ("cpu_ms", "wall_ms"):
            values = [row[key][clock] for row in rounds if key in row]
            entry[f"{clock}_median"] = statistics.median(values)
            for ref_name, ref in REFERENCES.items():
                ratios = [row[key][clock] / row[LABEL[ref]][clock] for row in rounds if key in row and LABEL[ref] in row]
                if ratios:
                    lo, hi, cover = order_statistic_ci(ratios)
                    entry[f"{clock.removesuffix('_ms')}_ratio_to_{ref_name}"] = {
                        "median": statistics.median(ratios),
                        "ci95": [lo, hi],
                        "coverage": round(cover, 4),
                        "rounds": len(ratios),
                    }
        entry["process_cpu_per_thread_median"] = statistics.median(
            row[key]["process_cpu_per_thread"] for row in rounds if key in row and row[key]["process_cpu_per_thread"] is not None
        )
        summary[key] = entry
    return summary


def interleaved_latency(module, files: dict, plan: dict, log) -> dict:
    """Rounds of (torch fp32, ORT fp32, ORT int8, ET fp32, ET int8) under the mobile-cpu protocol; one `nascomp.profile` call per
    runtime and round, on the files exported once."""
    import nascomp

    available = [v for v in VARIANTS if v[0] == "torch" or v in files]
    per_runtime: dict[str, list[str]] = {}
    for runtime, precision in available:
        per_runtime.setdefault(runtime, []).append(precision)
    rounds = []
    protocol = None
    for r in range(plan["rounds"]):
        row = {}
        for runtime, precisions in per_runtime.items():
            given = {p: files[runtime, p] for p in precisions if (runtime, p) in files}
            report = nascomp.profile(
                module,
                "mobile-cpu",
                runtimes=[runtime],
                precisions=precisions,
                timer="thread-cpu",
                warmup=plan["warmup"],
                repeat=plan["runs"],
                count_cost=False,
                **({"onnx_files": given} if runtime == "onnxruntime" else {"pte_files": given} if given else {}),
            )
            protocol = protocol or {k: v for k, v in report.protocol.items() if k not in ("load_average",)}
            for m in report.measurements:
                if m.skipped:
                    continue
                row[LABEL[m.runtime, m.precision]] = {
                    "cpu_ms": m.stats.median_ms,
                    "wall_ms": m.details.get("wall_ms_median"),
                    "cpu_iqr_ms": m.stats.iqr_ms,
                    "process_cpu_per_thread": m.details.get("process_cpu_per_thread"),
                    "load": (m.details.get("load_average_before") or [None])[0],
                }
        rounds.append(row)
        log(
            f"  round {r + 1}/{plan['rounds']}: "
            + ", ".join(f"{k} {v['cpu_ms']:.2f}/{v['wall_ms']:.2f}" for k, v in row.items())
            + " ms (cpu/wall)"
        )
    return {"protocol": protocol, "plan": plan, "rounds": rounds, "summary": summarize(rounds)}


# ---------------------------------------------------------------------------------------------------- accuracy


def predictions(module, files: dict, dataset, transform, log) -> tuple[np.ndarray, dict]:
    """Labels, and per variant each test image's top-1 prediction: eager in batches, runtimes image by image (batch-1 files)
    through the project's session code (`ort_session`, `PteSession`)."""
    from nascomp.deploy.et_runtime import PteSession
    from nascomp.deploy.runtime import ort_session

    loader = torch.utils.data.DataLoader(dataset, batch_size=250, shuffle=False, collate_fn=transform)
    sessions = {}
    for key, path in files.items():
        if key[0] == "onnxruntime":
            s = ort_session(path, threads=1)
            name = s.get_inputs()[0].name
            sessions[key] = (lambda s, name: lambda x: s.run(None, {name: x.numpy()})[0].argmax(-1))(s, name)
        else:
            s = PteSession(path, threads=1)
            sessions[key] = (lambda s: lambda x: s(x).argmax(-1).numpy())(s)
    labels, preds = [], {("torch", "fp32"): [], **{k: [] for k in sessions}}
    seconds = {k: 0.0 for k in preds}
    with torch.inference_mode():
        for images, targets in loader:
            labels.append(targets.numpy())
            t = time.perf_counter()
            preds["torch", "fp32"].append(module(images).argmax(-1).numpy())
            seconds["torch", "fp32"] += time.perf_counter() - t
            for key, run in sessions.items():
                t = time.perf_counter()
                preds[key].append(np.concatenate([run(images[i : i + 1]) for i in range(len(images))]))
                seconds[key] += time.perf_counter() - t
    log("  accuracy pass seconds: " + ", ".join(f"{LABEL[k]} {v:.0f}" for k, v in seconds.items()))
    return np.concatenate(labels), {k: np.concatenate(v) for k, v in preds.items()}


def int8_accuracy(module, files: dict, images: int, log) -> dict:
    from nascomp.data import data_bundle
    from nascomp.models.resolve import model_input_size

    bundle = data_bundle("fashion-mnist")
    if images:
        bundle = bundle.limited(test=images)
    in_chans, resolution = model_input_size(module)
    labels, preds = predictions(module, files, bundle.test, bundle.transform(resolution, in_chans, train=False), log)
    eager = preds["torch", "fp32"] == labels
    out = {
        "split": "test",
        "images": int(len(labels)),
        "subset": f"first {images}" if images else "all",
        "calibration": "the int8 files' own: random training images (seed 0), see export",
        "eager_fp32_top1": float(eager.mean()),
    }
    for key in VARIANTS[1:]:
        if key in preds:
            out[f"{LABEL[key]} vs torch fp32"] = paired_difference(eager, preds[key] == labels)
            out[f"{LABEL[key]} vs torch fp32"]["prediction_agreement"] = float((preds[key] == preds["torch", "fp32"]).mean())
            d = out[f"{LABEL[key]} vs torch fp32"]
            log(
                f"  {LABEL[key]}: top-1 {d['top1_b']:.2%} ({d['diff'] * 100:+.2f} pt, 95 % CI [{d['ci95'][0] * 100:+.2f}, "
                f"{d['ci95'][1] * 100:+.2f}]), agreement {d['prediction_agreement']:.2%}"
            )
    return out


# ---------------------------------------------------------------------------------------------------- report


def fmt_ratio(r: dict | None) -> str:
    if not r:
        return "-"
    return f"{r['median']:.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"


def markdown(doc: dict) -> str:
    lines = [
        "# Runtimes side by side: torch eager, ONNX Runtime, ExecuTorch (XNNPACK), fp32 and static int8",
        "",
        f"- date: {doc['date']}",
        f"- machine: {doc['machine']} ({doc['host']['cpu_model']})",
        f"- command: `{doc['command']}`",
        f"- load average start / end: {doc['load_average_start']} / {doc.get('load_average_end')}",
        f"- total wall: {doc.get('total_seconds', float('nan')) / 60:.1f} min",
        "- protocol: `mobile-cpu` (1 thread pinned to one core, batch 1), thread-CPU timer (wall clock recorded beside it); "
        "variants interleaved round by round; ratio = median over rounds of the per-round ratio of medians, "
        "95 % distribution-free interval from order statistics of the per-round ratios (coverage in the JSON).",
        "",
    ]
    for name, m in doc["models"].items():
        lines += [f"## {name}", "", f"{m['description']}; {m.get('input', '')}", ""]
        if "error" in m:
            lines += [f"failed: {m['error']}", ""]
            continue
        lat = m.get("latency", {})
        plan = lat.get("plan", {})
        lines += [
            f"{plan.get('rounds')} rounds x {plan.get('runs')} timed runs ({plan.get('warmup')} warm-up) per variant.",
            "",
            "| variant | CPU ms | wall ms | CPU / ORT fp32 [95 % CI] | CPU / ET fp32 [95 % CI] | CPU / ORT int8 [95 % CI] | "
            "wall / ORT fp32 | export s (wall / process CPU) | delegated to XNNPACK |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for key in VARIANTS:
            label = LABEL[key]
            s = lat.get("summary", {}).get(label)
            e = m["export"].get(f"{key[0]}/{key[1]}", {})
            if "delegation" in e:
                d = e["delegation"]
                deleg = f"{d['delegated_share']:.1%} of {d['delegated_ops'] + d['portable_op_count']} ops"
                if d["portable_ops"]:
                    deleg += "; portable: " + ", ".join(f"{k} x{v}" for k, v in d["portable_ops"].items())
                if e.get("default_check_passed") is False:
                    deleg += (
                        f" (check vs PT2E simulation: max diff {e['check']['max_abs_diff']:.3g} > default allowed "
                        f"{e['default_allowed_abs_diff']:.3g}; passed at tolerance {e['check_tolerance']:g})"
                    )
            else:
                deleg = "-"
            ex = (
                "-"
                if key[0] == "torch"
                else (
                    f"failed: {e['error'][:60]}"
                    if "error" in e
                    else f"{e.get('wall_s', float('nan')):.1f} / {e.get('process_cpu_s', float('nan')):.1f}"
                )
            )
            if key == ("onnxruntime", "int8") and "quantize_s" in e:
                ex += f" (quantize {e['quantize_s']:.1f})"
            if key[0] == "executorch" and "lowering_s" in e:
                ex += f" (lowering {e['lowering_s']:.1f})"
            if s is None:
                lines.append(f"| {label} | - | - | - | - | - | - | {ex} | {deleg} |")
                continue
            lines.append(
                f"| {label} | {s['cpu_ms_median']:.2f} | {s['wall_ms_median']:.2f} | "
                f"{fmt_ratio(s.get('cpu_ratio_to_ort_fp32'))} | "
                f"{fmt_ratio(s.get('cpu_ratio_to_et_fp32'))} | {fmt_ratio(s.get('cpu_ratio_to_ort_int8'))} | "
                f"{fmt_ratio(s.get('wall_ratio_to_ort_fp32'))} | {ex} | {deleg} |"
            )
        lines.append("")
        acc = m.get("accuracy")
        if acc:
            lines += [
                f"Accuracy on the Fashion-MNIST test split ({acc['subset']}, {acc['images']} images), eager fp32 top-1 "
                f"{acc['eager_fp32_top1']:.2%}; difference to eager fp32, paired bootstrap 95 % CI, McNemar exact p:",
                "",
                "| variant | top-1 | diff (pt) [95 % CI] | better / worse images | McNemar p | same prediction as eager |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            for key in VARIANTS[1:]:
                d = acc.get(f"{LABEL[key]} vs torch fp32")
                if d:
                    lines.append(
                        f"| {LABEL[key]} | {d['top1_b']:.2%} | {d['diff'] * 100:+.2f} "
                        f"[{d['ci95'][0] * 100:+.2f}, {d['ci95'][1] * 100:+.2f}] | "
                        f"{d['b_right_a_wrong']} / {d['a_right_b_wrong']} | {d['mcnemar_exact_p']:.3g} | "
                        f"{d['prediction_agreement']:.2%} |"
                    )
            lines.append("")
    for note in doc.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=TIMM_MODELS + RUN_MODELS)
    p.add_argument("--runs-dir", type=Path, default=RUNS, help="where the trained Fashion-MNIST runs are")
    p.add_argument("--accuracy-images", type=int, default=0, help="test images for int8 accuracy (0: all 10,000)")
    p.add_argument("--out", type=Path, default=RESULTS / "bench_runtimes.json")
    p.add_argument("--quick", action="store_true", help="smoke test: 3 rounds x 2 runs, 8 calibration images")
    p.add_argument(
        "--resummarize",
        action="store_true",
        help="recompute the summaries of --out from its recorded rounds and rewrite the Markdown; measures nothing",
    )
    args = p.parse_args()
    if args.resummarize:
        from nascomp.core.io import read_json

        doc = read_json(args.out)
        for m in doc["models"].values():
            if "latency" in m:
                m["latency"]["summary"] = summarize(m["latency"]["rounds"])
        atomic_write_json(args.out, portable(doc))
        atomic_write_text(args.out.with_suffix(".md"), markdown(portable(doc)))
        print(f"rewrote {args.out} and {args.out.with_suffix('.md')} from the recorded rounds")
        return

    from nascomp.deploy.et_runtime import require_executorch

    require_executorch()
    start = time.perf_counter()
    doc = {**run_header(), "section": "runtimes", "models": {}, "notes": []}

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s, load {load_average()[0] if load_average() else '?'}] {msg}", flush=True)

    def save() -> None:
        doc["load_average_end"] = load_average()
        doc["total_seconds"] = round(time.perf_counter() - start, 1)
        atomic_write_json(args.out, portable(doc))
        atomic_write_text(args.out.with_suffix(".md"), markdown(portable(doc)))

    for name in args.models:
        if name in RUN_MODELS and not (args.runs_dir / name).is_dir():
            note = f"{name}: no trained run at {args.runs_dir / name}; not measured (int8 accuracy needs it)"
            doc["notes"].append(note)
            log(note)
            continue
        log(f"{name}")
        module, description = build(name, args.runs_dir)
        from nascomp.models.resolve import model_input_size

        in_chans, resolution = model_input_size(module)
        entry = doc["models"][name] = {
            "description": description,
            "params": sum(p.numel() for p in module.parameters()),
            "input": f"1 x {in_chans} x {resolution} x {resolution}",
        }
        plan = plan_for(name, args.quick)
        try:
            with tempfile.TemporaryDirectory(prefix="bench-runtimes-") as tmp:
                files, facts = export_all(
                    module, Path(tmp), plan, log, int8_tolerance=None if description.startswith("trained run") else 1.0
                )
                entry["export"] = {f"{k[0]}/{k[1]}": {kk: vv for kk, vv in v.items() if kk != "delegation_text"} for k, v in facts.items()}
                save()
                entry["latency"] = interleaved_latency(module, files, plan, log)
                save()
                if description.startswith("trained run"):
                    entry["accuracy"] = int8_accuracy(module, files, 200 if args.quick else args.accuracy_images, log)
        except Exception as e:
            entry["error"] = f"{type(e).__name__}: {str(e)[:400]}"
            traceback.print_exc()
        save()
    save()
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()

"""Latency predictors for a new target: the full table against few-shot transfer from another target's table.

Two steps, both resumable (every measured subnet is written atomically; finished cases are skipped):

    python benchmarks/bench_predictor.py measure [--spaces s3-vit shrink-swin] [--cases ort-fp32-1t ...]
        Per (space, case): builds the case's full table today (`build_lut`, reference probe), then measures
        50 held-out subnets (seed 1000, the draw `validate_lut` uses) and a pool of 40 shot subnets (seed 2000)
        end to end, interleaved (held-out, shot, held-out, ...) under the table's protocol and probe reference,
        then the first 15 held-out subnets again (the measurement's own repeatability: a floor for any predictor).
        -> benchmarks/results/lut_<space>_<case>.json, benchmarks/results/bench_predictor_subnets_<space>_<case>.json
    python benchmarks/bench_predictor.py evaluate
        No measurement: every predictor (the full table, the untransferred source table, its transfer at
        K = 5, 10, 20 shots drawn 20 times from the pool) scored on the same held-out subnets of each case.
        -> benchmarks/results/bench_predictor.json (benchmarks/bench_predictor.md writes it up)

Cases are stand-ins for devices on this host: ONNX Runtime fp32 on 1 pinned thread (the mobile-cpu profile),
torch eager fp32 on 1 thread, ONNX Runtime int8 (dynamic) on 1 pinned thread, ONNX Runtime fp32 on 2 threads
(wall clock: the CPU-time timer is valid for 1 thread only). Run it niced, OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from record import run_header

from nascomp.core.io import atomic_write_json, read_json
from nascomp.profiling.host import load_average

RESULTS = Path(__file__).resolve().parent / "results"
HELD_OUT, HELD_OUT_SEED = 50, 1000
POOL, POOL_SEED = 40, 2000
REPEATS = 15  # held-out subnets measured a second time, last: how far two measurements of one subnet disagree

CASES = {
    "ort-fp32-1t": dict(target="mobile-cpu", runtime="onnxruntime", precision="fp32", threads=1, timer="thread-cpu"),
    "torch-fp32-1t": dict(target="cpu", runtime="torch", precision="fp32", threads=1, timer="thread-cpu"),
    "ort-int8-1t": dict(target="mobile-cpu", runtime="onnxruntime", precision="int8", threads=1, timer="thread-cpu"),
    "ort-fp32-2t": dict(target="cpu", runtime="onnxruntime", precision="fp32", threads=2, timer="wall"),
    # ExecuTorch exports each layer in ~10 s here (an hour for the small space's 385 layers): measured as a transfer target only
    "executorch-fp32-1t": dict(target="mobile-cpu", runtime="executorch", precision="fp32", threads=1, timer="thread-cpu", full=False),
}
DEFAULT_CASES = ["ort-fp32-1t", "torch-fp32-1t", "ort-int8-1t", "ort-fp32-2t"]
SHRINK_SWIN = dict(img_size=32, patch_size=4, window_size=4, embed_dim=32, num_heads=(1, 2, 4, 8), in_chans=1, num_classes=10)


def load_bench_space(name: str):
    """(space, in_chans, num_classes): ``s3-vit`` at 224 px, or ``shrink-swin``, the neighbourhood of experiments/shrink-swin's
    Fashion-MNIST Swin (the same 385 layers; latency does not depend on the weights, so an untrained model of its shape gives it)."""
    if name == "shrink-swin":
        import nascomp
        from nascomp.compression.shrink.space import neighbourhood, swin_arch

        model = nascomp.create_model("swin_tiny_patch4_window7_224", **SHRINK_SWIN)
        return neighbourhood(swin_arch(model), SHRINK_SWIN["img_size"]), SHRINK_SWIN["in_chans"], SHRINK_SWIN["num_classes"]
    from nascomp.spaces import SearchSpace

    return SearchSpace.load(name), 3, 1000


def case_protocol(case: str, space, in_chans: int, num_classes: int):
    from nascomp.profiling.predictor import LutProtocol

    settings = {k: v for k, v in CASES[case].items() if k != "full"}
    return LutProtocol(**settings, probe=True, warmup=3, repeat=15, resolution=space.resolution, in_chans=in_chans, num_classes=num_classes)


def table_path(space_name: str, case: str) -> Path:
    return RESULTS / f"lut_{space_name}_{case}.json"


def subnets_path(space_name: str, case: str) -> Path:
    return RESULTS / f"bench_predictor_subnets_{space_name}_{case}.json"


def _draws(space) -> list[tuple[str, int, dict]]:
    """The interleaved measuring order: held-out and pool subnets alternate, so both see the same machine."""
    held = random.Random(HELD_OUT_SEED)
    pool = random.Random(POOL_SEED)
    held_out = [("held_out", i, space.sample(held)) for i in range(HELD_OUT)]
    shots = [("pool", i, space.sample(pool)) for i in range(POOL)]
    order = []
    for i in range(max(HELD_OUT, POOL)):
        order += held_out[i : i + 1] + shots[i : i + 1]
    return order + [("repeat", i, arch) for _, i, arch in held_out[:REPEATS]]  # the noise floor: the same subnets again


def measure_case(space_name: str, case: str) -> None:
    from nascomp.profiling.predictor import ReferenceProbe, build_lut, measure_arch

    space, in_chans, num_classes = load_bench_space(space_name)
    proto = case_protocol(case, space, in_chans, num_classes)
    lut, subnets = table_path(space_name, case), subnets_path(space_name, case)
    doc = read_json(subnets) if subnets.exists() else {**run_header(), "space": space_name, "case": case, "build": {}, "rows": []}
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        if time.time() - last[0] > 120 or done == total:
            last[0] = time.time()
            print(f"{space_name} {case} {stage}: {done}/{total} (load {load_average()})", flush=True)

    table = read_json(lut) if lut.exists() else {}
    if CASES[case].get("full") is False:  # transfer-only: the probe's reference is measured once, kept in the record
        table = {"probe": doc.get("probe")}
    elif not table.get("complete"):
        wall, cpu = time.time(), time.process_time()
        table = build_lut(space, proto, lut, calibrate=12, seed=0, progress=progress)
        build = doc["build"]
        build["wall_s"] = round(build.get("wall_s", 0.0) + time.time() - wall, 1)
        build["cpu_s"] = round(build.get("cpu_s", 0.0) + time.process_time() - cpu, 1)
        build["load_average_end"] = load_average()
        atomic_write_json(subnets, doc)
    done = {(r["set"], r["index"]) for r in doc["rows"]}
    todo = [d for d in _draws(space) if (d[0], d[1]) not in done]
    if not todo:
        return
    with tempfile.TemporaryDirectory(prefix="bench-predictor-") as tmp:
        probe = ReferenceProbe(proto.resolved(), Path(tmp), (table.get("probe") or {}).get("reference_ms"))
        if table.get("probe") is None:
            doc["probe"] = probe.to_dict()
        for n, (which, index, arch) in enumerate(todo, 1):
            wall, cpu, load = time.time(), time.process_time(), load_average()
            measured = measure_arch(arch, proto.resolved(), probe=probe, workdir=Path(tmp))
            doc["rows"].append(
                {
                    "set": which,
                    "index": index,
                    "arch": arch.to_dict(),
                    "measured_ms": measured["ms"],
                    "iqr_ms": measured["iqr_ms"],
                    "wall_s": round(time.time() - wall, 2),
                    "cpu_s": round(time.process_time() - cpu, 2),
                    "load_average": load,
                }
            )
            atomic_write_json(subnets, doc)  # a killed run resumes after the last measured subnet
            progress("subnets", n, len(todo))
    doc["load_average_end"] = load_average()
    atomic_write_json(subnets, doc)


def measure(args: argparse.Namespace) -> None:
    for space_name in args.spaces:
        for case in args.cases:
            measure_case(space_name, case)
            print(f"done: {space_name} {case}", flush=True)


# ---------------------------------------------------------------------------------------------- evaluation (no measurement)

OLD_SOURCES = {  # tables of earlier days (benchmarks/bench_profiler.md, experiments/shrink-swin): sources from "another day"
    "s3-vit": {"ort-fp32-1t@2026-11-22": "lut_s3-vit_mobile-cpu_probe.json", "torch-fp32-1t@2026-11-22": "lut_s3-vit_cpu_probe.json"},
    "shrink-swin": {"ort-fp32-1t@2026-11-29": "../../experiments/shrink-swin/results/lut-mobile-cpu-probe.json"},
}
SHOTS = (5, 10, 20)
DRAWS = 20
LEVEL = 0.9


def _scores(pred: np.ndarray, low: np.ndarray, high: np.ndarray, measured: np.ndarray) -> dict:
    from scipy import stats

    err = pred / measured - 1
    has = ~np.isnan(low)
    return {
        "within_10pct": float(np.mean(np.abs(err) <= 0.10)),
        "within_5pct": float(np.mean(np.abs(err) <= 0.05)),
        "spearman": float(stats.spearmanr(pred, measured)[0]),
        "mean_abs_error": float(np.mean(np.abs(err))),
        "median_error": float(np.median(err)),
        "coverage": float(np.mean((low <= measured) & (measured <= high))) if has.all() else None,
        "mean_width": float(np.mean((high - low) / pred)) if has.all() else None,
    }


def _predict(correction, X: np.ndarray, what: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions and their intervals (none when ``what`` is None: the source's own intervals describe the source)."""
    preds = [_interval(correction, x, what) for x in X]
    nan = float("nan")
    return (
        np.array([p.value for p in preds]),
        np.array([p.low if p.has_interval else nan for p in preds]),
        np.array([p.high if p.has_interval else nan for p in preds]),
    )


def _interval(correction, x, kind: str | None):
    from nascomp.profiling.intervals import Prediction, jackknife_plus, t_band

    value = correction.predict(x)
    if kind is None or len(correction.loo_errors) == 0:
        return Prediction(value, None, None, None, "none")
    return jackknife_plus(value, correction.loo_predict(x), correction.loo_errors, LEVEL, kind) or t_band(
        value, correction.loo_errors, LEVEL, kind
    )


def _summary(runs: list[dict]) -> dict:
    """Median and 5-95 % range over draws of the shots, per metric."""
    out = {}
    for key in runs[0]:
        values = [r[key] for r in runs if r[key] is not None]
        if values:
            out[key] = {"median": float(np.median(values)), "p5": float(np.percentile(values, 5)), "p95": float(np.percentile(values, 95))}
    return out


def evaluate_space(space_name: str) -> dict:
    from nascomp.profiling.correction import Correction, fit_correction
    from nascomp.profiling.predictor import calibration_features, refit
    from nascomp.profiling.transfer import check_source

    space, in_chans, num_classes = load_bench_space(space_name)
    cases = [c for c in CASES if subnets_path(space_name, c).exists()]
    tables = {c: read_json(table_path(space_name, c)) for c in cases if table_path(space_name, c).exists()}
    sources = {**tables, **{name: read_json(RESULTS / f) for name, f in OLD_SOURCES.get(space_name, {}).items()}}
    out = {"space": space_name, "cases": {}}
    for case in cases:
        doc = read_json(subnets_path(space_name, case))
        held = [r for r in doc["rows"] if r["set"] == "held_out"]
        pool = [r for r in doc["rows"] if r["set"] == "pool"]
        if len(held) < HELD_OUT or len(pool) < POOL:
            print(f"{space_name} {case}: {len(held)} held-out / {len(pool)} pool subnets measured so far; skipped")
            continue
        y_held = np.array([r["measured_ms"] for r in held])
        y_pool = np.array([r["measured_ms"] for r in pool])
        proto = case_protocol(case, space, in_chans, num_classes)
        table = tables.get(case)  # None: a transfer-only case (no full table measured)
        full_wall, full_cpu = doc["build"].get("wall_s"), doc["build"].get("cpu_s")
        res = {
            "protocol": proto.resolved().to_dict(),
            "measured": {
                "date": doc["date"],
                "command": doc["command"],
                "host": doc["host"],
                "load_average_start": doc["load_average_start"],
                "load_average_end": doc.get("load_average_end"),
            },
            "held_out": len(held),
            "pool": len(pool),
            "measured_ms_range": [float(y_held.min()), float(y_held.max())],
            "repeatability": _repeatability(doc["rows"]),
            "full": {},
            "sources": {},
        }
        for fit in ("ridge", "offset", "affine"):
            if table is None:
                break
            t = refit(json.loads(json.dumps(table)), fit)
            correction = Correction.from_fit(t["fit"], space.num_stages)
            res["full"][fit] = {
                **_scores(*_predict(correction, calibration_features(t, held)[0], "calibration subnets"), y_held),
                "calibration_subnets": len(t["fit"]["calibration"]),
                "profiling_wall_s": full_wall,
                "profiling_cpu_s": full_cpu,
                "layers": len(table["entries"]),
            }
        if table is not None:
            ridge = Correction.from_fit(refit(json.loads(json.dumps(table)), "ridge")["fit"], space.num_stages)
            res["full_split_conformal"] = _split_halves(ridge, calibration_features(table, held)[0], y_held)
        if table is not None:  # the same entries, the correction refitted on 20 shots beside the held-out subnets
            Xh, _ = calibration_features(table, held)
            Xp, _ = calibration_features(table, pool)
            runs = []
            for draw in range(DRAWS):
                idx = np.random.default_rng(draw).choice(len(pool), 20, replace=False)
                runs.append(_scores(*_predict(fit_correction(Xp[idx], y_pool[idx], _names(space)), Xh, "shots"), y_held))
            res["full_recalibrated_k20"] = _summary(runs)
        for name, src in sources.items():
            if name == case:
                continue
            try:
                check_source(src, space, proto.resolved(), name)
            except Exception as e:  # noqa: BLE001  (a source of other shapes or layers is reported, not fatal)
                res["sources"][name] = {"skipped": str(e)}
                continue
            Xh, _ = calibration_features(src, held)
            Xp, _ = calibration_features(src, pool)
            own = Correction.from_fit(src.get("fit"), space.num_stages)  # the source as it is, with its own correction
            entry = {"protocol": src["protocol"], "untransferred": _scores(*_predict(own, Xh, None), y_held), "transfer": {}}
            for k in SHOTS:
                for fit in ("ridge", "affine"):
                    runs = []
                    for draw in range(DRAWS):
                        idx = np.random.default_rng(draw).choice(len(pool), k, replace=False)
                        correction = fit_correction(Xp[idx], y_pool[idx], _names(space), fit)
                        scores = _scores(*_predict(correction, Xh, "shots"), y_held)
                        scores["profiling_wall_s"] = float(sum(pool[i]["wall_s"] for i in idx))
                        scores["profiling_cpu_s"] = float(sum(pool[i]["cpu_s"] for i in idx))
                        runs.append(scores)
                    entry["transfer"][f"K={k} {fit}"] = _summary(runs)
            res["sources"][name] = entry
        out["cases"][case] = res
        print(f"{space_name} {case}: evaluated", flush=True)
    return out


def _split_halves(correction, X: np.ndarray, y: np.ndarray) -> dict:
    """Coverage of split-conformal intervals (what a table gets after `validate_lut`): made from half of the held-out subnets,
    checked on the other half, both ways; 20 random halvings."""
    from nascomp.profiling.intervals import split_conformal

    pred = np.array([correction.predict(x) for x in X])
    scores = np.abs(np.log(y / pred))
    covered = []
    for draw in range(DRAWS):
        order = np.random.default_rng(draw).permutation(len(y))
        for a, b in ((order[: len(y) // 2], order[len(y) // 2 :]), (order[len(y) // 2 :], order[: len(y) // 2])):
            p = split_conformal(1.0, scores[a], LEVEL, "half")
            covered += [bool(p.low <= y[i] / pred[i] <= p.high) for i in b]
    return {"coverage": float(np.mean(covered)), "calibration_subnets": len(y) // 2, "halvings": DRAWS}


def _repeatability(rows: list[dict]) -> dict | None:
    """Second measurements of held-out subnets against their first: the share within +-10 % / +-5 % is a ceiling for predictors."""
    first = {r["index"]: r["measured_ms"] for r in rows if r["set"] == "held_out"}
    ratios = np.array([r["measured_ms"] / first[r["index"]] - 1 for r in rows if r["set"] == "repeat" and r["index"] in first])
    if not len(ratios):
        return None
    return {
        "subnets": len(ratios),
        "within_10pct": float(np.mean(np.abs(ratios) <= 0.10)),
        "within_5pct": float(np.mean(np.abs(ratios) <= 0.05)),
        "median_abs_difference": float(np.median(np.abs(ratios))),
        "median_difference": float(np.median(ratios)),
    }


def _names(space) -> list[str]:
    from nascomp.profiling.correction import feature_names

    return feature_names(space.num_stages)


PAIRS = {  # the stand-ins for a new device: target case -> the sources it is transferred from, headline first
    "ort-fp32-1t": ["torch-fp32-1t", "ort-int8-1t", "ort-fp32-1t@2026-11-22", "ort-fp32-1t@2026-11-29"],
    "torch-fp32-1t": ["ort-fp32-1t"],
    "ort-int8-1t": ["ort-fp32-1t"],
    "ort-fp32-2t": ["ort-fp32-1t"],
    "executorch-fp32-1t": ["ort-fp32-1t"],
}


def _goals(space_doc: dict) -> list[dict]:
    """The issue's goals per case: full table >= 95 % within +-10 %; K = 20 transfer (headline source) >= 90 % at <= 1/10 of
    the full build's profiling time; interval coverage within 5 points of 90 %."""
    out = []
    for case, res in space_doc["cases"].items():
        full = res["full"].get("ridge")
        row = {
            "case": case,
            "full_within_10pct": full and full["within_10pct"],
            "full_coverage": full and full["coverage"],
            "full_profiling_wall_s": full and full["profiling_wall_s"],
            "full_profiling_cpu_s": full and full["profiling_cpu_s"],
            "full_goal_met": bool(full and full["within_10pct"] >= 0.95),
        }
        source = next((s for s in PAIRS.get(case, []) if "transfer" in (res["sources"].get(s) or {})), None)
        if source:
            entry = res["sources"][source]
            t = entry["transfer"]["K=20 ridge"]
            wall, cpu = t["profiling_wall_s"]["median"], t["profiling_cpu_s"]["median"]
            ratio = wall / full["profiling_wall_s"] if full and full["profiling_wall_s"] else None
            cpu_ratio = cpu / full["profiling_cpu_s"] if full and full["profiling_cpu_s"] else None
            row.update(
                {
                    "source": source,
                    "k20_within_10pct": t["within_10pct"],
                    "k20_coverage": t.get("coverage"),
                    "k20_profiling_wall_s": wall,
                    "k20_profiling_cpu_s": cpu,
                    "k20_over_full_wall": ratio,
                    "k20_over_full_cpu": cpu_ratio,
                    "untransferred_within_10pct": entry["untransferred"]["within_10pct"],
                    "k20_goal_met": bool(t["within_10pct"]["median"] >= 0.90 and ratio is not None and ratio <= 0.10),
                }
            )
        covs = [c for c in [row["full_coverage"], (row.get("k20_coverage") or {}).get("median")] if c is not None]
        row["coverage_goal_met"] = bool(covs) and all(abs(c - LEVEL) <= 0.05 for c in covs)
        out.append(row)
    return out


def evaluate(args: argparse.Namespace) -> None:
    doc = {
        **run_header(),
        "step": "evaluate (no measurement: every predictor on the stored held-out subnets)",
        "protocol": {
            "held_out": f"{HELD_OUT} random subnets (seed {HELD_OUT_SEED}) per case, measured once, interleaved with the pool",
            "pool": f"{POOL} random subnets (seed {POOL_SEED}); each transfer draws K of them, {DRAWS} draws (seeds 0-{DRAWS - 1})",
            "interval_level": LEVEL,
            "interval_method": "jackknife+ on the fit's calibration subnets / shots (Student-t band "
            "on their leave-one-out errors when too few for 90 %)",
            "metrics": "error = predicted / measured - 1; transfer rows: median and 5-95 % range over the draws",
        },
        "spaces": {},
    }
    for space_name in args.spaces:
        doc["spaces"][space_name] = evaluate_space(space_name)
        doc["spaces"][space_name]["goals"] = _goals(doc["spaces"][space_name])
    path = RESULTS / "bench_predictor.json"
    doc["load_average_end"] = load_average()
    atomic_write_json(path, doc)
    print(f"wrote {path}")


def _cell(metric: dict | float | None, pct: bool = True) -> str:
    if metric is None:
        return "-"
    fmt = (lambda v: f"{v:.0%}") if pct else (lambda v: f"{v:.2f}")
    if isinstance(metric, dict):
        return f"{fmt(metric['median'])} ({fmt(metric['p5'])}–{fmt(metric['p95'])})"
    return fmt(metric)


def table(args: argparse.Namespace) -> None:
    """The markdown table of benchmarks/bench_predictor.md, from benchmarks/results/bench_predictor.json."""
    doc = read_json(RESULTS / "bench_predictor.json")
    print("| space | target | predictor | from | ±10 % | ±5 % | Spearman ρ | coverage (90 %) | profiling wall s | CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for space_name, sd in doc["spaces"].items():
        for case, res in sd["cases"].items():
            for fit, label in (("ridge", "full table (ridge fit)"), ("offset", "full table (offset fit, the old default)")):
                f = res["full"].get(fit)
                if f:
                    print(
                        f"| {space_name} | {case} | {label} | - | {_cell(f['within_10pct'])} | {_cell(f['within_5pct'])} | "
                        f"{_cell(f['spearman'], False)} | {_cell(f['coverage'])} | {f['profiling_wall_s']:.0f} | "
                        f"{f['profiling_cpu_s']:.0f} |"
                    )
            sc = res.get("full_split_conformal")
            if sc:
                print(
                    f"| {space_name} | {case} | full table, split-conformal on {sc['calibration_subnets']} validation subnets | - | "
                    f"(as above) | | | {_cell(sc['coverage'])} | - | - |"
                )
            r = res.get("full_recalibrated_k20")
            if r:
                print(
                    f"| {space_name} | {case} | full table, refitted on 20 shots beside the held-out | - | {_cell(r['within_10pct'])} | "
                    f"{_cell(r['within_5pct'])} | {_cell(r['spearman'], False)} | {_cell(r.get('coverage'))} | - | - |"
                )
            for source in PAIRS.get(case, []):
                entry = res["sources"].get(source)
                if not entry or "skipped" in entry:
                    continue
                u = entry["untransferred"]
                print(
                    f"| {space_name} | {case} | source table as is | {source} | {_cell(u['within_10pct'])} | {_cell(u['within_5pct'])} | "
                    f"{_cell(u['spearman'], False)} | - | 0 | 0 |"
                )
                for k in SHOTS:
                    t = entry["transfer"][f"K={k} ridge"]
                    print(
                        f"| {space_name} | {case} | transfer K = {k} | {source} | {_cell(t['within_10pct'])} | "
                        f"{_cell(t['within_5pct'])} | "
                        f"{_cell(t['spearman'], False)} | {_cell(t.get('coverage'))} | {t['profiling_wall_s']['median']:.0f} | "
                        f"{t['profiling_cpu_s']['median']:.0f} |"
                    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--spaces", nargs="+", default=["shrink-swin", "s3-vit"])
    m.add_argument("--cases", nargs="+", default=DEFAULT_CASES, choices=sorted(CASES))
    e = sub.add_parser("evaluate")
    e.add_argument("--spaces", nargs="+", default=["shrink-swin", "s3-vit"])
    sub.add_parser("table")
    args = p.parse_args()
    if args.step == "measure" and os.environ.get("OMP_NUM_THREADS") != "1":
        print("note: set OMP_NUM_THREADS=1 (the tables' threads are set per measurement)", flush=True)
    {"measure": measure, "evaluate": evaluate, "table": table}[args.step](args)


if __name__ == "__main__":
    main()

"""`nascomp profile MODEL --target cpu|mobile-cpu|cuda|android[:SERIAL]`: measured latency (and energy) with its protocol.

Also builds and checks latency lookup tables for search:
`nascomp profile --build-lut --space s3-vit --target mobile-cpu [--validate 50]` (every layer measured), or in minutes from
another target's table: `nascomp profile --build-lut --space s3-vit --target cpu --from TABLE --shots 20`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from nascomp.cli.common import add_model_args, model_overrides, print_json, str_list

if TYPE_CHECKING:
    pass

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("profile", help="measure latency/energy on a target; build latency lookup tables", description=__doc__)
    p.add_argument("model", metavar="MODEL", nargs="?", help="timm model name, arch JSON, or saved model directory")
    p.add_argument("--target", default="cpu", help="cpu | mobile-cpu | cuda | android[:SERIAL] (default: %(default)s)")
    p.add_argument(
        "--runtime",
        type=str_list,
        help="torch, onnxruntime, executorch (ExecuTorch with the XNNPACK delegate), comma-separated (default: per target)",
    )
    p.add_argument(
        "--precision", type=str_list, help="fp32, int8 (dynamic quantization: ONNX Runtime's, or PT2E for ExecuTorch) (default: per target)"
    )
    p.add_argument("--threads", type=int, help="intra-op threads (default: all allowed cores on cpu, 1 on mobile-cpu/android)")
    p.add_argument("--cores", help="pin to these cores, e.g. 1 or 0-3 (default: the last core on mobile-cpu; taskset on android)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--resolution", type=int, help="input resolution (default: the model's)")
    p.add_argument("--warmup", type=int, help="untimed runs first (default: 10; 3 per layer/subnet with --build-lut)")
    p.add_argument("--repeat", type=int, help="timed runs (default: 50; 15 per layer/subnet with --build-lut)")
    p.add_argument(
        "--exporter",
        choices=["auto", "torchscript", "dynamo"],
        default="auto",
        help="ONNX exporter for ONNX Runtime runs (default auto: TorchScript, dynamo if that fails)",
    )
    p.add_argument(
        "--timer",
        choices=["wall", "thread-cpu"],
        default="wall",
        help="wall clock (default), or the thread's CPU time (1 thread only; for shared, loaded machines)",
    )
    g = p.add_argument_group("energy")
    g.add_argument("--energy", action="store_true", help="energy per inference: NVML (cuda), RAPL (cpu), battery (android), else estimated")
    g.add_argument("--power-w", help="state the power model used when no counter exists: ACTIVE[:IDLE] watts")
    g.add_argument("--energy-window", type=float, default=2.0, help="minimum seconds of back-to-back inferences per energy reading")
    g.add_argument("--op-profile", action="store_true", help="executorch: per-op times from the runtime's event tracer (ETDump)")
    g = p.add_argument_group("android")
    g.add_argument("--perf-test", help="onnxruntime_perf_test built for the phone: a host file to push, or a path on the phone")
    g.add_argument("--runner", help="--runtime executorch: executor_runner built for the phone: a host file to push, or a path on it")
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="print the report as JSON")
    g.add_argument("--out", help="also write the JSON report to this file, and FILE.html beside it (`nascomp report`)")
    g.add_argument("--samples", action="store_true", help="include every per-run latency in the JSON")
    g.add_argument("--keep-onnx", metavar="DIR", help="keep the exported ONNX files in DIR")
    g.add_argument("--quiet", action="store_true", help="no progress messages")
    g = p.add_argument_group("latency lookup table (predictor for search budgets)")
    g.add_argument("--build-lut", action="store_true", help="measure every block configuration of --space on --target")
    g.add_argument("--space", help="search space name or YAML file for --build-lut")
    g.add_argument("--lut", help="LUT file (default: the per-user LUT directory, see nascomp.profiling.predictor)")
    g.add_argument(
        "--reference-probe",
        action="store_true",
        help="time a fixed reference block before every run and keep the ratio (for shared or throttling machines)",
    )
    g.add_argument("--calibrate", type=int, default=12, help="random subnets measured end to end to fit the correction (default: 12)")
    g.add_argument(
        "--fit",
        choices=["ridge", "offset", "affine"],
        default="ridge",
        help="correction of the layer sums (default ridge: per-stage scales, per-layer overhead, offset)",
    )
    g.add_argument(
        "--from",
        dest="source",
        metavar="TABLE",
        help="transfer: start from this table of another target and measure only --shots subnets on --target",
    )
    g.add_argument("--shots", type=int, help="with --from: subnets measured end to end on the target (default: 20)")
    g.add_argument(
        "--validate",
        type=int,
        help="after building (or alone with --lut), measure N random subnets, report accuracy and make "
        "them the intervals' split-conformal evidence (default: 25 after a full build, 0 after a transfer; 0: skip)",
    )
    g.add_argument("--level", type=float, default=0.9, help="level of the prediction intervals --validate checks (default: %(default)s)")
    g.add_argument("--seed", type=int, default=0)
    add_model_args(p)
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace, log) -> dict:
    """`nascomp.profile` keyword settings from the command line."""
    return dict(
        runtimes=args.runtime,
        precisions=args.precision,
        threads=args.threads,
        cores=args.cores,
        batch=args.batch,
        resolution=args.resolution,
        warmup=args.warmup,
        repeat=args.repeat,
        energy=args.energy,
        power_model=args.power_w,
        energy_window_s=args.energy_window,
        perf_test=args.perf_test,
        onnx_dir=args.keep_onnx,
        include_samples=args.samples,
        timer=args.timer,
        exporter=args.exporter,
        runner=args.runner,
        op_profile=args.op_profile,
        log=log,
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nascomp.core.errors import NascompError

    _check_counts(args)
    lut_mode = args.build_lut or (args.validate and args.model is None)
    args.warmup = args.warmup if args.warmup is not None else (3 if lut_mode else 10)
    args.repeat = args.repeat if args.repeat is not None else (15 if lut_mode else 50)
    console = Console(stderr=True, quiet=args.quiet or False)
    log = lambda msg: console.print(f"[dim]{msg}[/]")  # noqa: E731
    if lut_mode:
        return _run_lut(args)
    if not args.model:
        raise NascompError("give a MODEL to profile (timm name, arch JSON or model directory), or --build-lut --space NAME")
    import nascomp

    report = nascomp.profile(
        args.model, args.target, out=args.out, checkpoint=args.checkpoint, model_kwargs=model_overrides(args), **_settings(args, log)
    )
    doc = report.to_dict(include_samples=args.samples)
    if args.json:
        print_json(doc)
    else:
        _print_report(doc)
    return 0


def _check_counts(args: argparse.Namespace) -> None:
    """Counts and levels, before anything is measured or imported."""
    from nascomp.core.errors import NascompError

    for flag, value, least in (("--validate", args.validate, 0), ("--calibrate", args.calibrate, 2), ("--shots", args.shots, 2)):
        if value is not None and value < least:
            raise NascompError(f"{flag} must be at least {least}, got {value}")
    if not 0 < args.level < 1:
        raise NascompError(f"--level is the intervals' coverage, between 0 and 1 exclusive (e.g. 0.9), got {args.level}")


def _print_report(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console()
    proto = doc["protocol"]
    out.print(f"[bold]{doc['model']}[/] on [bold]{doc['target']}[/]: {doc['note']}")
    with_energy = any(m.get("energy") for m in doc["measurements"])
    columns = ["runtime", "precision", "median ms", "IQR ms", "p90 ms", "runs"] + (["mJ/inference", "energy"] if with_energy else [])
    table = Table(*columns)
    for m in doc["measurements"]:
        if "skipped" in m:
            table.add_row(m["runtime"], m["precision"], "-", "-", "-", "-", *(["-", "skipped"] if with_energy else []))
            continue
        row = [m["runtime"], m["precision"], f"{m['latency_ms']:.3f}", f"{m['iqr_ms']:.3f}", f"{m['p90_ms']:.3f}", str(m["runs"])]
        if with_energy:
            e = m.get("energy") or {}
            row += ["-" if m["energy_mj"] is None else f"{m['energy_mj']:.3f}", f"{e.get('kind', '')} ({e.get('source', '')})"]
        table.add_row(*row)
    out.print(table)
    for m in doc["measurements"]:
        if "skipped" in m:
            out.print(f"  [yellow]{m['runtime']}/{m['precision']} skipped:[/] {m['skipped']}")
    device = proto.get("gpu_model") or (proto.get("phone") or {}).get("model") or proto.get("cpu_model")
    out.print(
        f"  device: {device}; threads {proto['threads']}, affinity {proto['affinity']}, batch {proto['batch']}, "
        f"{proto['resolution']} px, {proto['warmup']} warm-up + {proto['repetitions']} timed runs, {proto['statistic']}"
    )
    if proto.get("timer"):
        load = (proto.get("load_average") or {}).get("before")
        out.print(f"  timer: {proto['timer']}" + (f"; load average {load[0]:.2f} when timing began" if load else ""))
    for line in doc.get("warnings", []):
        out.print(f"  [yellow]warning: {line}[/]")
    for m in doc["measurements"]:
        ratio = (m.get("details") or {}).get("wall_over_cpu")
        if ratio and ratio > 1.15:
            out.print(
                f"  [yellow]{m['runtime']}/{m['precision']}: wall time is {ratio:.2f}x the thread's CPU time: other load took "
                "the core (load average {}); consider --timer thread-cpu[/]".format(m["details"].get("load_average_before"))
            )
    if doc.get("macs"):
        out.print(f"  cost: {doc['params'] / 1e6:.2f} M params, {doc['gmacs']:.3f} G MACs (what papers call FLOPs)")
    for m in doc["measurements"]:
        e = m.get("energy")
        if e:
            extra = f"; estimated because: {e['fallback_reason']}" if e.get("fallback_reason") else ""
            out.print(
                f"  energy {m['runtime']}/{m['precision']}: {e['kind']} via {e['source']}, total {e['total_mj_per_inference']} mJ "
                f"minus idle {e['idle_mj_per_inference']} mJ ({e['idle_power_w']} W idle){extra}"
            )
    for m in doc["measurements"]:
        ops = (m.get("details") or {}).get("op_times")
        if ops:
            out.print(
                f"  per-op times {m['runtime']}/{m['precision']} (ETDump, {ops['runs']} runs): "
                f"{ops['portable_time_share']:.1%} of op time "
                "on portable kernels; slowest:"
            )
            for op in ops["ops"][:8]:
                out.print(f"    {op['op']:<44} {op['where']:<17} {op['ms_per_inference']:.4f} ms/inference ({op['calls']} calls)")
    out.print("  [dim]full protocol: --json[/]")


def _run_lut(args: argparse.Namespace) -> int:
    """--build-lut (then optionally --validate N), or --validate N alone on an existing table."""
    from rich.console import Console

    import nascomp
    from nascomp.core.errors import NascompError
    from nascomp.core.io import read_json
    from nascomp.core.progress import stage_progress
    from nascomp.profiling.predictor import lut_path
    from nascomp.profiling.targets import parse_target

    if args.model:
        raise NascompError("--build-lut / --validate work on a search space, not on MODEL; drop MODEL and pass --space")
    if not args.space:
        raise NascompError("--build-lut needs --space NAME (e.g. s3-vit) or a space YAML file")
    if (args.source or args.shots is not None) and not args.build_lut:
        raise NascompError("--from / --shots make a table: add --build-lut (e.g. --build-lut --space s3-vit --from TABLE --shots 20)")
    if args.shots is not None and not args.source:
        raise NascompError("--shots needs --from TABLE (the other target's table to transfer); a full build measures every layer")
    space = nascomp.load_space(args.space)
    with stage_progress(not args.quiet) as progress:
        protocol = dict(
            runtime=(args.runtime or [None])[0],
            precision=(args.precision or ["fp32"])[0],
            threads=args.threads,
            cores=args.cores,
            timer=args.timer,
            exporter=args.exporter,
            probe=args.reference_probe,
            warmup=args.warmup,
            repeat=args.repeat,
            batch=args.batch,
            resolution=args.resolution,
            seed=args.seed,
            energy=args.energy,
        )
        transfer = None
        if args.build_lut and args.source:
            transfer = nascomp.transfer_latency_table(
                space, args.target, source=args.source, shots=args.shots or 20, lut=args.lut, progress=progress, **protocol
            )
            table, path = transfer.table, str(transfer.path)
        elif args.build_lut:
            built = nascomp.build_latency_table(
                space, args.target, lut=args.lut, calibrate=args.calibrate, fit=args.fit, progress=progress, **protocol
            )
            table, path = built.table, str(built.path)
        else:
            path = args.lut or str(lut_path(space.name, parse_target(args.target).label, protocol["runtime"], protocol["precision"]))
            if not Path(path).is_file():
                raise NascompError(f"no lookup table at {path}; build it with --build-lut")
            table = read_json(path)
        summary = {
            "lut": str(path),
            "target": table["target"],
            "entries": len(table["entries"]),
            "protocol": table["protocol"],
            "fit": {k: v for k, v in (table.get("fit") or {}).items() if k not in ("calibration", "loo_weights")},
            "power": table.get("power"),
            "build_seconds": table.get("build_seconds"),
            "transfer": table.get("transfer"),
        }
        if transfer is not None:
            summary["shots_loo_within_10pct"] = transfer.loo_within_10pct
            summary["interval_method"] = transfer.interval_method
        if args.validate is None:  # a full build's 12 calibration subnets give jackknife+ intervals that cover unreliably
            # (benchmarks/bench_predictor.md); 25 more make them split-conformal
            args.validate = 25 if args.build_lut and not args.source else 0
        if args.validate:
            result = nascomp.validate_latency_table(
                space, args.target, lut=path, n=args.validate, seed=args.seed + 1000, level=args.level, progress=progress
            )
            summary["validation"] = {k: v for k, v in result.to_dict().items() if k != "rows"}
    if args.json:
        print_json(summary)
        return 0
    out = Console()
    fit = summary["fit"]
    source = summary.get("transfer")
    what = (
        f"transferred from {source['source_path']} ({source['source_target']}) with {source['shots']} subnets measured on {table['target']}"
        if source
        else f"{summary['entries']} layer configurations of {space.name} on {table['target']}"
    )
    out.print(f"lookup table {path}: {what}")
    p = table["protocol"]
    out.print(
        f"  protocol: {p['runtime']} {p['precision']}, {p['threads']} thread(s), cores {p['cores']}, {p['timer']} timer, "
        f"{p['warmup']} warm-up + {p['repeat']} runs, {p['resolution']} px"
        + (f", reference probe ({table['probe']['reference_ms']:.2f} ms)" if p.get("probe") else "")
    )
    if fit and fit.get("weights"):
        terms = " + ".join(f"{w:.3f} x {n}" for n, w in zip(fit["names"], fit["weights"]) if n not in ("layers", "bias"))
        out.print(
            f"  fit: predicted = {terms} {fit['weights'][-2]:+.4f} ms x layers {fit['weights'][-1]:+.3f} ms ({fit['method']}, "
            f"penalty {fit.get('penalty')}, {len((table.get('fit') or {}).get('calibration', []))} subnets)"
        )
    elif fit:
        out.print(
            f"  fit: predicted = {fit['scale']:.4f} x sum + {fit['offset_ms']:.3f} ms ({fit['method']}, "
            f"{len((table.get('fit') or {}).get('calibration', []))} calibration subnets)"
        )
    if "shots_loo_within_10pct" in summary:
        out.print(
            f"  shots: {summary['shots_loo_within_10pct']:.0%} within ±10 % when each is left out of the fit; "
            f"{summary['build_seconds']:.0f} s of profiling; intervals: {summary['interval_method']}"
        )
    if "validation" in summary:
        v = summary["validation"]
        rho = f", Spearman {v['spearman']:.2f}" if v.get("spearman") is not None else ""
        out.print(
            f"  accuracy: {v['within_tolerance']:.1%} of {v['subnets']} random subnets within ±{v['tolerance']:.0%} of measured, "
            f"{v['within_5pct']:.1%} within ±5 % (mean |error| {v['mean_abs_error']:.1%}, max {v['max_abs_error']:.1%}{rho})"
        )
        iv = v["interval"]
        if iv["coverage"] is not None:
            out.print(f"  intervals ({iv['method']}): {iv['coverage']:.1%} of them covered the measurement (nominal {iv['level']:.0%})")
    return 0

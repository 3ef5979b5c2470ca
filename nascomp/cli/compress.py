"""`nascomp compress MODEL (--checkpoint PATH | --pretrained) --method METHOD[,int8] [--budget B] --data D --out DIR`.

Methods: `shrink --budget B` (a trained Swin's best sub-network under a params, MACs, latency or energy budget:
fewer blocks, heads, MLP units and embedding channels, found by search with inherited weights, then distilled);
`minivit` (consecutive layers share weights, `--share`; cuts parameters, not compute); `drop-blocks --keep 2,2,1,1`
(the naive baseline); `torch-pruning --budget B` (the peer: torch-pruning to a params / MACs budget); `int8`
(int8 in the deployment runtime, `--runtime onnxruntime|executorch`, `--int8 static|dynamic`, accuracy and latency
measured in that runtime). Chains end in int8: `shrink,int8`, `minivit,int8`. `auto --budget B` runs every method
and chain that can meet B, in each `--runtime` given (default onnxruntime), and writes one table, a Pareto plot and the
best as its runtime's file. Students are trained with distillation from the uncompressed model (or
`--teacher`). `--dry-run` prints params, MACs (and shrink's chosen sub-network) without training. The output
directory loads as MODEL everywhere (`nascomp flops/export/profile DIR`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nascomp.cli.common import (
    add_data_args,
    add_model_args,
    add_train_args,
    data_options,
    int_or_tuple,
    json_object,
    model_overrides,
    print_json,
    recipe_overrides,
    refuse_ignored,
)
from nascomp.cli.distill_args import add_distill_args, distill_options
from nascomp.compression.registry import COMPRESSORS, DEPLOY_METHODS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compress",
        help="compress a trained Swin or ViT/DeiT (shrink to a budget, MiniViT, drop-blocks, int8) with distillation",
        description=__doc__,
    )
    p.add_argument("model", metavar="MODEL", help="timm Swin/ViT/DeiT name (with --checkpoint or --pretrained) or saved model directory")
    p.add_argument(
        "--method",
        default="minivit",
        help=f"one of {', '.join(COMPRESSORS.names())}, or a method followed by "
        f"{' / '.join(DEPLOY_METHODS)} (e.g. shrink,int8); default: %(default)s",
    )
    p.add_argument("--budget", help="shrink, torch-pruning, auto: the limit to meet, e.g. 2gflops (= 2e9 MACs), 10mparams, 15ms@mobile-cpu")
    p.add_argument("--out", help="run directory for the compressed model (checkpoints, model, metrics.json)")
    p.add_argument("--dry-run", action="store_true", help="print the structure, params and MACs before and after; no training")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    g = p.add_argument_group("MiniViT")
    g.add_argument(
        "--share",
        help="consecutive layers per shared weight set: one number, or one per stage (default: the paper's "
        "schedules: Swin stages of <= 6 blocks share one set, deeper stages pairs; ViT/DeiT pairs)",
    )
    g.add_argument(
        "--init",
        choices=["teacher", "random"],
        default="teacher",
        help="teacher: shared weights from the first block of each group, own norms, transforms start as no-ops; "
        "random: the paper's from-scratch student (default: %(default)s)",
    )
    g.add_argument("--no-head-transform", action="store_true", help="no head mixing around the softmax")
    g.add_argument("--no-mlp-transform", action="store_true", help="Swin: no LayerNorm + depth-wise conv before the MLP")
    g.add_argument("--keep", type=int_or_tuple, help="drop-blocks: blocks kept per stage, e.g. 1,1,1,1")
    s = p.add_argument_group("shrink")
    s.add_argument("--widths", type=float_list, help="fractions of each width offered (default 0.5,0.625,0.75,0.875,1)")
    s.add_argument("--population", type=int, help="evolutionary search population (default 24)")
    s.add_argument("--generations", type=int, help="evolutionary search generations (default 8)")
    s.add_argument("--score-images", type=int, help="validation images that score a candidate (default 2000)")
    s.add_argument("--calib-images", type=int, help="training images that measure importance / calibrate int8 (default 256)")
    s.add_argument("--lut", help="latency budgets: the lookup table file of the model's sub-networks (default: nascomp's cache)")
    s.add_argument(
        "--probe", action="store_true", help="latency budgets: time a reference block before each layer (drifting shared machines)"
    )
    q = p.add_argument_group("int8 and latency")
    q.add_argument(
        "--int8", choices=["static", "dynamic"], help="static: calibrated QDQ, per-channel weights (default); dynamic: no calibration"
    )
    q.add_argument(
        "--calibration", choices=["minmax", "percentile", "entropy"], help="static int8: how activation ranges are set (default minmax)"
    )
    q.add_argument(
        "--runtime",
        help="where the model is deployed and measured: onnxruntime (default) or executorch (ExecuTorch, XNNPACK); "
        "auto: several, comma-separated",
    )
    q.add_argument(
        "--target", help="where int8 and params/MACs-budget results are timed (default mobile-cpu; a latency budget names its own)"
    )
    q.add_argument("--timer", choices=["wall", "thread-cpu"], help="latency timer; thread-cpu (1 thread) on shared machines (default wall)")
    q.add_argument("--threads", type=int, help="runtime threads for latency (default: the target's)")
    t = p.add_argument_group("teacher")
    t.add_argument(
        "--teacher", metavar="MODEL", help="distill from this model instead of the uncompressed MODEL (saved directory or timm name)"
    )
    t.add_argument("--teacher-checkpoint", help="weights for a --teacher given by timm name")
    t.add_argument("--teacher-kwargs", type=json_object, help="timm keyword arguments for a --teacher given by name, as JSON")
    add_distill_args(p)
    add_data_args(p)
    add_model_args(p)
    add_train_args(p, epochs=10, lr=5e-4)
    p.set_defaults(func=run)


def float_list(text: str) -> list[float]:
    try:
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


_STUDENTS = ("minivit", "drop-blocks", "shrink", "torch-pruning", "auto")
_SEARCH = ("shrink", "auto")
_INT8 = ("int8", "auto")
_ACCEPTS = {
    "budget": ("shrink", "torch-pruning", "auto"),
    "widths": _SEARCH,
    "population": _SEARCH,
    "generations": _SEARCH,
    "score_images": _SEARCH,
    "lut": _SEARCH,
    "probe": _SEARCH,
    "calib_images": (*_SEARCH, "int8"),
    "share": ("minivit",),
    "no_head_transform": ("minivit",),
    "no_mlp_transform": ("minivit",),
    "keep": ("drop-blocks",),
    "int8": _INT8,
    "calibration": _INT8,
    "teacher": _STUDENTS,
    "teacher_checkpoint": _STUDENTS,
    "teacher_kwargs": _STUDENTS,
}


def _method_options(args: argparse.Namespace) -> dict:
    steps = [s.strip() for s in args.method.split(",")]
    refuse_ignored(args, steps, _ACCEPTS)
    options = {
        "budget": args.budget,
        "widths": args.widths,
        "population": args.population,
        "generations": args.generations,
        "score_images": args.score_images,
        "calib_images": args.calib_images,
        "lut": args.lut,
        "probe": args.probe or None,
        "int8": args.int8,
        "calibration": args.calibration,
        "target": args.target,
        "timer": args.timer,
        "threads": args.threads,
    }
    if args.runtime:
        runtimes = [r.strip() for r in args.runtime.split(",") if r.strip()]
        options["runtimes" if "auto" in steps else "runtime"] = runtimes if "auto" in steps else ",".join(runtimes)
    if "minivit" in steps:
        options.update(share=args.share, head_transform=not args.no_head_transform, mlp_transform=not args.no_mlp_transform)
    if "drop-blocks" in steps:
        options["keep"] = args.keep
    return {k: v for k, v in options.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    import nascomp

    overrides = {} if Path(args.model).is_dir() else model_overrides(args)
    result = nascomp.compress(
        args.model,
        args.method,
        None if args.dry_run else args.data,
        args.out,
        options=_method_options(args),
        init=args.init,
        teacher=args.teacher,
        teacher_checkpoint=args.teacher_checkpoint,
        teacher_kwargs=args.teacher_kwargs,
        distill=args.distill,
        distill_options=distill_options(args),
        checkpoint=args.checkpoint,
        pretrained=args.pretrained,
        dry_run=args.dry_run,
        resume=args.resume,
        quiet=args.quiet,
        device=args.device,
        overwrite=args.overwrite,
        logger=args.logger,
        data_options=data_options(args),
        **recipe_overrides(args),
        **overrides,
    )
    summary = result.summary
    if args.dry_run:
        _print_summary(summary, args.json)
    elif result.table is not None:
        _print_table(result, args.json)
    elif args.json:
        metrics = result.metrics
        assert metrics is not None  # a run that trained (not a dry run) has metrics
        print_json(
            {
                **summary,
                "val": metrics.get("val"),
                "test": metrics.get("test"),
                "train_seconds": metrics.get("train_seconds"),
                "latency": metrics.get("latency"),
                "int8": metrics.get("int8"),
                "out": args.out,
            }
        )
    elif not args.quiet:
        _print_summary(summary, False)
        metrics = result.metrics
        assert metrics is not None  # a run that trained (not a dry run) has metrics
        if "val" in metrics:
            print(f"val top-1 {metrics['val']['top1']:.2f}%  test top-1 {metrics['test']['top1']:.2f}%  -> {args.out}/metrics.json")
        if metrics.get("latency"):
            print(f"latency {metrics['latency']['latency_ms']:.3f} ms on {metrics['latency']['target']}")
        if metrics.get("int8"):
            q = metrics["int8"]
            print(
                f"int8 ({q['mode']}) in {q['measured_in'].split(',')[0]}: test top-1 {q['test']['top1']:.2f}%, latency "
                f"{q['latency']['latency_ms']:.3f} ms on {q['latency']['target']} (fp32 {q['fp32_latency']['latency_ms']:.3f} ms) -> "
                f"{q['file']}"
            )
    return 0


def _print_table(result, as_json: bool) -> None:
    if as_json:
        print_json({**result.summary, "onnx": str(result.onnx) if result.onnx else None})
        return
    print(f"methods under {result.summary['budget']['text']} (latency on {result.summary['target']}):")
    for r in result.table:
        meets = {True: "meets", False: "misses", None: ""}[r["meets_budget"]]
        print(f"  {r['name']:<22} test top-1 {r['test_top1']:6.2f}%  {r['latency_ms']:8.3f} ms  {r['size_mb']:7.2f} MB  {meets}")
    print(f"best: {result.summary['best']} -> {result.onnx}; table, pareto.png in {result.out}")


def _si(n: int) -> str:
    return f"{n / 1e9:.3f} G" if n >= 1e9 else f"{n / 1e6:.2f} M"


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    print(f"{summary['model']} -> {summary['method']} ({summary.get('family', 'model')}, {summary['resolution']} px)")
    print(f"  params  {summary['params_before'] / 1e6:.2f} M -> {summary['params_after'] / 1e6:.2f} M")
    print(f"  MACs    {_si(summary['macs_before'])} -> {_si(summary['macs_after'])}  (MACs = what papers call FLOPs)")
    if "blocks_after" in summary:
        b0, b1 = summary["blocks_before"], summary["blocks_after"]
        print(f"  blocks  {b1['unique']} unique of {b1['total']} layers (before: {b0['unique']} of {b0['total']})")
    if "arch" in summary:
        print(
            f"  depths  {[len(s['blocks']) for s in summary['arch']['stages']]}, widths "
            f"{[s['embed_dim'] for s in summary['arch']['stages']]}"
        )
    check = summary.get("predicted_vs_measured")
    if check:
        interval = f"{check['level']:.0%} interval {check['low']:.3f}-{check['high']:.3f}" if check["low"] is not None else "no interval"
        measured = (
            f", measured {check['measured']:.3f} {check['unit']} ({check['error']:+.1%})"
            if check["measured"] is not None
            else " (dry run: not measured)"
        )
        straddle = "; the interval straddles the budget" if check["straddles_limit"] else ""
        print(f"  {summary['budget']['metric']} predicted {check['predicted']:.3f} {check['unit']} ({interval}){measured}{straddle}")
    if "distill" in summary:
        print(f"  distill {summary['distill']}")

"""`nascomp compress MODEL (--checkpoint PATH | --pretrained) --method minivit --data D --out DIR`.

MiniViT: consecutive layers of a timm Swin or ViT/DeiT share their weights (`--share`), each layer keeps
its norms and gains small transforms, and the student is trained with weight distillation from the
uncompressed model (or `--teacher`). `--method drop-blocks --keep 1,1,1,1` is the naive baseline (keep the
first blocks of each stage). `--dry-run` prints params, MACs and unique vs total blocks without training.
The output directory loads as MODEL everywhere (`nascomp flops/export/profile DIR`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nascomp.cli.common import (
    add_data_args, add_model_args, add_train_args, data_options, int_or_tuple, json_object, model_overrides, print_json,
    recipe_overrides,
)
from nascomp.cli.distill_args import add_distill_args, distill_options
from nascomp.compression.registry import COMPRESSORS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compress", help="compress a trained Swin or ViT/DeiT (MiniViT weight multiplexing, drop-blocks) with distillation",
                              description=__doc__)
    p.add_argument("model", metavar="MODEL", help="timm Swin/ViT/DeiT name (with --checkpoint or --pretrained) or saved model directory")
    p.add_argument("--method", choices=COMPRESSORS.names(), default="minivit", help="default: %(default)s")
    p.add_argument("--out", help="run directory for the compressed model (checkpoints, model, metrics.json)")
    p.add_argument("--dry-run", action="store_true", help="print the structure, params and MACs before and after; no training")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    g = p.add_argument_group("MiniViT")
    g.add_argument("--share", help="consecutive layers per shared weight set: one number, or one per stage (default: the paper's "
                                   "schedules: Swin stages of <= 6 blocks share one set, deeper stages pairs; ViT/DeiT pairs)")
    g.add_argument("--init", choices=["teacher", "random"], default="teacher",
                   help="teacher: shared weights from the first block of each group, own norms, transforms start as no-ops; "
                        "random: the paper's from-scratch student (default: %(default)s)")
    g.add_argument("--no-head-transform", action="store_true", help="no head mixing around the softmax")
    g.add_argument("--no-mlp-transform", action="store_true", help="Swin: no LayerNorm + depth-wise conv before the MLP")
    g.add_argument("--keep", type=int_or_tuple, help="drop-blocks: blocks kept per stage, e.g. 1,1,1,1")
    t = p.add_argument_group("teacher")
    t.add_argument("--teacher", metavar="MODEL", help="distill from this model instead of the uncompressed MODEL (saved directory or timm name)")
    t.add_argument("--teacher-checkpoint", help="weights for a --teacher given by timm name")
    t.add_argument("--teacher-kwargs", type=json_object, default={}, help="timm keyword arguments for a --teacher given by name, as JSON")
    add_distill_args(p)
    add_data_args(p)
    add_model_args(p)
    add_train_args(p, epochs=10, lr=5e-4)
    p.set_defaults(func=run)


def _method_options(args: argparse.Namespace) -> dict:
    if args.method == "minivit":
        return {"share": args.share, "head_transform": not args.no_head_transform, "mlp_transform": not args.no_mlp_transform}
    if args.method == "drop-blocks":
        return {"keep": args.keep}
    return {}


def run(args: argparse.Namespace) -> int:
    import nascomp

    overrides = {} if Path(args.model).is_dir() else model_overrides(args)
    result = nascomp.compress(
        args.model, args.method, None if args.dry_run else args.data, args.out, options=_method_options(args), init=args.init,
        teacher=args.teacher, teacher_checkpoint=args.teacher_checkpoint, teacher_kwargs=args.teacher_kwargs, distill=args.distill, distill_options=distill_options(args),
        checkpoint=args.checkpoint, pretrained=args.pretrained, dry_run=args.dry_run, resume=args.resume, quiet=args.quiet, device=args.device,
        data_options=data_options(args), **recipe_overrides(args), **overrides,
    )
    summary = result.summary
    if args.dry_run:
        _print_summary(summary, args.json)
    elif args.json:
        print_json({**summary, "val": result.metrics["val"], "test": result.metrics.get("test"),
                    "train_seconds": result.metrics["train_seconds"], "out": args.out})
    elif not args.quiet:
        _print_summary(summary, False)
        print(f"val top-1 {result.metrics['val']['top1']:.2f}%  test top-1 {result.metrics['test']['top1']:.2f}%  -> {args.out}/metrics.json")
    return 0


def _si(n: int) -> str:
    return f"{n / 1e9:.3f} G" if n >= 1e9 else f"{n / 1e6:.2f} M"


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    b0, b1 = summary["blocks_before"], summary["blocks_after"]
    print(f"{summary['model']} -> {summary['method']} ({summary['family']}, {summary['resolution']} px)")
    print(f"  params  {summary['params_before'] / 1e6:.2f} M -> {summary['params_after'] / 1e6:.2f} M  ({summary['params_ratio']:.1%})")
    print(f"  MACs    {_si(summary['macs_before'])} -> {_si(summary['macs_after'])}  (MACs = what papers call FLOPs)")
    print(f"  blocks  {b1['unique']} unique of {b1['total']} layers (before: {b0['unique']} of {b0['total']})")
    print(f"  distill {summary['distill']}")

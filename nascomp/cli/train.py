"""`nascomp train MODEL --data D --epochs N --out DIR [--distill srd|kd|minivit --teacher MODEL]`."""

from __future__ import annotations

import argparse

from nascomp.cli.common import (
    add_data_args,
    add_model_args,
    add_train_args,
    data_options,
    model_overrides,
    print_json,
    recipe_overrides,
)
from nascomp.cli.distill_args import add_distill_args, distill_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a timm model or arch JSON (optionally distilling from a teacher)", description=__doc__)
    p.add_argument("model", metavar="MODEL", help="timm model name, arch JSON, or saved model directory")
    p.add_argument("--out", required=True, help="run directory (checkpoints, model, metrics.json)")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    add_data_args(p)
    add_model_args(p)
    add_train_args(p)
    add_distill_args(p, default="none")
    t = p.add_argument_group("teacher (for --distill)")
    t.add_argument("--teacher", metavar="MODEL", help="trained teacher: saved model directory, or timm name with --teacher-checkpoint")
    t.add_argument("--teacher-checkpoint", help="weights for a --teacher given by timm name")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import nascomp
    from nascomp.core.errors import NascompError

    if args.distill != "none" and not args.teacher:
        raise NascompError(
            f"--distill {args.distill} needs --teacher MODEL (a directory saved by `nascomp train`, or a timm name "
            "with --teacher-checkpoint)"
        )
    if args.distill == "none" and (args.teacher or args.teacher_checkpoint or distill_options(args)):
        given = [f for f, v in (("--teacher", args.teacher), ("--teacher-checkpoint", args.teacher_checkpoint)) if v] + [
            f"--{k.replace('_', '-')}" for k in distill_options(args)
        ]
        raise NascompError(
            f"{', '.join(given)} only apply with --distill srd, kd or minivit (training from a teacher); add --distill or drop them"
        )
    common = dict(
        model_kwargs=model_overrides(args),
        data_options=data_options(args),
        checkpoint=args.checkpoint,
        pretrained=args.pretrained,
        resume=args.resume,
        quiet=args.quiet,
        device=args.device,
        overwrite=args.overwrite,
        logger=args.logger,
        **recipe_overrides(args),
    )
    if args.distill == "none":
        result = nascomp.train(args.model, args.data, args.out, **common)
    else:
        result = nascomp.distill(
            args.model,
            args.teacher,
            args.data,
            args.out,
            method=args.distill,
            options=distill_options(args),
            teacher_checkpoint=args.teacher_checkpoint,
            **common,
        )
    metrics = result.metrics
    if args.json:
        print_json({k: metrics[k] for k in ("val", "test", "params", "train_seconds") if k in metrics})
    elif not args.quiet:
        print(f"val top-1 {metrics['val']['top1']:.2f}%  test top-1 {metrics['test']['top1']:.2f}%  -> {args.out}/metrics.json")
    return 0

"""`nascomp train MODEL --data D --epochs N --out DIR [--distill srd|kd|... --teacher MODEL]`."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nascomp.commands.common import (
    add_data_args, add_model_args, add_train_args, data_from_args, model_overrides_from_args, print_json,
    train_config_from_args,
)
from nascomp.commands.compress import add_distill_args, distill_options_from_args
from nascomp.compress.distill import build_distiller, distillation_step
from nascomp.errors import NascompError
from nascomp.models import model_input_size, resolve_model
from nascomp.train import fit, seed_everything


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a timm model or arch JSON", description=__doc__)
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


def _teacher(args: argparse.Namespace, num_classes: int, in_chans: int, resolution: int):
    """The frozen teacher --distill needs, checked against the data and the student's inputs."""
    if not args.teacher:
        raise NascompError(f"--distill {args.distill} needs --teacher MODEL (a directory saved by `nascomp train`, or a timm name with --teacher-checkpoint)")
    teacher, _ = resolve_model(args.teacher, checkpoint=args.teacher_checkpoint)
    if getattr(teacher, "num_classes", num_classes) != num_classes:
        raise NascompError(f"teacher {args.teacher} predicts {teacher.num_classes} classes but the data has {num_classes}")
    try:
        teacher.eval()(torch.zeros(1, in_chans, resolution, resolution))
    except (RuntimeError, AssertionError, ValueError) as e:
        raise NascompError(f"teacher {args.teacher} cannot take the student's {in_chans}x{resolution}x{resolution} inputs ({e}); "
                           "train the teacher at the same input size") from None
    return teacher


def run(args: argparse.Namespace) -> int:
    data = data_from_args(args, resolution=args.img_size or 224)
    seed_everything(args.seed)  # the initial weights belong to the seed too
    model, spec = resolve_model(args.model, checkpoint=args.checkpoint, pretrained=args.pretrained, **model_overrides_from_args(args, None if Path(args.model).is_dir() else data.num_classes))
    in_chans, resolution = model_input_size(model)
    cfg = train_config_from_args(args, resolution, in_chans)
    if args.distill == "none":
        metrics = fit(model, data, cfg, args.out, spec=spec, resume=args.resume, quiet=args.quiet, device=args.device)
    else:
        teacher = _teacher(args, data.num_classes, in_chans, resolution)
        distiller = build_distiller(args.distill, model, teacher, **distill_options_from_args(args))
        metrics = fit(
            model, data, cfg, args.out, spec=spec, step_fn=distillation_step(distiller), extra_modules={"distiller": distiller},
            resume=args.resume, quiet=args.quiet, device=args.device, metadata={"distill": {"teacher": args.teacher, **distiller.describe()}},
        )
        distiller.close()
    summary = {k: metrics[k] for k in ("val", "test", "params", "train_seconds") if k in metrics}
    if args.json:
        print_json(summary)
    elif not args.quiet:
        print(f"val top-1 {metrics['val']['top1']:.2f}%  test top-1 {metrics['test']['top1']:.2f}%  -> {args.out}/metrics.json")
    return 0

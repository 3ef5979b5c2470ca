"""`nascomp train MODEL --data D --epochs N --out DIR`."""

from __future__ import annotations

import argparse
from pathlib import Path

from nascomp.commands.common import (
    add_data_args, add_model_args, add_train_args, data_from_args, model_overrides_from_args, print_json,
    train_config_from_args,
)
from nascomp.io import ensure_writable_dir
from nascomp.models import model_input_size, resolve_model
from nascomp.train import fit


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a timm model or arch JSON", description=__doc__)
    p.add_argument("model", metavar="MODEL", help="timm model name, arch JSON, or saved model directory")
    p.add_argument("--out", required=True, help="run directory (checkpoints, model, metrics.json)")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    add_data_args(p)
    add_model_args(p)
    add_train_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    ensure_writable_dir(args.out)
    probe_res = args.img_size or 224
    data = data_from_args(args, resolution=probe_res)
    model, spec = resolve_model(args.model, checkpoint=args.checkpoint, pretrained=args.pretrained, **model_overrides_from_args(args, None if Path(args.model).is_dir() else data.num_classes))
    in_chans, resolution = model_input_size(model)
    metrics = fit(model, data, train_config_from_args(args, resolution, in_chans), args.out, spec=spec, resume=args.resume, quiet=args.quiet, device=args.device)
    summary = {k: metrics[k] for k in ("val", "test", "params", "train_seconds") if k in metrics}
    if args.json:
        print_json(summary)
    elif not args.quiet:
        print(f"val top-1 {metrics['val']['top1']:.2f}%  test top-1 {metrics['test']['top1']:.2f}%  -> {args.out}/metrics.json")
    return 0

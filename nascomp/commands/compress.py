"""`nascomp compress MODEL (--checkpoint PATH | --pretrained) --method minivit --data D --out DIR`.

MiniViT: consecutive layers of a timm Swin or ViT/DeiT share their weights (`--share`), each layer keeps
its norms and gains small transforms, and the student is trained with weight distillation from the
uncompressed model (or `--teacher`). `--method drop-blocks --keep 1,1,1,1` is the naive baseline (keep the
first blocks of each stage). `--dry-run` prints params, MACs and unique vs total blocks without training.
The output directory loads as MODEL everywhere (`nascomp flops/export/profile DIR`).
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from nascomp.commands.common import (
    add_data_args, add_model_args, add_train_args, data_from_args, int_or_tuple, model_overrides_from_args, print_json,
    train_config_from_args,
)
from nascomp.compress.blocks import drop_blocks, model_family, stage_depths
from nascomp.compress.distill import DISTILLERS, build_distiller, distillation_step, parse_layer_pairs
from nascomp.compress.minivit import MiniViTConfig, default_share, minivit_spec, multiplex, parse_share, sharing_summary
from nascomp.errors import NascompError
from nascomp.io import ensure_writable_dir, load_state_dict_file
from nascomp.models import TIMM_BUILDER, build_from_spec, load_weights_into, model_input_size, resolve_model
from nascomp.profile.cost import count_cost
from nascomp.train import fit, seed_everything

__all__ = ["register", "run", "add_distill_args", "distill_options_from_args"]

METHODS = ("minivit", "drop-blocks")


def add_distill_args(p: argparse.ArgumentParser, default: str = "minivit") -> None:
    g = p.add_argument_group("distillation")
    g.add_argument("--distill", choices=sorted(DISTILLERS), default=default,
                   help="minivit: logits + Q/K/V relations + hidden relations (MiniViT's weight distillation); "
                        "kd: logits only; srd: student features through the teacher's classifier (SRD); "
                        "none: ground truth only (default: %(default)s)")
    g.add_argument("--alpha", type=float, help="weight of the ground-truth loss; 1 - alpha weighs the logit loss (default 0)")
    g.add_argument("--temperature", type=float, help="logit distillation temperature (default 1)")
    g.add_argument("--qkv-weight", type=float, help="weight of the Q/K/V relation loss (default 1)")
    g.add_argument("--hidden-weight", type=float, help="weight of the hidden-state relation loss (default 0.1)")
    g.add_argument("--relation-heads", type=int, help="relation heads A_r of the Q/K/V loss (default 1)")
    g.add_argument("--hidden-scale", type=float, help="factor of the hidden relation loss (default 49, MiniViT's 7x7)")
    g.add_argument("--layer-pairs", type=parse_layer_pairs, metavar="S:T,...",
                   help="student:teacher global layer indices (default: every second student layer, same relative depth and shift)")
    g.add_argument("--srd-weight", type=float, help="srd: weight of the SRD loss (logit MSE + feature term; default 1)")
    g.add_argument("--feature-weight", type=float, help="srd: weight of the pooled-feature MSE inside the SRD loss (default 1)")
    g.add_argument("--kd-weight", type=float, help="srd: weight of an extra T^2-scaled KL to the teacher (default 0; T from --temperature, default 4)")


def distill_options_from_args(args: argparse.Namespace) -> dict:
    keys = ("alpha", "temperature", "qkv_weight", "hidden_weight", "relation_heads", "hidden_scale", "layer_pairs",
            "srd_weight", "feature_weight", "kd_weight")
    return {k: getattr(args, k, None) for k in keys}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("compress", help="compress a Swin or ViT/DeiT with MiniViT weight multiplexing + distillation", description=__doc__)
    p.add_argument("model", metavar="MODEL", help="timm Swin/ViT/DeiT name (with --checkpoint or --pretrained) or saved model directory")
    p.add_argument("--method", choices=METHODS, default="minivit", help="default: %(default)s")
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
    t.add_argument("--teacher-kwargs", type=json.loads, default={}, help="timm keyword arguments for a --teacher given by name, as JSON")
    add_distill_args(p)
    add_data_args(p)
    add_model_args(p)
    add_train_args(p, epochs=10, lr=5e-4)
    p.set_defaults(func=run)


def _load_base(args: argparse.Namespace):
    """The uncompressed model and its spec, with a checkpoint mismatch explained in terms of MODEL's options."""
    is_dir = Path(args.model).is_dir()
    model, spec = resolve_model(args.model, pretrained=args.pretrained, **({} if is_dir else model_overrides_from_args(args)))
    if args.checkpoint:
        try:
            load_weights_into(model, load_state_dict_file(args.checkpoint), args.checkpoint)
        except NascompError as e:
            raise NascompError(
                f"{e}. The checkpoint must hold weights of {args.model} built with the same options it was trained with "
                "(e.g. --num-classes, --img-size, --patch-size, --embed-dim, --depths, --num-heads, --window-size, --in-chans)"
            ) from None
    return model, spec


def _student(args: argparse.Namespace, model, spec: dict):
    seed_everything(args.seed)  # a random-init student (and random transforms) must be reproducible
    base = copy.deepcopy(model) if args.init == "teacher" else build_from_spec(spec)
    if args.method == "minivit":
        share = parse_share(args.share, stage_depths(model)) if args.share else default_share(model)
        config = MiniViTConfig(share, head_transform=not args.no_head_transform, mlp_transform=not args.no_mlp_transform)
        multiplex(base, config, transform_init="identity" if args.init == "teacher" else "random")
        return base, minivit_spec(spec, config), config.to_dict()
    if args.keep is None:
        raise NascompError("--method drop-blocks needs --keep N[,N...]: how many leading blocks of each stage to keep")
    if spec.get("builder") != TIMM_BUILDER:
        raise NascompError("--method drop-blocks works on timm models (a timm name or a directory saved from one)")
    keep = [args.keep] * len(stage_depths(model)) if isinstance(args.keep, int) else list(args.keep)
    drop_blocks(base, keep)
    depth_key = "depths" if model_family(model) == "swin" else "depth"
    student_spec = copy.deepcopy(spec)
    student_spec["kwargs"][depth_key] = keep if depth_key == "depths" else keep[0]
    return base, student_spec, {"keep": keep}


def _blocks(model) -> dict:
    s = sharing_summary(model)
    return {"total": s["total_blocks"], "unique": s["unique_blocks"], "per_stage": s["per_stage"]}


def run(args: argparse.Namespace) -> int:
    if not args.dry_run:
        if not args.out:
            raise NascompError("--out DIR is required (or use --dry-run to only print the structure)")
        ensure_writable_dir(args.out)
        if not (Path(args.model).is_dir() or args.checkpoint or args.pretrained):
            raise NascompError(
                "compression starts from trained weights: pass --checkpoint PATH (timm layout, .safetensors or .pth), "
                "--pretrained (online), or a model directory saved by `nascomp train` as MODEL"
            )
    model, spec = _load_base(args)
    family = model_family(model)
    in_chans, resolution = model_input_size(model)
    student, student_spec, structure = _student(args, model, spec)
    teacher = model
    if args.teacher:
        teacher, _ = resolve_model(args.teacher, checkpoint=args.teacher_checkpoint, **({} if Path(args.teacher).is_dir() else args.teacher_kwargs))
        if model_input_size(teacher) != (in_chans, resolution) or getattr(teacher, "num_classes", None) != getattr(model, "num_classes", None):
            raise NascompError(
                f"--teacher {args.teacher} takes {model_input_size(teacher)} (channels, px) and predicts {getattr(teacher, 'num_classes', '?')} "
                f"classes, but {args.model} takes {(in_chans, resolution)} and predicts {getattr(model, 'num_classes', '?')}; they must agree"
            )
    before, after = count_cost(model, resolution, in_chans), count_cost(student, resolution, in_chans)
    distiller = build_distiller(args.distill, student, teacher, **distill_options_from_args(args))
    summary = {
        "model": args.model, "method": args.method, "family": family, "resolution": resolution, "in_chans": in_chans,
        "params_before": before.params, "params_after": after.params, "params_ratio": round(after.params / before.params, 4),
        "macs_before": before.macs, "macs_after": after.macs,
        "gmacs_before": round(before.macs / 1e9, 4), "gmacs_after": round(after.macs / 1e9, 4),
        "convention": "MACs = multiply-accumulates (what papers call FLOPs); FLOPs = 2 x MACs; at the model's resolution",
        "blocks_before": _blocks(model), "blocks_after": _blocks(student), "init": args.init, **structure,
        "teacher": args.teacher or args.model, "distill": distiller.describe(),
    }
    if args.dry_run:
        distiller.close()
        _print_summary(summary, args.json)
        return 0
    data = data_from_args(args, resolution=resolution)
    head = getattr(model, "num_classes", data.num_classes)
    if head != data.num_classes:
        raise NascompError(
            f"{args.model} predicts {head} classes but {args.data} has {data.num_classes}: compress a model trained on this "
            f"dataset (fine-tune it first with `nascomp train {args.model} --pretrained --data {args.data}`), or pass --num-classes "
            "if the checkpoint was trained with it"
        )
    metrics = fit(
        student, data, train_config_from_args(args, resolution, in_chans), args.out, spec=student_spec,
        step_fn=distillation_step(distiller), extra_modules={"distiller": distiller}, resume=args.resume, quiet=args.quiet,
        metadata={"compress": summary}, device=args.device,
    )
    distiller.close()
    result = {**summary, "val": metrics["val"], "test": metrics.get("test"), "train_seconds": metrics["train_seconds"], "out": args.out}
    if args.json:
        print_json(result)
    elif not args.quiet:
        _print_summary(summary, False)
        print(f"val top-1 {metrics['val']['top1']:.2f}%  test top-1 {metrics['test']['top1']:.2f}%  -> {args.out}/metrics.json")
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

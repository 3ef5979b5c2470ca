"""`nascomp adapt MODEL --method kadaptation|lora|lokr|linear|full --data D --out DIR`: parameter-efficient transfer.

MODEL (a timm name, arch JSON or saved model directory; ``--checkpoint`` loads backbone weights) gets a new
head for the target data plus the chosen adapter; only the head and the adapter train. ``--shots K``
trains on K images per class (few-shot). The run directory holds the adapted model (it loads as MODEL
anywhere) and ``merged/``, the same network with the adapter folded into plain timm layers for deployment.
``--dry-run --json`` only reports trainable parameters.
"""

from __future__ import annotations

import argparse

from nascomp.adaptation.kadaptation.config import INITS
from nascomp.adaptation.registry import ADAPTERS
from nascomp.cli.common import (
    add_data_args,
    add_model_args,
    add_train_args,
    data_options,
    model_overrides,
    print_json,
    recipe_overrides,
    refuse_ignored,
    str_list,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "adapt", help="parameter-efficient transfer: KAdaptation, LoRA, LoKr, linear probe, full", description=__doc__
    )
    p.add_argument("model", metavar="MODEL", help="timm model name, arch JSON, or saved model directory (the backbone)")
    p.add_argument("--method", required=True, choices=ADAPTERS.names())
    p.add_argument("--out", help="run directory (required unless --dry-run)")
    p.add_argument("--dry-run", action="store_true", help="build the adapted model and report its parameters; train nothing")
    p.add_argument("--json", action="store_true", help="print the report / final metrics as JSON")
    p.add_argument("--no-merge", action="store_true", help="do not write the merged (deployable) model to OUT/merged")
    g = p.add_argument_group("adapter")
    # method options default to None (the method's own default) so that one the chosen method ignores is refused
    g.add_argument("--targets", type=str_list, help="q,k,v (parts of the fused attn.qkv), proj, fc1, fc2 (default: q,v)")
    g.add_argument("--rank", type=int, help="KAdaptation fast-weight rank / LoRA rank / LoKr rank (default: 1)")
    g.add_argument("--kron-n", type=int, help="KAdaptation: number of Kronecker terms = slow-weight side (default: 32)")
    g.add_argument("--slow-rank", type=int, help="KAdaptation: rank of the shared slow weights, 0 = full n×n (default: 1)")
    g.add_argument("--kron-scale", type=float, help="KAdaptation: scale s of ΔW (default: 160, the public code's)")
    g.add_argument("--no-adapter-bias", action="store_true", help="KAdaptation: no per-layer bias")
    g.add_argument("--delta-dropout", type=float, help="KAdaptation: dropout on ΔW (default 0; paper: 0.5)")
    g.add_argument(
        "--kron-init",
        choices=INITS,
        help="KAdaptation init: paired (default; ΔW = 0, all gradients live), lora (one factor zero), zero (the public code: "
        "ΔW never trains)",
    )
    g.add_argument("--lora-alpha", type=float, help="LoRA/LoKr alpha (default: = rank, i.e. scaling 1)")
    g.add_argument("--lora-dropout", type=float, help="LoRA dropout (default 0)")
    g.add_argument("--lokr-factor", type=int, help="LoKr decompose_factor: left Kronecker factor size (default -1: near √d)")
    g = p.add_argument_group("few-shot")
    g.add_argument("--shots", type=int, help="train on this many images per class, drawn with --seed")
    g.add_argument(
        "--min-epoch-size",
        type=int,
        default=256,
        help="with --shots, repeat the shots until an epoch has at least this many images (default: %(default)s)",
    )
    add_data_args(p, default=None)
    add_model_args(p)
    add_train_args(p, epochs=10, lr=1e-3, batch_size=32)
    p.set_defaults(func=run)


_KRON = ("kadaptation",)
_ACCEPTS = {
    "targets": ("kadaptation", "lora", "lokr"),
    "rank": ("kadaptation", "lora", "lokr"),
    "kron_n": _KRON,
    "slow_rank": _KRON,
    "kron_scale": _KRON,
    "no_adapter_bias": _KRON,
    "delta_dropout": _KRON,
    "kron_init": _KRON,
    "lora_alpha": ("lora", "lokr"),
    "lora_dropout": ("lora",),
    "lokr_factor": ("lokr",),
}


def method_options(args: argparse.Namespace) -> dict:
    """The chosen method's settings given on the command line, in the library's names (`nascomp.adapt` ``options``); an
    option the method ignores is an error naming the methods that take it."""
    refuse_ignored(args, args.method, _ACCEPTS)
    if args.method == "kadaptation":
        given = {
            "n": args.kron_n,
            "rank": args.rank,
            "targets": args.targets,
            "scale": args.kron_scale,
            "dropout": args.delta_dropout,
            "init": args.kron_init,
            "bias": False if args.no_adapter_bias else None,
        }
        if args.slow_rank is not None:
            given["slow_rank"] = args.slow_rank or None  # 0 on the command line: full-rank slow weights
    elif args.method in ("lora", "lokr"):
        given = {
            "rank": args.rank,
            "alpha": args.lora_alpha,
            "targets": args.targets,
            "dropout": args.lora_dropout,
            "decompose_factor": args.lokr_factor,
        }
    else:
        given = {}
    return {k: v for k, v in given.items() if v is not None or k == "slow_rank"}


def run(args: argparse.Namespace) -> int:
    import nascomp

    overrides = {k: v for k, v in model_overrides(args).items() if k != "num_classes"}
    result = nascomp.adapt(
        args.model,
        args.method,
        args.data,
        None if args.dry_run else args.out,
        options=method_options(args),
        data_options=data_options(args),
        num_classes=args.num_classes,
        checkpoint=args.checkpoint,
        pretrained=args.pretrained,
        shots=args.shots,
        min_epoch_size=args.min_epoch_size,
        merge=not args.no_merge,
        dry_run=args.dry_run,
        resume=args.resume,
        quiet=args.quiet,
        device=args.device,
        overwrite=args.overwrite,
        logger=args.logger,
        **recipe_overrides(args),
        **overrides,
    )
    report = result.report
    if args.dry_run:
        if args.json:
            print_json(report)
        else:
            print(
                f"{args.method}: {report['adapter_params']:,} adapter + {report['head_params']:,} head = "
                f"{report['trainable_params']:,} trainable of {report['total_params']:,} ({report['trainable_percent']:.3f}%)"
            )
        return 0
    metrics = result.metrics
    assert metrics is not None  # a run that trained (not a dry run) has metrics
    summary = {**report, "val": metrics["val"], "test": metrics["test"], "train_seconds": metrics["train_seconds"]}
    if "merged" in metrics:
        summary["merged"] = metrics["merged"]
    if args.json:
        print_json(summary)
    elif not args.quiet:
        print(
            f"{args.method}: test top-1 {metrics['test']['top1']:.2f}% with {report['trainable_params']:,} trainable parameters -> "
            f"{args.out}"
        )
    return 0

"""`nascomp adapt MODEL --method kadaptation|lora|lokr|linear|full --data D --out DIR`: parameter-efficient transfer.

MODEL (a timm name, arch JSON or saved model directory; ``--checkpoint`` loads backbone weights) gets a new
head for the target data plus the chosen adapter; only the head and the adapter train. ``--shots K``
trains on K images per class (few-shot). The run directory holds the adapted model (it loads as MODEL
anywhere) and ``merged/``, the same network with the adapter folded into plain timm layers for deployment.
``--dry-run --json`` only reports trainable parameters.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from nascomp.commands.common import (
    add_data_args, add_model_args, add_train_args, data_from_args, model_overrides_from_args, print_json,
    train_config_from_args,
)
from nascomp.compress.adapters import (
    METHODS, adapted_spec, apply_method, count_parameters, head_parameter_names, mark_trainable, merge_method,
)
from nascomp.compress.kadaptation import INITS, KAdaptationConfig
from nascomp.errors import NascompError
from nascomp.io import atomic_write_json, ensure_writable_dir, load_state_dict_file, read_json
from nascomp.models import load_weights_into, model_input_size, resolve_model, save_model
from nascomp.train import fit, seed_everything

__all__ = ["register", "run", "few_shot_subset", "method_options"]

MERGED_DIR = "merged"


def _targets(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("adapt", help="parameter-efficient transfer: KAdaptation, LoRA, LoKr, linear probe, full", description=__doc__)
    p.add_argument("model", metavar="MODEL", help="timm model name, arch JSON, or saved model directory (the backbone)")
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--out", help="run directory (required unless --dry-run)")
    p.add_argument("--dry-run", action="store_true", help="build the adapted model and report its parameters; train nothing")
    p.add_argument("--json", action="store_true", help="print the report / final metrics as JSON")
    p.add_argument("--no-merge", action="store_true", help="do not write the merged (deployable) model to OUT/merged")
    g = p.add_argument_group("adapter")
    g.add_argument("--targets", type=_targets, default=("q", "v"), help="q,k,v (parts of the fused attn.qkv), proj, fc1, fc2 (default: q,v)")
    g.add_argument("--rank", type=int, default=1, help="KAdaptation fast-weight rank / LoRA rank / LoKr rank (default: 1)")
    g.add_argument("--kron-n", type=int, default=32, help="KAdaptation: number of Kronecker terms = slow-weight side (default: 32)")
    g.add_argument("--slow-rank", type=int, default=1, help="KAdaptation: rank of the shared slow weights, 0 = full n×n (default: 1)")
    g.add_argument("--kron-scale", type=float, default=160.0, help="KAdaptation: scale s of ΔW (default: 160, the public code's)")
    g.add_argument("--no-adapter-bias", action="store_true", help="KAdaptation: no per-layer bias")
    g.add_argument("--delta-dropout", type=float, default=0.0, help="KAdaptation: dropout on ΔW (paper: 0.5)")
    g.add_argument("--kron-init", choices=INITS, default="paired",
                   help="KAdaptation init: paired (ΔW = 0, all gradients live), lora (one factor zero), zero (the public code: ΔW never trains)")
    g.add_argument("--lora-alpha", type=float, help="LoRA/LoKr alpha (default: = rank, i.e. scaling 1)")
    g.add_argument("--lora-dropout", type=float, default=0.0, help="LoRA dropout")
    g.add_argument("--lokr-factor", type=int, default=-1, help="LoKr decompose_factor: left Kronecker factor size (-1: near √d)")
    g = p.add_argument_group("few-shot")
    g.add_argument("--shots", type=int, help="train on this many images per class, drawn with --seed")
    g.add_argument("--min-epoch-size", type=int, default=256,
                   help="with --shots, repeat the shots until an epoch has at least this many images (default: %(default)s)")
    add_data_args(p, default=None)
    add_model_args(p)
    add_train_args(p, epochs=10, lr=1e-3, batch_size=32)
    p.set_defaults(func=run)


def method_options(args: argparse.Namespace) -> dict:
    """The JSON-serialisable adapter settings of ``args.method`` (stored in the saved model's spec)."""
    if args.method == "kadaptation":
        return KAdaptationConfig(
            n=args.kron_n, rank=args.rank, targets=args.targets, slow_rank=args.slow_rank or None, scale=args.kron_scale,
            bias=not args.no_adapter_bias, dropout=args.delta_dropout, init=args.kron_init,
        ).to_dict()
    if args.method in ("lora", "lokr"):
        if args.rank < 1:
            raise NascompError("--rank must be at least 1")
        opts = {"rank": args.rank, "alpha": args.lora_alpha, "targets": list(args.targets)}
        return {**opts, "dropout": args.lora_dropout} if args.method == "lora" else {**opts, "decompose_factor": args.lokr_factor}
    return {}


def few_shot_subset(dataset: Dataset, shots: int, seed: int, min_size: int = 0) -> Subset:
    """``shots`` images of every class, drawn deterministically from ``seed``; repeated to ``min_size`` if asked."""
    if shots < 1:
        raise NascompError("--shots must be at least 1")
    targets = dataset.targets() if hasattr(dataset, "targets") else torch.tensor([dataset[i][1] for i in range(len(dataset))])
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in torch.unique(targets).tolist():
        pool = torch.nonzero(targets == c).flatten()
        if len(pool) < shots:
            raise NascompError(f"class {c} has only {len(pool)} training images; lower --shots")
        chosen += pool[torch.randperm(len(pool), generator=gen)[:shots]].tolist()
    repeats = max(1, math.ceil(min_size / len(chosen)))
    return Subset(dataset, chosen * repeats)


def _load_backbone(model: torch.nn.Module, checkpoint: str) -> None:
    """Load a checkpoint into everything but the head, which is replaced for the new classes anyway."""
    head_modules = {n.rpartition(".")[0] for n in head_parameter_names(model)}
    is_head = lambda key: key.rpartition(".")[0] in head_modules  # noqa: E731
    state = {k: v for k, v in load_state_dict_file(checkpoint).items() if not is_head(k)}
    state.update({k: v for k, v in model.state_dict().items() if is_head(k)})
    load_weights_into(model, state, checkpoint)


def run(args: argparse.Namespace) -> int:
    options = method_options(args)
    if not args.dry_run and (not args.out or not args.data):
        raise NascompError("adapt needs --data D and --out DIR (or --dry-run to only count parameters)")
    if args.out and not args.dry_run:
        ensure_writable_dir(args.out)
    data = data_from_args(args) if args.data else None
    num_classes = args.num_classes or (data.num_classes if data else None)
    overrides = {k: v for k, v in model_overrides_from_args(args).items() if k != "num_classes"}
    model, base_spec = resolve_model(args.model, pretrained=args.pretrained, **overrides)
    if args.checkpoint:
        _load_backbone(model, args.checkpoint)
    seed_everything(args.seed)  # the new head and the adapter's random factors
    if num_classes is not None:
        model.reset_classifier(num_classes)
    apply_method(model, args.method, options)
    mark_trainable(model, args.method)
    counts = count_parameters(model).to_dict()
    report = {"model": args.model, "method": args.method, "options": options, "num_classes": num_classes, **counts}
    if args.dry_run:
        if args.json:
            print_json(report)
        else:
            print(f"{args.method}: {counts['adapter_params']:,} adapter + {counts['head_params']:,} head = "
                  f"{counts['trainable_params']:,} trainable of {counts['total_params']:,} ({counts['trainable_percent']:.3f}%)")
        return 0

    if args.shots:
        data.train = few_shot_subset(data.train, args.shots, args.seed, args.min_epoch_size)
        report.update(shots=args.shots)
    in_chans, resolution = model_input_size(model)
    cfg = train_config_from_args(args, resolution, in_chans)
    spec = adapted_spec(base_spec, args.method, num_classes, options)
    metrics = fit(model, data, cfg, args.out, spec=spec, resume=args.resume, quiet=args.quiet, device=args.device,
                  metadata={"adaptation": report})
    if not args.no_merge:
        metrics["merged"] = _export_merged(model, args, base_spec, num_classes, options, data, cfg)
        atomic_write_json(Path(args.out) / "metrics.json", metrics)
    summary = {**report, "val": metrics["val"], "test": metrics["test"], "train_seconds": metrics["train_seconds"]}
    if "merged" in metrics:
        summary["merged"] = metrics["merged"]
    if args.json:
        print_json(summary)
    elif not args.quiet:
        print(f"{args.method}: test top-1 {metrics['test']['top1']:.2f}% with {counts['trainable_params']:,} trainable parameters -> {args.out}")
    return 0


@torch.no_grad()
def _export_merged(model, args, base_spec, num_classes, options, data, cfg) -> dict:
    """Fold the adapter in, save OUT/merged, and check merged and unmerged logits agree on real images."""
    model.eval()
    images, _ = data.transform(cfg.resolution, cfg.in_chans, train=False)([data.test[i] for i in range(min(16, len(data.test)))])
    device = next(model.parameters()).device
    before = model(images.to(device))
    biased = merge_method(model, args.method)
    after = model(images.to(device))
    diff = (before - after).abs().max().item()
    if diff > 1e-3 * max(1.0, before.abs().max().item()):
        raise NascompError(f"merged model disagrees with the adapted one (max |Δlogit| {diff:.3g}); please report this")
    out = Path(args.out) / MERGED_DIR
    meta = read_json(Path(args.out) / "model.json")
    save_model(out, model, adapted_spec(base_spec, args.method, num_classes, options, merged=True, biased=biased),
               {"metrics": meta.get("metrics"), "merged_from": str(args.out)})
    return {"dir": str(out), "max_abs_logit_diff": diff}

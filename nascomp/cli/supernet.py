"""`nascomp supernet {spaces,train,eval,extract}`: S3 search spaces and the weight-entangled supernet.

nascomp supernet spaces
nascomp supernet train --space s3-vit-cpu --data fashion-mnist --preset cpu --out runs/supernet
nascomp supernet eval runs/supernet --arch largest --arch smallest --arch my-arch.json
nascomp supernet extract runs/supernet --arch my-arch.json --out runs/subnet
"""

from __future__ import annotations

import argparse

from nascomp.cli.common import add_data_args, add_train_args, add_workers_arg, data_options, print_json, recipe_options

# recipe fields whose CLI default must not override the preset's
_RECIPE_FIELDS = ("epochs", "batch_size", "lr", "min_lr", "warmup_epochs", "weight_decay", "label_smoothing", "grad_clip")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "supernet",
        help="S3 search spaces and weight-entangled supernet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="supernet_command", metavar="ACTION", required=True)

    s = sub.add_parser("spaces", help="list the shipped search spaces with their size and MACs range")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=run_spaces)

    t = sub.add_parser("train", help="train a supernet over a search space (uniform or sandwich sampling)")
    t.add_argument("--space", required=True, help="space name (see `nascomp supernet spaces`) or YAML path")
    t.add_argument("--out", required=True, help="run directory (checkpoints, model, metrics.json)")
    t.add_argument("--preset", default="cpu", help="smoke | cpu | full (default: %(default)s); explicit options override it")
    t.add_argument("--sampler", choices=["uniform", "sandwich"], help="subnets per step (default: the preset's)")
    t.add_argument("--num-random", type=int, help="random subnets per sandwich step (default: the preset's)")
    t.add_argument(
        "--distill", action="store_true", default=None, help="in-place distillation: sandwich subnets learn the largest subnet's outputs"
    )
    t.add_argument("--resolution", type=int, help="training (proxy) resolution (default: the preset's)")
    t.add_argument("--drop-path", type=float, help="stochastic depth rate of the last block")
    t.add_argument("--in-chans", type=int, default=3, help="input channels (grey images are repeated)")
    t.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    add_data_args(t)
    add_train_args(t, preset=True)
    t.set_defaults(func=run_train, **{f: None for f in _RECIPE_FIELDS})

    e = sub.add_parser("eval", help="inherited-weight validation accuracy of archs in a trained supernet")
    e.add_argument("run", metavar="RUN", help="supernet run directory")
    e.add_argument("--arch", action="append", required=True, help="arch JSON, shipped arch name, 'largest' or 'smallest' (repeatable)")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--device", choices=["cpu", "cuda"])
    add_workers_arg(e)
    e.add_argument("--json", action="store_true")
    add_data_args(e)
    e.set_defaults(func=run_eval)

    x = sub.add_parser("extract", help="save the standalone timm model of an arch with inherited weights")
    x.add_argument("run", metavar="RUN", help="supernet run directory")
    x.add_argument("--arch", required=True, help="arch JSON, shipped arch name, 'largest' or 'smallest'")
    x.add_argument("--out", required=True, help="directory for model.safetensors + model.json")
    x.add_argument("--overwrite", action="store_true", help="replace a model or run already in --out")
    x.set_defaults(func=run_extract)


def run_spaces(args: argparse.Namespace) -> int:
    import nascomp
    from nascomp.cost.api import space_cost_range

    rows = [space_cost_range(name) for name in nascomp.list_spaces()]
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        print(
            f"{r['name']:<14} {r['resolution']:>4} px  {float(r['archs']):.1e} archs  {r['gmacs_min']:.3f}-{r['gmacs_max']:.3f} G MACs  "
            f"{r['params_min'] / 1e6:.2f}-{r['params_max'] / 1e6:.2f} M params (1000 classes)"
        )
    return 0


def run_train(args: argparse.Namespace) -> int:
    import nascomp

    overrides = {f: getattr(args, f) for f in _RECIPE_FIELDS}
    overrides.update(
        sampler=args.sampler,
        num_random=args.num_random,
        distill=args.distill,
        resolution=args.resolution,
        drop_path_rate=args.drop_path,
        limit_train=args.limit_train,
        limit_val=args.limit_val,
        amp=not args.no_amp,
        num_workers=args.workers,
        augment=not args.no_augment,
        checkpoint_every=args.checkpoint_every,
        **recipe_options(args),
    )
    result = nascomp.train_supernet(
        args.space,
        args.data,
        args.out,
        preset=args.preset,
        in_chans=args.in_chans,
        data_dir=args.data_dir,
        resume=args.resume,
        quiet=args.quiet,
        device=args.device,
        seed=args.seed,
        overwrite=args.overwrite,
        logger=args.logger,
        **overrides,
    )
    metrics = result.metrics
    summary = {"val": metrics["val"], "train_seconds": metrics["train_seconds"], "notes": metrics["supernet"]["notes"]}
    if args.json:
        print_json(summary)
    elif not args.quiet:
        subs = "  ".join(f"{n} {r['top1']:.2f}%" for n, r in metrics["val"]["subnets"].items())
        print(f"val top-1 (inherited): {subs}  -> {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import nascomp

    results = nascomp.evaluate_supernet(
        args.run,
        args.arch,
        args.data,
        batch_size=args.batch_size,
        device=args.device,
        quiet=args.json,
        workers=args.workers,
        **data_options(args),
    )
    rows = [{"arch": ref, **r.to_dict()} for ref, r in zip(args.arch, results)]
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            print(f"{r['arch']:<40} top-1 {r['top1']:.2f}%  top-5 {r['top5']:.2f}%  loss {r['loss']:.4f}  ({r['n']} val images)")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    import nascomp

    model = nascomp.extract_subnet(args.run, args.arch, args.out, overwrite=args.overwrite)
    print(f"saved {args.out} ({sum(p.numel() for p in model.parameters()):,} params, timm SwinTransformer)")
    return 0

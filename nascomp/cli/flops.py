"""`nascomp flops MODEL [--resolution R] [--json] [--cross-check]`: params, MACs and FLOPs."""

from __future__ import annotations

import argparse

from nascomp.cli.common import add_model_args, model_overrides, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("flops", help="count params and MACs (attention included)", description=__doc__)
    p.add_argument("model", metavar="MODEL", help="timm model name, arch JSON, or saved model directory")
    p.add_argument("--resolution", type=int, help="input resolution (default: the model's)")
    p.add_argument("--batch", type=int, default=1, help="batch used for counting; results are per image")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--cross-check", action="store_true", help="also run fvcore, ptflops, thop and torch's FlopCounterMode")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import nascomp

    overrides = model_overrides(args)
    in_chans, num_classes = overrides.pop("in_chans", None), overrides.pop("num_classes", None)
    report = nascomp.count_cost(
        args.model,
        args.resolution,
        in_chans=in_chans,
        num_classes=num_classes,
        batch=args.batch,
        cross_check=args.cross_check,
        checkpoint=args.checkpoint,
        **overrides,
    )
    if args.json:
        print_json({"model": args.model, **report.to_dict()})
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{args.model}[/] at {report.resolution}x{report.resolution}, {report.in_chans} channels")
    console.print(f"  params  {report.params:,}  ({report.params / 1e6:.2f} M)")
    console.print(f"  MACs    {report.macs:,}  ({report.macs / 1e9:.3f} G)   [dim]what papers call FLOPs[/]")
    console.print(f"  FLOPs   {report.flops:,}  ({report.flops / 1e9:.3f} G)   [dim]= 2 x MACs[/]")
    for cat, macs in sorted(report.macs_by_category.items(), key=lambda kv: -kv[1]):
        console.print(f"    {cat:<16} {macs / 1e9:.4f} G MACs")
    if report.cross_check is not None:
        table = Table("tool", "G MACs", "vs nascomp", "why")
        table.add_row("nascomp", f"{report.macs / 1e9:.4f}", "1.000", "dispatcher-level count, attention included")
        for row in report.cross_check:
            macs = "-" if row["macs"] is None else f"{row['macs'] / 1e9:.4f}"
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
            table.add_row(row["tool"], macs, ratio, row["why"])
        console.print(table)
    return 0

"""`nascomp flops MODEL [--resolution R] [--json] [--cross-check]`: params, MACs and FLOPs."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from nascomp.commands.common import add_model_args, model_overrides_from_args, print_json
from nascomp.errors import NascompError
from nascomp.models import model_input_size, resolve_model
from nascomp.profile.cost import count_cost


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("flops", help="count params and MACs (attention included)", description=__doc__)
    p.add_argument("model", metavar="MODEL", help="timm model name, arch JSON, or saved model directory")
    p.add_argument("--resolution", type=int, help="input resolution (default: the model's)")
    p.add_argument("--batch", type=int, default=1, help="batch used for counting; results are per image")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--cross-check", action="store_true", help="also run fvcore, ptflops, thop and torch's FlopCounterMode")
    add_model_args(p)
    p.set_defaults(func=run)


def _arch_json_report(args: argparse.Namespace, overrides: dict):
    """Arch JSON: the exact analytic cost (equal to counting the built model), without building it."""
    from nascomp.profile.arch_cost import arch_cost_report
    from nascomp.spaces.arch import Arch

    unsupported = sorted(set(overrides) - {"img_size", "in_chans", "num_classes"})
    if unsupported:
        raise NascompError(f"an arch JSON fixes the architecture; options {unsupported} cannot change it")
    resolution = args.resolution or overrides.get("img_size") or 224
    return arch_cost_report(Arch.load(args.model), resolution, overrides.get("in_chans", 3), overrides.get("num_classes", 1000))


def run(args: argparse.Namespace) -> int:
    overrides = model_overrides_from_args(args)
    if args.model.endswith(".json") and not args.cross_check and not args.checkpoint:
        report = _arch_json_report(args, overrides)
        in_chans = report.in_chans
    else:
        if args.resolution and "img_size" not in overrides:
            overrides["img_size"] = args.resolution  # timm models (and arch JSONs' windows) depend on the resolution
        model, spec = resolve_model(args.model, checkpoint=args.checkpoint, **overrides)
        in_chans, native = model_input_size(model)
        report = count_cost(model, args.resolution or native, in_chans, batch=args.batch)
    doc = {"model": args.model, **report.to_dict()}
    if args.cross_check:
        from nascomp.profile.crosscheck import cross_check

        doc["cross_check"] = cross_check(model, report)
    if args.json:
        print_json(doc)
        return 0
    console = Console()
    console.print(f"[bold]{args.model}[/] at {report.resolution}x{report.resolution}, {in_chans} channels")
    console.print(f"  params  {report.params:,}  ({report.params / 1e6:.2f} M)")
    console.print(f"  MACs    {report.macs:,}  ({report.macs / 1e9:.3f} G)   [dim]what papers call FLOPs[/]")
    console.print(f"  FLOPs   {report.flops:,}  ({report.flops / 1e9:.3f} G)   [dim]= 2 x MACs[/]")
    for cat, macs in sorted(report.macs_by_category.items(), key=lambda kv: -kv[1]):
        console.print(f"    {cat:<16} {macs / 1e9:.4f} G MACs")
    if args.cross_check:
        table = Table("tool", "G MACs", "vs nascomp", "why")
        table.add_row("nascomp", f"{report.macs / 1e9:.4f}", "1.000", "dispatcher-level count, attention included")
        for row in doc["cross_check"]:
            macs = "-" if row["macs"] is None else f"{row['macs'] / 1e9:.4f}"
            ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
            table.add_row(row["tool"], macs, ratio, row["why"])
        console.print(table)
    return 0

"""`nascomp export MODEL --format onnx [--out PATH]`: a deployable file checked against PyTorch."""

from __future__ import annotations

import argparse

from nascomp.cli.common import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a model to ONNX (verified with ONNX Runtime)", description=__doc__)
    p.add_argument("model", metavar="MODEL", help="saved model directory, arch JSON or timm name")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--out", help="output file (default: MODEL/model.onnx for a directory, else ./MODEL.onnx)")
    p.add_argument("--resolution", type=int, help="input resolution (default: the model's)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--opset", type=int, help="ONNX opset (default: 17 with the TorchScript exporter, 18 with dynamo)")
    p.add_argument("--exporter", choices=["auto", "torchscript", "dynamo"], default="auto",
                   help="auto (default): TorchScript, dynamo if that fails")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import nascomp

    result = nascomp.export(args.model, args.out, format=args.format, resolution=args.resolution, batch=args.batch, opset=args.opset,
                            exporter=args.exporter)
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB, {result.exporter} exporter, opset {result.opset}); "
              f"ONNX Runtime vs PyTorch max |diff| = {result.max_abs_diff:.2e}")
    return 0

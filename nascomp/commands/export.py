"""`nascomp export MODEL --format onnx [--out PATH]`: a deployable file checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from nascomp.commands.common import print_json
from nascomp.export import DEFAULT_OPSET, export_onnx
from nascomp.models import model_input_size, resolve_model


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a model to ONNX (verified with ONNX Runtime)", description=__doc__)
    p.add_argument("model", metavar="MODEL", help="saved model directory, arch JSON or timm name")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--out", help="output file (default: MODEL/model.onnx for a directory, else ./MODEL.onnx)")
    p.add_argument("--resolution", type=int, help="input resolution (default: the model's)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, _ = resolve_model(args.model)
    in_chans, native = model_input_size(model)
    ref = Path(args.model)
    out = Path(args.out) if args.out else (ref / "model.onnx" if ref.is_dir() else Path(f"{ref.stem}.onnx"))
    result = export_onnx(model, out, args.resolution or native, in_chans, args.batch, args.opset)
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB, {result.exporter} exporter, opset {result.opset}); "
              f"ONNX Runtime vs PyTorch max |diff| = {result.max_abs_diff:.2e}")
    return 0

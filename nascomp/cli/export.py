"""`nascomp export MODEL --format onnx|pte [--precision fp32|int8] [--out PATH]`: a deployable file checked in its runtime.

    nascomp export runs/train/model --format onnx                     # ONNX, checked with ONNX Runtime
    nascomp export swin_tiny_patch4_window7_224 --format pte --out X  # ExecuTorch (XNNPACK), checked on real images
    nascomp export runs/train/model --format pte --precision int8 --data fashion-mnist --require-delegated

An ExecuTorch export writes X/model.pte and X/export.json: the measured difference from PyTorch on real images
(and the tolerance), the share of the graph XNNPACK runs and every op left on portable kernels.
"""

from __future__ import annotations

import argparse

from nascomp.cli.common import add_data_args, data_options, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a model to ONNX or ExecuTorch (verified in the runtime)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="saved model directory, arch JSON or timm name")
    p.add_argument("--format", choices=["onnx", "pte"], default="onnx", help="onnx (ONNX Runtime) or pte (ExecuTorch, XNNPACK delegate)")
    p.add_argument(
        "--out",
        help="onnx: the file (default MODEL/model.onnx or ./MODEL.onnx); pte: a folder for model.pte and export.json "
        "(default MODEL/executorch-PRECISION or ./MODEL-executorch-PRECISION)",
    )
    p.add_argument("--checkpoint", help="weights for a model given by timm name or arch JSON")
    p.add_argument("--resolution", type=int, help="input resolution (default: the model's)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--json", action="store_true")
    o = p.add_argument_group("onnx")
    o.add_argument("--opset", type=int, help="ONNX opset (default: 17 with the TorchScript exporter, 18 with dynamo)")
    o.add_argument(
        "--exporter", choices=["auto", "torchscript", "dynamo"], default="auto", help="auto (default): TorchScript, dynamo if that fails"
    )
    e = p.add_argument_group("pte (ExecuTorch)")
    e.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    e.add_argument(
        "--int8",
        choices=["static", "dynamic"],
        default="static",
        dest="quantization",
        help="static: activation ranges calibrated on --data training images (default); dynamic: no calibration",
    )
    e.add_argument("--calib-images", type=int, default=256, help="training images that calibrate static int8 (default: %(default)s)")
    e.add_argument("--check-images", type=int, default=32, help="validation images the runtime is checked on (default: %(default)s)")
    e.add_argument("--tolerance", type=float, help="largest |ExecuTorch - PyTorch| over max(1, max |logit|) (default 1e-4 fp32, 0.05 int8)")
    e.add_argument("--no-rewrite", action="store_true", help="export the graph as it is, without XNNPACK-delegable formulations")
    e.add_argument("--require-delegated", action="store_true", help="fail, writing nothing, if any op is left on portable kernels")
    add_data_args(p, classes=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import nascomp

    result = nascomp.export(
        args.model,
        args.out,
        format=args.format,
        resolution=args.resolution,
        batch=args.batch,
        opset=args.opset,
        exporter=args.exporter,
        checkpoint=args.checkpoint,
        precision=args.precision,
        quantization=args.quantization,
        data=args.data,
        data_options=data_options(args),
        calib_images=args.calib_images,
        check_images=args.check_images,
        tolerance=args.tolerance,
        rewrite=not args.no_rewrite,
        require_delegated=args.require_delegated,
    )
    if args.json:
        print_json(result.to_dict())
        return 0
    from nascomp.deploy.onnx import OnnxExport  # the two result types, for the narrowing below
    from nascomp.deploy.pte import PteExport

    if args.format == "onnx":
        assert isinstance(result, OnnxExport)  # format="onnx" returns an OnnxExport, "pte" a PteExport
        print(
            f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB, {result.exporter} exporter, opset {result.opset}); "
            f"ONNX Runtime vs PyTorch max |diff| = {result.max_abs_diff:.2e}"
        )
        return 0
    assert isinstance(result, PteExport)
    check = result.check
    assert check is not None  # --check-images is positive: the export was checked
    print(
        f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB, ExecuTorch {result.precision}"
        f"{f' {result.quantization}' if result.quantization else ''}, {result.export_seconds:.0f} s)"
    )
    print(f"  {result.delegation.describe()}")
    print(
        f"  vs {check.reference} on {check.images} real images ({check.source}): max |diff| {check.max_abs_diff:.2e} "
        f"(allowed {check.tolerance:g} x {check.scale:.3g}); top-1 agreement with fp32 {check.top1_agreement_with_fp32:.1%}"
    )
    print(f"  -> {result.path.parent}/export.json")
    return 0

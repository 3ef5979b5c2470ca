"""INT8: a trained model as an ONNX Runtime int8 file, with its accuracy measured in ONNX Runtime and its latency on a target.

Static quantization (the default) calibrates activation ranges on training images; dynamic quantization is the
data-free alternative (both in `nascomp.deploy.quantize`, which says what each quantizes).

What is shipped is what is measured: the same file is evaluated image by image in ONNX Runtime on the validation
and test splits, and timed on the target (`nascomp.profiling`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nascomp.compression.base import CompressContext
from nascomp.compression.measure import latency_report, onnx_accuracy, timing_options
from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json
from nascomp.deploy.onnx import export_onnx
from nascomp.deploy.quantize import CALIBRATIONS, quantize_static_int8
from nascomp.models.resolve import model_input_size

__all__ = ["MODES", "Int8Method"]

MODES = ("static", "dynamic")
STATIC = ("ONNX Runtime static quantization, QDQ format: int8 weights per output channel, uint8 activations with "
          "ranges calibrated on training images ({calibration}); MatMul, Gemm and Conv quantized")


class Int8Method:
    """Options: ``int8`` (``static`` or ``dynamic``), ``calib_images`` (static: training images that calibrate
    activation ranges, default 256), ``calibration`` (minmax, percentile, entropy), ``per_channel`` (default on),
    ``target`` / ``timer`` / ``threads`` (where the latency is measured; default the budget's target or mobile-cpu)."""

    name = "int8"
    kind = "deploy"
    needs_data = True

    def check(self, base: nn.Module, options: dict) -> None:
        mode = options.get("int8") or "static"
        if mode not in MODES:
            raise NascompError(f"--int8 {mode!r}: choose static (calibrated, QDQ) or dynamic (no calibration)")
        if (options.get("calibration") or "minmax") not in CALIBRATIONS:
            raise NascompError(f"--calibration {options.get('calibration')!r}: choose from {', '.join(CALIBRATIONS)}")

    def apply(self, model: nn.Module, out: Path, options: dict, context: CompressContext, target: str) -> dict:
        """Export ``model`` (fp32, checked), quantize it into ``out/model.int8.onnx``, measure both; returns ``int8.json``'s content."""
        from nascomp.deploy.quantize import QUANTIZATION, quantize_int8

        self.check(model, options)
        mode = options.get("int8") or "static"
        calibration = options.get("calibration") or "minmax"
        bundle = context.data()
        in_chans, resolution = model_input_size(model)
        model = model.eval().cpu()
        fp32 = export_onnx(model, out / "model.onnx", resolution=resolution, in_chans=in_chans)
        int8_path = out / "model.int8.onnx"
        transform = bundle.transform(resolution, in_chans, train=False)
        if mode == "static":
            count = min(int(options.get("calib_images") or 256), len(bundle.train))
            order = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(context.seed))[:count].tolist()
            images, _ = transform([bundle.train[i] for i in order])
            quantize_static_int8(fp32.path, int8_path, images.numpy(), calibration, options.get("per_channel", True))
            how = STATIC.format(calibration=f"{calibration}, {count} images")
        else:
            quantize_int8(fp32.path, int8_path)
            how = QUANTIZATION
        timing = timing_options(options)
        report = {
            "mode": mode, "quantization": how, "onnx": str(int8_path), "onnx_bytes": int8_path.stat().st_size,
            "fp32_onnx": str(fp32.path), "fp32_onnx_bytes": fp32.size_bytes, "fp32_check_max_abs_diff": fp32.max_abs_diff,
            "val": onnx_accuracy(int8_path, bundle.val, transform), "test": onnx_accuracy(int8_path, bundle.test, transform),
            "latency": latency_report(model, target, "int8", int8_path, **timing),
            "fp32_latency": latency_report(model, target, "fp32", fp32.path, **timing),
            "runtime": "ONNX Runtime, batch 1, image by image",
        }
        atomic_write_json(out / "int8.json", report)
        return report

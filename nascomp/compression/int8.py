"""INT8: a trained model as an int8 file of its deployment runtime, with its accuracy measured in that runtime and its latency
on a target.

Two runtimes (option ``runtime``):

- ``onnxruntime`` (the default): ONNX Runtime's quantizer on the checked ONNX export; static quantization (the default)
  calibrates activation ranges on training images, dynamic is the data-free alternative (`nascomp.deploy.quantize`).
- ``executorch``: an ExecuTorch program for the XNNPACK delegate, quantized with PT2E and ExecuTorch's XNNPACK quantizer,
  static (calibrated on training images) or dynamic (`nascomp.deploy.pte`); the fp32 program is exported beside it.

What is shipped is what is measured: the same file is evaluated image by image in its runtime on the validation and test
splits, and timed on the target (`nascomp.profiling`) in that runtime.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nascomp.compression.base import CompressContext
from nascomp.compression.measure import RUNTIMES, latency_report, runtime_accuracy, timing_options
from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json
from nascomp.deploy.quantize import CALIBRATIONS
from nascomp.models.resolve import model_input_size

__all__ = ["MODES", "Int8Method", "deployed_file"]

MODES = ("static", "dynamic")
STATIC = (
    "ONNX Runtime static quantization, QDQ format: int8 weights per output channel, uint8 activations with "
    "ranges calibrated on training images ({calibration}); MatMul, Gemm and Conv quantized"
)


def deployed_file(runtime: str, precision: str) -> str:
    """The name of a compressed model's runtime file in its run directory."""
    return {
        ("onnxruntime", "fp32"): "model.onnx",
        ("onnxruntime", "int8"): "model.int8.onnx",
        ("executorch", "fp32"): "model.pte",
        ("executorch", "int8"): "model.int8.pte",
    }[runtime, precision]


class Int8Method:
    """Options: ``runtime`` (``onnxruntime`` or ``executorch``), ``int8`` (``static`` or ``dynamic``), ``calib_images``
    (static: training images that calibrate activation ranges, default 256), ``calibration`` (ONNX Runtime: minmax,
    percentile, entropy), ``per_channel`` (ONNX Runtime; default on), ``target`` / ``timer`` / ``threads`` (where the
    latency is measured; default the budget's target or mobile-cpu)."""

    name = "int8"
    kind = "deploy"
    needs_data = True

    def check(self, base: nn.Module, options: dict) -> None:
        mode = options.get("int8") or "static"
        if mode not in MODES:
            raise NascompError(f"--int8 {mode!r}: choose static (calibrated) or dynamic (no calibration)")
        runtime = options.get("runtime") or "onnxruntime"
        if runtime not in RUNTIMES:
            raise NascompError(f"--runtime {runtime!r}: int8 files are made for {' or '.join(RUNTIMES)}")
        if runtime == "executorch":
            from nascomp.deploy.et_runtime import require_executorch

            require_executorch()
            if options.get("calibration") not in (None, "minmax") or options.get("per_channel") is False:
                raise NascompError(
                    "--calibration and per_channel are ONNX Runtime's quantizer options; ExecuTorch's int8 calibrates "
                    "with histogram observers and per-channel weights"
                )
        if (options.get("calibration") or "minmax") not in CALIBRATIONS:
            raise NascompError(f"--calibration {options.get('calibration')!r}: choose from {', '.join(CALIBRATIONS)}")

    def apply(self, model: nn.Module, out: Path, options: dict, context: CompressContext, target: str) -> dict:
        """Export ``model`` (fp32, checked), quantize it into ``out``, measure both in the runtime; returns ``int8.json``'s content."""
        self.check(model, options)
        runtime = options.get("runtime") or "onnxruntime"
        mode = options.get("int8") or "static"
        bundle = context.data()
        in_chans, resolution = model_input_size(model)
        model = model.eval().cpu()
        transform = bundle.transform(resolution, in_chans, train=False)
        count = min(int(options.get("calib_images") or 256), len(bundle.train))
        calibration = None
        if mode == "static":
            order = torch.randperm(len(bundle.train), generator=torch.Generator().manual_seed(context.seed))[:count].tolist()
            calibration, _ = transform([bundle.train[i] for i in order])
        files = (self._executorch if runtime == "executorch" else self._onnx)(
            model, out, mode, calibration, options, bundle, transform, resolution, in_chans
        )
        timing = {**timing_options(options), "runtime": runtime}
        report = {
            "runtime": runtime,
            "mode": mode,
            **files,
            "val": runtime_accuracy(runtime, files["file"], bundle.val, transform),
            "test": runtime_accuracy(runtime, files["file"], bundle.test, transform),
            "latency": latency_report(model, target, "int8", files["file"], **timing),
            "fp32_latency": latency_report(model, target, "fp32", files["fp32_file"], **timing),
            "measured_in": f"{'ExecuTorch (XNNPACK delegate)' if runtime == 'executorch' else 'ONNX Runtime'}, batch 1, image by image",
        }
        atomic_write_json(out / "int8.json", report)
        return report

    def _onnx(self, model, out, mode, calibration, options, bundle, transform, resolution, in_chans) -> dict:
        from nascomp.deploy.onnx import export_onnx
        from nascomp.deploy.quantize import QUANTIZATION, quantize_int8, quantize_static_int8

        fp32 = export_onnx(model, out / deployed_file("onnxruntime", "fp32"), resolution=resolution, in_chans=in_chans)
        path = out / deployed_file("onnxruntime", "int8")
        if mode == "static":
            calibration_method = options.get("calibration") or "minmax"
            quantize_static_int8(fp32.path, path, calibration.numpy(), calibration_method, options.get("per_channel", True))
            how = STATIC.format(calibration=f"{calibration_method}, {len(calibration)} images")
        else:
            quantize_int8(fp32.path, path)
            how = QUANTIZATION
        return {
            "quantization": how,
            "file": str(path),
            "bytes": path.stat().st_size,
            "fp32_file": str(fp32.path),
            "fp32_bytes": fp32.size_bytes,
            "fp32_check_max_abs_diff": fp32.max_abs_diff,
        }

    def _executorch(self, model, out, mode, calibration, options, bundle, transform, resolution, in_chans) -> dict:
        from nascomp.deploy.api import real_images
        from nascomp.deploy.pte import QUANTIZATION_TEXT, export_pte

        checked, _, source = real_images(bundle, None, resolution, in_chans, check=32)
        common = {"resolution": resolution, "in_chans": in_chans, "check_images": checked, "check_source": source}
        fp32 = export_pte(model, out / deployed_file("executorch", "fp32"), **common)
        int8 = export_pte(
            model, out / deployed_file("executorch", "int8"), precision="int8", quantization=mode, calibration=calibration, **common
        )
        how = QUANTIZATION_TEXT[mode].format(n=0 if calibration is None else len(calibration))
        assert fp32.check is not None  # export_pte checked it on the real validation images given
        return {
            "quantization": how,
            "file": str(int8.path),
            "bytes": int8.size_bytes,
            "fp32_file": str(fp32.path),
            "fp32_bytes": fp32.size_bytes,
            "fp32_check_max_abs_diff": fp32.check.max_abs_diff,
            "export": int8.to_dict(),
            "fp32_export": fp32.to_dict(),
        }

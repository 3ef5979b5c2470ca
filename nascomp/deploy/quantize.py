"""Int8 variants of an exported ONNX model with ONNX Runtime's quantizer: dynamic (no data) and static (calibrated).

**Dynamic** quantization stores MatMul/Gemm weights as int8 and quantizes activations at run time, so it needs
no calibration data: the right default for a latency profile of a mobile deployment. Only MatMul and Gemm are
quantized (the linear layers that dominate a transformer): ORT's dynamic ConvInteger path is far slower than fp32
convolution on CPU (measured here, 1 thread: EfficientNet-B0 14.2 -> 105.9 ms, MobileNetV3-L 7.0 -> 50.2 ms with
convolutions quantized) and needs every conv weight to be an initializer, which TorchScript exports of MobileViT
do not satisfy.

**Static** quantization calibrates activation ranges on sample inputs and writes QDQ (QuantizeLinear /
DequantizeLinear) pairs around MatMul, Gemm and Conv: int8 weights (per output channel by default) and uint8
activations with fixed scales (x86's u8s8 kernels); LayerNorm, Softmax and GELU stay float.

Both drop the graph's ``value_info`` first: the dynamo exporter writes entries that ORT's quantizer re-infers and
rejects ("Inferred shape and existing shape differ"); ORT re-derives them. Output files are written atomically.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nascomp.core.errors import NascompError

__all__ = ["quantize_int8", "quantize_static_int8", "QUANTIZATION", "CALIBRATIONS"]

QUANTIZATION = (
    "ONNX Runtime dynamic quantization of MatMul/Gemm: int8 weights (per-tensor), activations quantized to "
    "uint8 at run time; convolutions stay fp32"
)
CALIBRATIONS = ("minmax", "percentile", "entropy")


def _quantize(src: str | os.PathLike, dst: str | os.PathLike, kind: str, run: Callable[[str, str, str], None]) -> Path:
    """Clean ``src``, call ``run(clean_path, out_path, input_name)`` (the quantizer), move the result to ``dst``."""
    import onnx

    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(src))
    del model.graph.value_info[:]
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".quant.") as tmp:
        clean, out = Path(tmp) / "clean.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(clean))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer logs a pre-processing suggestion on the root logger
        try:
            run(str(clean), str(out), model.graph.input[0].name)
        except Exception as e:
            raise NascompError(f"int8 {kind} quantization of {src.name} failed: {type(e).__name__}: {str(e)[:200]}") from None
        finally:
            root.setLevel(level)
        os.replace(out, dst)
    return dst


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write the dynamic-int8 model of ``src`` to ``dst`` and return its path."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def run(clean: str, out: str, _: str) -> None:
        quantize_dynamic(clean, out, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])

    return _quantize(src, dst, "dynamic", run)


def quantize_static_int8(
    src: str | os.PathLike, dst: str | os.PathLike, images: np.ndarray, calibration: str = "minmax", per_channel: bool = True
) -> Path:
    """Write the static-int8 (QDQ) model of ``src`` to ``dst``, calibrated on ``images`` (N, C, H, W), one at a time."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}
    if calibration not in methods:
        raise NascompError(f"int8 calibration {calibration!r}: choose from {', '.join(CALIBRATIONS)}")

    class Reader(CalibrationDataReader):
        def __init__(self, name: str):
            self.items = iter([{name: images[i : i + 1]} for i in range(len(images))])

        def get_next(self):
            return next(self.items, None)

    def run(clean: str, out: str, name: str) -> None:
        quantize_static(
            clean,
            out,
            Reader(name),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul", "Gemm", "Conv"],
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[calibration],
            calibration_cache_path=None,
        )

    return _quantize(src, dst, "static", run)

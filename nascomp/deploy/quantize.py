"""Int8 variant of an exported ONNX model: ONNX Runtime dynamic quantization.

Dynamic quantization stores MatMul/Gemm weights as int8 and quantizes activations at run time,
so it needs no calibration data: the right default for a latency profile of a mobile deployment.
Only MatMul and Gemm are quantized (the linear layers that dominate a transformer): ORT's dynamic
ConvInteger path is far slower than fp32 convolution on CPU (measured here, 1 thread: EfficientNet-B0
14.2 -> 105.9 ms, MobileNetV3-L 7.0 -> 50.2 ms with convolutions quantized) and needs every conv weight
to be an initializer, which TorchScript exports of MobileViT do not satisfy.
The dynamo exporter writes ``value_info`` entries that ORT's quantizer re-infers and rejects
("Inferred shape and existing shape differ"), so they are dropped first; ORT re-derives them.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from nascomp.core.errors import NascompError

__all__ = ["quantize_int8", "QUANTIZATION"]

QUANTIZATION = ("ONNX Runtime dynamic quantization of MatMul/Gemm: int8 weights (per-tensor), activations quantized to "
                "uint8 at run time; convolutions stay fp32")


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write the int8 model to ``dst`` atomically and return its path."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

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
            quantize_dynamic(str(clean), str(out), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
        except Exception as e:
            raise NascompError(f"int8 dynamic quantization of {src.name} failed: {type(e).__name__}: {str(e)[:200]}") from None
        finally:
            root.setLevel(level)
        os.replace(out, dst)
    return dst

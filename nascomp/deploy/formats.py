"""The deployment files nascomp writes and their settings, named without loading torch (commands check them first)."""

from __future__ import annotations

__all__ = ["FORMATS", "EXPORTERS", "OPSETS", "PRECISIONS", "QUANTIZATIONS"]

FORMATS = ("onnx", "pte")  # ONNX (ONNX Runtime) and ExecuTorch programs (XNNPACK delegate)
EXPORTERS = ("auto", "torchscript", "dynamo")  # ONNX: TorchScript first, dynamo (torch.export) as fallback
OPSETS = {"torchscript": range(7, 21), "dynamo": range(18, 24)}  # what torch 2.15's two ONNX exporters take
PRECISIONS = ("fp32", "int8")
QUANTIZATIONS = ("static", "dynamic")  # int8: calibrated on data, or ranges at run time

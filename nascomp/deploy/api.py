"""`export`: a model as an ONNX file that ONNX Runtime was shown to run like PyTorch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from nascomp.core.errors import NascompError
from nascomp.core.validate import output_file, positive
from nascomp.deploy.onnx import OnnxExport, export_onnx
from nascomp.models.resolve import as_model, model_input_size
from nascomp.spaces.arch import Arch

__all__ = ["export", "FORMATS"]

FORMATS = ("onnx",)


def export(model: nn.Module | str | os.PathLike | Arch, out: str | os.PathLike | None = None, *, format: str = "onnx",
           resolution: int | None = None, batch: int = 1, opset: int | None = None, exporter: str = "auto",
           checkpoint: str | None = None, **model_kwargs: Any) -> OnnxExport:
    """Export ``model`` and verify the file with ONNX Runtime on a seeded random input.

    Args:
        model: a module, a saved directory, an arch, or a timm name (``checkpoint`` loads weights).
        out: the file to write (default: ``MODEL/model.onnx`` for a saved directory, else ``./<name>.onnx``).
        format: ``onnx``. resolution: input side (default: the model's). batch: the exported batch size.
        opset, exporter: see `nascomp.deploy.onnx.export_onnx` (TorchScript first, dynamo as fallback).

    Returns:
        `OnnxExport`: path, exporter, opset, size and the largest |ONNX Runtime - PyTorch| difference.
    """
    if format not in FORMATS:
        raise NascompError(f"format {format!r}: choose from {', '.join(FORMATS)}")
    positive("--resolution", resolution)
    positive("--batch", batch)
    positive("--opset", opset)
    if out is None:
        if isinstance(model, (nn.Module, Arch)):
            raise NascompError("export needs out=PATH for a model given as an object")
        ref = Path(model)
        out = ref / "model.onnx" if ref.is_dir() else Path(f"{ref.stem}.onnx")
    out = output_file(out)
    module, _ = as_model(model, checkpoint=checkpoint, **model_kwargs)
    in_chans, native = model_input_size(module)
    return export_onnx(module, out, resolution=resolution or native, in_chans=in_chans, batch=batch, exporter=exporter, opset=opset)

"""Export a model to ONNX and prove the file computes what the PyTorch model computes.

The dynamo-based exporter (``torch.export``) is tried first; models it cannot capture fall back to
the TorchScript exporter. Every export is checked with ONNX Runtime on a random input and the
maximum absolute difference is returned, so a silently wrong graph never reaches a device.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nascomp.errors import NascompError

__all__ = ["OnnxExport", "export_onnx", "onnx_session", "DEFAULT_OPSET"]

DEFAULT_OPSET = 18


@dataclass
class OnnxExport:
    path: Path
    exporter: str
    opset: int
    input_shape: tuple[int, ...]
    max_abs_diff: float
    size_bytes: int

    def to_dict(self) -> dict:
        return {
            "path": str(self.path), "exporter": self.exporter, "opset": self.opset, "input_shape": list(self.input_shape),
            "max_abs_diff": self.max_abs_diff, "size_bytes": self.size_bytes,
        }


def onnx_session(path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])


def _export(model: nn.Module, x: torch.Tensor, path: Path, opset: int, dynamo: bool) -> None:
    kwargs = {"input_names": ["input"], "output_names": ["logits"], "dynamo": dynamo}
    if dynamo:
        kwargs.update(opset_version=opset, verbose=False, external_data=False)
    else:
        kwargs.update(opset_version=min(opset, 17))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), **kwargs)


@torch.no_grad()
def export_onnx(
    model: nn.Module, path: str | os.PathLike, resolution: int, in_chans: int = 3, batch: int = 1, opset: int = DEFAULT_OPSET,
    tolerance: float = 1e-4,
) -> OnnxExport:
    """Write ``path`` (atomically) and verify it with ONNX Runtime; raises if outputs differ by > ``tolerance``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    x = torch.randn(batch, in_chans, resolution, resolution, generator=torch.Generator().manual_seed(0))
    reference = model(x).float().numpy()
    errors = []
    for exporter, dynamo in (("dynamo", True), ("torchscript", False)):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".onnx")
        os.close(fd)
        try:
            _export(model, x, Path(tmp), opset, dynamo)
            session = onnx_session(tmp)
            out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
            diff = float(np.abs(out - reference).max())
            if diff > tolerance:
                raise RuntimeError(f"ONNX Runtime output differs from PyTorch by {diff:.2e} (> {tolerance:g})")
            os.replace(tmp, path)
            return OnnxExport(path, exporter, opset if dynamo else min(opset, 17), tuple(x.shape), diff, path.stat().st_size)
        except Exception as e:  # try the next exporter; report both if neither works
            errors.append(f"{exporter}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            with contextlib.suppress(OSError):
                os.unlink(tmp + ".data")
    raise NascompError("ONNX export failed: " + " | ".join(errors))

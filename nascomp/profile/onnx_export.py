"""ONNX files for latency measurement: any module, any example input, a chosen exporter, checked with ORT.

`nascomp.export.export_onnx` is the user-facing exporter (image models, dynamo first). Profiling needs
two more things: arbitrary inputs (a Swin block takes an NHWC feature map, not an image) and a fixed
exporter, because the exporter changes the graph ORT runs and so the latency. Measured here on
Swin-T with 1 ORT thread: TorchScript-exported 116.9 ms vs dynamo-exported 120.7 ms (DeiT-S 105.9 vs
113.9 ms); on a single s3-vit stage-1 block 12.8 vs 16.4 ms; and TorchScript exports 2-6x faster.
So profiles default to the TorchScript exporter and fall back to dynamo when it cannot export a model;
the exporter used is recorded in every measurement, and the latency lookup tables use the same one as
the end-to-end profiles they predict.
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

__all__ = ["EXPORTERS", "ExportedModel", "export_for_profiling"]

EXPORTERS = ("torchscript", "dynamo", "auto")
_OPSET = {"torchscript": 17, "dynamo": 18}


@dataclass
class ExportedModel:
    path: Path
    exporter: str
    opset: int
    max_abs_diff: float

    def info(self) -> dict:
        return {"exporter": self.exporter, "opset": self.opset, "onnx_bytes": self.path.stat().st_size,
                "max_abs_diff_vs_torch": self.max_abs_diff}


def _export_once(model: nn.Module, x: torch.Tensor, path: Path, exporter: str) -> None:
    kwargs = {"input_names": ["input"], "output_names": ["output"], "dynamo": exporter == "dynamo",
              "opset_version": _OPSET[exporter]}
    if exporter == "dynamo":
        kwargs.update(verbose=False, external_data=False)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), **kwargs)


def _ort_output(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@torch.no_grad()
def export_for_profiling(model: nn.Module, example: torch.Tensor, path: str | os.PathLike, exporter: str = "torchscript",
                         tolerance: float = 1e-3) -> ExportedModel:
    """Export ``model`` for input ``example`` to ``path`` (atomically); ORT must reproduce torch's output.

    ``exporter``: 'torchscript', 'dynamo', or 'auto' (TorchScript, then dynamo if that fails).
    ``tolerance`` is relative to the output's magnitude (random weights can give large activations).
    """
    if exporter not in EXPORTERS:
        raise NascompError(f"--exporter {exporter!r}: choose from {', '.join(EXPORTERS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    example = example.cpu()
    reference = model(example)
    reference = (reference[0] if isinstance(reference, (tuple, list)) else reference).float().numpy()
    errors = []
    for name in (("torchscript", "dynamo") if exporter == "auto" else (exporter,)):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".onnx")
        os.close(fd)
        try:
            _export_once(model, example, Path(tmp), name)
            diff = float(np.abs(_ort_output(Path(tmp), example.numpy()) - reference).max())
            scale = max(1.0, float(np.abs(reference).max()))
            if not diff <= tolerance * scale:
                raise RuntimeError(f"ONNX Runtime output differs from PyTorch by {diff:.2e}")
            os.replace(tmp, path)
            return ExportedModel(path, name, _OPSET[name], diff)
        except Exception as e:  # try the next exporter; report all if none works
            errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    raise NascompError("ONNX export for profiling failed: " + " | ".join(errors))

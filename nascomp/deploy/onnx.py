"""Export a model to ONNX and prove, with ONNX Runtime, that the file computes what the PyTorch model computes.

One exporter for everything nascomp writes: ``nascomp export``, the profiler's ONNX Runtime runs and the
latency lookup tables (which export single blocks with a feature-map input, hence ``example``).

``exporter="auto"`` tries TorchScript first and falls back to the dynamo exporter (``torch.export``) for
models TorchScript cannot trace. TorchScript comes first because its graphs run faster in ONNX Runtime
(measured here with 1 ORT thread: Swin-T 116.9 ms vs 120.7 ms dynamo-exported, DeiT-S 105.9 vs 113.9 ms, one
s3-vit stage-1 block 12.8 vs 16.4 ms) and it exports 2-6x faster; what is shipped and what is profiled are
then the same graph. Every file is checked on a seeded random input: the largest output difference, relative
to the output's magnitude (random weights can give large activations), must be within ``tolerance``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.deploy.formats import EXPORTERS, OPSETS
from nascomp.deploy.runtime import ort_session

__all__ = ["EXPORTERS", "DEFAULT_OPSETS", "OnnxExport", "export_onnx", "example_input"]

DEFAULT_OPSETS = {"torchscript": 17, "dynamo": 18}


@dataclass
class OnnxExport:
    """A verified ONNX file: which exporter wrote it, and how closely ONNX Runtime reproduces PyTorch."""

    path: Path
    exporter: str
    opset: int
    input_shape: tuple[int, ...]
    max_abs_diff: float
    size_bytes: int

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "exporter": self.exporter,
            "opset": self.opset,
            "input_shape": list(self.input_shape),
            "max_abs_diff": self.max_abs_diff,
            "size_bytes": self.size_bytes,
        }


def example_input(batch: int, in_chans: int, resolution: int, seed: int = 0) -> torch.Tensor:
    """The seeded random image batch every export check and latency run uses."""
    return torch.randn(batch, in_chans, resolution, resolution, generator=torch.Generator().manual_seed(seed))


def _export_once(model: nn.Module, x: torch.Tensor, path: Path, exporter: str, opset: int) -> None:
    kwargs: dict[str, Any] = {"input_names": ["input"], "output_names": ["output"], "dynamo": exporter == "dynamo", "opset_version": opset}
    if exporter == "dynamo":
        kwargs.update(verbose=False, external_data=False)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), **kwargs)


def _opset_of(path: str | os.PathLike) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _first(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


@torch.no_grad()
def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    example: torch.Tensor | None = None,
    *,
    resolution: int | None = None,
    in_chans: int = 3,
    batch: int = 1,
    exporter: str = "auto",
    opset: int | None = None,
    tolerance: float = 1e-4,
) -> OnnxExport:
    """Write ``path`` atomically and verify it with ONNX Runtime.

    Args:
        model: any module; exported in eval mode on the CPU.
        path: the ``.onnx`` file to write (its folder is created).
        example: the input to trace with; default a seeded image batch of ``batch × in_chans × resolution²``.
        resolution, in_chans, batch: the default example's shape (``resolution`` is required without ``example``).
        exporter: ``auto`` (TorchScript, then dynamo), ``torchscript`` or ``dynamo``.
        opset: ONNX opset; default 17 for TorchScript, 18 for dynamo.
        tolerance: largest allowed |ORT - PyTorch| relative to max(1, max |PyTorch output|).

    Returns:
        `OnnxExport` with the exporter used and the measured difference.

    Raises:
        NascompError: when no exporter produces a file that ONNX Runtime runs within ``tolerance``.
    """
    if exporter not in EXPORTERS:
        raise NascompError(f"exporter {exporter!r}: choose from {', '.join(EXPORTERS)}")
    if example is None:
        if not resolution or resolution < 1 or in_chans < 1 or batch < 1:
            raise NascompError("export needs a positive resolution, channel count and batch (or an example input)")
        example = example_input(batch, in_chans, resolution)
    path = Path(path)
    model = model.eval().cpu()
    example = example.cpu()
    try:
        reference = _first(model(example)).float().numpy()
    except (RuntimeError, AssertionError, ValueError) as e:
        raise NascompError(
            f"the model cannot run on a {tuple(example.shape)} input ({str(e).splitlines()[0][:160]}); export it at the "
            "resolution it was built for, or rebuild it for this one"
        ) from None
    scale = max(1.0, float(np.abs(reference).max()))
    created = [p for p in (path.parent, *path.parent.parents) if not p.exists()]  # removed again if no exporter succeeds
    path.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for name in ("torchscript", "dynamo") if exporter == "auto" else (exporter,):
        if opset is not None and opset not in OPSETS[name]:
            continue  # auto with an opset only one exporter writes
        version = opset or DEFAULT_OPSETS[name]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".onnx")
        os.close(fd)
        try:
            _export_once(model, example, Path(tmp), name, version)
            session = ort_session(tmp, threads=1)
            out = session.run(None, {session.get_inputs()[0].name: example.numpy()})[0]
            diff = float(np.abs(out - reference).max())
            if not diff <= tolerance * scale:
                raise RuntimeError(f"ONNX Runtime output differs from PyTorch by {diff:.2e} (> {tolerance:g} x {scale:.3g})")
            written = _opset_of(tmp)  # what the file declares (an exporter may raise a too-low request)
            os.replace(tmp, path)
            return OnnxExport(path, name, written, tuple(example.shape), diff, path.stat().st_size)
        except Exception as e:  # try the next exporter; report all if none works
            errors.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        finally:
            for leftover in (tmp, tmp + ".data"):
                with contextlib.suppress(OSError):
                    os.unlink(leftover)
    for folder in created:  # innermost first; only what this call created, and only while empty
        with contextlib.suppress(OSError):
            folder.rmdir()
    raise NascompError("ONNX export failed: " + " | ".join(errors))

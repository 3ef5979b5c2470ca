"""Export a model to an ExecuTorch program (``.pte``) for the XNNPACK delegate, fp32 or int8, and prove it in the runtime.

The path is ExecuTorch's own: ``torch.export`` -> (int8: PT2E quantization with ExecuTorch's ``XNNPACKQuantizer``)
-> `nascomp.deploy.delegable` (formulations the partitioner claims; ``rewrite=False`` skips it) ->
``to_edge_transform_and_lower(..., partitioner=[XnnpackPartitioner()])`` -> ``to_executorch()``.

**int8**: *static* (the default) quantizes weights per output channel and activations per tensor with ranges
calibrated on real training images (histogram observers), so linear layers, convolutions, additions and
multiplications run as int8 XNNPACK kernels; *dynamic* quantizes only the linear layers' weights and picks their inputs'
ranges at run time (no data), like ONNX Runtime's dynamic int8. Softmax, GELU and the layer norms stay float in both.

**The check**: the file is loaded in ExecuTorch's runtime and run on real images of the data (not only noise: a
lowered program can agree on random inputs and diverge on real ones) and compared with PyTorch on the same
images. fp32 is compared with the eager model, within ``tolerance`` x max(1, max |eager logit|) (1e-4 by default).
int8 is compared with the same quantized model simulated in PyTorch (the PT2E-converted module, fake-quantized in
float), which checks the lowering; how far int8 moved the outputs from fp32 is reported as the top-1 agreement on
those images, and its accuracy is what `nascomp compress --method int8 --runtime executorch` measures on the test
split. A file that fails the check is not written.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_bytes
from nascomp.deploy.delegation import DelegationReport, delegation_report, require_delegated
from nascomp.deploy.et_runtime import PteSession, executorch_version, native_logs_captured, require_executorch, warnings_silenced
from nascomp.deploy.formats import PRECISIONS, QUANTIZATIONS

__all__ = ["OutputCheck", "PteExport", "export_pte", "lower_to_pte", "quantize_pt2e"]

INT8_TOLERANCE = 0.05  # int8 kernels round differently from the float simulation: a few quantization steps of the logits
QUANTIZATION_TEXT = {
    "static": "PT2E static int8 (XNNPACKQuantizer): per-channel int8 weights, per-tensor int8 activations calibrated on {n} "
    "training images (histogram observer); linear, conv, add, mul in int8; softmax, GELU, layer norm float",
    "dynamic": "PT2E dynamic int8 (XNNPACKQuantizer): per-channel int8 weights of the linear layers, their inputs quantized "
    "per tensor at run time; convolutions and everything else float",
}


@dataclass
class OutputCheck:
    """How closely ExecuTorch reproduced PyTorch on real images (and on a noise input)."""

    reference: str
    images: int
    source: str
    max_abs_diff: float
    scale: float
    tolerance: float
    noise_max_abs_diff: float
    top1_agreement_with_fp32: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance * self.scale and self.noise_max_abs_diff <= self.tolerance * self.scale

    def to_dict(self) -> dict:
        return {
            "reference": self.reference,
            "images": self.images,
            "source": self.source,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "allowed_abs_diff": self.tolerance * self.scale,
            "scale": self.scale,
            "noise_max_abs_diff": self.noise_max_abs_diff,
            "top1_agreement_with_fp32": self.top1_agreement_with_fp32,
            "passed": self.passed,
        }


@dataclass
class PteExport:
    """A checked ``.pte`` file: precision, how much of it XNNPACK runs, and how closely it reproduces PyTorch."""

    path: Path
    precision: str
    quantization: str | None
    input_shape: tuple[int, ...]
    rewritten: bool
    delegation: DelegationReport
    check: OutputCheck | None
    export_seconds: float
    size_bytes: int

    def to_dict(self) -> dict:
        return {
            "format": "pte",
            "path": str(self.path),
            "runtime": "ExecuTorch",
            "runtime_version": executorch_version(),
            "delegate": "XNNPACK",
            "precision": self.precision,
            "quantization": self.quantization,
            "input_shape": list(self.input_shape),
            "delegable_rewrite": self.rewritten,
            "delegation": self.delegation.to_dict(),
            "check": self.check.to_dict() if self.check else None,
            "export_seconds": round(self.export_seconds, 2),
            "size_bytes": self.size_bytes,
        }


def quantize_pt2e(model: nn.Module, example: torch.Tensor, quantization: str, calibration: torch.Tensor | None) -> nn.Module:
    """The PT2E-converted int8 module of ``model`` (a float simulation of the int8 program), calibrated batch by batch."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if quantization not in QUANTIZATIONS:
        raise NascompError(f"int8 quantization {quantization!r}: choose static (calibrated) or dynamic (no data)")
    if quantization == "static" and (calibration is None or len(calibration) == 0):
        raise NascompError("static int8 needs calibration images (--data); or choose --int8 dynamic")
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=quantization == "dynamic")
    # dynamic: the linear layers only, as ONNX Runtime's dynamic int8 (a dynamically quantized conv fails in PT2E's per-channel path)
    quantizer = XNNPACKQuantizer().set_global(config) if quantization == "static" else XNNPACKQuantizer().set_module_type(nn.Linear, config)
    prepared = prepare_pt2e(torch.export.export(model, (example,)).module(), quantizer)
    with torch.no_grad():  # dynamic: one pass sets the weights' per-channel ranges (activations get theirs at run time)
        # static: calibration was checked above
        for batch in calibration.split(example.shape[0]) if quantization == "static" and calibration is not None else [example]:
            if batch.shape[0] == example.shape[0]:
                prepared(batch)
    return convert_pt2e(prepared)


def lower_to_pte(module: nn.Module, example: torch.Tensor, rewrite: bool = True) -> tuple[bytes, DelegationReport]:
    """The ExecuTorch program of ``module`` for XNNPACK, and what the partitioner delegated."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from nascomp.deploy.delegable import delegable_program

    program = torch.export.export(module, (example,))
    if rewrite:
        program = delegable_program(program)
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    report = delegation_report(edge.exported_program().graph_module)
    return edge.to_executorch().buffer, report


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _compare(session: PteSession, reference: nn.Module, fp32: nn.Module, images: torch.Tensor, batch: int) -> tuple[float, float, float]:
    """(max |ExecuTorch - reference|, max |reference|, top-1 agreement of ExecuTorch with fp32) over ``images``."""
    diff, scale, agree, n = 0.0, 0.0, 0, 0
    with torch.no_grad():
        for x in images.split(batch):
            if x.shape[0] != batch:
                continue
            got, want, base = session(x), _first(reference(x)).float(), _first(fp32(x)).float()
            diff = max(diff, float((got - want).abs().max()))
            scale = max(scale, float(want.abs().max()))
            agree += int((got.argmax(-1) == base.argmax(-1)).sum())
            n += x.shape[0]
    return diff, scale, agree / n if n else float("nan")


@torch.no_grad()
def export_pte(
    model: nn.Module,
    path: str | os.PathLike,
    example: torch.Tensor | None = None,
    *,
    resolution: int | None = None,
    in_chans: int = 3,
    batch: int = 1,
    precision: str = "fp32",
    quantization: str = "static",
    calibration: torch.Tensor | None = None,
    check_images: torch.Tensor | None = None,
    check_source: str = "",
    tolerance: float | None = None,
    rewrite: bool = True,
    require_full: bool = False,
) -> PteExport:
    """Write ``path`` (atomically) after checking it in ExecuTorch's runtime; see the module docstring.

    Args:
        model: any module; exported in eval mode on the CPU.
        path: the ``.pte`` file to write.
        example: the input to export with (e.g. a single block's feature map); default a seeded image batch of
            ``batch x in_chans x resolution²`` (the exported shape is static).
        precision: ``fp32`` or ``int8``; quantization: ``static`` (needs ``calibration``) or ``dynamic``.
        calibration: preprocessed training images for static int8 (N, C, H, W).
        check_images: preprocessed real images the runtime is checked on (None: only a noise input, for layers alone).
        check_source: where ``check_images`` come from, for the record.
        tolerance: largest |ExecuTorch - PyTorch| relative to max(1, max |PyTorch logit|) (default 1e-4 fp32, 0.05 int8).
        rewrite: use `nascomp.deploy.delegable`'s formulations (``False`` exports timm's graph as it is).
        require_full: fail when any op is left on portable kernels.

    Returns:
        `PteExport` with the delegation report and the check.
    """
    require_executorch()
    if precision not in PRECISIONS:
        raise NascompError(f"--precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    tolerance = tolerance if tolerance is not None else (1e-4 if precision == "fp32" else INT8_TOLERANCE)
    path = Path(path)
    start = time.perf_counter()
    fp32 = model.eval().cpu()
    from nascomp.deploy.onnx import example_input

    if example is None:
        if not resolution:
            raise NascompError("export needs a resolution (or an example input)")
        example = example_input(batch, in_chans, resolution)
    batch = example.shape[0]
    try:
        with warnings_silenced(), native_logs_captured():
            reference = fp32 if precision == "fp32" else quantize_pt2e(fp32, example, quantization, calibration)
            buffer, report = lower_to_pte(reference, example, rewrite)
    except NascompError:
        raise
    except Exception as e:
        raise NascompError(f"ExecuTorch export failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}") from None
    if require_full:
        require_delegated(report, "the exported program")
    seconds = time.perf_counter() - start
    tmp = path.with_name(f".{path.name}.check")
    try:
        atomic_write_bytes(tmp, buffer)
        session = PteSession(tmp, threads=1)
        noise, noise_scale, _ = _compare(session, reference, fp32, example, batch)
        check = None
        if check_images is not None and len(check_images):
            diff, scale, agree = _compare(session, reference, fp32, check_images, batch)
            check = OutputCheck(
                "eager PyTorch (fp32)" if precision == "fp32" else f"the {quantization} int8 model simulated in PyTorch (PT2E)",
                int(len(check_images) // batch * batch),
                check_source,
                diff,
                max(1.0, scale),
                tolerance,
                noise,
                agree,
            )
            failed = not check.passed
        else:
            failed = noise > tolerance * max(1.0, noise_scale)
            diff, scale = noise, noise_scale
        if failed:
            advice = (
                "Try again with --no-rewrite to tell a formulation problem from a runtime one"
                if precision == "fp32"
                # XNNPACK's int8 kernels round differently from PT2E's simulation; on an untrained model's near-zero logits
                # (a timm name without weights) that rounding is the whole signal
                else "If the model is untrained (random weights), load its trained weights (--checkpoint); "
                "to accept a larger int8 error, raise --tolerance"
            )
            raise NascompError(
                f"the ExecuTorch program's output differs from PyTorch by {diff:.3g} (allowed {tolerance:g} x "
                f"{max(1.0, scale):.3g}); not written. {advice}"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return PteExport(
        path,
        precision,
        quantization if precision == "int8" else None,
        tuple(example.shape),
        rewrite,
        report,
        check,
        seconds,
        path.stat().st_size,
    )

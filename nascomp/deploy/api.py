"""`export`: a model as a deployment file its runtime was shown to run like PyTorch: ONNX (ONNX Runtime) or an
ExecuTorch program (``.pte``, XNNPACK delegate; fp32 or int8, checked on real images)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nascomp.core.checks import check_file, is_module
from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_directory, atomic_write_json
from nascomp.core.outputs import claim_output
from nascomp.core.validate import output_file, positive
from nascomp.data.source import check_source
from nascomp.deploy.formats import EXPORTERS, FORMATS, OPSETS, PRECISIONS, QUANTIZATIONS
from nascomp.models.names import check_model_ref
from nascomp.spaces.arch import Arch

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nascomp.deploy.onnx import OnnxExport
    from nascomp.deploy.pte import PteExport

__all__ = ["export", "real_images"]


def real_images(
    data, data_options: Mapping | None, resolution: int, in_chans: int, *, check: int, calibrate: int = 0, seed: int = 0
) -> tuple[torch.Tensor | None, torch.Tensor | None, str]:
    """(the first ``check`` validation images, ``calibrate`` random training images, where they come from), preprocessed for
    a ``in_chans x resolution²`` model as the evaluation transform does."""
    import torch

    from nascomp.data import data_bundle

    bundle = data_bundle(data, **dict(data_options or {}))
    tf = bundle.transform(resolution, in_chans, train=False)
    # the splits are map-style datasets: they have __len__, which torch's Dataset does not declare
    n_val, n_train = len(bundle.val), len(bundle.train)  # type: ignore[arg-type]
    checked = tf([bundle.val[i] for i in range(min(check, n_val))])[0] if check else None
    calibration = None
    if calibrate:
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))[: min(calibrate, n_train)]
        calibration = tf([bundle.train[i] for i in order.tolist()])[0]
    source = f"{bundle.name}: first {0 if checked is None else len(checked)} validation images, evaluation transform at {resolution} px"
    return checked, calibration, source


def _default_out(model, format: str, precision: str) -> Path:
    if is_module(model) or isinstance(model, Arch):
        raise NascompError("export needs out=PATH for a model given as an object")
    ref = Path(model)
    if format == "onnx":
        return ref / "model.onnx" if ref.is_dir() else Path(f"{ref.stem}.onnx")
    return ref / f"executorch-{precision}" if ref.is_dir() else Path(f"{ref.stem}-executorch-{precision}")


def export(
    model: nn.Module | str | os.PathLike | Arch,
    out: str | os.PathLike | None = None,
    *,
    format: str = "onnx",
    resolution: int | None = None,
    batch: int = 1,
    opset: int | None = None,
    exporter: str = "auto",
    checkpoint: str | None = None,
    precision: str = "fp32",
    quantization: str = "static",
    data: Any = "fashion-mnist",
    data_options: Mapping | None = None,
    calib_images: int = 256,
    check_images: int = 32,
    tolerance: float | None = None,
    rewrite: bool = True,
    require_delegated: bool = False,
    **model_kwargs: Any,
) -> OnnxExport | PteExport:
    """Export ``model`` and prove the file in its runtime.

    Args:
        model: a module, a saved directory, an arch, or a timm name (``checkpoint`` loads weights).
        out: ``onnx``: the file (default ``MODEL/model.onnx`` for a saved directory, else ``./<name>.onnx``); ``pte``: a folder
            that receives ``model.pte`` and ``export.json`` (default ``MODEL/executorch-<precision>`` or
            ``./<name>-executorch-<precision>``).
        format: ``onnx`` (checked with ONNX Runtime on a seeded random input) or ``pte`` (ExecuTorch with the XNNPACK delegate,
            checked in ExecuTorch's runtime on real images; see `nascomp.deploy.pte`).
        resolution: input side (default: the model's).
        batch: the exported batch size.
        opset: ONNX only; see `nascomp.deploy.onnx.export_onnx`.
        exporter: ONNX only; see `nascomp.deploy.onnx.export_onnx` (TorchScript first, dynamo as fallback).
        precision: ``pte``: ``fp32`` or ``int8``.
        quantization: int8's ``static`` (calibrated on ``calib_images`` training images) or ``dynamic``.
        data: the dataset whose images check the file and calibrate int8 (a `DataBundle` or a name; ``data_options`` load it).
        check_images: validation images the runtime is checked on. tolerance: see `nascomp.deploy.pte.export_pte`.
        rewrite: ``pte``: rewrite ops XNNPACK cannot take into equivalent ones (`nascomp.deploy.delegable`).
        require_delegated: ``pte``: fail, writing nothing, when any op is left on ExecuTorch's portable kernels.

    Returns:
        `OnnxExport` (path, exporter, opset, size, largest |ONNX Runtime - PyTorch| difference) or `PteExport` (path,
        precision, delegation report, check against PyTorch on real images, export time).
    """
    if format not in FORMATS:
        raise NascompError(f"format {format!r}: choose from {', '.join(FORMATS)}")
    positive("--resolution", resolution)
    positive("--batch", batch)
    check_model_ref(model)
    check_file(checkpoint, "--checkpoint")
    if format == "onnx":
        if exporter not in EXPORTERS:
            raise NascompError(f"--exporter {exporter!r}: choose from {', '.join(EXPORTERS)}")
        if opset is not None:
            ranges = [OPSETS[e] for e in (("torchscript", "dynamo") if exporter == "auto" else (exporter,))]
            if isinstance(opset, bool) or not isinstance(opset, int) or not any(opset in r for r in ranges):
                span = f"{min(r.start for r in ranges)}..{max(r.stop for r in ranges) - 1}"
                raise NascompError(f"--opset {opset!r}: the {exporter} exporter writes opsets {span}")
        out = output_file(out) or output_file(_default_out(model, format, precision))
        assert out is not None  # output_file returns None only for None
        from nascomp.deploy.onnx import export_onnx
        from nascomp.models.resolve import as_module, model_input_size

        module = as_module(model, checkpoint=checkpoint, **model_kwargs)
        in_chans, native = model_input_size(module)
        return export_onnx(module, out, resolution=resolution or native, in_chans=in_chans, batch=batch, exporter=exporter, opset=opset)
    if precision not in PRECISIONS:
        raise NascompError(f"--precision {precision!r}: choose from {', '.join(PRECISIONS)}")
    if quantization not in QUANTIZATIONS:
        raise NascompError(f"--int8 {quantization!r}: choose static (calibrated on --data) or dynamic")
    if opset is not None or exporter != "auto":
        raise NascompError("--opset and --exporter are ONNX options; an ExecuTorch program is exported with torch.export")
    positive("--check-images", check_images)
    positive("--calib-images", calib_images)
    positive("--tolerance", tolerance, integer=False)
    if isinstance(data, str):
        check_source(data, (data_options or {}).get("data_dir"), bool((data_options or {}).get("download")))
    claim = claim_output(
        out if out is not None else _default_out(model, format, precision), inputs=[model, checkpoint], overwrite=True
    )  # an earlier export of the same model is replaced; anything else is refused
    assert claim is not None  # claim_output returns None only for no path
    if claim.previous not in (None, "an ExecuTorch export"):
        raise NascompError(f"--out {claim.path} holds {claim.previous}; an ExecuTorch export writes a folder of its own: choose a new one")
    folder = claim.path
    from nascomp.deploy.et_runtime import require_executorch
    from nascomp.deploy.pte import export_pte
    from nascomp.models.resolve import as_module, model_input_size

    require_executorch()
    module = as_module(model, checkpoint=checkpoint, **model_kwargs)
    in_chans, native = model_input_size(module)
    resolution = resolution or native
    calibrate = calib_images if precision == "int8" and quantization == "static" else 0
    checked, calibration, source = real_images(data, data_options, resolution, in_chans, check=check_images, calibrate=calibrate)
    with atomic_directory(folder) as tmp:
        result = export_pte(
            module,
            tmp / "model.pte",
            resolution=resolution,
            in_chans=in_chans,
            batch=batch,
            precision=precision,
            quantization=quantization,
            calibration=calibration,
            check_images=checked,
            check_source=source,
            tolerance=tolerance,
            rewrite=rewrite,
            require_full=require_delegated,
        )
        result.path = folder / "model.pte"
        atomic_write_json(tmp / "export.json", result.to_dict())
    return result

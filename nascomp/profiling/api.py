"""`profile` (measured latency and energy of a model on a target) and latency lookup tables for search budgets."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from torch import nn

from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json, read_json
from nascomp.core.validate import non_negative, output_dir, output_file, positive
from nascomp.models.resolve import as_module
from nascomp.profiling.energy import PowerModel, parse_power_override
from nascomp.profiling.host import parse_cores
from nascomp.profiling.profiler import ProfileOptions, ProfileReport, profile_model
from nascomp.profiling.targets import Target, parse_target
from nascomp.spaces.arch import Arch
from nascomp.spaces.space import SearchSpace

__all__ = [
    "profile",
    "profile_options",
    "LatencyTable",
    "build_latency_table",
    "TransferredTable",
    "transfer_latency_table",
    "TableValidation",
    "validate_latency_table",
]

ProgressFn = Callable[[str, int, int], None]


def profile_options(target: str | Target = "cpu", **settings: Any) -> ProfileOptions:
    """`ProfileOptions` from a target and keyword settings, checked: ``cores`` may be ``"0-3"``, ``power_model``
    ``"ACTIVE[:IDLE]"`` watts; unknown settings are a user error."""
    known = {f.name for f in fields(ProfileOptions)} - {"target"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise NascompError(f"unknown profile options {unknown}; valid: {', '.join(sorted(known))}")
    if isinstance(settings.get("cores"), str):
        settings["cores"] = parse_cores(settings["cores"])
    if isinstance(settings.get("power_model"), str):
        settings["power_model"] = parse_power_override(settings["power_model"])
    elif settings.get("power_model") is not None and not isinstance(settings["power_model"], PowerModel):
        raise NascompError("power_model must be 'ACTIVE[:IDLE]' watts or a PowerModel")
    for name in ("threads", "batch", "resolution", "repeat"):
        positive(f"--{name}", settings.get(name))
    non_negative("--warmup", settings.get("warmup"))
    positive("--energy-window", settings.get("energy_window_s"), integer=False)
    if settings.get("onnx_dir") is not None:
        output_dir(settings["onnx_dir"], "--keep-onnx")
    return ProfileOptions(
        target if isinstance(target, Target) else parse_target(target), **{k: v for k, v in settings.items() if v is not None}
    )


def profile(
    model: nn.Module | str | os.PathLike | Arch,
    target: str | Target = "cpu",
    *,
    out: str | os.PathLike | None = None,
    checkpoint: str | None = None,
    name: str | None = None,
    options: ProfileOptions | None = None,
    model_kwargs: Mapping | None = None,
    **settings: Any,
) -> ProfileReport:
    """Measure latency (and energy) of ``model`` on ``target`` with the protocol recorded next to the numbers.

    Args:
        model: a module, a timm name, an arch, or a saved directory (``checkpoint`` loads weights).
        target: ``cpu`` (the host), ``mobile-cpu`` (a phone-class profile on the host: ONNX Runtime, 1 thread,
            pinned), ``cuda`` (CUDA events, NVML energy) or ``android[:SERIAL]`` (a phone over adb).
        out: also write the JSON report to this file, and its HTML page beside it (FILE.html).
        options: a ready `ProfileOptions`; otherwise keyword ``settings`` make one (``runtimes=["onnxruntime"]`` or
            ``["executorch"]`` (ExecuTorch, XNNPACK delegate), ``precisions=["fp32", "int8"]``, ``threads``, ``cores="0-3"``,
            ``batch``, ``resolution``, ``warmup``, ``repeat``, ``energy=True``, ``power_model="5:0.5"``, ``timer="thread-cpu"``,
            ``exporter``, ``op_profile=True`` (ExecuTorch per-op times), ``runner`` (android: executor_runner)...).
        model_kwargs: timm keyword arguments for a model given by name.

    Returns:
        `ProfileReport`: the median latency and IQR per (runtime, precision), energy, cost and the protocol.
    """
    out = output_file(out)
    opts = options or profile_options(target, **settings)
    kwargs = dict(model_kwargs or {})
    module = None
    resolution = opts.resolution
    by_name = not isinstance(model, (nn.Module, Arch)) and not str(model).endswith(".json") and not Path(model).is_dir()
    if resolution and by_name and "img_size" not in kwargs:
        try:  # ViT/Swin bake the resolution into position tables; convolutional models take any input size
            module = as_module(model, checkpoint=checkpoint, img_size=resolution, **kwargs)
        except NascompError as e:
            if "does not accept" not in str(e):
                raise
    if module is None:
        module = as_module(model, checkpoint=checkpoint, **kwargs)
    report = profile_model(module, opts, name=name or (str(model) if not isinstance(model, nn.Module) else type(model).__name__))
    if out is not None:
        from nascomp.report import write_report

        atomic_write_json(out, report.to_dict(include_samples=opts.include_samples))
        write_report(out)  # FILE.html beside the JSON
    return report


def _lut_protocol(
    space: SearchSpace,
    target: str,
    runtime: str | None,
    precision: str,
    threads: int | None,
    cores: str | list[int] | None,
    timer: str,
    exporter: str,
    probe: bool,
    warmup: int,
    repeat: int,
    batch: int,
    resolution: int | None,
):
    """The table protocol from `profile`-style settings, checked before any measurement."""
    from nascomp.profiling.predictor import LutProtocol

    opts = profile_options(
        target,
        runtimes=[runtime] if runtime else None,
        precisions=[precision],
        threads=threads,
        cores=cores,
        timer=timer,
        exporter=exporter,
        warmup=warmup,
        repeat=repeat,
        batch=batch,
        resolution=resolution,
    )
    proto = LutProtocol(
        target=opts.target.label,
        runtime=runtime,
        precision=precision,
        threads=opts.threads,
        cores=opts.cores,
        timer=timer,
        exporter=exporter,
        probe=probe,
        warmup=warmup,
        repeat=repeat,
        batch=batch,
        resolution=resolution or space.resolution,
    )
    return proto.resolved()


def _fit_summary(table: dict) -> dict:
    """A table's fitted correction without its per-subnet evidence (calibration points, leave-one-out weights)."""
    return {k: v for k, v in (table.get("fit") or {}).items() if k not in ("calibration", "loo_weights")}


@dataclass
class LatencyTable:
    """A latency lookup table measured layer by layer on a target (`build_latency_table`): ``table`` is the document
    written to ``path``; ``entries`` counts its layer configurations, ``fit`` is its correction of the layer sums
    without the calibration subnets, ``seconds`` the profiling time."""

    path: Path
    table: dict
    target: str
    protocol: dict
    entries: int
    fit: dict
    seconds: float


def build_latency_table(
    space: SearchSpace | str,
    target: str = "mobile-cpu",
    *,
    lut: str | os.PathLike | None = None,
    runtime: str | None = None,
    precision: str = "fp32",
    threads: int | None = None,
    cores: str | list[int] | None = None,
    timer: str = "wall",
    exporter: str = "auto",
    probe: bool = False,
    warmup: int = 3,
    repeat: int = 15,
    batch: int = 1,
    resolution: int | None = None,
    calibrate: int = 12,
    seed: int = 0,
    energy: bool = False,
    fit: str = "ridge",
    progress: ProgressFn | None = None,
) -> LatencyTable:
    """Measure every layer configuration of ``space`` on ``target``: the latency predictor search budgets use.

    Args:
        space: a `SearchSpace` or a shipped space name / YAML path.
        target: where to measure (``cpu``, ``mobile-cpu``, ``cuda``, ``android[:SERIAL]``).
        lut: the table file (default: the per-user cache, `nascomp.profiling.predictor.lut_path` of the runtime and precision).
        probe: time a fixed reference block before every measurement and keep the ratio (shared machines).
        calibrate: random subnets measured end to end to fit the table's correction. seed: their draw.
        energy: also fit an energy model. progress: ``progress(stage, done, total)`` callback.
        fit: the correction of the layer sums: ``ridge`` (per-stage scales, per-layer overhead, offset; see
            `nascomp.profiling.correction`), ``offset`` or ``affine``.
        runtime: measurement protocol, the runtime, as for `profile`.
        precision: measurement protocol, the precision, as for `profile`.
        threads: measurement protocol, threads, as for `profile`.
        cores: measurement protocol, the cores it is pinned to, as for `profile`.
        timer: measurement protocol, the timer, as for `profile`.
        exporter: measurement protocol, the ONNX exporter, as for `profile`.
        warmup: measurement protocol, warm-up runs, as for `profile`.
        repeat: measurement protocol, timed runs, as for `profile`.
        batch: measurement protocol, the batch size, as for `profile`.
        resolution: measurement protocol, the input side, as for `profile`.

    Returns:
        `LatencyTable`: the path and the table document written there (``.table``: ``entries``, ``protocol``, ``fit``,
        ``power``, ``host``...), its target and protocol, the number of layer configurations measured, the fitted
        correction (without its calibration subnets) and the profiling seconds.
    """
    from nascomp.profiling.correction import FIT_METHODS
    from nascomp.profiling.predictor import build_lut, lut_path

    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    non_negative("--calibrate", calibrate)
    if fit not in FIT_METHODS:
        raise NascompError(f"unknown --fit {fit!r}; choose one of {', '.join(FIT_METHODS)}")
    proto = _lut_protocol(space, target, runtime, precision, threads, cores, timer, exporter, probe, warmup, repeat, batch, resolution)
    path = output_file(lut, "--lut") or lut_path(space.name, proto.target, proto.runtime, precision)
    table = build_lut(space, proto, path, calibrate=calibrate, seed=seed, energy=energy, progress=progress, fit=fit)
    return LatencyTable(
        Path(path), table, table["target"], table["protocol"], len(table["entries"]), _fit_summary(table), table["build_seconds"]
    )


@dataclass
class TransferredTable:
    """A latency table for a new target made from another target's table and ``shots`` subnets measured on the new one."""

    path: Path
    table: dict
    source: str
    shots: int
    seconds: float
    fit: dict
    loo_within_10pct: float
    interval_method: str


def transfer_latency_table(
    space: SearchSpace | str,
    target: str = "mobile-cpu",
    *,
    source: str | os.PathLike,
    shots: int = 20,
    lut: str | os.PathLike | None = None,
    runtime: str | None = None,
    precision: str = "fp32",
    threads: int | None = None,
    cores: str | list[int] | None = None,
    timer: str = "wall",
    exporter: str = "auto",
    probe: bool = False,
    warmup: int = 3,
    repeat: int = 15,
    batch: int = 1,
    resolution: int | None = None,
    seed: int = 0,
    energy: bool = False,
    progress: ProgressFn | None = None,
) -> TransferredTable:
    """A predictor for ``target`` in minutes: the table ``source`` of another target (device, runtime, precision, threads or
    day), corrected by ``shots`` random subnets of ``space`` measured end to end on ``target`` (`nascomp.profiling.transfer`).

    Args:
        space: a `SearchSpace` or a shipped space name / YAML path; ``source`` must cover it.
        target: the new target (``cpu``, ``mobile-cpu``, ``cuda``). source: the other target's table file.
        shots: subnets measured on the target (>= 3; 20 gives intervals at 90 % by jackknife+). seed: their draw.
        lut: where to write the new table (default: the per-user cache for target, runtime and precision, so budgets find it).
        energy: also measure the shots' energy. progress: ``progress(stage, done, total)``.
        runtime: measurement protocol, the runtime, as for `build_latency_table`.
        precision: measurement protocol, the precision, as for `build_latency_table`.
        threads: measurement protocol, threads, as for `build_latency_table`.
        cores: measurement protocol, the cores it is pinned to, as for `build_latency_table`.
        timer: measurement protocol, the timer, as for `build_latency_table`.
        exporter: measurement protocol, the ONNX exporter, as for `build_latency_table`.
        probe: measurement protocol, the reference probe, as for `build_latency_table`.
        warmup: measurement protocol, warm-up runs, as for `build_latency_table`.
        repeat: measurement protocol, timed runs, as for `build_latency_table`.
        batch: measurement protocol, the batch size, as for `build_latency_table`.
        resolution: measurement protocol, the input side, as for `build_latency_table`.

    Returns:
        `TransferredTable`: the path and table, the fitted correction, the shots' leave-one-out accuracy, the
        interval method and the profiling seconds.
    """
    import numpy as np

    from nascomp.profiling.predictor import LatencyPredictor, lut_path
    from nascomp.profiling.transfer import MIN_SHOTS, check_source, transfer_lut

    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    src = Path(source)
    if not src.is_file():
        raise NascompError(f"--from {src}: no such table file; pass a table built with `nascomp profile --build-lut`")
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < MIN_SHOTS:
        raise NascompError(f"--shots must be an integer >= {MIN_SHOTS} (20 is a good default), got {shots!r}")
    proto = _lut_protocol(space, target, runtime, precision, threads, cores, timer, exporter, probe, warmup, repeat, batch, resolution)
    source_table = read_json(src)
    check_source(source_table, space, proto, str(src))
    path = output_file(lut, "--lut") or lut_path(space.name, proto.target, proto.runtime, precision)
    table = transfer_lut(source_table, space, proto, path, shots=shots, seed=seed, energy=energy, source_path=str(src), progress=progress)
    fit = _fit_summary(table)
    loo = np.asarray(table["fit"].get("loo_errors") or [])
    return TransferredTable(
        Path(path),
        table,
        str(src),
        shots,
        table["build_seconds"],
        fit,
        float(np.mean(np.exp(loo) - 1 <= 0.10)) if len(loo) else float("nan"),
        LatencyPredictor(table, str(path)).interval_method(),
    )


@dataclass
class TableValidation:
    """A latency table checked on random subnets measured end to end (`validate_latency_table`); errors are relative
    (``predicted / measured - 1``), ``interval`` is ``{"level", "method", "coverage"}`` and ``rows`` one dict per subnet
    (``predicted_ms``, ``measured_ms``, ``error``, ``low_ms``, ``high_ms``, ``covered``, ``depths``, ``embed_dims``, ``arch``)."""

    subnets: int
    seed: int
    tolerance: float
    within_tolerance: float
    within_5pct: float
    mean_abs_error: float
    max_abs_error: float
    spearman: float | None
    interval: dict
    measured_ms_range: list[float]
    fit_id: str
    seconds: float
    rows: list[dict]

    def to_dict(self) -> dict:
        """The validation report as stored in the table (``"validation"``), keys in field order."""
        return asdict(self)


def validate_latency_table(
    space: SearchSpace | str,
    target: str = "mobile-cpu",
    *,
    lut: str | os.PathLike | None = None,
    n: int = 50,
    seed: int = 1000,
    runtime: str | None = None,
    precision: str = "fp32",
    level: float = 0.9,
    progress: ProgressFn | None = None,
) -> TableValidation:
    """Measure ``n`` random subnets of ``space`` end to end and compare with the table's predictions and intervals.

    Args:
        space: a `SearchSpace` or a shipped space name / YAML path. target: the table's target.
        lut: the table file (default: the per-user cache for target, runtime and precision). n: subnets to measure; seed: their draw.
        runtime: which of the target's tables (with the default ``lut``), with ``precision``.
        precision: which of the target's tables (with the default ``lut``), with ``runtime``.
        level: the intervals' level.
        progress: ``progress(stage, done, total)`` callback.

    Returns:
        `TableValidation`: the share of subnets within the tolerance and within 5 %, the mean and largest error, the
        Spearman rank correlation, the intervals' coverage and the rows; ``.to_dict()`` is stored in the table, whose
        later intervals are then split-conformal on these subnets.
    """
    from nascomp.profiling.intervals import check_level
    from nascomp.profiling.predictor import lut_path, validate_lut

    positive("--validate", n)
    check_level(level)
    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    path = Path(lut) if lut else lut_path(space.name, parse_target(target).label, runtime, precision)
    if not path.is_file():
        raise NascompError(f"no lookup table at {path}; build it with --build-lut")
    return TableValidation(**validate_lut(read_json(path), space, n=n, seed=seed, path=path, progress=progress, level=level))

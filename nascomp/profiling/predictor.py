"""Latency (and energy) prediction for search: a per-target lookup table of measured layer latencies.

Why a lookup table: a hierarchical ViT is a chain of independent layers (stem, blocks, patch merging,
head) whose cost depends only on their configuration at the stage's resolution (`BlockConfig.signature`),
so timing every distinct layer once and summing predicts any member of a search space in microseconds.
nn-Meter does this per fused CNN kernel and has no transformer kernels; here the unit is a whole Swin
block (attention, MLP, norms, residuals), so no kernel-fusion rules are needed.

What the table holds (format 2; format-1 tables still load and predict):
- ``entries``: median latency (ms) of every distinct layer configuration of a space, each measured
  alone under the table's protocol (target, runtime, precision, threads, pinned cores, timer, exporter);
- ``fit``: the correction from layer sums to end-to-end latency (`nascomp.profiling.correction`: per-stage
  scales, a per-layer overhead term for the per-run cost every layer timed alone pays, an offset), fitted on
  random subnets measured end to end under the same protocol, with its leave-one-out fits;
- ``validation``: random subnets (>= 50) measured end to end: the share predicted within +-10 % and the
  coverage of the intervals; they then become the intervals' split-conformal evidence;
- ``power``: watts used to turn latency into energy (measured on the calibration subnets when built with
  ``--energy`` on a machine with a counter, otherwise the target's stated power model: ``estimated``);
- ``kind`` / ``transfer``: a table transferred from another target (`nascomp.profiling.transfer`) keeps that
  target's entries and a correction fitted on a few subnets measured on its own.

Every prediction has an interval at a stated level (`predict_interval`, `nascomp.profiling.intervals`).

Search budgets use it like this (``--budget 25ms@mobile-cpu`` / ``--budget 50mj@cuda``)::

    predictor = budget_predictor("ms", "mobile-cpu", space)   # or load_predictor("cuda", "energy", space)
    ok = predictor.predict(arch) <= 25.0                      # predictor.unit == "ms" ("mJ" for energy)
    p = predictor.predict_interval(arch)                      # Prediction(value, low, high, level=0.9, method)
    print(predictor.describe())                               # what the number means (protocol, accuracy)

Where tables live: ``--lut PATH`` when given; else ``$NASCOMP_LUT_DIR``, else
``${XDG_CACHE_HOME:-~/.cache}/nascomp/luts``, as ``<space>__<target>.json`` (``<space>__<target>__<runtime>[-int8].json``
for a runtime other than the target's default, e.g. ExecuTorch on ``mobile-cpu``). A table is specific to the
machine it was measured on. A missing table, or one that lacks layers of the space asked for (an evolved
space), is a `NascompError` naming the command that builds or extends it; building never happens
implicitly, because it takes minutes to an hour (a transfer from another target's table: minutes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json, read_json
from nascomp.profiling.correction import Correction, arch_features, feature_names, fit_correction
from nascomp.profiling.intervals import DEFAULT_LEVEL, Prediction, check_level, jackknife_plus, split_conformal, t_band
from nascomp.spaces import Arch, SearchSpace, arch_layout, clamp_window, stage_resolutions
from nascomp.spaces.layout import BlockConfig, HeadConfig, MergeConfig, StemConfig

__all__ = [
    "LUT_FORMAT",
    "LutProtocol",
    "default_lut_dir",
    "lut_path",
    "layer_key",
    "space_layers",
    "arch_layers",
    "measure_layer",
    "measure_arch",
    "ReferenceProbe",
    "PROBE_LAYER",
    "build_lut",
    "refit",
    "validate_lut",
    "LatencyPredictor",
    "EnergyPredictor",
    "load_predictor",
    "budget_predictor",
]

LUT_FORMAT = 2
READABLE_FORMATS = (1, 2)  # format 1: offset / affine fits only, no leave-one-out fits (intervals from validation rows only)
MEASURED, TRANSFERRED = "nascomp latency lookup table", "nascomp transferred latency lookup table"
Layer = StemConfig | MergeConfig | BlockConfig | HeadConfig


# ---------------------------------------------------------------------------------------------- where and what


def default_lut_dir() -> Path:
    if os.environ.get("NASCOMP_LUT_DIR"):
        return Path(os.environ["NASCOMP_LUT_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "nascomp" / "luts"


def lut_path(space: str, target: str, runtime: str | None = None, precision: str = "fp32") -> Path:
    """Default file of the table for ``space`` (a name) on ``target`` ('mobile-cpu', 'android:SERIAL'...), measured in
    ``runtime`` (None: the target's default) at ``precision``."""
    from nascomp.profiling.targets import parse_target

    default = parse_target(target).default_runtimes()[0]
    suffix = "" if runtime in (None, default) else f"__{runtime}"
    suffix += "" if precision == "fp32" else (f"-{precision}" if suffix else f"__{default}-{precision}")
    return default_lut_dir() / f"{Path(space).stem}__{target.replace(':', '-')}{suffix}.json"


def layer_key(cfg: Layer) -> str:
    """A stable text key for a layer configuration (what determines its latency, not its position)."""
    if isinstance(cfg, BlockConfig):
        return f"block:r{cfg.resolution}:d{cfg.dim}:h{cfg.heads}:q{cfg.qkv_dim}:m{cfg.mlp_ratio:g}:w{cfg.window}:s{cfg.shift}"
    if isinstance(cfg, MergeConfig):
        return f"merge:r{cfg.resolution}:d{cfg.in_dim}>{cfg.out_dim}"
    if isinstance(cfg, StemConfig):
        return f"stem:c{cfg.in_chans}:p{cfg.patch_size}:r{cfg.img_size}:d{cfg.dim}"
    if isinstance(cfg, HeadConfig):
        return f"head:r{cfg.resolution}:d{cfg.dim}:n{cfg.num_classes}"
    raise TypeError(f"not a layer configuration: {cfg!r}")


def arch_layers(arch: Arch, resolution: int, in_chans: int = 3, num_classes: int = 1000) -> list[Layer]:
    """The layers of ``arch`` at ``resolution`` in execution order."""
    layout = arch_layout(arch, resolution, in_chans, num_classes)
    layers: list[Layer] = [layout.stem]
    for stage in range(len(layout.resolutions)):
        if stage > 0:
            layers.append(layout.merges[stage - 1])
        layers.extend(layout.stage_blocks(stage))
    layers.append(layout.head)
    return layers


def space_layers(space: SearchSpace, resolution: int | None = None, in_chans: int = 3, num_classes: int = 1000) -> dict[str, Layer]:
    """Every distinct layer configuration any member of ``space`` can contain, keyed by `layer_key`."""
    resolution = resolution or space.resolution
    sides = stage_resolutions(resolution, space.patch_size, space.num_stages)
    out: dict[str, Layer] = {}
    for dim in space.stages[0].embed_dim:
        cfg: Layer = StemConfig(in_chans, space.patch_size, resolution, dim)
        out[layer_key(cfg)] = cfg
    for i, ch in enumerate(space.stages):
        if i > 0:
            for d_in in space.stages[i - 1].embed_dim:
                for d_out in ch.embed_dim:
                    cfg = MergeConfig(i, sides[i - 1], d_in, d_out)
                    out[layer_key(cfg)] = cfg
        parities = (0, 1) if max(ch.depth) > 1 else (0,)
        for dim in ch.embed_dim:
            for heads, qkv in space.attention_pairs(i):
                for mlp in ch.mlp_ratio:
                    for window in ch.window:
                        for index in parities:
                            w, shift = clamp_window(sides[i], window, index)
                            cfg = BlockConfig(i, index, sides[i], dim, heads, qkv, mlp, w, shift)
                            out.setdefault(layer_key(cfg), cfg)
    for dim in space.stages[-1].embed_dim:
        cfg = HeadConfig(sides[-1], dim, num_classes)
        out[layer_key(cfg)] = cfg
    return out


def _space_fingerprint(space: SearchSpace) -> str:
    doc = {"resolution": space.resolution, "patch_size": space.patch_size, "stages": [s.to_dict() for s in space.stages]}
    return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- measuring


@dataclass
class LutProtocol:
    """How every layer and every end-to-end subnet of a table is measured (the table predicts exactly this)."""

    target: str = "mobile-cpu"
    runtime: str | None = None
    precision: str = "fp32"
    threads: int | None = None
    cores: list[int] | None = None
    timer: str = "wall"
    exporter: str = "auto"
    probe: bool = False
    warmup: int = 3
    repeat: int = 15
    batch: int = 1
    resolution: int = 224
    in_chans: int = 3
    num_classes: int = 1000

    def resolved(self) -> LutProtocol:
        """Fill target defaults (runtime, threads, cores) so the protocol is explicit in the table."""
        from nascomp.profiling.targets import parse_target

        t = parse_target(self.target)
        if t.name == "android":
            raise NascompError(
                "latency lookup tables are built on host targets (cpu, mobile-cpu, cuda); for a phone, "
                "profile candidate models with --target android"
            )
        runtime = self.runtime or t.default_runtimes()[0]
        if runtime not in t.allowed_runtimes:
            raise NascompError(f"--runtime {runtime} is not available on target {t.name}")
        if runtime == "torch" and self.precision != "fp32":
            raise NascompError("int8 tables are measured in a deployment runtime; add --runtime onnxruntime or --runtime executorch")
        if runtime == "executorch":
            from nascomp.deploy.et_runtime import require_executorch

            require_executorch()
        threads = self.threads or t.default_threads()
        cores = self.cores or t.default_cores(threads)
        return LutProtocol(
            t.label,
            runtime,
            self.precision,
            threads,
            cores,
            self.timer,
            self.exporter,
            self.probe,
            self.warmup,
            self.repeat,
            self.batch,
            self.resolution,
            self.in_chans,
            self.num_classes,
        )

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def profile_options(self, **extra: Any):
        from nascomp.profiling.profiler import ProfileOptions
        from nascomp.profiling.targets import parse_target

        # a resolved protocol (the only kind profiled) names its runtime
        return ProfileOptions(
            parse_target(self.target),
            runtimes=[self.runtime],  # type: ignore[list-item]
            precisions=[self.precision],
            threads=self.threads,
            cores=self.cores,
            batch=self.batch,
            resolution=self.resolution,
            warmup=self.warmup,
            repeat=self.repeat,
            timer=self.timer,
            exporter=self.exporter,
            count_cost=False,
            **extra,
        )


def _layer_module(cfg: Layer) -> torch.nn.Module:
    from nascomp.models.swin import build_block, build_head, build_merging, build_stem

    builders: dict[type, Callable[[Any], torch.nn.Module]] = {
        BlockConfig: build_block,
        MergeConfig: build_merging,
        StemConfig: build_stem,
        HeadConfig: build_head,
    }
    builder = builders[type(cfg)]
    return builder(cfg).eval()


def _runner(module: torch.nn.Module, example: torch.Tensor, proto: LutProtocol, workdir: Path, name: str) -> tuple[Callable, dict]:
    """One run of ``module`` on ``example`` in the table's runtime (ONNX export and int8, or an ExecuTorch program, as
    `profile_model` makes them)."""
    from nascomp.profiling.latency import ort_runner, pte_runner

    cuda = proto.target == "cuda"
    if proto.runtime == "torch":
        device = torch.device("cuda" if cuda else "cpu")
        module = module.to(device)
        x = example.to(device)

        def run():
            with torch.inference_mode():
                return module(x)

        return run, {}
    if proto.runtime == "executorch":
        from nascomp.deploy.pte import export_pte

        program = export_pte(module, workdir / f"{name}.pte", example, precision=proto.precision, quantization="dynamic")
        return pte_runner(str(program.path), proto.batch, proto.in_chans, proto.resolution, proto.threads, example=example).run, {}
    from nascomp.deploy.onnx import export_onnx

    path = workdir / f"{name}.onnx"
    exported = export_onnx(module, path, example, exporter=proto.exporter)
    if proto.precision == "int8":
        from nascomp.deploy.quantize import quantize_int8

        path = quantize_int8(path, workdir / f"{name}.int8.onnx")
    runner = ort_runner(
        str(path), proto.batch, proto.in_chans, proto.resolution, proto.threads, "cuda" if cuda else "cpu", example=example.numpy()
    )
    return runner.run, {"exporter": exported.exporter}


@contextlib.contextmanager
def _protocol_timer(proto: LutProtocol) -> Iterator[Any]:
    """The table protocol's core pinning and thread count, and its timer: what every table measurement runs under."""
    from nascomp.profiling.host import pinned_to
    from nascomp.profiling.latency import torch_threads
    from nascomp.profiling.profiler import make_timer

    cuda = proto.target == "cuda"
    with pinned_to(proto.cores), torch_threads(proto.threads if not cuda else None):
        yield make_timer(proto.timer, cuda and proto.runtime == "torch", proto.threads if not cuda else None)


# A fixed mid-network Swin block (Swin-T stage 2): the yardstick of the reference-probe mode.
PROBE_LAYER = BlockConfig(stage=1, index=0, resolution=28, dim=192, heads=6, qkv_dim=192, mlp_ratio=4.0, window=7, shift=0)


class ReferenceProbe:
    """Times a fixed reference block right before every timed run, for shared or throttling machines.

    On a machine whose speed drifts (other jobs on the sibling hyperthread or the memory bus, thermal
    or frequency changes) a layer measured at minute 5 and a network measured at minute 50 are not
    comparable. Timing the probe and the measured code back to back and keeping the median of their
    *ratio* cancels the drift; ratios are converted back to milliseconds with the probe's latency
    measured once when the table was built (``reference_ms``), so every number of a table, and every
    end-to-end check of it, is expressed at the machine speed of that moment.
    """

    def __init__(self, proto: LutProtocol, workdir: Path, reference_ms: float | None = None) -> None:
        from nascomp.profiling.latency import time_runs

        torch.manual_seed(0)
        example = torch.randn(*PROBE_LAYER.input_shape(proto.batch), generator=torch.Generator().manual_seed(1))
        self.run, _ = _runner(_layer_module(PROBE_LAYER), example, proto, workdir, "probe")
        if reference_ms is None:
            with _protocol_timer(proto) as timer:
                reference_ms = time_runs(self.run, proto.warmup, max(30, proto.repeat), timer).median_ms
        self.reference_ms = float(reference_ms)

    def to_dict(self) -> dict:
        return {
            "layer": layer_key(PROBE_LAYER),
            "reference_ms": self.reference_ms,
            "method": "median over runs of (measured / probe timed just before) x reference_ms",
        }


def _timed(run: Callable, proto: LutProtocol, probe: ReferenceProbe | None) -> dict:
    """Median (ms) and IQR of ``run`` under the protocol's pinning and threads, optionally probe-normalised."""
    from nascomp.profiling.latency import LatencyStats, time_runs

    with _protocol_timer(proto) as timer:
        if probe is None:
            stats = time_runs(run, proto.warmup, proto.repeat, timer)
        else:
            for _ in range(proto.warmup):
                probe.run()
                run()
            ratios = []
            for _ in range(proto.repeat):
                reference = timer.time(probe.run)
                ratios.append(timer.time(run) / reference)
            stats = LatencyStats([r * probe.reference_ms for r in ratios])
    return {"ms": round(stats.median_ms, 5), "iqr_ms": round(stats.iqr_ms, 5)}


def measure_layer(cfg: Layer, proto: LutProtocol, workdir: Path, probe: ReferenceProbe | None = None) -> dict:
    """Median latency (ms) of one layer alone, under ``proto``; returns {'ms', 'iqr_ms', 'exporter'?}."""
    torch.manual_seed(0)
    example = torch.randn(*cfg.input_shape(proto.batch), generator=torch.Generator().manual_seed(0))
    run, info = _runner(_layer_module(cfg), example, proto, workdir, "layer")
    return {**_timed(run, proto, probe), **info}


def measure_arch(
    arch: Arch, proto: LutProtocol, energy: bool = False, probe: ReferenceProbe | None = None, workdir: Path | None = None
) -> dict:
    """End-to-end latency of ``arch`` under ``proto``: `nascomp.profiling.profile_model`, or probe-normalised runs."""
    from nascomp.models.swin import build_from_arch

    torch.manual_seed(0)
    model = build_from_arch(arch, num_classes=proto.num_classes, in_chans=proto.in_chans, img_size=proto.resolution).eval()
    if probe is not None:
        example = torch.randn(proto.batch, proto.in_chans, proto.resolution, proto.resolution, generator=torch.Generator().manual_seed(0))
        with tempfile.TemporaryDirectory(prefix="nascomp-arch-", dir=workdir) as tmp:
            run, _ = _runner(model, example, proto, Path(tmp), "arch")
            return _timed(run, proto, probe)
    from nascomp.profiling.profiler import profile_model

    report = profile_model(model, proto.profile_options(energy=energy, energy_window_s=1.0))
    m = report.primary
    assert m.stats is not None  # the primary measurement is one that was not skipped
    out: dict[str, Any] = {"ms": round(m.stats.median_ms, 5), "iqr_ms": round(m.stats.iqr_ms, 5)}
    if m.energy is not None:
        out["energy"] = {"kind": m.energy.kind, "mj": m.energy.mj_per_inference, "source": m.energy.source}
    return out


# ---------------------------------------------------------------------------------------------- the table


def _sum_ms(entries: dict, arch: Arch, proto: dict) -> float:
    return float(_features(entries, arch, proto)[:-2].sum())


def _features(entries: dict, arch: Arch, proto: dict) -> np.ndarray:
    """`nascomp.profiling.correction.arch_features` of ``arch`` from ``entries``; KeyError(layer key) when one is missing."""
    layers = arch_layers(arch, proto["resolution"], proto["in_chans"], proto["num_classes"])
    keys = [layer_key(cfg) for cfg in layers]
    for key in keys:
        if key not in entries:
            raise KeyError(key)
    return arch_features(layers, entries, keys, arch.num_stages)


def calibration_features(table: dict, points: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(features from the table's entries, measured ms) of measured subnets ``[{'arch', 'measured_ms'}, ...]``."""
    X = np.array([_features(table["entries"], Arch.from_dict(p["arch"]), table["protocol"]) for p in points])
    return X, np.array([p["measured_ms"] for p in points], dtype=float)


def fit_id(fit: dict | None) -> str:
    """A short fingerprint of a table's correction: validation rows are intervals' evidence only for the fit they checked."""
    doc = {k: v for k, v in (fit or {}).items() if k in ("method", "scale", "offset_ms", "weights")}
    return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def refit(table: dict, method: str = "offset") -> dict:
    """Recompute a table's correction from its stored calibration subnets (no new measurements); see
    `nascomp.profiling.correction` for the methods (``ridge``, ``offset``, ``affine``)."""
    fit = table.get("fit") or {}
    calibration = fit.get("calibration") or []
    if calibration:
        X, y = calibration_features(table, calibration)
        names = feature_names(len(calibration[0]["arch"]["stages"]))
        correction = fit_correction(X, y, names, method).to_dict()
    else:
        correction = {"method": "none", "scale": 1.0, "offset_ms": 0.0}
    table["fit"] = {**correction, "calibration_seed": fit.get("calibration_seed"), "calibration": calibration}
    table["format"] = LUT_FORMAT
    return table


def _power(proto: LutProtocol, calibration: list[dict]) -> dict:
    """Watts that turn latency into energy: measured on the calibration subnets when they all were, else the stated model."""
    from nascomp.profiling.energy import default_power_model
    from nascomp.profiling.targets import parse_target

    measured = [c for c in calibration if c.get("energy", {}).get("kind") == "measured"]
    if measured and len(measured) == len(calibration):
        watts = sum(c["energy"]["mj"] for c in measured) / sum(c["measured_ms"] for c in measured)
        return {
            "kind": "measured",
            "dynamic_w": watts,
            "source": measured[0]["energy"]["source"],
            "description": f"average dynamic power of {len(measured)} calibration subnets (energy counter, idle subtracted)",
        }
    model = default_power_model(parse_target(proto.target).name, proto.threads)
    return {"kind": "estimated", "dynamic_w": model.active_w - model.idle_w, "source": "power-model", "description": model.description}


def measure_subnets(
    archs: list[Arch],
    proto: LutProtocol,
    probe: ReferenceProbe | None,
    workdir: Path,
    energy: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    stage: str = "calibration subnets",
) -> list[dict]:
    """Each arch measured end to end under ``proto`` (probe-normalised with ``probe``): ``[{'arch', 'measured_ms', 'seconds'}]``."""
    report = progress or (lambda *a: None)
    points = []
    for n, arch in enumerate(archs, 1):
        start = time.perf_counter()
        result = measure_arch(arch, proto, probe=probe, workdir=workdir)
        point = {"arch": arch.to_dict(), "measured_ms": result["ms"]}
        if energy:
            point["energy"] = measure_arch(arch, proto, energy=True)["energy"] if probe else result["energy"]
        point["seconds"] = round(time.perf_counter() - start, 2)
        points.append(point)
        report(stage, n, len(archs))
    return points


def build_lut(
    space: SearchSpace,
    proto: LutProtocol,
    path: str | Path,
    calibrate: int = 12,
    seed: int = 0,
    energy: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    checkpoint_every: int = 20,
    fit: str = "ridge",
) -> dict:
    """Measure every layer of ``space`` missing from the table at ``path`` (resumable), then fit on ``calibrate`` subnets.

    An existing table with the same protocol is extended, not rebuilt: only the layers it lacks are
    measured (e.g. after S3 evolved the space). A table measured under another protocol, or one transferred
    from another target (its entries are that target's), is an error.
    """
    from nascomp.profiling.host import host_facts

    path = Path(path)
    proto = proto.resolved()
    table = _empty_table(space, proto)
    if path.exists():
        old = read_json(path)
        if old.get("kind") == TRANSFERRED:
            raise NascompError(
                f"{path} is a table transferred from another target, not measured layer by layer; pass another --lut for the full build"
            )
        if old.get("format") not in READABLE_FORMATS or old.get("protocol") != proto.to_dict():
            raise NascompError(
                f"{path} was measured under another protocol ({old.get('protocol')}); pass a different --lut file or delete it to rebuild"
            )
        table["entries"] = old.get("entries", {})
        table["build_seconds"] = old.get("build_seconds", 0.0)
        table["spaces"] = sorted(set(old.get("spaces", [])) | set(table["spaces"]))
        table["probe"] = old.get("probe")
    layers = space_layers(space, proto.resolution, proto.in_chans, proto.num_classes)
    todo = [(k, cfg) for k, cfg in layers.items() if k not in table["entries"]]
    start = time.perf_counter()
    report = progress or (lambda *a: None)
    with tempfile.TemporaryDirectory(prefix="nascomp-lut-") as tmp:
        probe = None
        if proto.probe:  # a resumed table keeps its reference so all entries share one machine speed
            probe = ReferenceProbe(proto, Path(tmp), (table.get("probe") or {}).get("reference_ms"))
            table["probe"] = probe.to_dict()
        for n, (key, cfg) in enumerate(todo, 1):
            table["entries"][key] = measure_layer(cfg, proto, Path(tmp), probe)
            report("layers", n, len(todo))
            if n % checkpoint_every == 0:
                table["build_seconds"] += time.perf_counter() - start
                start = time.perf_counter()
                atomic_write_json(path, table)  # a killed build resumes from here
        rng = random.Random(seed)
        archs = [space.sample(rng) for _ in range(calibrate)]
        calibration = measure_subnets(archs, proto, probe, Path(tmp), energy, progress)
    for point in calibration:
        point["sum_ms"] = _sum_ms(table["entries"], Arch.from_dict(point["arch"]), table["protocol"])
    table["fit"] = {"calibration_seed": seed, "calibration": calibration}
    refit(table, fit)
    table["power"] = _power(proto, calibration)
    table["build_seconds"] = round(table["build_seconds"] + time.perf_counter() - start, 1)
    table["host"] = host_facts()
    table["complete"] = True
    atomic_write_json(path, table)
    return table


def _empty_table(space: SearchSpace, proto: LutProtocol) -> dict:
    return {
        "format": LUT_FORMAT,
        "kind": MEASURED,
        "metric": "latency",
        "unit": "ms",
        "target": proto.target,
        "spaces": [f"{space.name}:{_space_fingerprint(space)}"],
        "protocol": proto.to_dict(),
        "statistic": "median of the timed runs per layer; prediction = the fitted correction of the layer sums (fit)",
        "entries": {},
        "fit": None,
        "probe": None,
        "power": None,
        "validation": None,
        "build_seconds": 0.0,
        "complete": False,
    }


def validate_lut(
    table: dict,
    space: SearchSpace,
    n: int = 50,
    seed: int = 1000,
    path: str | Path | None = None,
    tolerance: float = 0.10,
    progress: Callable[[str, int, int], None] | None = None,
    level: float = DEFAULT_LEVEL,
) -> dict:
    """Measure ``n`` random subnets end to end and compare with the prediction and its interval (at ``level``, made
    before these measurements); stored in the table when ``path``, where they become its split-conformal evidence."""
    from scipy import stats

    predictor = LatencyPredictor(table)
    proto = LutProtocol(**table["protocol"])
    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(n)]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nascomp-lut-") as tmp:
        probe = ReferenceProbe(proto, Path(tmp), table["probe"]["reference_ms"]) if proto.probe else None
        measured = measure_subnets(archs, proto, probe, Path(tmp), progress=progress, stage="validation subnets")
    rows = []
    for arch, point in zip(archs, measured):
        p = predictor.predict_interval(arch, level)
        m = point["measured_ms"]
        rows.append(
            {
                "predicted_ms": round(p.value, 4),
                "measured_ms": m,
                "error": round(p.value / m - 1, 5),
                "low_ms": p.low and round(p.low, 4),
                "high_ms": p.high and round(p.high, 4),
                "covered": p.covers(m),
                "depths": list(arch.depths),
                "embed_dims": list(arch.embed_dims),
                "arch": point["arch"],
            }
        )
    errors = np.array([abs(r["error"]) for r in rows])
    covered = [r["covered"] for r in rows if r["covered"] is not None]
    result = {
        "subnets": n,
        "seed": seed,
        "tolerance": tolerance,
        "within_tolerance": float(np.mean(errors <= tolerance)),
        "within_5pct": float(np.mean(errors <= 0.05)),
        "mean_abs_error": float(errors.mean()),
        "max_abs_error": float(errors.max()),
        "spearman": float(stats.spearmanr([r["predicted_ms"] for r in rows], [r["measured_ms"] for r in rows])[0]) if n > 2 else None,
        "interval": {"level": level, "method": predictor.interval_method(level), "coverage": float(np.mean(covered)) if covered else None},
        "measured_ms_range": [min(r["measured_ms"] for r in rows), max(r["measured_ms"] for r in rows)],
        "fit_id": fit_id(table.get("fit")),
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    if path is not None:
        table["validation"] = result
        atomic_write_json(path, table)
    return result


# ---------------------------------------------------------------------------------------------- predicting


class LatencyPredictor:
    """``predict(arch) -> ms`` from a lookup table, ``predict_interval(arch) -> Prediction``; ``protocol`` says what the
    milliseconds mean.

    Intervals (`nascomp.profiling.intervals`): split-conformal on the table's validation subnets when they checked the
    current fit; else jackknife+ on the fit's calibration subnets (a transferred table: its shots); a format-1 table
    without validation subnets has none, and `describe` says so.
    """

    metric = "latency"
    unit = "ms"

    def __init__(self, table: dict, source: str | None = None, level: float = DEFAULT_LEVEL) -> None:
        if table.get("format") not in READABLE_FORMATS or "entries" not in table:
            raise NascompError(f"{source or 'table'}: not a nascomp latency lookup table (format {', '.join(map(str, READABLE_FORMATS))})")
        self.table = table
        self.source = source
        self.level = check_level(level)
        self.target = table["target"]
        self.protocol = table["protocol"]
        self._fit = table.get("fit")
        self._corrections: dict[int, Correction] = {}
        self._loo_errors = np.asarray((self._fit or {}).get("loo_errors") or [], dtype=float)
        self.kind = "transferred lookup table" if table.get("kind") == TRANSFERRED else "measured lookup table"
        v = table.get("validation") or {}
        checked = table.get("format") == 1 or v.get("fit_id") == fit_id(self._fit)
        self._scores = (
            [abs(math.log(r["measured_ms"] / r["predicted_ms"])) for r in v.get("rows") or [] if r.get("predicted_ms", 0) > 0]
            if checked
            else []
        )

    def correction(self, num_stages: int) -> Correction:
        if num_stages not in self._corrections:
            self._corrections[num_stages] = Correction.from_fit(self._fit, num_stages)
        return self._corrections[num_stages]

    def missing(self, space: SearchSpace) -> list[str]:
        layers = space_layers(space, self.protocol["resolution"], self.protocol["in_chans"], self.protocol["num_classes"])
        return sorted(k for k in layers if k not in self.table["entries"])

    def features(self, arch: Arch) -> np.ndarray:
        try:
            return _features(self.table["entries"], arch, self.protocol)
        except KeyError as e:
            raise NascompError(
                f"the lookup table {self.source or ''} has no entry for layer {e.args[0]} of this arch; extend it with "
                f"`nascomp profile --build-lut --space SPACE --target {self.target} "
                f"--lut {self.source or 'FILE'}`"
            ) from None

    def layer_sum(self, arch: Arch) -> float:
        return float(self.features(arch)[:-2].sum())

    def predict(self, arch: Arch) -> float:
        """Predicted latency (ms) of ``arch`` under the table's protocol."""
        return self.correction(arch.num_stages).predict(self.features(arch))

    def predict_interval(self, arch: Arch, level: float | None = None) -> Prediction:
        """The prediction with its interval at ``level`` (default: the predictor's, 90 %); see the class docstring."""
        x = self.features(arch)
        correction = self.correction(arch.num_stages)
        return self._interval(correction.predict(x), correction.loo_predict(x), level)

    def interval_method(self, level: float | None = None) -> str:
        """How `predict_interval` makes its interval at ``level`` (the same for every arch)."""
        return self._interval(1.0, np.ones(len(self._loo_errors)), level).method

    def _interval(self, value: float, loo_values: np.ndarray, level: float | None) -> Prediction:
        level = check_level(self.level if level is None else level)
        found = split_conformal(value, self._scores, level, "validation subnets of this fit") if self._scores else None
        if found is None and len(self._loo_errors):
            what = "shots" if self.table.get("kind") == TRANSFERRED else "calibration subnets"
            found = jackknife_plus(value, loo_values, self._loo_errors, level, what) or t_band(
                value, self._loo_errors, level, f"errors of the {what}"
            )
        return found or Prediction(value, None, None, None, self._no_interval())

    def _no_interval(self) -> str:
        if self.table.get("format") == 1:
            return "no interval (a format-1 table without validation subnets: run `nascomp profile --validate 50` on it)"
        return "no interval (fewer than 3 calibration subnets: rebuild with --calibrate 12)"

    def breakdown(self, arch: Arch) -> dict[str, float]:
        """Milliseconds per layer kind (the table's entries, before the fitted correction): where the time goes."""
        out: dict[str, float] = {}
        for cfg in arch_layers(arch, self.protocol["resolution"], self.protocol["in_chans"], self.protocol["num_classes"]):
            kind = layer_key(cfg).split(":")[0]
            out[kind] = out.get(kind, 0.0) + self.table["entries"][layer_key(cfg)]["ms"]
        return out

    def describe(self) -> str:
        p = self.protocol
        v = self.table.get("validation")
        acc = f"; {v['within_tolerance']:.0%} of {v['subnets']} random subnets within ±{v['tolerance']:.0%}" if v else ""
        probe = ", reference-probe normalised to the machine speed when built" if p.get("probe") else ""
        src = self.table.get("transfer") or {}
        origin = (
            f"transferred from the {src.get('source_target')} table {src.get('source_path')} with {src.get('shots')} subnets "
            f"measured on this target"
            if src
            else f"the lookup table {self.source or ''}"
        )
        return (
            f"predicted {self.metric} on {self.target} ({p['runtime']} {p['precision']}, {p['threads']} thread(s), "
            f"{p['resolution']} px, {p['timer']} timer{probe}) from {origin}{acc}; {self.level:.0%} interval: {self.interval_method()}"
        )


class EnergyPredictor:
    """``predict(arch) -> mJ`` per inference (idle subtracted): predicted latency x the table's dynamic power."""

    metric = "energy"
    unit = "mJ"

    def __init__(self, latency: LatencyPredictor) -> None:
        self.latency = latency
        self.target = latency.target
        power = latency.table.get("power") or {}
        if not power:
            raise NascompError(f"the lookup table {latency.source or ''} has no power entry; rebuild it with --build-lut")
        self.watts = float(power["dynamic_w"])
        self.kind = power["kind"]  # 'measured' (counter on calibration subnets) or 'estimated' (stated power model)
        self.protocol = {**latency.protocol, "power": power}

    def predict(self, arch: Arch) -> float:
        return self.latency.predict(arch) * self.watts  # ms x W = mJ

    def predict_interval(self, arch: Arch, level: float | None = None) -> Prediction:
        """The latency interval times the power: the uncertainty of the power itself is not in it."""
        p = self.latency.predict_interval(arch, level).scaled(self.watts, self.unit)
        return Prediction(
            p.value, p.low, p.high, p.level, f"{p.method}, x {self.watts:.2f} W ({self.kind} power, its error not included)", self.unit
        )

    def describe(self) -> str:
        return (
            f"{self.kind} energy per inference on {self.target}: predicted latency x {self.watts:.2f} W "
            f"({self.protocol['power']['description']}); {self.latency.level:.0%} interval: the latency's "
            f"({self.latency.interval_method()}) x the power"
        )


def load_predictor(
    target: str, metric: str = "latency", space: SearchSpace | str | None = None, lut: str | Path | None = None, runtime: str | None = None
) -> LatencyPredictor | EnergyPredictor:
    """The predictor search budgets use: ``load_predictor('mobile-cpu', 'latency', space='s3-vit').predict(arch)``.

    ``lut`` defaults to `lut_path(space.name, target, runtime)`. With ``space``, every layer the space can produce
    must be in the table; with ``runtime``, the table must have been measured in it. Raises NascompError with the
    build command when the table is missing, short or of another runtime.
    """
    from nascomp.profiling.host import cpu_model
    from nascomp.profiling.targets import parse_target

    if metric not in ("latency", "energy"):
        raise NascompError(f"unknown predictor metric {metric!r}; choose latency (ms) or energy (mJ)")
    label = parse_target(target).label
    space_obj = SearchSpace.load(space) if isinstance(space, (str, Path)) else space
    if lut is None and space_obj is None:
        raise NascompError("load_predictor needs the search space (to find its table) or an explicit lut path")
    if lut:
        path = Path(lut)
    else:
        assert space_obj is not None  # checked above: without a lut path the space is given
        path = lut_path(space_obj.name, label, runtime)
    space_arg = f"--space {space if isinstance(space, (str, Path)) else (space_obj.name if space_obj else 'SPACE')}"
    build = (
        f"nascomp profile --build-lut {space_arg} --target {label}"
        + (f" --runtime {runtime}" if runtime else "")
        + (f" --lut {path}" if lut else "")
    )
    if not path.is_file():
        raise NascompError(
            f"no latency lookup table for {label} at {path}; build it once on this machine with `{build}` "
            "(minutes to an hour; it measures every layer of the space)"
        )
    table = read_json(path)
    predictor = LatencyPredictor(table, str(path))
    if predictor.target != label:
        raise NascompError(f"{path} is a table for target {predictor.target}, not {label}")
    if runtime and predictor.protocol.get("runtime") != runtime:
        raise NascompError(
            f"{path} was measured in {predictor.protocol.get('runtime')}, not {runtime}; build a table on {runtime} with `{build}`"
        )
    if not table.get("complete"):
        raise NascompError(f"{path} is an unfinished build; resume it with `{build}`")
    if space_obj is not None:
        missing = predictor.missing(space_obj)
        if missing:
            raise NascompError(
                f"{path} lacks {len(missing)} layer configurations of space {space_obj.name!r} (e.g. {missing[0]}); "
                f"extend it with `{build}` (only the missing layers are measured)"
            )
    measured_on = (table.get("host") or {}).get("cpu_model")
    if measured_on and label != "cuda" and measured_on != cpu_model():
        warnings.warn(
            f"{path} was measured on {measured_on!r}, this machine is {cpu_model()!r}: predictions describe that machine", stacklevel=2
        )
    return EnergyPredictor(predictor) if metric == "energy" else predictor


_BUDGET_UNITS = {"ms": "latency", "mj": "energy"}


def budget_predictor(
    unit: str, target: str, space: SearchSpace | str, lut: str | Path | None = None, runtime: str | None = None
) -> LatencyPredictor | EnergyPredictor:
    """For budget strings like '25ms@mobile-cpu' / '50mj@cuda': unit 'ms' -> latency, 'mj' -> energy, in ``runtime``
    (None: the table's, by default the target's default runtime)."""
    metric = _BUDGET_UNITS.get(unit.lower())
    if metric is None:
        raise NascompError(f"budget unit {unit!r} is not measured by the profiler; use ms (latency) or mj (energy)")
    return load_predictor(target, metric, space=space, lut=lut, runtime=runtime)

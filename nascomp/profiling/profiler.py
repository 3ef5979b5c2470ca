"""Profile one model on one target: every (runtime, precision) variant, each with its full protocol.

`profile_model` is what ``nascomp profile`` runs and what benchmarks, experiments and the latency
predictor call. The report's top level repeats the *primary* measurement (the first variant:
torch fp32 on ``cpu`` and ``cuda``, ONNX Runtime fp32 on ``mobile-cpu`` and ``android``) so a
script can read ``latency_ms`` without knowing the variants; ``measurements`` holds all of them.

Runtimes other than eager torch measure a deployment file made once per (runtime, precision): an ONNX export
(int8: ONNX Runtime's dynamic quantization) or an ExecuTorch program for the XNNPACK delegate (int8: PT2E dynamic
quantization, as no data is at hand), unless a ready file is given (e.g. a statically quantized one).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.profiling.energy import (
    EnergyReport,
    EnergyUnavailable,
    NvmlCounter,
    PowerModel,
    RaplCounter,
    default_power_model,
    estimate_energy,
    measure_energy,
)
from nascomp.profiling.host import host_facts, load_average, pinned_to
from nascomp.profiling.latency import (
    CudaEventTimer,
    LatencyStats,
    ThreadCpuTimer,
    WallTimer,
    ort_runner,
    pte_runner,
    time_runs,
    torch_runner,
    torch_threads,
)
from nascomp.profiling.targets import PRECISIONS, Target

__all__ = ["ProfileOptions", "Measurement", "ProfileReport", "profile_model", "make_timer", "noise_warnings", "STATISTIC", "WIDE_SPREAD"]

STATISTIC = "median of the timed runs; spread = interquartile range (p75 - p25)"
WIDE_SPREAD = 0.2  # IQR / median above which a number is flagged: on an idle core the spread is a few per cent


@dataclass
class ProfileOptions:
    target: Target
    runtimes: list[str] | None = None
    precisions: list[str] | None = None
    threads: int | None = None
    cores: list[int] | None = None
    batch: int = 1
    resolution: int | None = None
    warmup: int = 10
    repeat: int = 50
    energy: bool = False
    power_model: PowerModel | None = None
    energy_window_s: float = 2.0
    perf_test: str | None = None
    onnx_dir: str | None = None
    include_samples: bool = False
    timer: str = "wall"
    exporter: str = "auto"
    count_cost: bool = True
    log: Callable[[str], None] | None = None
    onnx_files: dict[str, str] | None = None  # precision -> an ONNX file to measure instead of exporting (e.g. static int8)
    pte_files: dict[str, str] | None = None  # precision -> an ExecuTorch program to measure instead of exporting
    runner: str | None = None  # android + executorch: executor_runner on the host (pushed) or on the phone
    op_profile: bool = False  # executorch: per-op times from the runtime's event tracer (ETDump)


@dataclass
class Measurement:
    """One (runtime, precision) variant: its latency statistics, energy, and what was seen while timing it.

    ``details`` holds the runtime's version and settings, the timer, the load average before and after, the CPU
    share this process got (``process_cpu_per_thread``), the file's delegation report (ExecuTorch) and op times.
    ``skipped`` says why a variant that was planned could not be measured.
    """

    runtime: str
    precision: str
    stats: LatencyStats | None = None
    details: dict = field(default_factory=dict)
    energy: EnergyReport | None = None
    skipped: str | None = None

    def to_dict(self, include_samples: bool = False) -> dict:
        out: dict[str, Any] = {"runtime": self.runtime, "precision": self.precision}
        if self.skipped:
            return {**out, "skipped": self.skipped}
        assert self.stats is not None  # a variant that was not skipped was timed
        out.update(self.stats.to_dict(include_samples))
        out["energy_mj"] = round(self.energy.mj_per_inference, 4) if self.energy else None
        if self.energy:
            out["energy"] = self.energy.to_dict()
        out["details"] = self.details
        return out


@dataclass
class ProfileReport:
    """What `nascomp.profile` returns: the measurements and the protocol they were taken under.

    ``protocol`` records the target, device, threads, affinity, batch, resolution, warm-up and timed runs, the
    timer and the load average around the measurements; ``warnings`` flags numbers too noisy to trust
    (`noise_warnings`); ``cost`` holds params and MACs. ``primary`` is the headline variant (see module docstring).
    """

    model: str
    target: Target
    note: str
    protocol: dict
    measurements: list[Measurement]
    cost: dict | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def primary(self) -> Measurement:
        for m in self.measurements:
            if not m.skipped:
                return m
        raise NascompError("no measurement succeeded: " + "; ".join(f"{m.runtime}/{m.precision}: {m.skipped}" for m in self.measurements))

    def find(self, runtime: str, precision: str = "fp32") -> Measurement | None:
        return next((m for m in self.measurements if m.runtime == runtime and m.precision == precision and not m.skipped), None)

    def to_dict(self, include_samples: bool = False) -> dict:
        p = self.primary
        assert p.stats is not None  # the primary measurement is one that was not skipped
        out = {
            "model": self.model,
            "target": self.target.label,
            "runtime": p.runtime,
            "precision": p.precision,
            "latency_ms": round(p.stats.median_ms, 4),
            "iqr_ms": round(p.stats.iqr_ms, 4),
            "energy_mj": round(p.energy.mj_per_inference, 4) if p.energy else None,
            "energy_kind": p.energy.kind if p.energy else None,
            "note": self.note,
        }
        if self.cost:
            out.update({"params": self.cost["params"], "macs": self.cost["macs"], "gmacs": self.cost["gmacs"]})
        out["protocol"] = self.protocol
        out["warnings"] = self.warnings
        out["measurements"] = [m.to_dict(include_samples) for m in self.measurements]
        return out


def noise_warnings(measurements: list[Measurement], cpus: int | None = None) -> list[str]:
    """A line per measurement whose runs spread by more than `WIDE_SPREAD` of the median, with the likely cause.

    The cause is read from what was recorded while timing: the share of a CPU per thread the process got (another
    job on the same cores) and the load average against the CPUs this process may use.
    """
    lines = []
    for m in measurements:
        if m.skipped or m.stats is None or m.stats.median_ms <= 0:
            continue
        spread = m.stats.iqr_ms / m.stats.median_ms
        if spread <= WIDE_SPREAD:
            continue
        causes = []
        share = m.details.get("process_cpu_per_thread")
        if share is not None and share < 0.8:
            causes.append(f"this process got {share:.0%} of a CPU per thread while timing")
        load = (m.details.get("load_average_before") or [None])[0]
        if load is not None and cpus and load > cpus:
            causes.append(f"load average {load:.1f} on {cpus} CPU(s)")
        cause = f" ({'; '.join(causes)}: other work shared the cores)" if causes else ""
        lines.append(
            f"{m.runtime} {m.precision}: the runs spread widely, IQR {m.stats.iqr_ms:.3g} ms on a {m.stats.median_ms:.3g} ms "
            "median "
            f"({spread:.0%}){cause}; rerun on an idle machine, or use timer='thread-cpu' (this thread's CPU time only) "
            "or the reference probe"
        )
    return lines


def _cpu_times() -> tuple[int, int] | None:
    """(steal, total) jiffies from /proc/stat: steal time is the hypervisor taking our CPU away."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields)


@contextlib.contextmanager
def _load_record(details: dict, threads: int | None) -> Iterator[None]:
    """Record load average, CPU steal and how busy our own threads were while timing."""
    details["load_average_before"] = load_average()
    stat0, wall0, cpu0 = _cpu_times(), time.perf_counter(), time.process_time()
    yield
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    details["load_average_after"] = load_average()
    stat1 = _cpu_times()
    if stat0 and stat1 and stat1[1] > stat0[1]:
        details["cpu_steal_pct"] = round(100.0 * (stat1[0] - stat0[0]) / (stat1[1] - stat0[1]), 2)
    if threads and wall > 0:
        details["process_cpu_per_thread"] = round(cpu / wall / threads, 3)


def _plan(target: Target, opts: ProfileOptions, ort_cuda: bool) -> list[tuple[str, str]]:
    runtimes = opts.runtimes or target.default_runtimes(ort_cuda)
    precisions = opts.precisions or target.default_precisions()
    for r in runtimes:
        if r not in target.allowed_runtimes:
            raise NascompError(f"--runtime {r} is not available on target {target.name}; choose from {', '.join(target.allowed_runtimes)}")
    for p in precisions:
        if p not in PRECISIONS:
            raise NascompError(f"--precision {p!r}: choose from {', '.join(PRECISIONS)}")
    if target.name == "android" and opts.timer != "wall":
        raise NascompError("on android, the benchmark binary times itself (wall clock on the phone); drop --timer")
    if target.name == "cuda" and "int8" in precisions:
        raise NascompError("int8 (ONNX Runtime dynamic quantization) is a CPU kernel path; on cuda profile fp32")
    if opts.op_profile and "executorch" not in runtimes:
        raise NascompError("--op-profile reads ExecuTorch's event tracer; add --runtime executorch")
    plan = [(r, p) for r in runtimes for p in precisions if not (r == "torch" and p == "int8")]
    if not plan:
        raise NascompError("int8 is measured in a deployment runtime; add --runtime onnxruntime or --runtime executorch")
    if any(r == "executorch" for r, _ in plan):
        from nascomp.deploy.et_runtime import require_executorch

        require_executorch()
    return plan


def _ort_cuda_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def _device_facts(target: Target) -> dict:
    facts = host_facts()
    if target.name == "cuda":
        if not torch.cuda.is_available():
            raise NascompError("--target cuda: no CUDA device is visible to torch; use --target cpu or check the driver")
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        facts.update(
            {
                "gpu_model": props.name,
                "gpu_memory_gb": round(props.total_memory / 2**30, 1),
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
                "gpu_index": torch.cuda.current_device(),
            }
        )
    return facts


class _DeployFiles:
    """The deployment file of each (runtime, precision): exported once (ONNX checked with ONNX Runtime, ExecuTorch checked in its
    runtime on a noise input), or given."""

    def __init__(
        self,
        model: nn.Module,
        workdir: Path,
        resolution: int,
        in_chans: int,
        batch: int,
        exporter: str,
        log,
        onnx_given: dict[str, str] | None = None,
        pte_given: dict[str, str] | None = None,
    ) -> None:
        self.model, self.workdir, self.resolution, self.in_chans, self.batch, self.log = model, workdir, resolution, in_chans, batch, log
        self.exporter = exporter
        self.paths: dict[tuple[str, str], Path] = {}
        self.info: dict[tuple[str, str], dict] = {}
        for runtime, given, key in (("onnxruntime", onnx_given, "onnx"), ("executorch", pte_given, "pte")):
            for precision, path in (given or {}).items():
                self.paths[runtime, precision] = Path(path)
                self.info[runtime, precision] = {f"{key}_file": str(path), f"{key}_bytes": Path(path).stat().st_size}

    def get(self, runtime: str, precision: str) -> Path | None:
        if runtime == "torch":
            return None
        if (runtime, precision) not in self.paths:
            (self._onnx if runtime == "onnxruntime" else self._pte)(precision)
        return self.paths[runtime, precision]

    def _onnx(self, precision: str) -> None:
        from nascomp.deploy.onnx import export_onnx

        if ("onnxruntime", "fp32") not in self.paths:
            self.log(f"exporting to ONNX ({self.exporter} exporter; checked against PyTorch with ONNX Runtime)")
            export = export_onnx(
                self.model,
                self.workdir / "model.onnx",
                resolution=self.resolution,
                in_chans=self.in_chans,
                batch=self.batch,
                exporter=self.exporter,
            )
            self.paths["onnxruntime", "fp32"] = export.path
            self.info["onnxruntime", "fp32"] = {
                "exporter": export.exporter,
                "opset": export.opset,
                "onnx_bytes": export.size_bytes,
                "max_abs_diff_vs_torch": export.max_abs_diff,
            }
        if precision == "int8":
            from nascomp.deploy.quantize import QUANTIZATION, quantize_int8

            self.log("quantizing to int8 (ONNX Runtime dynamic quantization)")
            path = quantize_int8(self.paths["onnxruntime", "fp32"], self.workdir / "model.int8.onnx")
            self.paths["onnxruntime", "int8"] = path
            info = {k: v for k, v in self.info["onnxruntime", "fp32"].items() if k != "max_abs_diff_vs_torch"}
            self.info["onnxruntime", "int8"] = {
                **info,
                "onnx_bytes": path.stat().st_size,
                "quantization": QUANTIZATION,
                "max_abs_diff_vs_fp32": self._diff(self.paths["onnxruntime", "fp32"], path),
            }

    def _pte(self, precision: str) -> None:
        from nascomp.deploy.pte import QUANTIZATION_TEXT, export_pte

        self.log(f"exporting to ExecuTorch {precision} (XNNPACK delegate; checked in ExecuTorch's runtime)")
        export = export_pte(
            self.model,
            self.workdir / f"model.{precision}.pte",
            resolution=self.resolution,
            in_chans=self.in_chans,
            batch=self.batch,
            precision=precision,
            quantization="dynamic",
        )
        self.paths["executorch", precision] = export.path
        self.info["executorch", precision] = {
            "pte_bytes": export.size_bytes,
            "export_seconds": round(export.export_seconds, 2),
            "delegation": export.delegation.to_dict(),
            **({"quantization": QUANTIZATION_TEXT["dynamic"]} if precision == "int8" else {}),
            "check": "checked in ExecuTorch's runtime on a seeded noise input (nascomp export --format pte checks on real images)",
        }

    def _diff(self, a: Path, b: Path) -> float:
        """Largest logit difference between two ONNX files on the same input: how much int8 changed the outputs."""
        import numpy as np

        from nascomp.deploy.onnx import example_input
        from nascomp.deploy.runtime import ort_session

        x = example_input(self.batch, self.in_chans, self.resolution).numpy()
        outs = []
        for path in (a, b):
            session = ort_session(path, threads=1)
            outs.append(session.run(None, {session.get_inputs()[0].name: x})[0])
        return float(np.abs(outs[0] - outs[1]).max())


def _energy_host(
    target: Target, opts: ProfileOptions, run: Callable, latency_ms: float, threads: int | None, sync: Callable | None
) -> EnergyReport:
    model = opts.power_model or default_power_model(target.name, threads)
    counter: NvmlCounter | RaplCounter
    try:
        if target.name == "cuda":
            device = torch.cuda.current_device()
            counter = NvmlCounter(device, uuid=str(getattr(torch.cuda.get_device_properties(device), "uuid", "") or "") or None)
        else:
            counter = RaplCounter()
    except EnergyUnavailable as e:
        return estimate_energy(model, latency_ms, opts.batch, reason=str(e))
    report = measure_energy(counter, run, latency_ms, opts.batch, min_window_s=opts.energy_window_s, sync=sync)
    if target.name == "mobile-cpu":
        report.notes.append("RAPL is machine-wide: the host's package energy, not a phone's")
    return report


def profile_model(model: nn.Module, opts: ProfileOptions, name: str = "model") -> ProfileReport:
    """Measure ``model`` on ``opts.target`` for every planned (runtime, precision); see module docstring."""
    from nascomp.models import model_input_size

    target = opts.target
    log = opts.log or (lambda msg: None)
    if opts.batch < 1:
        raise NascompError("--batch must be at least 1")
    if opts.threads is not None and opts.threads < 1:
        raise NascompError("--threads must be at least 1")
    model = model.eval()
    in_chans, native = model_input_size(model)
    resolution = opts.resolution or native
    plan = _plan(target, opts, _ort_cuda_available() if target.name == "cuda" else False)
    threads = opts.threads or target.default_threads()
    cores = opts.cores or target.default_cores(threads)
    explicit_runtimes = bool(opts.runtimes)

    cost = None
    try:  # fail early, with a user error, when the model cannot take this input (e.g. a ViT at another resolution)
        if opts.count_cost:
            from nascomp.cost.counter import count_module

            cost = count_module(model, resolution, in_chans).to_dict()
        else:
            with torch.inference_mode():
                model(torch.zeros(1, in_chans, resolution, resolution))
    except (RuntimeError, AssertionError, ValueError) as e:
        raise NascompError(
            f"the model cannot run on a {in_chans}x{resolution}x{resolution} input "
            f"({str(e).splitlines()[0][:160]}); profile it at its own resolution ({native}) "
            f"or rebuild it for {resolution}"
        ) from None

    if target.name == "android":
        facts = {"host": host_facts()}
    else:
        facts = _device_facts(target)
    protocol: dict[str, Any] = {
        "target": target.label,
        "device": target.note(cores, threads, opts.batch),
        **facts,
        "threads": threads,
        "affinity": cores if cores else "not pinned (OS scheduler)",
        "batch": opts.batch,
        "resolution": resolution,
        "in_chans": in_chans,
        "warmup": opts.warmup,
        "repetitions": opts.repeat,
        "statistic": STATISTIC,
        "input": "fixed random normal tensor (seed 0); weights as loaded (random if not trained)",
    }

    measurements: list[Measurement] = []
    with contextlib.ExitStack() as stack:
        workdir = (
            Path(opts.onnx_dir) if opts.onnx_dir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nascomp-profile-")))
        )
        workdir.mkdir(parents=True, exist_ok=True)
        files = _DeployFiles(model, workdir, resolution, in_chans, opts.batch, opts.exporter, log, opts.onnx_files, opts.pte_files)
        adb = None
        if target.name == "android":
            from nascomp.profiling.android import Adb, device_facts

            adb = Adb(target.serial)
            protocol["phone"] = device_facts(adb)
            protocol["device"] = target.note(cores, threads, opts.batch).replace(
                "the only attached device", adb.serial or "the only attached device"
            )
        for runtime, precision in plan:
            try:
                path = files.get(runtime, precision)
            except NascompError as e:
                if explicit_runtimes:
                    raise
                measurements.append(Measurement(runtime, precision, skipped=str(e)))
                continue
            log(f"measuring {runtime} {precision} on {target.label}: {opts.warmup} warm-up + {opts.repeat} timed runs")
            info = files.info.get((runtime, precision), {})
            if adb is not None:
                assert path is not None  # only torch variants have no file, and a phone runs files
                measurements.append(_measure_android(adb, runtime, path, precision, opts, threads, cores, info, workdir))
            else:
                measurements.append(
                    _measure_host(model, target, runtime, precision, path, opts, resolution, in_chans, threads, cores, info)
                )
    timed = [m for m in measurements if not m.skipped]
    if timed:  # how the numbers were taken belongs with the protocol, not only in each variant's details
        protocol["timer"] = timed[0].details.get("timer", "the runtime's own")
        protocol["load_average"] = {
            "before": timed[0].details.get("load_average_before"),
            "after": timed[-1].details.get("load_average_after"),
        }
    cpus = len(cores) if cores else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return ProfileReport(name, target, protocol["device"], protocol, measurements, cost, noise_warnings(measurements, cpus))


def _measure_host(
    model,
    target: Target,
    runtime: str,
    precision: str,
    path: Path | None,
    opts: ProfileOptions,
    resolution: int,
    in_chans: int,
    threads: int | None,
    cores: list[int] | None,
    file_info: dict,
) -> Measurement:
    details: dict[str, Any] = {}
    device = target.device
    cuda = device == "cuda"
    with pinned_to(cores) as affinity, torch_threads(threads if not cuda else None):
        if runtime == "torch":
            run = torch_runner(model, opts.batch, in_chans, resolution, device)
            details.update(
                {"runtime_version": torch.__version__, "mode": "eager, torch.inference_mode", "intra_op_threads": torch.get_num_threads()}
            )
            sync = torch.cuda.synchronize if cuda else None
        elif runtime == "executorch":
            pte = pte_runner(str(path), opts.batch, in_chans, resolution, threads)
            run = pte.run
            details.update({**pte.info, **file_info})
            sync = None
        else:
            ort = ort_runner(str(path), opts.batch, in_chans, resolution, threads, device)
            import onnxruntime

            run = ort.run
            details.update({"runtime_version": onnxruntime.__version__, **ort.info, **file_info})
            sync = None
        timer = make_timer(opts.timer, cuda and runtime == "torch", threads if not cuda else None)
        details["timer"] = timer.name
        details["affinity_in_effect"] = affinity
        with _load_record(details, threads if not cuda else None):
            stats = time_runs(run, opts.warmup, opts.repeat, timer)
        if isinstance(timer, ThreadCpuTimer):
            details["wall_ms_median"] = round(LatencyStats(timer.wall_ms).median_ms, 4)
        elif isinstance(timer, WallTimer) and timer.thread_cpu_ms:
            cpu = LatencyStats(timer.thread_cpu_ms).median_ms
            details["thread_cpu_ms_median"] = round(cpu, 4)
            details["wall_over_cpu"] = round(stats.median_ms / cpu, 3) if cpu > 0 else None
        energy = _energy_host(target, opts, run, stats.median_ms, threads, sync) if opts.energy else None
        if opts.op_profile and runtime == "executorch":
            assert path is not None  # an ExecuTorch variant runs its .pte file
            details["op_times"] = _op_times(path, opts, in_chans, resolution, threads)
    if cuda and runtime == "torch":
        model.to("cpu")
    return Measurement(runtime, precision, stats, details, energy)


def make_timer(kind: str, cuda_events: bool, threads: int | None) -> WallTimer | ThreadCpuTimer | CudaEventTimer:
    if cuda_events:
        if kind != "wall":
            raise NascompError("--timer thread-cpu measures host CPU work; on cuda the timer is CUDA events")
        return CudaEventTimer()
    if kind == "thread-cpu":
        if threads != 1:
            raise NascompError("--timer thread-cpu is only valid with 1 thread (all work on the calling thread); add --threads 1")
        return ThreadCpuTimer()
    if kind != "wall":
        raise NascompError(f"--timer {kind!r}: choose wall or thread-cpu")
    # with one thread, also record the thread's CPU time: wall/cpu > 1 shows contention from other load
    return WallTimer(thread_clock=time.thread_time_ns if threads == 1 else None)


def _op_times(path: Path, opts: ProfileOptions, in_chans: int, resolution: int, threads: int | None) -> dict:
    """Per-op times of ``path`` from ExecuTorch's event tracer over ``repeat`` runs (a session of its own: tracing costs time)."""
    traced = pte_runner(str(path), opts.batch, in_chans, resolution, threads, etdump=True)
    for _ in range(opts.warmup + opts.repeat):
        traced.run()
    return _op_summary(traced.session.op_times(), opts.warmup + opts.repeat)


def _op_summary(rows: list[dict], runs: int) -> dict:
    """Op times per inference, where they ran, and the share of the time spent on portable kernels."""
    total = sum(r["total_ms"] for r in rows) or 1.0
    portable = sum(r["total_ms"] for r in rows if r["where"] == "portable kernel")
    return {
        "runs": runs,
        "portable_time_share": round(portable / total, 4),
        "ops": [{**r, "ms_per_inference": round(r["total_ms"] / runs, 5)} for r in rows],
        "source": "ExecuTorch event tracer (ETDump): ops on portable kernels and XNNPACK's own ops inside the delegate",
    }


def _measure_android(
    adb,
    runtime: str,
    path: Path,
    precision: str,
    opts: ProfileOptions,
    threads: int | None,
    cores: list[int] | None,
    file_info: dict,
    workdir: Path,
) -> Measurement:
    from nascomp.profiling.android import (
        REMOTE_DIR,
        executor_runner_command,
        executor_runner_summary,
        measure_battery_energy,
        perf_test_command,
        run_executor_runner,
        run_perf_test,
    )

    tag = f"model_{precision}"
    details: dict[str, Any]
    if runtime == "executorch":
        dump = workdir / f"{tag}.etdump" if opts.op_profile else None
        result = run_executor_runner(adb, path, opts.runner, threads or 1, opts.warmup, opts.repeat, cores, tag=tag, etdump_to=dump)
        details = {"runtime_version": "the phone's executor_runner build", **result.protocol, "runner_summary": result.summary, **file_info}
        if dump is not None:
            from executorch.devtools import Inspector

            from nascomp.deploy.et_runtime import op_table, warnings_silenced

            with warnings_silenced():
                details["op_times"] = _op_summary(op_table(Inspector(etdump_path=str(dump)).to_dataframe()), opts.warmup + opts.repeat)
        binary, remote = result.protocol["runner"], f"{REMOTE_DIR}/{tag}.pte"
        command = lambda seconds: executor_runner_command(  # noqa: E731
            binary, remote, threads or 1, max(1, round(seconds * 1000 / max(result.stats.median_ms, 1e-3))), cores
        )
        summarize = executor_runner_summary
    else:
        from nascomp.profiling.android import parse_perf_test_stdout

        result = run_perf_test(adb, path, opts.perf_test, threads or 1, opts.warmup, opts.repeat, cores, tag=tag)
        details = {
            "runtime_version": "the phone's onnxruntime_perf_test build",
            **result.protocol,
            "perf_test_summary": result.summary,
            **file_info,
        }
        binary, remote = result.protocol["perf_test"], f"{REMOTE_DIR}/{tag}.onnx"
        command = lambda seconds: perf_test_command(binary, remote, threads or 1, duration_s=seconds, cores=cores)  # noqa: E731
        summarize = parse_perf_test_stdout
    energy = None
    if opts.energy:
        try:
            energy = measure_battery_energy(
                adb, command, result.stats.median_ms, opts.batch, window_s=max(opts.energy_window_s, 10.0), summarize=summarize
            )
        except EnergyUnavailable as e:
            energy = estimate_energy(
                opts.power_model or default_power_model("android", threads), result.stats.median_ms, opts.batch, reason=str(e)
            )
    return Measurement(runtime, precision, result.stats, details, energy)

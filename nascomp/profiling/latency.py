"""Timing one inference, robustly: warm-up, repetitions, median and interquartile range.

Why the median and IQR: on a shared or thermally throttled machine the latency distribution has a
long right tail (preemption, frequency drops); the mean follows the tail, the median does not
(torch.utils.benchmark makes the same choice). Runs are timed one by one so the spread is visible.

Runners turn a model into a zero-argument callable that runs one batch:
- `torch_runner`: eager PyTorch on CPU or CUDA (`CudaEventTimer` times CUDA work on the GPU clock);
- `ort_runner`: an ONNX Runtime session (CPU execution provider, or CUDA with I/O bound on the device);
- `pte_runner`: an ExecuTorch program (XNNPACK delegate) in ExecuTorch's Python runtime, on a pool of ``threads``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.deploy.onnx import example_input

__all__ = [
    "LatencyStats",
    "WallTimer",
    "ThreadCpuTimer",
    "CudaEventTimer",
    "time_runs",
    "torch_threads",
    "torch_runner",
    "ort_runner",
    "pte_runner",
    "RuntimeRun",
]


@dataclass
class LatencyStats:
    """Per-run latencies (ms) and their summary; ``median_ms`` is the headline number."""

    samples_ms: list[float] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.samples_ms:
            raise ValueError("no latency samples")

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.samples_ms, dtype=float), q))

    @property
    def median_ms(self) -> float:
        return self.percentile(50)

    @property
    def iqr_ms(self) -> float:
        return self.percentile(75) - self.percentile(25)

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.samples_ms))

    def to_dict(self, include_samples: bool = False) -> dict:
        out: dict[str, Any] = {
            "latency_ms": round(self.median_ms, 4),
            "iqr_ms": round(self.iqr_ms, 4),
            "p25_ms": round(self.percentile(25), 4),
            "p75_ms": round(self.percentile(75), 4),
            "p90_ms": round(self.percentile(90), 4),
            "mean_ms": round(self.mean_ms, 4),
            "std_ms": round(float(np.std(self.samples_ms)), 4),
            "min_ms": round(min(self.samples_ms), 4),
            "max_ms": round(max(self.samples_ms), 4),
            "runs": self.n,
        }
        if include_samples:
            out["samples_ms"] = [round(s, 4) for s in self.samples_ms]
        return out


class WallTimer:
    """Host wall clock around a synchronous call; optionally also the calling thread's CPU time.

    The thread CPU time (``thread_cpu_ms``) excludes the time the thread was descheduled by other
    load, so on a shared machine it shows how much of the wall time was contention. It is the
    inference's cost only when all work runs on the calling thread (1 intra-op thread).
    """

    name = "wall clock (time.perf_counter_ns) around each synchronous run"

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns, thread_clock: Callable[[], int] | None = None) -> None:
        self.clock = clock
        self.thread_clock = thread_clock
        self.thread_cpu_ms: list[float] = []

    def time(self, fn: Callable[[], Any]) -> float:
        c0 = self.thread_clock() if self.thread_clock else 0
        t0 = self.clock()
        fn()
        t1 = self.clock()
        if self.thread_clock:
            self.thread_cpu_ms.append((self.thread_clock() - c0) / 1e6)
        return (t1 - t0) / 1e6


class ThreadCpuTimer(WallTimer):
    """Reports the calling thread's CPU time instead of wall time (opt-in, for shared machines, 1 thread only)."""

    name = (
        "CPU time of the calling thread (time.thread_time_ns) per run: excludes time descheduled by other load; "
        "valid because all work runs on the calling thread (1 intra-op thread)"
    )

    def __init__(self) -> None:
        super().__init__(thread_clock=time.thread_time_ns)
        self.wall_ms: list[float] = []

    def time(self, fn: Callable[[], Any]) -> float:
        wall = super().time(fn)
        self.wall_ms.append(wall)
        return self.thread_cpu_ms[-1]


class CudaEventTimer:
    """CUDA events recorded around the run on the current stream: GPU time, no host launch jitter.

    ``cuda`` is the `torch.cuda` module (injected so the logic can be tested without a GPU).
    """

    name = "CUDA events (torch.cuda.Event elapsed_time) around each run, synchronized"

    def __init__(self, cuda: Any = None) -> None:
        self.cuda = cuda if cuda is not None else torch.cuda

    def time(self, fn: Callable[[], Any]) -> float:
        start = self.cuda.Event(enable_timing=True)
        end = self.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))


def time_runs(
    fn: Callable[[], Any],
    warmup: int,
    repeat: int,
    timer: WallTimer | CudaEventTimer | None = None,
    on_run: Callable[[], None] | None = None,
) -> LatencyStats:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times timed one by one."""
    if repeat < 1:
        raise NascompError("--repeat must be at least 1")
    if warmup < 0:
        raise NascompError("--warmup must be 0 or more")
    timer = timer or WallTimer()
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        samples.append(timer.time(fn))
        if on_run is not None:
            on_run()
    return LatencyStats(samples)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Set torch's intra-op thread count for the block; restore it afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def torch_runner(model: nn.Module, batch: int, in_chans: int, resolution: int, device: str | torch.device = "cpu") -> Callable[[], Any]:
    """Eager forward pass under `torch.inference_mode` on ``device``; the input lives on the device already."""
    device = torch.device(device)
    model = model.eval().to(device)
    x = example_input(batch, in_chans, resolution).to(device)

    def run():
        with torch.inference_mode():
            return model(x)

    return run


@dataclass
class RuntimeRun:
    """A deployment runtime's callable (one inference) and the facts about its session that belong in the protocol."""

    run: Callable[[], Any]
    provider: str
    info: dict
    session: Any = None  # the runtime's own session object, where a caller needs more of it (ExecuTorch's op times)


def ort_runner(
    path: str,
    batch: int,
    in_chans: int,
    resolution: int,
    threads: int | None,
    device: str = "cpu",
    ort: Any = None,
    example: np.ndarray | None = None,
) -> RuntimeRun:
    """An ORT session on the CPU or CUDA execution provider, input and output bound once.

    On CUDA the input is copied to the GPU once and bound with I/O binding, so the timed call is
    the model alone, not host-device copies. ORT falls back to CPU silently when a provider is
    missing; here that is an error, because the number would be mislabelled. ``example`` replaces the
    default image input (batch, in_chans, resolution, resolution), e.g. for a single block's feature map.
    """
    from nascomp.deploy.runtime import ort_session, session_facts

    if ort is None:
        import onnxruntime

        ort = onnxruntime
    session = ort_session(path, threads, device, ort)
    want = session.get_providers()[0]
    name = session.get_inputs()[0].name
    x = example if example is not None else example_input(batch, in_chans, resolution).numpy()
    info = session_facts(device, threads)
    if want == "CUDAExecutionProvider":
        binding = session.io_binding()
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0))
        binding.bind_output(session.get_outputs()[0].name, "cuda", 0)
        info["io_binding"] = "input and output on the GPU"

        def run_bound():
            session.run_with_iobinding(binding)  # returns after the CUDA stream is synchronized

        return RuntimeRun(run_bound, want, info)

    def run():
        return session.run(None, {name: x})

    return RuntimeRun(run, want, info)


def pte_runner(
    path: str, batch: int, in_chans: int, resolution: int, threads: int | None, example: torch.Tensor | None = None, etdump: bool = False
) -> RuntimeRun:
    """An ExecuTorch program's ``forward`` on ``threads`` thread-pool threads (None: ExecuTorch's default), its input made once.

    ``example`` replaces the default image input, e.g. for a single block's feature map. With ``etdump`` the session records
    per-op times (`nascomp.deploy.et_runtime.PteSession.op_times`).
    """
    from nascomp.deploy.et_runtime import PteSession

    session = PteSession(path, threads=threads, etdump=etdump)
    x = (example if example is not None else example_input(batch, in_chans, resolution)).contiguous()
    method = session.method

    def run():
        return method.execute([x])

    return RuntimeRun(run, "XNNPACK delegate", session.facts(), session)

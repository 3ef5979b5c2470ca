"""The devices `nascomp profile` measures on, and each one's default measurement profile.

- ``cpu``: the host CPU; torch eager and ONNX Runtime (CPU provider), threads as asked; ExecuTorch (XNNPACK) on request.
- ``mobile-cpu``: the host CPU under a mobile-class profile: ONNX Runtime, 1 thread pinned to one
  core, batch 1, fp32 and int8 (dynamic quantization); ``--runtime executorch`` runs the phone's PyTorch runtime
  (ExecuTorch with the XNNPACK delegate) under the same profile. It is *not* a phone, and says so.
- ``cuda``: torch timed with CUDA events, plus ONNX Runtime's CUDA provider where installed.
- ``android[:SERIAL]``: a phone over adb running the user's ``onnxruntime_perf_test`` or, with ``--runtime executorch``,
  ExecuTorch's ``executor_runner``.
"""

from __future__ import annotations

from dataclasses import dataclass

from nascomp.core.errors import NascompError
from nascomp.profiling.host import allowed_cores

__all__ = ["Target", "parse_target", "TARGET_NAMES", "RUNTIMES", "PRECISIONS"]

TARGET_NAMES = ("cpu", "mobile-cpu", "cuda", "android")
RUNTIMES = ("torch", "onnxruntime", "executorch")
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class Target:
    name: str
    serial: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}:{self.serial}" if self.serial else self.name

    @property
    def allowed_runtimes(self) -> tuple[str, ...]:
        if self.name == "android":
            return ("onnxruntime", "executorch")
        return ("torch", "onnxruntime") if self.name == "cuda" else RUNTIMES

    def default_runtimes(self, ort_cuda_available: bool = False) -> list[str]:
        if self.name == "cpu":
            return ["torch", "onnxruntime"]
        if self.name == "cuda":
            return ["torch", "onnxruntime"] if ort_cuda_available else ["torch"]
        return ["onnxruntime"]

    def default_precisions(self) -> list[str]:
        return ["fp32", "int8"] if self.name in ("mobile-cpu", "android") else ["fp32"]

    def default_threads(self) -> int | None:
        if self.name in ("mobile-cpu", "android"):
            return 1
        if self.name == "cpu":
            return len(allowed_cores())
        return None  # cuda: the host threads only launch kernels

    def default_cores(self, threads: int | None) -> list[int] | None:
        """mobile-cpu pins its threads to the last cores (away from core 0, where interrupts land)."""
        if self.name != "mobile-cpu":
            return None
        cores = allowed_cores()
        return cores[-(threads or 1) :]

    @property
    def device(self) -> str:
        return "cuda" if self.name == "cuda" else "cpu"

    def note(self, cores: list[int] | None, threads: int | None, batch: int = 1) -> str:
        if self.name == "mobile-cpu":
            where = f"core {cores[0]}" if cores and len(cores) == 1 else f"cores {cores}"
            return (
                f"host CPU under a mobile-class profile ({threads} thread(s) pinned to {where}, batch {batch}); "
                "this is not a phone: use --target android for on-device numbers"
            )
        if self.name == "cpu":
            return "host CPU"
        if self.name == "cuda":
            return "CUDA GPU"
        return f"Android device over adb ({self.serial or 'the only attached device'})"


def parse_target(text: str) -> Target:
    """'cpu' | 'mobile-cpu' | 'cuda' | 'android' | 'android:SERIAL'."""
    name, _, serial = text.partition(":")
    if name not in TARGET_NAMES or (serial and name != "android"):
        raise NascompError(f"unknown target {text!r}; choose one of cpu, mobile-cpu, cuda, android[:SERIAL]")
    return Target(name, serial or None)

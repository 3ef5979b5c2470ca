"""The one way nascomp opens an ExecuTorch ``.pte`` file: export checks, accuracy in the runtime, latency runs.

ExecuTorch is an optional extra (``pip install 'nascomp[executorch]'``); `require_executorch` says so in one line
before any work. Its Python runtime (``executorch.runtime.Runtime``) runs the XNNPACK delegate on a process-wide
thread pool that starts with as many threads as it finds cores; `PteSession` sets the pool to the thread count
a protocol asks for (``_unsafe_reset_threadpool``), so what was measured is what the protocol says.

The runtime's C++ side logs to the process's stderr (CPU probing, thread-pool resets); `native_logs_captured`
keeps that out of the user's terminal and puts its last lines into the error message when loading or running fails.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from nascomp.core.errors import NascompError

__all__ = ["EXTRA", "require_executorch", "executorch_version", "native_logs_captured", "PteSession", "set_threads"]

EXTRA = "pip install 'nascomp[executorch]'"


def require_executorch() -> None:
    """Raise a one-line user error naming the extra when ExecuTorch is not installed."""
    import logging

    # torchao (an ExecuTorch dependency) registers an enum with torch's pytree at import, which logs a deprecation warning
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    try:
        with native_logs_captured():  # the runtime probes the CPU and logs it on import
            import executorch  # noqa: F401
            import executorch.runtime  # noqa: F401
    except ImportError:
        raise NascompError(f"ExecuTorch is not installed; {EXTRA} (or use --format onnx / --runtime onnxruntime)") from None


def executorch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("executorch")
    except PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def native_logs_captured() -> Iterator[list[str]]:
    """Redirect file descriptor 2 (where ExecuTorch's C++ logs go) to a temporary file for the block; on an error,
    the captured lines are appended to the exception's message."""
    lines: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        except Exception as e:
            os.dup2(saved, 2)
            sink.seek(0)
            tail = [ln for ln in sink.read().decode(errors="replace").splitlines() if ln.strip()][-3:]
            if tail and e.args and isinstance(e.args[0], str):
                e.args = (f"{e.args[0]} (runtime log: {' | '.join(tail)})", *e.args[1:])
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode(errors="replace").splitlines())


def set_threads(threads: int | None) -> int:
    """Resize ExecuTorch's thread pool to ``threads`` (None: leave it); returns the pool's size."""
    from executorch.extension.pybindings import portable_lib

    with native_logs_captured():
        if threads and portable_lib._threadpool_get_thread_count() != threads:
            portable_lib._unsafe_reset_threadpool(int(threads))
        return int(portable_lib._threadpool_get_thread_count())


class PteSession:
    """A loaded ``.pte`` program's ``forward``: ``session(x) -> first output``, on ``threads`` pool threads.

    With ``etdump=True`` the runtime records every op's time (the PyPI runtime is built with the event tracer),
    which `op_times` reads back.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, etdump: bool = False) -> None:
        require_executorch()
        from executorch.runtime import Runtime

        self.path = Path(path)
        if not self.path.is_file():
            raise NascompError(f"{self.path}: ExecuTorch program not found")
        self.threads = set_threads(threads)
        self.etdump = etdump
        try:
            with native_logs_captured():
                self.program = Runtime.get().load_program(self.path, enable_etdump=etdump, debug_buffer_size=0)
                self.method = self.program.load_method("forward")
        except RuntimeError as e:
            raise NascompError(f"{self.path}: ExecuTorch could not load the program ({e})") from None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with native_logs_captured():
            return self.method.execute([x.contiguous()])[0]

    def facts(self) -> dict:
        """What this session runs, for a measurement's protocol."""
        return {
            "runtime": "ExecuTorch (Python runtime, executorch.runtime)",
            "runtime_version": executorch_version(),
            "delegate": "XNNPACK",
            "threadpool_threads": self.threads,
            "pte_file": str(self.path),
            "pte_bytes": self.path.stat().st_size,
        }

    def op_times(self) -> list[dict]:
        """Per event name recorded since loading (ops on portable kernels and XNNPACK's own ops inside the delegate): count and
        median / total milliseconds per call, slowest first."""
        if not self.etdump:
            raise NascompError("op times need the session opened with etdump=True")
        from executorch.devtools import Inspector

        with tempfile.TemporaryDirectory(prefix="nascomp-etdump-") as tmp:
            dump = Path(tmp) / "run.etdump"
            with native_logs_captured():
                self.program.write_etdump_result_to_file(str(dump), str(Path(tmp) / "debug.bin"))
            with warnings_silenced():
                frame = Inspector(etdump_path=str(dump)).to_dataframe()
        return op_table(frame)


@contextlib.contextmanager
def warnings_silenced() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def op_table(frame) -> list[dict]:
    """Aggregate an Inspector dataframe into one row per op: where it ran, calls, median and total ms (slowest first)."""
    import numpy as np

    rows: dict[str, dict] = {}
    for event in frame.itertuples():
        if event.event_block_name != "Execute" or event.event_name in ("OPERATOR_CALL", "DELEGATE_CALL", "Method::execute"):
            continue
        name = re.sub(r" #\d+$", "", str(event.event_name).removeprefix("native_call_"))  # XNNPACK numbers each instance
        portable = str(event.event_name).startswith("native_call_")
        row = rows.setdefault(name, {"op": name, "where": "portable kernel" if portable else "XNNPACK delegate", "samples": []})
        row["samples"].extend(float(v) for v in event.raw)
    out = []
    for row in rows.values():
        samples = np.asarray(row.pop("samples"))
        out.append(
            {
                **row,
                "calls": int(samples.size),
                "median_ms": round(float(np.median(samples)), 5),
                "total_ms": round(float(samples.sum()), 4),
            }
        )
    return sorted(out, key=lambda r: -r["total_ms"])

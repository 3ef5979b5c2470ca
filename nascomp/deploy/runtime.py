"""The one way nascomp opens an ONNX file in ONNX Runtime (export checks, latency runs, int8 accuracy).

Sessions run sequentially with every graph optimisation on; with ``threads`` set, intra-op threads are
fixed and inter-op threads are 1, so a latency protocol can state exactly what ran. ORT falls back to the
CPU silently when a provider is missing; here that is an error, because a number would be mislabelled.
"""

from __future__ import annotations

import os
from typing import Any

from nascomp.core.errors import NascompError

__all__ = ["ort_session", "session_facts"]


def ort_session(path: str | os.PathLike, threads: int | None = None, device: str = "cpu", ort: Any = None):
    """An ``onnxruntime.InferenceSession`` for ``path`` on the CPU or CUDA execution provider."""
    if ort is None:
        import onnxruntime

        ort = onnxruntime
    want = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    if want not in ort.get_available_providers():
        raise NascompError(
            f"ONNX Runtime here has no {want} (available: {ort.get_available_providers()}); "
            "install onnxruntime-gpu matching your CUDA, or use --runtime torch"
        )
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = [want] if want == "CPUExecutionProvider" else [want, "CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), opts, providers=providers)
    if session.get_providers()[0] != want:
        raise NascompError(f"ONNX Runtime did not start {want} (got {session.get_providers()}); check the CUDA/cuDNN install")
    return session


def session_facts(device: str, threads: int | None) -> dict:
    """What `ort_session` configured, for a measurement's protocol."""
    return {
        "execution_provider": "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider",
        "graph_optimization": "ORT_ENABLE_ALL",
        "intra_op_threads": threads or "ORT default",
        "inter_op_threads": 1 if threads else "ORT default",
        "execution_mode": "sequential",
    }

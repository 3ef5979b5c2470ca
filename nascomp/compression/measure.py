"""How compressed models are measured where they run: accuracy of an ONNX file in ONNX Runtime or of an ExecuTorch program in
ExecuTorch's runtime, latency on a target in that runtime."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nascomp.deploy.runtime import ort_session
from nascomp.engine.evaluate import Tally

__all__ = ["RUNTIMES", "onnx_accuracy", "pte_accuracy", "runtime_accuracy", "latency_report", "timing_options"]

RUNTIMES = ("onnxruntime", "executorch")  # where a compressed model is deployed and measured


def onnx_accuracy(path: str | os.PathLike, dataset, transform, batch_size: int = 256) -> dict:
    """Top-1/top-5 and loss of an ONNX file (exported at batch 1) in ONNX Runtime, image by image."""
    session = ort_session(path, threads=1)
    name = session.get_inputs()[0].name
    tally = Tally()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=transform)
    for images, targets in loader:
        x = images.numpy()
        logits = np.concatenate([session.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
        tally.add(torch.from_numpy(logits).float(), targets)
    return tally.summary()


def pte_accuracy(path: str | os.PathLike, dataset, transform, batch_size: int = 256) -> dict:
    """Top-1/top-5 and loss of an ExecuTorch program (exported at batch 1) in ExecuTorch's runtime, image by image."""
    from nascomp.deploy.et_runtime import PteSession

    session = PteSession(path, threads=1)
    tally = Tally()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=transform)
    for images, targets in loader:
        tally.add(torch.cat([session(images[i : i + 1]) for i in range(len(images))]).float(), targets)
    return tally.summary()


def runtime_accuracy(runtime: str, path: str | os.PathLike, dataset, transform) -> dict:
    """Accuracy of a deployment file in its own runtime (``onnxruntime`` or ``executorch``)."""
    return (pte_accuracy if runtime == "executorch" else onnx_accuracy)(path, dataset, transform)


def timing_options(options: dict) -> dict:
    """How latency is measured, from a method's options: ``runtime`` (onnxruntime, or executorch), ``timer`` (wall, or
    thread-cpu on shared machines), ``threads``, ``warmup`` and ``repeat`` (defaults 20 and 200 runs)."""
    return {
        "runtime": options.get("runtime") or "onnxruntime",
        "timer": options.get("timer") or "wall",
        "threads": options.get("threads"),
        "warmup": options.get("warmup") or 20,
        "repeat": options.get("repeat") or 200,
    }


def latency_report(
    model: nn.Module,
    target: str,
    precision: str = "fp32",
    path: str | os.PathLike | None = None,
    *,
    runtime: str = "onnxruntime",
    timer: str = "wall",
    threads: int | None = None,
    warmup: int = 20,
    repeat: int = 200,
) -> dict:
    """The profiler's report (median, IQR, protocol) of ``model`` in ``runtime`` on ``target``: its own export, or the
    ready file ``path`` (ONNX, or ExecuTorch's .pte; e.g. a static-int8 one); ``model`` gives the input size and the cost."""
    from nascomp.profiling.api import profile_options
    from nascomp.profiling.profiler import profile_model

    given = {precision: str(path)} if path else None
    opts = profile_options(
        target,
        runtimes=[runtime],
        precisions=[precision],
        threads=threads,
        timer=timer,
        warmup=warmup,
        repeat=repeat,
        **({"pte_files": given} if runtime == "executorch" else {"onnx_files": given}),
    )
    return profile_model(model.eval().cpu(), opts, name=Path(path).name if path else type(model).__name__).to_dict()

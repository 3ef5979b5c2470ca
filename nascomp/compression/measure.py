"""How compressed models are measured where they run: accuracy of an ONNX file in ONNX Runtime, latency on a target."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nascomp.deploy.runtime import ort_session
from nascomp.engine.evaluate import Tally

__all__ = ["onnx_accuracy", "latency_report", "timing_options"]


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


def timing_options(options: dict) -> dict:
    """How latency is measured, from a method's options: ``timer`` (wall, or thread-cpu on shared machines), ``threads``,
    ``warmup`` and ``repeat`` (defaults 20 and 200 runs)."""
    return {"timer": options.get("timer") or "wall", "threads": options.get("threads"), "warmup": options.get("warmup") or 20,
            "repeat": options.get("repeat") or 200}


def latency_report(model: nn.Module, target: str, precision: str = "fp32", path: str | os.PathLike | None = None, *, timer: str = "wall",
                   threads: int | None = None, warmup: int = 20, repeat: int = 200) -> dict:
    """The profiler's report (median, IQR, protocol) of ``model`` in ONNX Runtime on ``target``: its own export, or the
    ready ONNX file ``path`` (e.g. a static-int8 one); ``model`` gives the input size and the cost."""
    from nascomp.profiling.api import profile_options
    from nascomp.profiling.profiler import profile_model

    opts = profile_options(target, runtimes=["onnxruntime"], precisions=[precision], threads=threads, timer=timer, warmup=warmup,
                           repeat=repeat, onnx_files={precision: str(path)} if path else None)
    return profile_model(model.eval().cpu(), opts, name=Path(path).name if path else type(model).__name__).to_dict()

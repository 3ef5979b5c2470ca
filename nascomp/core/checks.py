"""Checks every command makes before its work starts, without torch: seeds, devices, files, objects.

They answer in milliseconds what would otherwise surface as a traceback minutes into a run (a seed numpy cannot take,
``cuda`` on a machine without a GPU, a checkpoint path that is a folder).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from nascomp.core.errors import NascompError

__all__ = ["DEVICES", "MAX_SEED", "check_seed", "check_device", "require_device", "check_file", "is_module", "main_process"]

DEVICES = ("cpu", "cuda")
MAX_SEED = 2**32 - 1  # numpy's and Python's generators take any seed below 2**32, torch's below 2**64: the narrower rules


def check_seed(seed: Any, name: str = "--seed") -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise NascompError(f"{name} must be an integer, got {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise NascompError(f"{name} must lie in 0..{MAX_SEED} (the random generators' range), got {seed}")
    return seed


# what a CUDA (or ROCm) driver leaves on Linux; with none of them torch cannot see a GPU, which needs no torch to tell
_GPU_NODES = ("/proc/driver/nvidia", "/dev/nvidia0", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def check_device(device: str | None) -> str | None:
    if device is not None and device not in DEVICES:
        raise NascompError(f"--device {device!r}: choose cpu or cuda (default: cuda when available)")
    if device == "cuda" and sys.platform.startswith("linux") and not any(os.path.exists(p) for p in _GPU_NODES):
        raise NascompError("--device cuda: this machine has no GPU driver (no NVIDIA or ROCm device); drop --device (or use --device cpu)")
    return device


def require_device(device: str | None) -> None:
    """After torch is loaded: ``cuda`` asked for on a machine where torch sees no GPU is a user error, not a traceback."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise NascompError(
                "--device cuda: no CUDA device is visible to torch here; drop --device (or use --device cpu), or check the "
                "driver and CUDA_VISIBLE_DEVICES"
            )


def check_file(path: str | os.PathLike | None, name: str) -> Path | None:
    """``path`` if it is an existing file (not a folder)."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        raise NascompError(f"{name} {p} is a folder, not a file; give the weights file itself (.safetensors or .pth)")
    if not p.is_file():
        raise NascompError(f"{name} {p}: file not found")
    return p


def is_module(obj: Any) -> bool:
    """Whether ``obj`` is a torch module, without importing torch (a module exists only if torch is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def main_process() -> bool:
    """Rank 0 of a torchrun job, or a single process: the one that owns the output folder."""
    return os.environ.get("RANK", "0") == "0"

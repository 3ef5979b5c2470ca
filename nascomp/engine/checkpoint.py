"""Training checkpoints: model, extra modules, EMA, optimiser and scaler state in safetensors + JSON, written atomically.

A checkpoint is a directory assembled under a temporary name and renamed into place, so a kill never leaves a
half-written one. ``checkpoints/epoch-NNNN`` is written when epoch NNNN (0-based) ends; a run with a time
interval (``--checkpoint-every 30m``) also writes ``checkpoints/epoch-NNNN-step-SSSSSS`` inside an epoch, after
SSSSSS of its optimiser steps. A mid-epoch checkpoint also holds every process's random-generator states
(Python, numpy, torch CPU and CUDA), so training resumes on the next step exactly where the interrupted run
was. Optimiser state goes into safetensors (tensors) and JSON (scalars, param groups): nothing is pickled.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_directory, load_tensors, read_json, save_tensors

__all__ = [
    "CHECKPOINT_DIR",
    "Resumable",
    "readable_checkpoint",
    "optimizer_to_files",
    "optimizer_from_files",
    "module_state",
    "load_module_state",
    "checkpoint_progress",
    "latest_checkpoint",
    "discard_checkpoints",
    "save_checkpoint",
    "rng_state",
    "set_rng_state",
    "rng_to_files",
    "rng_from_files",
    "load_rng",
]

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"epoch-(\d+)(?:-step-(\d+))?")


def optimizer_to_files(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for k, v in state.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_files(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in list(tensors.items()) + list(meta["scalars"].items()):
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def module_state(modules: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    out, seen = {}, {}
    for prefix, m in modules.items():
        for k, v in m.state_dict().items():
            ident = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
            if v.numel() and ident in seen:
                continue  # a tied tensor: stored once, restored through the module that owns it
            seen[ident] = True
            out[f"{prefix}.{k}"] = v
    return out


def load_module_state(modules: dict[str, nn.Module], tensors: dict[str, torch.Tensor]) -> None:
    for prefix, m in modules.items():
        sd = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        m.load_state_dict(sd, strict=False)


def rng_state() -> dict:
    """This process's generator states: what the next random draw of dropout, sampling and Mixup depends on."""
    # the default legacy=True returns the tuple form for the global MT19937 state; numpy's stubs also admit the dict form
    np_state = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())
    return {
        "python": random.getstate(),
        "numpy": (np_state[0], np_state[1].tolist(), *np_state[2:]),
        "torch": torch.random.default_generator.get_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.random.default_generator.set_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_to_files(states: list[dict]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Per-rank generator states as (tensors for safetensors, JSON-able rest)."""
    tensors, scalars = {}, []
    for rank, s in enumerate(states):
        tensors[f"rank{rank}.torch"] = s["torch"]
        for i, c in enumerate(s["cuda"]):
            tensors[f"rank{rank}.cuda{i}"] = c
        scalars.append({"python": s["python"], "numpy": s["numpy"], "cuda": len(s["cuda"])})
    return tensors, scalars


def rng_from_files(tensors: dict[str, torch.Tensor], scalars: list[dict], rank: int) -> dict:
    s = scalars[rank]
    return {
        "python": s["python"],
        "numpy": s["numpy"],
        "torch": tensors[f"rank{rank}.torch"],
        "cuda": [tensors[f"rank{rank}.cuda{i}"] for i in range(s["cuda"])],
    }


def checkpoint_progress(path: Path) -> tuple[int, int]:
    """(epochs finished, steps into the next epoch) that a checkpoint directory's name records."""
    match = _NAME.fullmatch(path.name)
    assert match is not None, path  # only names _checkpoints matched with _NAME reach here
    epoch, step = int(match.group(1)), match.group(2)
    return (epoch + 1, 0) if step is None else (epoch, int(step))


def _checkpoints(out: Path) -> list[Path]:
    folder = out / CHECKPOINT_DIR
    found = [p for p in folder.iterdir() if _NAME.fullmatch(p.name)] if folder.is_dir() else []
    return sorted(found, key=checkpoint_progress)


def latest_checkpoint(out: Path) -> Path | None:
    ckpts = [c for c in _checkpoints(out) if (c / "state.json").is_file()]
    return ckpts[-1] if ckpts else None


@dataclass
class Resumable:
    """The newest checkpoint that reads back whole: its folder, state and tensors, and the newer ones that did not."""

    path: Path
    state: dict
    weights: dict
    optimizer: dict
    rejected: list[str]


def readable_checkpoint(out: Path) -> Resumable | None:
    """The newest checkpoint in ``out`` whose files all load, newest first; a truncated or corrupt one (a kill or a full disk
    while an older nascomp wrote it, a damaged disk) is named in ``rejected`` and the one before it is used. Raises when
    every checkpoint is damaged, naming them and the way out."""
    rejected: list[str] = []
    for ckpt in reversed([c for c in _checkpoints(out) if (c / "state.json").is_file()]):
        try:
            state = read_json(ckpt / "state.json")
            return Resumable(
                ckpt, state, load_tensors(ckpt / "weights.safetensors"), load_tensors(ckpt / "optimizer.safetensors"), rejected
            )
        except NascompError as e:
            rejected.append(f"{ckpt.name} ({str(e).split(': ', 1)[-1][:120]})")
    if rejected:
        raise NascompError(
            f"cannot resume {out}: every checkpoint is damaged: {'; '.join(rejected)}; delete {out / CHECKPOINT_DIR} to start the run over"
        )
    return None


def discard_checkpoints(run_dir: Path) -> None:
    """Delete ``run_dir``'s training checkpoints, if any: a finished run keeps its weights in its saved model."""
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)


def save_checkpoint(
    out: Path,
    epoch: int,
    modules,
    optimizer,
    scaler,
    config_doc,
    history,
    keep: int,
    *,
    step: int | None = None,
    rng: list[dict] | None = None,
    extra: dict | None = None,
) -> None:
    """Write the checkpoint after epoch ``epoch`` (or after ``step`` steps into it, with every rank's ``rng`` state)."""
    opt_tensors, opt_meta = optimizer_to_files(optimizer)
    name = f"epoch-{epoch:04d}" if step is None else f"epoch-{epoch:04d}-step-{step:06d}"
    with atomic_directory(out / CHECKPOINT_DIR / name) as tmp:
        save_tensors(tmp / "weights.safetensors", module_state(modules))
        save_tensors(tmp / "optimizer.safetensors", opt_tensors)
        state = {
            "epoch": epoch,
            "config": config_doc,
            "history": history,
            "optimizer": opt_meta,
            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
            **(extra or {}),
        }
        if step is not None:
            rng_tensors, state["rng"] = rng_to_files(rng or [])
            save_tensors(tmp / "rng.safetensors", rng_tensors)
            state["step"] = step
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
    for old in _checkpoints(out)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_rng(ckpt: Path, rank: int) -> dict:
    """The generator states rank ``rank`` had when a mid-epoch checkpoint was written."""
    state = json.loads((ckpt / "state.json").read_text())
    return rng_from_files(load_tensors(ckpt / "rng.safetensors"), state["rng"], rank)

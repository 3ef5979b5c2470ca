"""Training checkpoints: model, extra modules, optimiser and scaler state in safetensors + JSON, written atomically.

A checkpoint is a directory ``checkpoints/epoch-NNNN`` assembled under a temporary name and renamed into
place, so a kill never leaves a half-written one. Optimiser state goes into safetensors (tensors) and JSON
(scalars, param groups): nothing is pickled.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import nn

from nascomp.core.io import atomic_directory, save_tensors

__all__ = ["CHECKPOINT_DIR", "optimizer_to_files", "optimizer_from_files", "module_state", "load_module_state",
           "latest_checkpoint", "save_checkpoint"]

CHECKPOINT_DIR = "checkpoints"


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


def latest_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((out / CHECKPOINT_DIR).glob("epoch-*")) if (out / CHECKPOINT_DIR).is_dir() else []
    ckpts = [c for c in ckpts if (c / "state.json").is_file()]
    return ckpts[-1] if ckpts else None


def save_checkpoint(out: Path, epoch: int, modules, optimizer, scaler, config_doc, history, keep: int) -> None:
    opt_tensors, opt_meta = optimizer_to_files(optimizer)
    with atomic_directory(out / CHECKPOINT_DIR / f"epoch-{epoch:04d}") as tmp:
        save_tensors(tmp / "weights.safetensors", module_state(modules))
        save_tensors(tmp / "optimizer.safetensors", opt_tensors)
        state = {"epoch": epoch, "config": config_doc, "history": history, "optimizer": opt_meta, "scaler": scaler.state_dict() if scaler.is_enabled() else None}
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
    for old in sorted((out / CHECKPOINT_DIR).glob("epoch-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)

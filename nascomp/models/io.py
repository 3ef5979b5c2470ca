"""Saved models: ``model.safetensors`` (weights) + ``model.json`` (the spec that rebuilds the structure).

Tied (shared) tensors are stored once and restored as aliases, so a MiniViT's multiplexed weights stay
shared after loading. Loading is strict: any key or shape mismatch is one clear user error.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json, load_tensors, read_json, save_tensors
from nascomp.models.registry import build_from_spec, normalize_spec

__all__ = ["SPEC_ATTR", "save_model", "load_model", "load_weights_into"]

SPEC_ATTR = "nascomp_spec"  # the attribute a model carries its rebuilding spec in (`nascomp.models.resolve`)


def save_model(directory: str | Path, model: nn.Module, spec: dict, metadata: dict | None = None) -> Path:
    """Write ``model.safetensors`` + ``model.json`` atomically; tied (shared) tensors are stored once."""
    state = model.state_dict()
    canonical: dict[tuple, str] = {}
    tensors, aliases = {}, {}
    for key, value in state.items():
        ident = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape), tuple(value.stride()))
        if value.numel() and ident in canonical:
            aliases[key] = canonical[ident]
            continue
        canonical[ident] = key
        tensors[key] = value
    directory = Path(directory)
    save_tensors(directory / "model.safetensors", tensors)
    atomic_write_json(directory / "model.json", {"spec": spec, "aliases": aliases, **(metadata or {})})  # last: marks completion
    return directory


def load_weights_into(model: nn.Module, state: dict[str, torch.Tensor], source: str, aliases: dict | None = None) -> None:
    """Load a state dict strictly, turning shape/key mismatches into one clear user error."""
    state = dict(state)
    for alias, key in (aliases or {}).items():
        state[alias] = state[key]
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} shape mismatches (e.g. {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)})"
            )
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise NascompError(f"checkpoint {source} does not match the model: " + "; ".join(parts))
    model.load_state_dict(state)


def load_model(directory: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild a model saved by `save_model` and load its weights; returns (model, model.json contents).

    The model carries its spec (``model.nascomp_spec``), so `count_cost`, `compress` or `save_model` on it need no spec.
    """
    directory = Path(directory)
    meta = read_json(directory / "model.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("spec"), dict):
        raise NascompError(
            f"{directory / 'model.json'}: not a nascomp model description (no 'spec'); "
            "pass a directory written by nascomp (train, compress, adapt, search finalists)"
        )
    meta["spec"] = normalize_spec(meta["spec"])
    model = build_from_spec(meta["spec"])
    load_weights_into(model, load_tensors(directory / "model.safetensors"), str(directory), meta.get("aliases"))
    model.__dict__[SPEC_ATTR] = meta["spec"]
    return model, meta

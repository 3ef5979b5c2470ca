"""One way to name, build, save and load a model: a JSON *model spec*.

A spec says which builder makes the model and with what arguments, e.g.
``{"builder": "nascomp.models:create_timm_model", "kwargs": {"name": "vit_tiny_patch16_224", ...}}``.
Every saved model directory holds ``model.json`` (the spec and metadata) and ``model.safetensors``
(the weights), so any command that takes MODEL accepts a timm name, an arch JSON, or such a directory.
Builders are looked up by dotted path, restricted to this package, so a spec can never import foreign code.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any, Callable

import timm
import torch
from torch import nn

from nascomp.errors import NascompError
from nascomp.io import atomic_write_json, load_state_dict_file, load_tensors, read_json, save_tensors

__all__ = [
    "TIMM_BUILDER",
    "create_timm_model",
    "timm_spec",
    "build_from_spec",
    "resolve_model",
    "save_model",
    "load_model",
    "load_weights_into",
    "model_input_size",
]

TIMM_BUILDER = "nascomp.models:create_timm_model"
ARCH_BUILDER = "nascomp.supernet.extract:build_from_arch"


def _check_timm_name(name: str) -> None:
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `timm.list_models()` for names"
    raise NascompError(f"unknown model {name!r}: not a timm model name, arch JSON, or model directory{hint}")


def create_timm_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm.create_model with user-facing errors for bad names, bad size overrides and offline hubs."""
    _check_timm_name(name)
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as e:
        raise NascompError(f"model {name!r} does not accept these options {sorted(kwargs)}: {e}") from None
    except (AssertionError, ValueError) as e:
        raise NascompError(f"model {name!r} cannot be built with {kwargs}: {e}") from None
    except (OSError, RuntimeError) as e:
        if pretrained:
            raise NascompError(
                f"could not fetch pretrained weights for {name!r} ({str(e).splitlines()[0]}); "
                "when offline, pass a local checkpoint with --checkpoint PATH"
            ) from None
        raise


def timm_spec(name: str, **kwargs: Any) -> dict:
    return {"builder": TIMM_BUILDER, "kwargs": {"name": name, **{k: v for k, v in kwargs.items() if v is not None}}}


def _import_builder(path: str) -> Callable[..., nn.Module]:
    module_name, _, attr = path.partition(":")
    if not module_name.startswith("nascomp.") or not attr:
        raise NascompError(f"model spec names builder {path!r}; only nascomp builders ('nascomp.x:fn') are allowed")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        raise NascompError(f"model spec names builder {path!r}, which this nascomp version does not have") from None


def build_from_spec(spec: dict) -> nn.Module:
    if not isinstance(spec, dict) or "builder" not in spec:
        raise NascompError("model spec must be a JSON object with a 'builder' key")
    return _import_builder(spec["builder"])(**spec.get("kwargs", {}))


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
            parts.append(f"{len(wrong)} shape mismatches (e.g. {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)})")
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise NascompError(f"checkpoint {source} does not match the model: " + "; ".join(parts))
    model.load_state_dict(state)


def load_model(directory: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild a model saved by `save_model` and load its weights; returns (model, model.json contents)."""
    directory = Path(directory)
    meta = read_json(directory / "model.json")
    model = build_from_spec(meta.get("spec"))
    load_weights_into(model, load_tensors(directory / "model.safetensors"), str(directory), meta.get("aliases"))
    return model, meta


def resolve_model(ref: str, checkpoint: str | None = None, pretrained: bool = False, **overrides: Any) -> tuple[nn.Module, dict]:
    """Turn what a user typed as MODEL into (model, spec).

    ``ref`` is a saved model directory, an arch JSON file, or a timm name (with size ``overrides``).
    ``checkpoint`` optionally loads weights (safetensors or a weights-only pickle) into a timm model.
    """
    path = Path(ref)
    if path.is_dir():
        if overrides:
            raise NascompError(f"{ref} is a saved model; size options {sorted(overrides)} cannot change it")
        model, meta = load_model(path)
        return model, meta["spec"]
    if ref.endswith(".json"):
        if not path.is_file():
            raise NascompError(f"arch file {ref} not found")
        spec = {"builder": ARCH_BUILDER, "kwargs": {"arch": read_json(path), **overrides}}
    else:
        spec = timm_spec(ref, pretrained=pretrained or None, **overrides)
    model = build_from_spec(spec)
    spec["kwargs"].pop("pretrained", None)
    if checkpoint:
        load_weights_into(model, load_state_dict_file(checkpoint), checkpoint)
    return model, spec


def model_input_size(model: nn.Module, default: int = 224) -> tuple[int, int]:
    """(in_chans, resolution) a model expects, read from timm's pretrained_cfg or patch embed."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    in_chans = cfg.get("input_size", (3,))[0]
    res = cfg.get("input_size", (3, default, default))[-1]
    embed = getattr(model, "patch_embed", None)
    if embed is not None:
        size = getattr(embed, "img_size", None)
        if size:
            res = size[0] if isinstance(size, (tuple, list)) else size
        proj = getattr(embed, "proj", None)
        if isinstance(proj, nn.Conv2d):
            in_chans = proj.in_channels
    return int(in_chans), int(res)

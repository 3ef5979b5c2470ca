"""What a user names as a model (a timm name, an arch JSON or `Arch`, a saved directory, a module) turned into
a model and the spec that rebuilds it.

Models made by `create_model` carry their spec (``model.nascomp_spec``), so anything nascomp derives from
them (a compressed or adapted model, a checkpoint) saves and reloads by name. A timm model made elsewhere
gets its spec inferred and checked (`model_spec`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.core.io import load_state_dict_file, read_json
from nascomp.core.validate import positive
from nascomp.models.io import SPEC_ATTR, load_model, load_weights_into
from nascomp.models.registry import MODELS, build_from_spec, builder_name
from nascomp.models.timm import timm_spec
from nascomp.spaces.arch import Arch

__all__ = ["SPEC_ATTR", "create_model", "model_spec", "as_model", "as_module", "resolve_model", "model_input_size"]


def create_model(
    model: str | os.PathLike | Arch | Mapping, *, checkpoint: str | os.PathLike | None = None, pretrained: bool = False, **overrides: Any
) -> nn.Module:
    """Build a model the way every nascomp command names one.

    Args:
        model: a name registered with `nascomp.models.register_model` (looked up first), a timm model name
            (``"swin_tiny_patch4_window7_224"``), a model spec (``{"builder": NAME, "kwargs": {...}}``, as model.json
            stores it), an arch JSON path or `Arch` (a timm ``SwinTransformer`` of that architecture), or a directory
            nascomp saved (weights included).
        checkpoint: weights to load (``.safetensors``, or a ``.pth`` read with ``weights_only=True``).
        pretrained: timm's pretrained weights from the hub (online users).
        **overrides: timm keyword arguments (``img_size``, ``num_classes``, ``in_chans``, ``window_size``...).

    Returns:
        The model, carrying its spec as ``model.nascomp_spec`` (see `nascomp.models.registry`).
    """
    built, spec = resolve_model(model, checkpoint=checkpoint, pretrained=pretrained, **overrides)
    return built


def _timm_candidate(model: nn.Module) -> dict | None:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    name = cfg.get("architecture")
    if not name:
        return None
    in_chans, resolution = model_input_size(model)
    kwargs: dict[str, Any] = {"num_classes": getattr(model, "num_classes", None), "in_chans": in_chans}
    if getattr(model, "patch_embed", None) is not None:
        kwargs["img_size"] = resolution
    return timm_spec(name, **kwargs)


def model_spec(model: nn.Module) -> dict:
    """The spec that rebuilds ``model``'s structure: the one it carries, or, for a timm model made outside
    nascomp, its name with its classes, channels and input size, accepted only if that rebuilds every tensor shape."""
    spec = getattr(model, SPEC_ATTR, None)
    if spec is not None:
        return spec
    candidate = _timm_candidate(model)
    if candidate is not None:
        try:
            with torch.device("meta"):
                rebuilt = build_from_spec(candidate)
            mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
            if mine == {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}:
                return candidate
        except NascompError:
            pass
    raise NascompError(
        f"cannot tell how to rebuild this {type(model).__name__}: make it with nascomp.create_model(name, **timm_kwargs) "
        "(or pass the model's name and options instead of the module) so its outputs can be saved and reloaded"
    )


def as_model(
    model: nn.Module | str | os.PathLike | Arch | Mapping,
    *,
    checkpoint: str | os.PathLike | None = None,
    pretrained: bool = False,
    **overrides: Any,
) -> tuple[nn.Module, dict]:
    """(module, spec) from anything the public functions accept as a model."""
    if isinstance(model, nn.Module):
        if overrides or pretrained:
            raise NascompError(
                f"options {sorted(overrides) + (['pretrained'] if pretrained else [])} only apply to a model given "
                "by name; build the module with them instead"
            )
        if checkpoint:
            load_weights_into(model, load_state_dict_file(checkpoint), str(checkpoint))
        return model, model_spec(model)
    return resolve_model(model, checkpoint=checkpoint, pretrained=pretrained, **overrides)


def as_module(
    model: nn.Module | str | os.PathLike | Arch | Mapping, *, checkpoint: str | os.PathLike | None = None, **overrides: Any
) -> nn.Module:
    """The module alone, for work that never saves it (export, profiling): a module is taken as it is, spec or not."""
    if isinstance(model, nn.Module) and not overrides:
        if checkpoint:
            load_weights_into(model, load_state_dict_file(checkpoint), str(checkpoint))
        return model
    return as_model(model, checkpoint=checkpoint, **overrides)[0]


_SIZES = ("img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depth", "depths", "num_heads", "window_size")


_LIMIT_OF = {
    "img_size": "resolution",
    "patch_size": "patch_size",
    "in_chans": "in_chans",
    "num_classes": "num_classes",
    "embed_dim": "embed_dim",
    "depth": "depth",
    "depths": "depth",
    "num_heads": "heads",
    "window_size": "window",
    "mlp_ratio": "mlp_ratio",
}


def _check_sizes(overrides: Mapping[str, Any]) -> None:
    """Sizes a user passes must be positive and within what nascomp builds (timm would build nonsense, fail deep inside with
    a traceback, or run out of memory on a typo'd depth)."""
    from nascomp.spaces.arch import check_limit

    for key in (*_SIZES, "mlp_ratio"):
        value = overrides.get(key)
        for v in value if isinstance(value, (tuple, list)) else [value]:
            flag = f"--{key.replace('_', '-')}"
            positive(flag, v, integer=key != "mlp_ratio")
            if v is not None:
                check_limit(_LIMIT_OF[key], v, flag)


def resolve_model(
    ref: str | os.PathLike | Arch | Mapping, checkpoint: str | os.PathLike | None = None, pretrained: bool = False, **overrides: Any
) -> tuple[nn.Module, dict]:
    """Turn what a user named as a model into (model, spec); the model carries the spec (see `create_model`).

    ``ref`` is a saved model directory, an arch JSON file or `Arch` (or its dict), or a timm name (with size
    ``overrides``). ``checkpoint`` optionally loads weights (safetensors or a weights-only pickle).
    """
    _check_sizes(overrides)
    if isinstance(ref, Mapping) and "builder" in ref:  # a model spec, as model.json stores it
        builder_name(ref)  # a known builder, or one error naming the known ones
        spec = {"builder": ref["builder"], "kwargs": {**dict(ref.get("kwargs") or {}), **overrides}}
    elif isinstance(ref, (Arch, Mapping)):
        arch = ref.to_dict() if isinstance(ref, Arch) else dict(ref)
        spec = {"builder": "swin-arch", "kwargs": {"arch": arch, **overrides}}
    elif isinstance(ref, str) and ref in MODELS:  # a name registered with `register_model` comes before timm's names
        if pretrained:
            raise NascompError(
                f"{ref!r} is a registered nascomp builder; pretrained=True fetches timm's hub weights only (pass checkpoint=)"
            )
        spec = {"builder": ref, "kwargs": dict(overrides)}
    else:
        path = Path(ref)
        if path.is_dir():
            if overrides or pretrained:
                raise NascompError(f"{ref} is a saved model; options {sorted(overrides)} cannot change it")
            model, meta = load_model(path)
            if checkpoint:
                load_weights_into(model, load_state_dict_file(checkpoint), str(checkpoint))
            return model, meta["spec"]
        if str(ref).endswith(".json"):
            if not path.is_file():
                raise NascompError(f"arch file {ref} not found")
            spec = {"builder": "swin-arch", "kwargs": {"arch": read_json(path), **overrides}}
        else:
            spec = timm_spec(str(ref), pretrained=pretrained or None, **overrides)
    try:
        model = build_from_spec(spec)
    except TypeError as e:  # a registered builder called with arguments it does not take
        raise NascompError(f"model builder {spec['builder']!r} cannot be called with {sorted(spec['kwargs'])}: {e}") from None
    spec["kwargs"].pop("pretrained", None)
    if checkpoint:
        load_weights_into(model, load_state_dict_file(checkpoint), str(checkpoint))
    model.__dict__[SPEC_ATTR] = spec
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

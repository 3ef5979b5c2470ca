"""Model builders by stable name, and the JSON *model spec* that names one.

A spec is ``{"builder": NAME, "kwargs": {...}}``: the registered builder NAME called with the keyword
arguments rebuilds the model's structure (weights live beside it in ``model.safetensors``). Names, not
Python import paths, go into saved files, so modules can move without breaking a saved run directory.
Specs written by nascomp 0.1, which stored import paths, are mapped to today's names (`LEGACY_BUILDERS`).

    @register_model("my-vit")
    def build_my_vit(width: int = 64, num_classes: int = 10) -> nn.Module: ...
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nascomp.core.errors import NascompError
from nascomp.core.registry import Registry

__all__ = ["MODELS", "LEGACY_BUILDERS", "register_model", "build_from_spec", "builder_name", "normalize_spec"]

MODELS: Registry[Callable[..., Any]] = Registry(
    "model builder",
    {
        "timm": "nascomp.models.timm:create_timm_model",
        "swin-arch": "nascomp.models.swin:build_from_arch",
        "supernet": "nascomp.nas.supernet.model:build_supernet",
        "minivit": "nascomp.compression.minivit:build_minivit",
        "adapted": "nascomp.adaptation.model:build_adapted",
    },
)

# import paths that nascomp 0.1 wrote into model.json, and the names that replaced them
LEGACY_BUILDERS = {
    "nascomp.models:create_timm_model": "timm",
    "nascomp.supernet.extract:build_from_arch": "swin-arch",
    "nascomp.supernet.model:build_supernet": "supernet",
    "nascomp.compress.minivit:build_minivit": "minivit",
    "nascomp.compress.adapters:build_adapted": "adapted",
}


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make a builder function loadable from saved specs as ``name``."""
    return MODELS.register(name)


def builder_name(spec: Mapping) -> str:
    """The registered name a spec refers to (a 0.1 import path is translated)."""
    if not isinstance(spec, Mapping) or "builder" not in spec:
        raise NascompError("model spec must be a JSON object with a 'builder' key")
    name = spec["builder"]
    if isinstance(name, str) and ":" in name:
        if name not in LEGACY_BUILDERS:
            raise NascompError(
                f"model spec names builder {name!r}, which this nascomp version does not know; known builders: {', '.join(MODELS.names())}"
            )
        return LEGACY_BUILDERS[name]
    return name


def build_from_spec(spec: Mapping) -> Any:
    """Build the (untrained) model a spec describes; nested specs (a MiniViT's base) may be of either era."""
    return MODELS.get(builder_name(spec))(**spec.get("kwargs", {}))


def normalize_spec(spec: Any) -> Any:
    """The same spec with every builder (nested ones too) written as today's name, so re-saving a 0.1 model
    writes the new form."""
    if isinstance(spec, Mapping):
        out = {k: normalize_spec(v) for k, v in spec.items()}
        if "builder" in out and "kwargs" in out:
            out["builder"] = builder_name(out)
        return out
    if isinstance(spec, list):
        return [normalize_spec(v) for v in spec]
    return spec

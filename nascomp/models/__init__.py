"""Models: builders registered by name, timm and S3-arch Swin models, save/load, and block structure.

- `register_model` / `build_from_spec` (`nascomp.models.registry`): specs name builders, not import paths.
- `create_timm_model` / `timm_spec` (`nascomp.models.timm`), `build_from_arch` / `arch_spec` (`nascomp.models.swin`).
- `save_model` / `load_model` / `load_weights_into` (`nascomp.models.io`).
- `resolve_model` / `model_input_size` / `create_model` (`nascomp.models.resolve`): what a user types as MODEL.
- `model_family` / `transformer_blocks` / `stage_depths` (`nascomp.models.structure`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nascomp.core.lazy import lazy_exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "LEGACY_BUILDERS": "nascomp.models.registry",
    "MODELS": "nascomp.models.registry",
    "build_from_spec": "nascomp.models.registry",
    "builder_name": "nascomp.models.registry",
    "normalize_spec": "nascomp.models.registry",
    "register_model": "nascomp.models.registry",
    "load_model": "nascomp.models.io",
    "load_weights_into": "nascomp.models.io",
    "save_model": "nascomp.models.io",
    "model_input_size": "nascomp.models.resolve",
    "resolve_model": "nascomp.models.resolve",
    "arch_spec": "nascomp.models.swin",
    "build_from_arch": "nascomp.models.swin",
    "create_timm_model": "nascomp.models.timm",
    "timm_spec": "nascomp.models.timm",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from nascomp.models.io import load_model, load_weights_into, save_model
    from nascomp.models.registry import LEGACY_BUILDERS, MODELS, build_from_spec, builder_name, normalize_spec, register_model
    from nascomp.models.resolve import model_input_size, resolve_model
    from nascomp.models.swin import arch_spec, build_from_arch
    from nascomp.models.timm import create_timm_model, timm_spec

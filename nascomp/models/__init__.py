"""Models: builders registered by name, timm and S3-arch Swin models, save/load, and block structure.

- `register_model` / `build_from_spec` (`nascomp.models.registry`): specs name builders, not import paths.
- `create_timm_model` / `timm_spec` (`nascomp.models.timm`), `build_from_arch` / `arch_spec` (`nascomp.models.swin`).
- `save_model` / `load_model` / `load_weights_into` (`nascomp.models.io`).
- `resolve_model` / `model_input_size` / `create_model` (`nascomp.models.resolve`): what a user types as MODEL.
- `model_family` / `transformer_blocks` / `stage_depths` (`nascomp.models.structure`).
"""

from nascomp.models.io import load_model, load_weights_into, save_model
from nascomp.models.registry import LEGACY_BUILDERS, MODELS, build_from_spec, builder_name, normalize_spec, register_model
from nascomp.models.resolve import model_input_size, resolve_model
from nascomp.models.swin import arch_spec, build_from_arch
from nascomp.models.timm import create_timm_model, timm_spec

__all__ = [
    "LEGACY_BUILDERS", "MODELS", "build_from_spec", "builder_name", "normalize_spec", "register_model",
    "load_model", "load_weights_into", "save_model", "model_input_size", "resolve_model", "arch_spec", "build_from_arch",
    "create_timm_model", "timm_spec",
]

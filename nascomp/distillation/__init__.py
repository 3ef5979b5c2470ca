"""Distillation: losses, activation taps, and the methods ``--distill`` chooses from.

1. **Losses** (`nascomp.distillation.losses`), one function each, unit-tested against hand-computed values.
2. **Taps** (`nascomp.distillation.taps`): activations read with hooks during the model's own forward pass.
3. **Methods**, each an `nn.Module` turning a batch into a loss (`nascomp.distillation.base.Distiller`), by name
   in `DISTILLERS`: ``none`` (ground truth only), ``kd`` (prediction logits), ``minivit`` (MiniViT's weight
   distillation), ``srd`` (SRD). `nascomp.distillation.base.build_distiller` makes one; `distillation_step` plugs it into `fit`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nascomp.core.lazy import lazy_exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "DISTILLERS": "nascomp.distillation.registry",
    "register_distiller": "nascomp.distillation.registry",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from nascomp.distillation.registry import DISTILLERS, register_distiller

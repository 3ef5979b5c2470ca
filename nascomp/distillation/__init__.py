"""Distillation: losses, activation taps, and the methods ``--distill`` chooses from.

1. **Losses** (`nascomp.distillation.losses`), one function each, unit-tested against hand-computed values.
2. **Taps** (`nascomp.distillation.taps`): activations read with hooks during the model's own forward pass.
3. **Methods**, each an `nn.Module` turning a batch into a loss (`nascomp.distillation.base.Distiller`), by name
   in `DISTILLERS`: ``none`` (ground truth only), ``kd`` (prediction logits), ``minivit`` (MiniViT's weight
   distillation), ``srd`` (SRD). `nascomp.distillation.base.build_distiller` makes one; `distillation_step` plugs it into `fit`.
"""

from nascomp.distillation.registry import DISTILLERS, register_distiller

__all__ = ["DISTILLERS", "register_distiller"]

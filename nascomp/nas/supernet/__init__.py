"""The S3 weight-entangled supernet: elastic layers, the supernet model, subnet extraction, training.

- `Supernet` (`nascomp.nas.supernet.model`): ``Supernet.from_space(space)``, ``set_arch(arch)``, ``inherit_from``.
- `extract` (`nascomp.nas.supernet.extract`): a subnet as a standalone timm Swin with the inherited weights.
- `train_supernet` (`nascomp.nas.supernet.api`; the work in `nascomp.nas.supernet.train`): uniform or sandwich sampling through
  `nascomp.engine.fit`.
- `evaluate_archs` (`nascomp.nas.supernet.evaluate`): inherited-weight accuracy of many archs, cheaply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nascomp.core.lazy import lazy_exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "Supernet": "nascomp.nas.supernet.model",
    "StageCapacity": "nascomp.nas.supernet.model",
    "build_supernet": "nascomp.nas.supernet.model",
    "load_supernet": "nascomp.nas.supernet.model",
    "extract": "nascomp.nas.supernet.extract",
    "evaluate_archs": "nascomp.nas.supernet.evaluate",
    "train_supernet": "nascomp.nas.supernet.api",
    "sample_subnets": "nascomp.nas.supernet.train",
    "SUPERNET_PRESETS": "nascomp.nas.supernet.recipe",
    "SupernetPreset": "nascomp.nas.supernet.recipe",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from nascomp.nas.supernet.api import train_supernet
    from nascomp.nas.supernet.evaluate import evaluate_archs
    from nascomp.nas.supernet.extract import extract
    from nascomp.nas.supernet.model import StageCapacity, Supernet, build_supernet, load_supernet
    from nascomp.nas.supernet.recipe import SUPERNET_PRESETS, SupernetPreset
    from nascomp.nas.supernet.train import sample_subnets

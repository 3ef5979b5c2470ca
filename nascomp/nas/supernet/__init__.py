"""The S3 weight-entangled supernet: elastic layers, the supernet model, subnet extraction, training.

- `Supernet` (`nascomp.nas.supernet.model`): ``Supernet.from_space(space)``, ``set_arch(arch)``, ``inherit_from``.
- `extract` (`nascomp.nas.supernet.extract`): a subnet as a standalone timm Swin with the inherited weights.
- `train_supernet` (`nascomp.nas.supernet.train`): uniform or sandwich sampling through `nascomp.engine.fit`.
- `evaluate_archs` (`nascomp.nas.supernet.evaluate`): inherited-weight accuracy of many archs, cheaply.
"""

from nascomp.nas.supernet.evaluate import evaluate_archs
from nascomp.nas.supernet.extract import extract
from nascomp.nas.supernet.model import StageCapacity, Supernet, build_supernet, load_supernet
from nascomp.nas.supernet.train import PRESETS, SupernetPreset, sample_subnets, train_supernet

__all__ = [
    "Supernet",
    "StageCapacity",
    "build_supernet",
    "load_supernet",
    "extract",
    "evaluate_archs",
    "train_supernet",
    "sample_subnets",
    "PRESETS",
    "SupernetPreset",
]

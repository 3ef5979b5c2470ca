"""The S3 weight-entangled supernet: elastic layers, the supernet model, subnet extraction, training.

- `Supernet` (`nascomp.supernet.model`): ``Supernet.from_space(space)``, ``set_arch(arch)``, ``inherit_from``.
- `extract` / `build_from_arch` (`nascomp.supernet.extract`): standalone timm Swin models for an Arch.
- `train_supernet` (`nascomp.supernet.train`): uniform or sandwich sampling through `nascomp.train.fit`.
- `evaluate_archs` (`nascomp.supernet.evaluate`): inherited-weight accuracy of many archs, cheaply.
"""

from nascomp.supernet.evaluate import evaluate_archs
from nascomp.supernet.extract import arch_spec, build_block, build_from_arch, build_head, build_merging, build_stem, extract
from nascomp.supernet.model import StageCapacity, Supernet, build_supernet, load_supernet
from nascomp.supernet.train import PRESETS, SupernetPreset, sample_subnets, train_supernet

__all__ = [
    "Supernet",
    "StageCapacity",
    "build_supernet",
    "load_supernet",
    "extract",
    "build_from_arch",
    "arch_spec",
    "build_stem",
    "build_merging",
    "build_block",
    "build_head",
    "evaluate_archs",
    "train_supernet",
    "sample_subnets",
    "PRESETS",
    "SupernetPreset",
]

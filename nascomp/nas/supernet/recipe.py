"""`SupernetPreset`: a complete supernet training recipe, and the presets; torch-free, so a command checks them at once.

The samplers are described in `nascomp.nas.supernet.train`, which trains with these recipes.

Presets give a whole recipe; any explicit argument overrides its field:

- ``smoke``: seconds, for tests;
- ``cpu``: a 2-core CPU run (for s3-vit-cpu, ~25 min on a loaded 2-core VM): 32 px, 2000 training images,
  12 epochs, sandwich with 2 random subnets (Kendall tau 0.64 vs stand-alone training in
  experiments/supernet-ranking);
- ``full``: AutoFormer v1's supernet recipe at the space's resolution, every setting as in its
  ``supernet_train.py`` (microsoft/Cream):

  ===========================  =======================================================================
  epochs / warm-up             500 / 20 (README's supernet command), warm-up from 1e-6, cosine to 1e-5
  batch, learning rate         128 per process; lr 5e-4 per 512 images, scaled linearly with the global
                               batch (8 processes: 1e-3)
  optimiser                    AdamW (timm), weight decay 0.05 (none on norms, biases, position tables),
                               no gradient clipping (``--clip-grad`` defaults to None)
  regularisation               drop path 0.1, label smoothing 0.1 (inside the Mixup targets)
  augmentation                 RandomResizedCrop + flip, RandAugment ``rand-m9-mstd0.5-inc1``, random
                               erasing 0.25 (pixel mode, 1 box), bicubic; colour jitter 0.4 (timm skips
                               it with RandAugment on, as in AutoFormer)
  Mixup / CutMix               alpha 0.8 / 1.0, probability 1.0, switch probability 0.5, per batch
  repeated augmentation        3 copies per image (AutoFormer's default ``--repeated-aug``)
  sampling                     one subnet drawn uniformly per step
  EMA                          off (AutoFormer's supernet keeps none)
  evaluation                   resize to 256, centre crop 224 (crop 0.875), bicubic
  ===========================  =======================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from nascomp.core.errors import NascompError
from nascomp.core.validate import fraction, non_negative, positive
from nascomp.data.recipe import AUTO, RAND_AUGMENT
from nascomp.engine.config import TrainConfig

__all__ = ["SupernetPreset", "SUPERNET_PRESETS", "SAMPLERS", "resolve_recipe"]

SAMPLERS = ("uniform", "sandwich")


@dataclass(frozen=True)
class SupernetPreset:
    """A complete supernet training recipe. ``resolution=None`` means the space's own resolution.

    The fields it shares with `TrainConfig` (from ``epochs`` to ``ema_decay``) mean what they mean there.
    """

    resolution: int | None
    epochs: int
    batch_size: int
    lr: float
    min_lr: float = 1e-5
    warmup_epochs: float = 1.0
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    drop_path_rate: float = 0.1
    sampler: str = "sandwich"
    num_random: int = 1
    distill: bool = False  # in-place distillation from the largest subnet (sandwich only)
    limit_train: int | None = None
    limit_val: int | None = None
    warmup_lr: float = 1e-6
    grad_clip: float | None = 5.0
    lr_base_batch: int | None = None
    auto_augment: str | None = AUTO
    color_jitter: float | str = AUTO
    random_erasing: float | str = AUTO
    crop_scale: float | str = AUTO
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    repeated_aug: int = 1
    ema_decay: float = 0.0

    def __post_init__(self):
        for name in ("resolution", "limit_train", "limit_val"):
            positive(f"--{name.replace('_', '-')}", getattr(self, name))
        non_negative("--num-random", self.num_random)
        fraction("--drop-path", self.drop_path_rate, low_open=False)
        self.train_config()  # checks the training fields the way TrainConfig does

    def train_config(self, **settings: Any) -> TrainConfig:
        """The `TrainConfig` of this recipe; ``settings`` give the rest (seed, resolution, in_chans, workers...)."""
        return TrainConfig(**{k: getattr(self, k) for k in _TRAIN_FIELDS}, **settings)


_TRAIN_FIELDS = tuple(f.name for f in fields(SupernetPreset) if f.name in TrainConfig.__dataclass_fields__ and f.name != "resolution")

SUPERNET_PRESETS: dict[str, SupernetPreset] = {
    "smoke": SupernetPreset(
        resolution=32, epochs=1, batch_size=32, lr=1e-3, warmup_epochs=0.0, drop_path_rate=0.0, limit_train=128, limit_val=64
    ),
    "cpu": SupernetPreset(
        resolution=32,
        epochs=12,
        batch_size=64,
        lr=2e-3,
        warmup_epochs=1.0,
        drop_path_rate=0.0,
        num_random=2,
        limit_train=2000,
        limit_val=1000,
    ),
    "full": SupernetPreset(
        resolution=None,
        epochs=500,
        batch_size=128,
        lr=5e-4,
        lr_base_batch=512,
        min_lr=1e-5,
        warmup_lr=1e-6,
        warmup_epochs=20.0,
        weight_decay=0.05,
        label_smoothing=0.1,
        drop_path_rate=0.1,
        sampler="uniform",
        grad_clip=None,
        auto_augment=RAND_AUGMENT,
        color_jitter=0.4,
        random_erasing=0.25,
        crop_scale=0.08,
        crop_pct=0.875,
        interpolation="bicubic",
        mixup=0.8,
        cutmix=1.0,
        mixup_prob=1.0,
        mixup_switch_prob=0.5,
        repeated_aug=3,
        ema_decay=0.0,
    ),
}


def resolve_recipe(preset: str | SupernetPreset, overrides: Mapping[str, Any]) -> SupernetPreset:
    if isinstance(preset, str):
        if preset not in SUPERNET_PRESETS:
            raise NascompError(f"unknown preset {preset!r}; choose one of {', '.join(SUPERNET_PRESETS)}")
        preset = SUPERNET_PRESETS[preset]
    known = {f.name for f in fields(SupernetPreset)}
    bad = sorted(k for k in overrides if k not in known and k not in TrainConfig.__dataclass_fields__)
    if bad:
        raise NascompError(f"unknown supernet training options {bad}")
    return replace(preset, **{k: v for k, v in overrides.items() if k in known and v is not None})

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
from nascomp.data.recipe import RAND_AUGMENT
from nascomp.engine.config import RUN_ONLY, TrainConfig

__all__ = ["SupernetPreset", "SUPERNET_PRESETS", "SAMPLERS", "RUN_SETTINGS", "resolve_recipe", "run_options"]

SAMPLERS = ("uniform", "sandwich")


# TrainConfig fields that each run sets (`SupernetPreset.train_config`'s settings), not part of a recipe or its record
# (the engine's RUN_ONLY, which a resume may change, and the settings a run fixes)
RUN_SETTINGS = frozenset(RUN_ONLY) | {
    "seed",
    "resolution",
    "in_chans",
    "find_unused_parameters",
    "keep_checkpoints",
    "eval_batch_size",
    "amp",
}
# A recipe's record (run.json's settings, which --resume compares, and the supernet's model.json), in its 0.x layout so
# that runs started before the recipe composed a TrainConfig still resume; other training fields follow when not default.
_RECORD = (
    "resolution", "epochs", "batch_size", "lr", "min_lr", "warmup_epochs", "weight_decay", "label_smoothing", "drop_path_rate",
    "sampler", "num_random", "distill", "limit_train", "limit_val", "warmup_lr", "grad_clip", "lr_base_batch", "auto_augment",
    "color_jitter", "random_erasing", "crop_scale", "crop_pct", "interpolation", "mixup", "cutmix", "mixup_prob",
    "mixup_switch_prob", "repeated_aug", "ema_decay",
)  # fmt: skip


@dataclass(frozen=True)
class SupernetPreset:
    """A complete supernet training recipe: how to train (``train``, a `TrainConfig` whose run settings each run fills in)
    and what only a supernet has. ``resolution=None`` means the space's own resolution."""

    resolution: int | None
    train: TrainConfig
    drop_path_rate: float = 0.1
    sampler: str = "sandwich"
    num_random: int = 1
    distill: bool = False  # in-place distillation from the largest subnet (sandwich only)
    limit_train: int | None = None
    limit_val: int | None = None

    def __post_init__(self):
        for name in ("resolution", "limit_train", "limit_val"):
            positive(f"--{name.replace('_', '-')}", getattr(self, name))
        non_negative("--num-random", self.num_random)
        fraction("--drop-path", self.drop_path_rate, low_open=False)
        if self.sampler not in SAMPLERS:
            raise NascompError(f"unknown sampler {self.sampler!r}; choose {' or '.join(SAMPLERS)}")

    def train_config(self, **settings: Any) -> TrainConfig:
        """The `TrainConfig` of this recipe; ``settings`` give the run's part (seed, resolution, in_chans, workers...)."""
        return replace(self.train, **settings)

    def with_overrides(self, overrides: Mapping[str, Any]) -> SupernetPreset:
        """This recipe with flat options replacing fields: a supernet field here, any training field in ``train``
        (``None`` keeps the recipe's); anything else is refused, naming it."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        bad = sorted(set(overrides) - set(OVERRIDABLE))
        if bad:
            raise NascompError(f"unknown supernet training options {bad}")
        own = {k: v for k, v in overrides.items() if k in _OWN}
        training = {k: v for k, v in overrides.items() if k not in _OWN}
        return replace(self, **own, train=replace(self.train, **training) if training else self.train)

    def to_dict(self) -> dict:
        """The recipe as recorded (see ``_RECORD``); run settings are not part of it."""
        record = {k: getattr(self if k in _OWN else self.train, k) for k in _RECORD}
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        extra = {k: getattr(self.train, k) for k in defaults if k not in record and k not in RUN_SETTINGS}
        return {**record, **{k: v for k, v in extra.items() if v != defaults[k]}}


_OWN = frozenset(f.name for f in fields(SupernetPreset)) - {"train"}
# the flat option names a recipe takes: its own fields and every training field that is not a run setting
OVERRIDABLE = _OWN | (frozenset(TrainConfig.__dataclass_fields__) - RUN_SETTINGS)
# run settings a caller may pass beside a recipe's options (the supernet's trainer sets the others itself)
_CALLER_SETTINGS = RUN_SETTINGS - _OWN - {"seed", "in_chans", "find_unused_parameters"}

SUPERNET_PRESETS: dict[str, SupernetPreset] = {
    "smoke": SupernetPreset(
        resolution=32,
        train=TrainConfig(epochs=1, batch_size=32, lr=1e-3, warmup_epochs=0.0),
        drop_path_rate=0.0,
        limit_train=128,
        limit_val=64,
    ),
    "cpu": SupernetPreset(
        resolution=32,
        train=TrainConfig(epochs=12, batch_size=64, lr=2e-3, warmup_epochs=1.0),
        drop_path_rate=0.0,
        num_random=2,
        limit_train=2000,
        limit_val=1000,
    ),
    "full": SupernetPreset(
        resolution=None,
        train=TrainConfig(
            epochs=500,
            batch_size=128,
            lr=5e-4,
            lr_base_batch=512,
            min_lr=1e-5,
            warmup_lr=1e-6,
            warmup_epochs=20.0,
            weight_decay=0.05,
            label_smoothing=0.1,
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
        drop_path_rate=0.1,
        sampler="uniform",
    ),
}


def resolve_recipe(preset: str | SupernetPreset, overrides: Mapping[str, Any]) -> SupernetPreset:
    if isinstance(preset, str):
        if preset not in SUPERNET_PRESETS:
            raise NascompError(f"unknown preset {preset!r}; choose one of {', '.join(SUPERNET_PRESETS)}")
        preset = SUPERNET_PRESETS[preset]
    return preset.with_overrides({k: v for k, v in overrides.items() if k not in _CALLER_SETTINGS})


def run_options(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The run settings among flat options (``num_workers``, ``amp``, ``checkpoint_every``...), for `SupernetPreset.train_config`."""
    return {k: v for k, v in overrides.items() if k in _CALLER_SETTINGS and v is not None}

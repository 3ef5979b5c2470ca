"""`TrainConfig`: a training recipe, checked when it is made, without torch (a command checks its options before loading it).

The optimiser name is checked against timm's registry as pinned (`OPTIMIZERS`, kept equal to
``timm.optim.list_optimizers()`` by a test), so a typo fails in milliseconds, not after timm loads.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from nascomp.core.errors import NascompError
from nascomp.core.validate import duration, fraction, non_negative, positive
from nascomp.data.recipe import AUTO, AUTO_FIELDS, TIERS, ImageRecipe, auto_recipe

__all__ = ["TrainConfig", "RUN_ONLY", "OPTIMIZERS", "check_optimizer", "config_differences"]

# timm 1.0.31's optimiser names (timm.optim.list_optimizers())
OPTIMIZERS = frozenset(
    {
        "adabelief",
        "adadelta",
        "adafactor",
        "adafactorbv",
        "adafactorbvc",
        "adagrad",
        "adahessian",
        "adam",
        "adamax",
        "adamc",
        "adamp",
        "adamuon",
        "adamw",
        "adamwlegacy",
        "adan",
        "adanw",
        "adopt",
        "adoptc",
        "adoptw",
        "bnbadam",
        "bnbadam8bit",
        "bnbadamw",
        "bnbadamw8bit",
        "bnbademamix",
        "bnbademamix8bit",
        "bnblion",
        "bnblion8bit",
        "bnbsgd",
        "bnbsgd8bit",
        "cadafactor",
        "cadafactorbv",
        "cadafactorbvc",
        "cadamc",
        "cadamp",
        "cadamw",
        "cadan",
        "cadanw",
        "cadopt",
        "cadoptc",
        "cadoptw",
        "clamb",
        "clambw",
        "claprop",
        "clion",
        "clionc",
        "cmars",
        "cnadamc",
        "cnadamw",
        "crmsproptf",
        "csgdc",
        "csgdp",
        "csgdw",
        "fusedadam",
        "fusedadamw",
        "fusedlamb",
        "fusednovograd",
        "fusedsgd",
        "kron",
        "kronc",
        "kronw",
        "lamb",
        "lambc",
        "lambcd",
        "lambcw",
        "lambw",
        "laprop",
        "lapropc",
        "larc",
        "lars",
        "lion",
        "lionc",
        "madgrad",
        "madgradw",
        "mars",
        "momentum",
        "muon",
        "nadam",
        "nadamc",
        "nadamlegacy",
        "nadamuon",
        "nadamw",
        "nesterov",
        "nesterovw",
        "nlarc",
        "nlars",
        "nmuon",
        "novograd",
        "novogradc",
        "novogradw",
        "radabelief",
        "radam",
        "radamlegacy",
        "radamw",
        "rmsprop",
        "rmsproptf",
        "rmsproptfc",
        "rmsproptfw",
        "sgd",
        "sgdc",
        "sgdp",
        "sgdw",
    }
)


def check_optimizer(name: str) -> str:
    """``name`` if timm's optimiser registry knows it."""
    if name not in OPTIMIZERS:
        raise NascompError(f"--opt {name!r} is not a timm optimiser; e.g. adamw, sgd, lamb, adan (timm.optim.list_optimizers())")
    return name


# settings that change how a run goes, not what it computes: a run may resume with other values
RUN_ONLY = ("num_workers", "checkpoint_every", "strict")
STALL_FRACTION = 0.5  # the share of the run after which a training loss that has not moved is reported
STALL_RATIO = 0.97  # "not moved": the epoch's mean loss is still above this share of the chance-level / first-steps loss


@dataclass
class TrainConfig:
    """A training recipe; every value is checked when it is made.

    The RGB fields (``auto_augment`` .. ``interpolation``, ``crop_scale``) shape the per-image pipeline of image folders
    and CIFAR-10 (`nascomp.data.recipe`); those left at ``"auto"`` are sized to the resolution, the training images and
    the epochs (`nascomp.data.recipe.auto_recipe`) and the run records the values used. Small grey in-memory data flips
    and shifts instead. ``strict`` makes a training loss that has not moved after a quarter of the run an error instead
    of a warning. ``mixup`` / ``cutmix``
    (alphas; 0 = off), ``repeated_aug`` (copies of each image per epoch; 1 = off) and ``ema_decay`` (0 = off)
    apply to every dataset. ``lr`` is for ``lr_base_batch`` images per optimiser step when that is set, and
    scales linearly with the global batch (per-process batch x processes).
    """

    epochs: int = 10
    batch_size: int = 128  # per process
    lr: float = 1e-3
    min_lr: float = 1e-5
    warmup_lr: float = 1e-6
    warmup_epochs: float = 1.0
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    grad_clip: float | None = 5.0
    seed: int = 0
    amp: bool = True  # only takes effect on CUDA
    resolution: int = 224
    in_chans: int = 3
    num_workers: int | None = None  # DataLoader workers per process for per-image data; None: nascomp.data.default_workers()
    eval_batch_size: int = 256
    augment: bool = True
    find_unused_parameters: bool = False  # DDP: set when steps use a subset of the parameters (supernets)
    keep_checkpoints: int = 2
    opt: str = "adamw"  # any timm optimiser name
    lr_base_batch: int | None = None
    auto_augment: str | None = AUTO
    color_jitter: float | str = AUTO
    random_erasing: float | str = AUTO
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    repeated_aug: int = 1
    ema_decay: float = 0.0
    checkpoint_every: float | str | None = None  # seconds, or "90s" / "30m" / "2h"
    crop_scale: float | str = AUTO
    strict: bool = False

    def __post_init__(self):
        for name in (
            "epochs",
            "batch_size",
            "resolution",
            "in_chans",
            "eval_batch_size",
            "keep_checkpoints",
            "repeated_aug",
            "lr_base_batch",
        ):
            positive(f"--{name.replace('_', '-')}", getattr(self, name))
        positive("--lr", self.lr, integer=False)
        for name in ("min_lr", "warmup_lr", "warmup_epochs", "weight_decay", "mixup", "cutmix"):
            non_negative(f"--{name.replace('_', '-')}", getattr(self, name), integer=False)
        non_negative("--workers", self.num_workers)
        non_negative("--grad-clip", self.grad_clip, integer=False)
        if self.grad_clip == 0:
            self.grad_clip = None  # 0 disables clipping
        fraction("--label-smoothing", self.label_smoothing, low_open=False)
        fraction("--mixup-prob", self.mixup_prob, low_open=False, high_open=False)
        fraction("--mixup-switch-prob", self.mixup_switch_prob, low_open=False, high_open=False)
        fraction("--ema-decay", self.ema_decay, low_open=False)
        check_optimizer(self.opt)
        if self.auto_augment in ("", "none"):
            self.auto_augment = None
        self.image_recipe()  # checks the RGB recipe's fields
        self.checkpoint_every = duration("--checkpoint-every", self.checkpoint_every)
        if self.mixing and self.batch_size % 2:
            raise NascompError(
                f"--batch-size must be even with Mixup/CutMix (timm mixes each image with the batch reversed), got {self.batch_size}"
            )

    @property
    def mixing(self) -> bool:
        return bool((self.mixup or self.cutmix) and self.mixup_prob)

    def image_recipe(self, train_images: int = 0) -> ImageRecipe:
        """The RGB recipe, its ``"auto"`` fields sized to this run (`resolved_recipe`)."""
        return self.resolved_recipe(train_images)[0]

    def resolved_recipe(self, train_images: int) -> tuple[ImageRecipe, str | None, bool]:
        """(the RGB recipe with ``"auto"`` fields filled in for ``train_images`` images, why (None when nothing was auto), whether
        training images are augmented at all: not when ``augment`` is off, nor when every field is auto and the tier is ``none``)."""
        auto = [f for f in AUTO_FIELDS if getattr(self, f) == AUTO]
        tier, why = auto_recipe(self.resolution, train_images, self.epochs) if auto else (None, None)
        # tier is set whenever auto is non-empty, so the None test only narrows the type
        values = {f: TIERS[tier][f] if tier is not None and f in auto else getattr(self, f) for f in AUTO_FIELDS}
        recipe = ImageRecipe(
            values["auto_augment"],
            values["color_jitter"],
            values["random_erasing"],
            self.crop_pct,
            self.interpolation,
            values["crop_scale"],
        )
        augment = self.augment and not (tier == "none" and len(auto) == len(AUTO_FIELDS))
        return recipe, (f"auto recipe '{tier}' for {', '.join(auto)}: {why}" if auto else None), augment

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def config_differences(stored: dict, current: dict, ignore: tuple[str, ...] = ()) -> dict:
    """Settings a checkpoint was written with that differ from the current run's (a field newer than the
    checkpoint counts as its default; `RUN_ONLY` fields and ``ignore`` may change)."""
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    keys = (set(stored) | set(current)) - set(RUN_ONLY) - set(ignore)
    return {
        k: (stored.get(k, defaults.get(k)), current.get(k, defaults.get(k)))
        for k in sorted(keys)
        if stored.get(k, defaults.get(k)) != current.get(k, defaults.get(k))
    }

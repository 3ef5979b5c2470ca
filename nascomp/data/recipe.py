"""The recipe for real RGB data: timm's per-image transforms and batch Mixup/CutMix, sized to the data (`auto_recipe`).

Training images go through `timm.data.create_transform`: RandomResizedCrop (area ``crop_scale``-1, ratio
3/4-4/3), horizontal flip, an optional RandAugment policy, colour jitter (timm, like DeiT, applies it only when
RandAugment is off), normalisation and random erasing (per-pixel noise, one box). Evaluation resizes the short side
to ``resolution / crop_pct`` (256 for 224 px at 0.875) and centre-crops. Both interpolate bicubically, as DeiT does.
Mixup / CutMix mix whole batches on the device (`make_mixup`) and train against soft targets (off by default).

**Sized to the data.** DeiT's ImageNet recipe (RandAugment ``rand-m9-mstd0.5-inc1``, random erasing 0.25, crops
from 8 % of the image) regularises a 300-epoch run on 1.28 M images at 224 px. On a small image folder at a low
resolution and a short schedule it keeps the model from learning anything (issue 19: digits at 32 px, 5 epochs:
test top-1 12.9 % with it, 66.9 % without augmentation). Fields left at ``"auto"`` take their value from
`auto_recipe`, by the input resolution, the training images and the epochs (the rule and the measurement
behind it are in its docstring); explicit values always win, and the run records what was used and why.

One fix on top of timm 1.0.31: RandAugment's magnitude noise (``mstd``) can push a posterize magnitude to the
top of its range, which asks Pillow to keep 0 bits, and Pillow refuses (``ValueError: bits must be between or
equal to 1 and 8``). `clamp_posterize` keeps at least one bit; the image is as dark as 1-bit posterisation
gets, which is the augmentation's intent, instead of crashing a DataLoader worker hours into a run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nascomp.core.errors import NascompError
from nascomp.core.validate import fraction, non_negative

__all__ = [
    "RAND_AUGMENT",
    "AUTO",
    "INTERPOLATIONS",
    "TIERS",
    "ImageRecipe",
    "auto_recipe",
    "check_auto_augment",
    "train_transform",
    "eval_transform",
    "clamp_posterize",
    "make_mixup",
]

RAND_AUGMENT = "rand-m9-mstd0.5-inc1"  # DeiT / AutoFormer: magnitude 9, noise 0.5, severity increasing with magnitude
AUTO = "auto"
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")
AUTO_FIELDS = ("auto_augment", "color_jitter", "random_erasing", "crop_scale")
# the values each tier gives the fields left at "auto"
TIERS: dict[str, dict] = {
    "deit": {"auto_augment": RAND_AUGMENT, "color_jitter": 0.4, "random_erasing": 0.25, "crop_scale": 0.08},
    "medium": {"auto_augment": "rand-m5-mstd0.5-inc1", "color_jitter": 0.4, "random_erasing": 0.1, "crop_scale": 0.25},
    "light": {"auto_augment": None, "color_jitter": 0.0, "random_erasing": 0.0, "crop_scale": 0.5},
    "none": {"auto_augment": None, "color_jitter": 0.0, "random_erasing": 0.0, "crop_scale": 1.0},  # training images as evaluated
}


@dataclass(frozen=True)
class ImageRecipe:
    """How RGB images are augmented for training and cropped for evaluation (see the module docstring)."""

    auto_augment: str | None = RAND_AUGMENT
    color_jitter: float = 0.4
    random_erasing: float = 0.25
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    crop_scale: float = 0.08  # smallest area fraction RandomResizedCrop takes

    def __post_init__(self):
        check_auto_augment(self.auto_augment)
        non_negative("--color-jitter", self.color_jitter, integer=False)
        fraction("--random-erasing", self.random_erasing, low_open=False, high_open=False)
        fraction("--crop-pct", self.crop_pct, high_open=False)
        fraction("--crop-scale", self.crop_scale, high_open=False)
        if self.interpolation not in INTERPOLATIONS:
            raise NascompError(f"--interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")


def auto_recipe(resolution: int, train_images: int, epochs: int) -> tuple[str, str]:
    """(tier, why): how strongly to augment RGB images of this size, count and schedule (`TIERS`).

    - ``deit`` at 160 px and above: the ImageNet recipe the field's ViT results use, whatever the folder's size.
    - ``medium`` from 64 px: half-strength RandAugment, crops from a quarter of the image, light erasing.
    - below 64 px, ``light`` (flips, crops from half the image) on runs of at least 200,000 image passes (images x epochs),
      else ``none``: a short run on small images underfits, and any augmentation costs it accuracy.

    Measured on scikit-learn's digits as a 32 px PNG folder (1,212 training images, 20 epochs, 3 seeds;
    experiments/first-hour): mean test top-1 61.6 % without augmentation, 53.6 % with flips and half-image crops, 41.0 %
    with half-strength RandAugment, 27.1 % with DeiT's recipe; confirmed on a Fashion-MNIST PNG folder the rule was not
    set on (67.9 % against 56.5 % and 41.0 %).
    The 200,000-pass and 64 px boundaries are chosen, not measured; 160 px and up is DeiT's own regime.
    """
    passes = train_images * epochs
    if resolution >= 160:
        return "deit", f"{resolution} px >= 160: the ImageNet (DeiT) recipe"
    if resolution >= 64:
        return "medium", f"{resolution} px in 64-159: medium augmentation"
    if passes >= 200_000:
        return "light", f"{resolution} px < 64, {passes:,} image passes ({train_images:,} images x {epochs} epochs): flips and crops"
    return "none", (
        f"{resolution} px < 64 and {passes:,} image passes ({train_images:,} images x {epochs} epochs) < 200,000: no "
        "augmentation (short runs on small images underfit; augmenting them cost 15-38 test points on digits)"
    )


def check_auto_augment(text: str | None) -> str | None:
    """``text`` if timm can build that RandAugment / AutoAugment / AugMix policy (``None`` = no policy). The policies the
    tiers use are known to build (a test proves it), so the defaults are checked without loading timm."""
    if text is None or text in {t["auto_augment"] for t in TIERS.values()}:
        return text
    from timm.data.auto_augment import augment_and_mix_transform, auto_augment_transform, rand_augment_transform

    build = {"rand": rand_augment_transform, "augmix": augment_and_mix_transform}.get(str(text).split("-")[0], auto_augment_transform)
    try:
        build(str(text), {})
    except (AssertionError, ValueError, KeyError, IndexError, TypeError):
        raise NascompError(
            f"--auto-augment {text!r} is not a timm augmentation policy; e.g. {RAND_AUGMENT} (RandAugment), "
            "original-mstd0.5 (AutoAugment), augmix-m5-w4-d2, or none"
        ) from None
    return text


class _AtLeastOneBit:
    """A posterize level function whose bit count never drops below 1 (Pillow accepts 1..8)."""

    def __init__(self, level_fn: Callable):
        self.level_fn = level_fn

    def __call__(self, magnitude: float, hparams: dict) -> tuple[int]:
        (bits,) = self.level_fn(magnitude, hparams)
        return (max(1, bits),)


def clamp_posterize(transform: Any) -> Any:
    """``transform`` with every posterize op of its RandAugment / AutoAugment / AugMix policy kept at >= 1 bit."""
    from timm.data.auto_augment import AugmentOp

    def visit(node: Any) -> None:
        if isinstance(node, AugmentOp):
            if node.name.startswith("Posterize") and not isinstance(node.level_fn, _AtLeastOneBit):
                assert node.level_fn is not None  # timm gives every Posterize op a level function
                node.level_fn = _AtLeastOneBit(node.level_fn)
            return
        if isinstance(node, (list, tuple)):
            for child in node:
                visit(child)
            return
        for attr in ("transforms", "ops", "policy"):
            if hasattr(node, attr):
                visit(getattr(node, attr))

    visit(transform)
    return transform


def train_transform(resolution: int, mean, std, recipe: ImageRecipe) -> Callable:
    """PIL image -> augmented, normalised float tensor."""
    from timm.data import create_transform

    tf = create_transform(
        resolution,
        is_training=True,
        auto_augment=recipe.auto_augment,
        color_jitter=recipe.color_jitter,
        re_prob=recipe.random_erasing,
        re_mode="pixel",
        re_count=1,
        interpolation=recipe.interpolation,
        mean=tuple(mean),
        std=tuple(std),
        scale=(recipe.crop_scale, 1.0),
    )
    return clamp_posterize(tf)


def eval_transform(resolution: int, mean, std, recipe: ImageRecipe) -> Callable:
    """PIL image -> normalised float tensor: resize the short side to resolution / crop_pct, centre-crop."""
    from timm.data import create_transform

    return create_transform(
        resolution, is_training=False, crop_pct=recipe.crop_pct, interpolation=recipe.interpolation, mean=tuple(mean), std=tuple(std)
    )


def make_mixup(mixup: float, cutmix: float, prob: float, switch_prob: float, label_smoothing: float, num_classes: int):
    """timm's batch Mixup/CutMix (soft targets, label smoothing folded in), or ``None`` when both alphas are 0."""
    if not (mixup or cutmix) or not prob:
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=mixup,
        cutmix_alpha=cutmix,
        prob=prob,
        switch_prob=switch_prob,
        mode="batch",
        label_smoothing=label_smoothing,
        num_classes=num_classes,
    )

"""Argument groups shared by sub-commands (data, model size overrides, training recipe), and output helpers.

Nothing here imports torch: the values are handed to the library, which checks them.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = [
    "refuse_ignored",
    "add_data_args",
    "data_options",
    "add_model_args",
    "model_overrides",
    "add_train_args",
    "recipe_overrides",
    "add_recipe_args",
    "recipe_options",
    "add_workers_arg",
    "add_logger_arg",
    "int_or_tuple",
    "int_list",
    "str_list",
    "json_object",
    "print_json",
]

# defaults shown in --help; the library holds the values (nascomp.data.recipe, nascomp.engine.TrainConfig)
_RAND_AUGMENT = "rand-m9-mstd0.5-inc1"
WORKERS_HELP = (
    "DataLoader worker processes per process for image folders / CIFAR-10 (default: min(8, cores per process - 1), "
    "0 on a 1-2 core machine; grey in-memory data is transformed in the training process)"
)


def int_or_tuple(text: str) -> int | tuple[int, ...]:
    """'96' -> 96, '2,2,6,2' -> (2, 2, 6, 2): one flag serves ViT (ints) and Swin (per-stage tuples)."""
    try:
        parts = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or comma-separated integers, got {text!r}") from None
    return parts[0] if len(parts) == 1 and "," not in text else tuple(parts)


def int_list(text: str) -> list[int]:
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def str_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"drop_rate\": 0.1}'")
    return value


def refuse_ignored(args: argparse.Namespace, chosen: str | list[str], accepts: dict[str, tuple[str, ...]], what: str = "--method") -> None:
    """One error for an option the chosen method(s) would silently ignore, naming the methods that take it.

    ``accepts`` maps an argument's dest to the methods using it; options given are those not at ``None`` / ``False``.
    """
    from nascomp.core.errors import NascompError

    picked = [chosen] if isinstance(chosen, str) else list(chosen)
    for dest, methods in accepts.items():
        value = getattr(args, dest, None)
        if value not in (None, False, [], {}) and not set(picked) & set(methods):
            raise NascompError(f"--{dest.replace('_', '-')} applies to {what} {' or '.join(methods)}, not {','.join(picked)}; drop it")


def add_data_args(p: argparse.ArgumentParser, default: str | None = "fashion-mnist", classes: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default=default, help="fashion-mnist | cifar10 | imagefolder:PATH (default: %(default)s)")
    g.add_argument("--data-dir", help="folder with the dataset files (default: $NASCOMP_DATA, then the Debian path)")
    g.add_argument("--download", action="store_true", help="download the dataset with torchvision (online users)")
    g.add_argument("--val-fraction", type=float, default=0.1, help="share of training images held out for validation")
    g.add_argument("--limit-train", type=int, help="use only the first N training images (quick runs)")
    g.add_argument("--limit-val", type=int, help="use only the first N validation images")
    g.add_argument("--limit-test", type=int, help="use only the first N test images")
    if classes:
        g.add_argument("--classes", type=int_list, help="keep only these class ids, e.g. 0,1,2,3,4")


def data_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of `nascomp.load_data` from the data group (without the dataset name and resolution)."""
    return {
        "data_dir": args.data_dir,
        "val_fraction": args.val_fraction,
        "limit_train": args.limit_train,
        "limit_val": args.limit_val,
        "limit_test": args.limit_test,
        "download": args.download,
        "classes": getattr(args, "classes", None),
    }


def add_model_args(p: argparse.ArgumentParser, weights: bool = True) -> None:
    g = p.add_argument_group("model size overrides (timm keyword arguments)")
    g.add_argument("--img-size", type=int, help="input resolution")
    g.add_argument("--patch-size", type=int)
    g.add_argument("--in-chans", type=int, help="input channels (default: the model's; grey images are repeated to RGB)")
    g.add_argument("--num-classes", type=int, help="default: the dataset's number of classes")
    g.add_argument("--embed-dim", type=int_or_tuple, help="e.g. 192 (ViT/Swin) or 64,128,256 (per stage)")
    g.add_argument("--depth", type=int, help="ViT depth")
    g.add_argument("--depths", type=int_or_tuple, help="per-stage depths, e.g. 2,2,6,2")
    g.add_argument("--num-heads", type=int_or_tuple, help="e.g. 3 or 3,6,12,24")
    g.add_argument("--window-size", type=int)
    g.add_argument("--mlp-ratio", type=float)
    g.add_argument("--model-kwargs", type=json_object, default={}, help="other timm keyword arguments as JSON")
    if weights:
        g.add_argument("--checkpoint", help="load weights from a .safetensors or .pth file (pickles are read weights-only)")
        g.add_argument("--pretrained", action="store_true", help="timm pretrained weights from the hub (online users)")


_MODEL_KEYS = ("img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depth", "depths", "num_heads", "window_size", "mlp_ratio")


def model_overrides(args: argparse.Namespace, num_classes: int | None = None) -> dict[str, Any]:
    """timm keyword arguments from the model group (``num_classes`` fills in when not given)."""
    out = {k: getattr(args, k) for k in _MODEL_KEYS if getattr(args, k, None) is not None}
    if num_classes is not None and "num_classes" not in out:
        out["num_classes"] = num_classes
    out.update(args.model_kwargs or {})
    return out


def add_workers_arg(g) -> None:
    g.add_argument("--workers", type=int, help=WORKERS_HELP)


def add_logger_arg(g) -> None:
    """``--logger``; the library checks the value (names, installed packages) before any work."""
    from nascomp.core.runlog import LOGGER_HELP

    g.add_argument("--logger", metavar="NAMES", help=LOGGER_HELP)


def add_recipe_args(p: argparse.ArgumentParser, preset: bool = False) -> None:
    """RGB augmentation, Mixup/CutMix, repeated augmentation, EMA and the optimiser; unset options keep the
    recipe's value (``preset``: a preset's, which is what the help then says)."""

    def default(value: str) -> str:
        return "default: the preset's" if preset else f"default: {value}"

    g = p.add_argument_group(
        "augmentation (image folders, CIFAR-10: timm's per-image transforms, sized to the data unless set; "
        "grey in-memory data flips and shifts)"
    )
    auto = "auto: sized to resolution, images and epochs; DeiT's at >= 160 px"
    g.add_argument(
        "--auto-augment", metavar="POLICY", help=f"timm RandAugment/AutoAugment policy, or none ({default(auto)}: {_RAND_AUGMENT})"
    )
    g.add_argument("--color-jitter", type=float, help=f"colour jitter strength; timm applies it only without RandAugment ({default(auto)})")
    g.add_argument("--random-erasing", type=float, metavar="P", help=f"random erasing probability ({default(auto)})")
    g.add_argument(
        "--crop-scale", type=float, metavar="S", help=f"smallest area share of the random resized crop ({default(auto)}; DeiT: 0.08)"
    )
    g.add_argument("--crop-pct", type=float, help=f"evaluation centre crop: resize to resolution / crop-pct first ({default('0.875')})")
    g.add_argument("--interpolation", choices=["bicubic", "bilinear", "nearest"], help=f"resize filter ({default('bicubic')})")
    m = p.add_argument_group("Mixup / CutMix, repeated augmentation, EMA (every dataset)")
    m.add_argument("--mixup", type=float, metavar="ALPHA", help=f"Mixup alpha, 0 = off, soft-target loss ({default('0')}; DeiT: 0.8)")
    m.add_argument("--cutmix", type=float, metavar="ALPHA", help=f"CutMix alpha, 0 = off ({default('0')}; DeiT: 1.0)")
    m.add_argument("--mixup-prob", type=float, help=f"share of batches mixed ({default('1.0')})")
    m.add_argument("--mixup-switch-prob", type=float, help=f"chance a mixed batch uses CutMix when both are on ({default('0.5')})")
    m.add_argument(
        "--repeated-aug",
        type=int,
        metavar="N",
        help=f"copies of each image per epoch, each augmented apart; under DDP on different ranks ({default('1 = off')}; DeiT: 3)",
    )
    m.add_argument(
        "--ema-decay",
        type=float,
        help=f"keep an EMA of the weights (timm ModelEmaV3) and validate/save it; 0 = off ({default('0')}; DeiT: 0.99996)",
    )
    o = p.add_argument_group("optimiser")
    o.add_argument("--opt", help=f"timm optimiser name ({default('adamw')})")
    o.add_argument(
        "--lr-base-batch",
        type=int,
        metavar="N",
        help=f"--lr is for N images per step; scaled linearly to the global batch ({default('--lr as given')})",
    )


_RECIPE_OPTIONS = (
    "auto_augment",
    "color_jitter",
    "random_erasing",
    "crop_scale",
    "crop_pct",
    "interpolation",
    "mixup",
    "cutmix",
    "mixup_prob",
    "mixup_switch_prob",
    "repeated_aug",
    "ema_decay",
    "opt",
    "lr_base_batch",
)


def recipe_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `add_recipe_args` options as `TrainConfig` / `SupernetPreset` fields (``None`` = the recipe's)."""
    return {k: getattr(args, k) for k in _RECIPE_OPTIONS}


def add_train_args(p: argparse.ArgumentParser, epochs: int = 10, lr: float = 1e-3, batch_size: int = 128, preset: bool = False) -> None:
    g = p.add_argument_group("training recipe")
    g.add_argument("--epochs", type=int, default=epochs)
    g.add_argument("--batch-size", type=int, default=batch_size, help="per process")
    g.add_argument("--lr", type=float, default=lr, help="peak learning rate")
    g.add_argument("--min-lr", type=float, default=1e-5)
    g.add_argument("--warmup-epochs", type=float, default=1.0)
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--label-smoothing", type=float, default=0.1)
    g.add_argument("--grad-clip", type=float, default=5.0, help="0 disables")
    g.add_argument("--no-augment", action="store_true", help="no augmentation (RGB data: the evaluation crop; grey data: no flip/shift)")
    g.add_argument(
        "--strict",
        action="store_true",
        help="stop with an error when the training loss has not moved after a quarter of the run (default: a warning)",
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    add_workers_arg(g)
    g.add_argument(
        "--checkpoint-every",
        metavar="DURATION",
        help="also checkpoint inside epochs at this interval: 90s, 30m, 2h (default: at epoch ends only)",
    )
    g.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    g.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    g.add_argument("--overwrite", action="store_true", help="replace a run or saved model already in --out (never the command's input)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    add_logger_arg(g)
    add_recipe_args(p, preset)


def recipe_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """`nascomp.TrainConfig` fields from the training groups (``None`` keeps the default)."""
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "min_lr": args.min_lr,
        "warmup_epochs": args.warmup_epochs,
        "weight_decay": args.weight_decay,
        "label_smoothing": args.label_smoothing,
        "grad_clip": args.grad_clip,
        "seed": args.seed,
        "amp": not args.no_amp,
        "num_workers": args.workers,
        "augment": not args.no_augment,
        "strict": args.strict,
        "checkpoint_every": args.checkpoint_every,
        **recipe_options(args),
    }


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))

"""Supernet training through the foundation's `nascomp.engine.fit`: subnet sampling, presets, reporting.

Each optimiser step samples subnets from the space and accumulates their gradients:

- ``uniform``: one subnet drawn uniformly per step (AutoFormer v1, which S3 builds on);
- ``sandwich``: the smallest, ``num_random`` uniformly drawn, and the largest subnet per step (BigNAS's
  sandwich rule), which trains the extremes every step and ranks subnets better after short training;
  ``distill=True`` adds BigNAS's in-place distillation (the other subnets learn the largest one's outputs).

Subnets are drawn from ``ctx.rng()``, a generator seeded by (seed, epoch, step), so every DDP rank draws
the same sequence and a resumed run continues it exactly. The largest subnet runs last, so the one
synchronising backward pass (earlier ones run under ``no_sync``) touches every parameter.

Presets give a whole recipe; any explicit argument overrides its field:

- ``smoke``: seconds, for tests;
- ``cpu``: a 2-core CPU run (for s3-vit-cpu, ~25 min on a loaded 2-core VM): 32 px, 2000 training images,
  12 epochs, sandwich with 2 random subnets (Kendall tau 0.64 vs stand-alone training in
  experiments/supernet-ranking);
- ``full``: AutoFormer v1's supernet recipe at the space's resolution, every setting as in its
  ``supernet_train.py`` (microsoft/Cream, research/s3.md §2):

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

import contextlib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nascomp.data import RAND_AUGMENT, DataBundle, load_data
from nascomp.data.recipe import AUTO
from nascomp.core.distributed import init_distributed
from nascomp.core.errors import NascompError
from nascomp.core.progress import console
from nascomp.core.validate import fraction, non_negative, output_dir, positive, removed_on_failure
from nascomp.spaces.arch import Arch
from nascomp.spaces.space import SearchSpace
from nascomp.nas.supernet.model import Supernet
from nascomp.engine import StepContext, TrainConfig, evaluate, fit
from nascomp.engine.api import TrainResult

__all__ = ["SupernetPreset", "PRESETS", "SAMPLERS", "resolve_recipe", "sample_subnets", "make_step", "make_eval", "train_supernet"]

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

PRESETS: dict[str, SupernetPreset] = {
    "smoke": SupernetPreset(resolution=32, epochs=1, batch_size=32, lr=1e-3, warmup_epochs=0.0, drop_path_rate=0.0,
                            limit_train=128, limit_val=64),
    "cpu": SupernetPreset(resolution=32, epochs=12, batch_size=64, lr=2e-3, warmup_epochs=1.0, drop_path_rate=0.0,
                          num_random=2, limit_train=2000, limit_val=1000),
    "full": SupernetPreset(resolution=None, epochs=500, batch_size=128, lr=5e-4, lr_base_batch=512, min_lr=1e-5, warmup_lr=1e-6,
                           warmup_epochs=20.0, weight_decay=0.05, label_smoothing=0.1, drop_path_rate=0.1, sampler="uniform",
                           grad_clip=None, auto_augment=RAND_AUGMENT, color_jitter=0.4, random_erasing=0.25, crop_scale=0.08, crop_pct=0.875,
                           interpolation="bicubic", mixup=0.8, cutmix=1.0, mixup_prob=1.0, mixup_switch_prob=0.5, repeated_aug=3,
                           ema_decay=0.0),
}


def sample_subnets(space: SearchSpace, rng, sampler: str = "sandwich", num_random: int = 1) -> list[Arch]:
    """The subnets one step trains, in order (the largest last for the sandwich rule)."""
    if sampler == "uniform":
        return [space.sample(rng)]
    if sampler == "sandwich":
        return [space.smallest(), *(space.sample(rng) for _ in range(num_random)), space.largest()]
    raise NascompError(f"unknown sampler {sampler!r}; choose {' or '.join(SAMPLERS)}")


def _unwrap(model: nn.Module) -> Supernet:
    return model.module if isinstance(model, DistributedDataParallel) else model


def make_step(space: SearchSpace, sampler: str = "sandwich", num_random: int = 1, distill: bool = False):
    """A `nascomp.engine.fit` ``step_fn`` that accumulates the gradients of the step's subnets.

    With ``distill`` (BigNAS's in-place distillation, sandwich only) the largest subnet runs first on the
    labels and every other subnet learns its detached soft predictions instead of the labels.
    """
    if sampler not in SAMPLERS:
        raise NascompError(f"unknown sampler {sampler!r}; choose {' or '.join(SAMPLERS)}")
    if distill and sampler != "sandwich":
        raise NascompError("in-place distillation needs the sandwich sampler (the largest subnet is the teacher)")

    def step(model: nn.Module, images, targets, ctx: StepContext):
        net = _unwrap(model)
        archs = sample_subnets(space, ctx.rng(), sampler, num_random)
        if distill:
            archs = archs[-1:] + archs[:-1]  # teacher first
        total, teacher = 0.0, None
        for i, arch in enumerate(archs):
            net.set_arch(arch)
            last = i == len(archs) - 1
            with contextlib.nullcontext() if last else ctx.no_sync(model):
                with ctx.autocast():
                    logits = model(images)
                    if teacher is None:
                        loss = ctx.criterion(logits, targets)
                    else:
                        loss = -(teacher * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()
                ctx.backward(loss)
            if distill and teacher is None:
                teacher = torch.softmax(logits.detach().float(), dim=-1)
            total = total + loss.detach()
        return total / len(archs)

    return step


def make_eval(archs: Mapping[str, Arch], batch_size: int = 256, main: str | None = None, workers: int | None = None):
    """A `fit` ``eval_fn`` reporting each named arch's inherited accuracy; top-level metrics are ``main``'s."""
    names = list(archs)
    main = main or names[0]

    def eval_fn(model: nn.Module, dataset, transform) -> dict:
        net = _unwrap(model)
        previous = net.arch
        info = init_distributed(str(next(net.parameters()).device.type))
        results = {}
        for name in names:
            net.set_arch(archs[name])
            results[name] = evaluate(net, dataset, transform, batch_size, dist_info=info, workers=workers)
        net.set_arch(previous)
        return {**results[main], "subnets": {n: {k: r[k] for k in ("top1", "top5", "loss")} for n, r in results.items()}}

    return eval_fn


def resolve_recipe(preset: str | SupernetPreset, overrides: Mapping[str, Any]) -> SupernetPreset:
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise NascompError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    known = {f.name for f in fields(SupernetPreset)}
    bad = sorted(k for k in overrides if k not in known and k not in TrainConfig.__dataclass_fields__)
    if bad:
        raise NascompError(f"unknown supernet training options {bad}")
    return replace(preset, **{k: v for k, v in overrides.items() if k in known and v is not None})


def train_supernet(
    space: SearchSpace | str,
    data: DataBundle | str,
    out_dir: str | Path,
    *,
    preset: str | SupernetPreset = "cpu",
    supernet: Supernet | None = None,
    in_chans: int = 3,
    eval_archs: Mapping[str, Arch] | None = None,
    data_dir: str | None = None,
    resume: bool = False,
    quiet: bool = False,
    device: str | None = None,
    seed: int = 0,
    **overrides: Any,
) -> TrainResult:
    """Train a supernet over ``space`` on ``data`` into ``out_dir`` (uniform or sandwich subnet sampling).

    Args:
        space: a `SearchSpace` or a shipped space name / YAML path.
        data: a `DataBundle` (used as given) or a dataset name (loaded with the preset's ``limit_train`` /
            ``limit_val``; ``data_dir`` says where it lives).
        out_dir: the run directory; it then loads with `nascomp.nas.supernet.load_supernet`.
        preset: ``smoke``, ``cpu``, ``full`` or a `SupernetPreset`; keyword ``overrides`` replace its fields
            (``epochs``, ``lr``, ``resolution``, ``sampler``, ``num_random``, ``limit_train``, ``drop_path_rate``,
            ``mixup``, ``ema_decay``...) and any other `TrainConfig` field (``amp``, ``num_workers``, ``checkpoint_every``...).
        supernet: continue from existing weights, e.g. one grown for an evolved space with ``Supernet.inherit_from``.
        in_chans: model input channels (grey images are repeated).
        eval_archs: archs whose inherited validation accuracy is reported every epoch (default: largest and smallest).
        resume, quiet, device, seed: as for `nascomp.train`.

    Returns:
        `TrainResult` (``.out``, ``.model`` = the `Supernet`, ``.metrics`` = metrics.json).
    """
    out_dir = output_dir(out_dir)
    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    recipe = resolve_recipe(preset, overrides)
    if recipe.sampler not in SAMPLERS:
        raise NascompError(f"unknown sampler {recipe.sampler!r}; choose {' or '.join(SAMPLERS)}")
    resolution = recipe.resolution or space.resolution
    if isinstance(data, str):
        data = load_data(data, data_dir, limit_train=recipe.limit_train, limit_val=recipe.limit_val)
    if supernet is None:
        with torch.random.fork_rng(devices=[]):  # the initial weights are a function of the seed
            torch.manual_seed(seed)
            supernet = Supernet(space, num_classes=data.num_classes, in_chans=in_chans, img_size=resolution,
                                drop_path_rate=recipe.drop_path_rate)
    else:
        if supernet.num_classes != data.num_classes:
            raise NascompError(f"the given supernet has {supernet.num_classes} classes, the data {data.num_classes}")
        why = supernet.misfit(space.largest(), resolution)
        if why:
            raise NascompError(f"the given supernet cannot run space {space.name!r}'s largest arch: {why}")
        supernet.img_size, supernet.drop_path_rate = resolution, recipe.drop_path_rate
    for name, arch in (eval_archs or {}).items():
        if supernet.misfit(arch, resolution):
            raise NascompError(f"eval arch {name!r} does not fit the supernet: {supernet.misfit(arch, resolution)}")
    archs = dict(eval_archs) if eval_archs else {"largest": space.largest(), "smallest": space.smallest()}
    fixed = {"seed", "resolution", "in_chans", "find_unused_parameters", *asdict(recipe)}
    train_extra = {k: v for k, v in overrides.items() if k in TrainConfig.__dataclass_fields__ and k not in fixed}
    cfg = recipe.train_config(seed=seed, resolution=resolution, in_chans=supernet.in_chans, find_unused_parameters=True,
                              **{k: v for k, v in train_extra.items() if v is not None})
    notes = space.degenerate_windows(resolution)
    if resolution != space.resolution:
        notes.insert(0, f"training at a proxy resolution of {resolution} px; the space's budgets and costs refer to "
                        f"{space.resolution} px")
    if not quiet and init_distributed(device).is_main:
        for note in notes:
            console.print(f"[yellow]note:[/] {note}")
    metadata = {
        "supernet": {"space": space.name, "preset": preset if isinstance(preset, str) else "custom",
                     "recipe": asdict(recipe), "resolution": resolution, "eval_archs": {n: a.to_dict() for n, a in archs.items()},
                     "notes": notes},
    }
    with removed_on_failure(out_dir):
        metrics = fit(
            supernet, data, cfg, out_dir, spec=supernet.spec(), step_fn=make_step(space, recipe.sampler, recipe.num_random, recipe.distill),
            eval_fn=make_eval(archs, cfg.eval_batch_size, workers=cfg.num_workers), resume=resume, quiet=quiet, evaluate_test=False,
            metadata=metadata, device=device,
        )
    return TrainResult(Path(out_dir), supernet, metrics)

"""Supernet training through the foundation's `nascomp.engine.fit`: subnet sampling, presets, reporting.

Each optimiser step samples subnets from the space and accumulates their gradients:

- ``uniform``: one subnet drawn uniformly per step (AutoFormer v1, which S3 builds on);
- ``sandwich``: the smallest, ``num_random`` uniformly drawn, and the largest subnet per step (BigNAS's
  sandwich rule), which trains the extremes every step and ranks subnets better after short training;
  ``distill=True`` adds BigNAS's in-place distillation (the other subnets learn the largest one's outputs).

Subnets are drawn from ``ctx.rng()``, a generator seeded by (seed, epoch, step), so every DDP rank draws
the same sequence and a resumed run continues it exactly. The largest subnet runs last, so the one
synchronising backward pass (earlier ones run under ``no_sync``) touches every parameter.

The recipes (`SupernetPreset` and the ``smoke``, ``cpu`` and ``full`` presets) are in `nascomp.nas.supernet.recipe`;
any explicit argument overrides a preset's field.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nascomp.core.distributed import init_distributed
from nascomp.core.errors import NascompError
from nascomp.core.progress import console
from nascomp.core.validate import removed_on_failure
from nascomp.cost.arch_cost import arch_cost
from nascomp.data import DataBundle, load_data
from nascomp.engine import StepContext, evaluate, fit
from nascomp.engine.api import TrainResult
from nascomp.nas.supernet.model import Supernet
from nascomp.nas.supernet.recipe import SAMPLERS, SupernetPreset, resolve_recipe, run_options
from nascomp.spaces.arch import Arch
from nascomp.spaces.space import SearchSpace

__all__ = ["SupernetPreset", "SAMPLERS", "resolve_recipe", "sample_subnets", "make_step", "make_eval", "build_supernet", "fit_supernet"]


def sample_subnets(space: SearchSpace, rng, sampler: str = "sandwich", num_random: int = 1) -> list[Arch]:
    """The subnets one step trains, in order (the largest last for the sandwich rule)."""
    if sampler == "uniform":
        return [space.sample(rng)]
    if sampler == "sandwich":
        return [space.smallest(), *(space.sample(rng) for _ in range(num_random)), space.largest()]
    raise NascompError(f"unknown sampler {sampler!r}; choose {' or '.join(SAMPLERS)}")


def _unwrap(model: nn.Module) -> Supernet:
    """The supernet a training step gets, DDP-wrapped or not (the cast: training only ever passes a supernet)."""
    return cast(Supernet, model.module if isinstance(model, DistributedDataParallel) else model)


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
        drawn = archs if sampler == "uniform" else archs[1:-1]  # the sandwich's extremes are the same every step
        if drawn:  # what the run logs: the cost of the subnets the sampler drew
            ctx.scalars["supernet/sampled_macs"] = sum(arch_cost(a, net.img_size, net.in_chans, net.num_classes).macs for a in drawn) / len(
                drawn
            )
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


def build_supernet(space: SearchSpace, num_classes: int, in_chans: int, resolution: int, recipe: SupernetPreset, seed: int) -> Supernet:
    """A new supernet over ``space`` whose initial weights are a function of ``seed`` alone (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Supernet(space, num_classes=num_classes, in_chans=in_chans, img_size=resolution, drop_path_rate=recipe.drop_path_rate)


def fit_supernet(
    space: SearchSpace | str,
    data: DataBundle | str,
    out_dir: str | Path,
    *,
    preset: str | SupernetPreset = "cpu",
    inherit: Supernet | None = None,
    in_chans: int = 3,
    eval_archs: Mapping[str, Arch] | None = None,
    data_dir: str | None = None,
    resume: bool = False,
    quiet: bool = False,
    device: str | None = None,
    seed: int = 0,
    init_seed: int | None = None,
    logger: str | None = "none",
    **overrides: Any,
) -> TrainResult:
    """Build a supernet over ``space`` and train it on ``data`` into ``out_dir`` (uniform or sandwich subnet sampling): the
    work of `nascomp.train_supernet`, which checks the arguments and claims the folder first; the search pipeline calls it
    per evolution step. The supernet is built here and only here, at the recipe's resolution and drop path.

    Args:
        space: a `SearchSpace` or a shipped space name / YAML path.
        data: a `DataBundle` (used as given) or a dataset name (loaded with the preset's ``limit_train`` /
            ``limit_val``; ``data_dir`` says where it lives).
        out_dir: the run directory; it then loads with `nascomp.nas.supernet.load_supernet`.
        preset: ``smoke``, ``cpu``, ``full`` or a `SupernetPreset`; keyword ``overrides`` replace its fields
            (``epochs``, ``lr``, ``resolution``, ``sampler``, ``num_random``, ``limit_train``, ``drop_path_rate``,
            ``mixup``, ``ema_decay``...) and any other `TrainConfig` field (``amp``, ``num_workers``, ``checkpoint_every``...).
        inherit: a trained supernet whose weights the new one starts from wherever their shapes overlap
            (`Supernet.inherit_from`), e.g. the previous evolution step's for an evolved space.
        in_chans: model input channels (grey images are repeated).
        eval_archs: archs whose inherited validation accuracy is reported every epoch (default: largest and smallest).
        resume, quiet, device, logger: as for `nascomp.train`; the log adds ``supernet/sampled_macs``, the mean MACs of
            the subnets each step drew.
        seed: the training's seed (data order, subnet draws).
        init_seed: the initial weights' seed (default ``seed``).

    Returns:
        `TrainResult` (``.out``, ``.model`` = the `Supernet`, ``.metrics`` = metrics.json).
    """
    out_dir = Path(out_dir)
    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    recipe = resolve_recipe(preset, overrides)
    resolution = recipe.resolution or space.resolution
    if isinstance(data, str):
        data = load_data(data, data_dir, limit_train=recipe.limit_train, limit_val=recipe.limit_val)
    if inherit is not None and (inherit.num_classes, inherit.in_chans) != (data.num_classes, in_chans):
        raise NascompError(
            f"the supernet to inherit from has {inherit.num_classes} classes and {inherit.in_chans} input channels, "
            f"the run {data.num_classes} and {in_chans}"
        )
    supernet = build_supernet(space, data.num_classes, in_chans, resolution, recipe, seed if init_seed is None else init_seed)
    if inherit is not None:
        supernet.inherit_from(inherit)
    for name, arch in (eval_archs or {}).items():
        if supernet.misfit(arch, resolution):
            raise NascompError(f"eval arch {name!r} does not fit the supernet: {supernet.misfit(arch, resolution)}")
    archs = dict(eval_archs) if eval_archs else {"largest": space.largest(), "smallest": space.smallest()}
    cfg = recipe.train_config(seed=seed, resolution=resolution, in_chans=in_chans, find_unused_parameters=True, **run_options(overrides))
    notes = space.degenerate_windows(resolution)
    if resolution != space.resolution:
        notes.insert(0, f"training at a proxy resolution of {resolution} px; the space's budgets and costs refer to {space.resolution} px")
    if not quiet and init_distributed(device).is_main:
        for note in notes:
            console.print(f"[yellow]note:[/] {note}")
    metadata = {
        "supernet": {
            "space": space.name,
            "preset": preset if isinstance(preset, str) else "custom",
            "recipe": recipe.to_dict(),
            "resolution": resolution,
            "eval_archs": {n: a.to_dict() for n, a in archs.items()},
            "notes": notes,
        },
    }
    with removed_on_failure(out_dir):
        metrics = fit(
            supernet,
            data,
            cfg,
            out_dir,
            spec=supernet.spec(),
            step_fn=make_step(space, recipe.sampler, recipe.num_random, recipe.distill),
            eval_fn=make_eval(archs, cfg.eval_batch_size, workers=cfg.num_workers),
            resume=resume,
            quiet=quiet,
            evaluate_test=False,
            metadata=metadata,
            device=device,
            logger=logger,
        )
    return TrainResult(Path(out_dir), supernet, metrics)

"""The one training and evaluation loop every feature uses.

`fit` trains any model with a timm optimiser (AdamW by default; `nascomp.engine.optim`), linear warm-up +
cosine decay (set per step, so it is a pure function of the step and needs no state), label smoothing or
Mixup/CutMix with soft targets, gradient clipping, an optional EMA of the weights (timm's `ModelEmaV3`:
validated, saved and checkpointed in place of the raw weights), AMP on CUDA and DDP under `torchrun`.
Data comes through `nascomp.data.make_loader` (per-image RGB work in DataLoader workers) in the order of an
`EpochSampler` (each rank its own shard; repeated augmentation on request).

It writes a checkpoint after every epoch, and with ``checkpoint_every`` also inside epochs (atomically),
and `resume=True` continues from the newest one to bit-identical final weights on CPU: all randomness
(shuffling, augmentation, dropout, subnet sampling, Mixup) is re-seeded from (seed, epoch) at each epoch
start, per-image augmentation from (seed, epoch, rank, position), and a mid-epoch checkpoint stores the
generator states of the step it was written after.

Features customise one step with ``step_fn(model, images, targets, ctx) -> loss`` (distillation,
supernet sandwich sampling) and validation with ``eval_fn(model, dataset, transform) -> metrics``.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from nascomp.core.distributed import DistInfo, init_distributed
from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json, ensure_writable_dir, read_json
from nascomp.core.progress import console, progress_bar
from nascomp.core.runlog import RunLogger, make_logger
from nascomp.data import DataBundle, EpochSampler, epoch_seed, make_loader, make_mixup, resolve_workers
from nascomp.data.recipe import AUTO_FIELDS
from nascomp.engine.checkpoint import (
    CHECKPOINT_DIR,
    checkpoint_progress,
    latest_checkpoint,
    load_module_state,
    load_rng,
    optimizer_from_files,
    readable_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from nascomp.engine.config import RUN_ONLY, STALL_FRACTION, STALL_RATIO, TrainConfig, config_differences  # noqa: F401  (re-exported)
from nascomp.engine.evaluate import evaluate
from nascomp.engine.optim import make_optimizer
from nascomp.models.io import save_model

__all__ = ["TrainConfig", "StepContext", "fit", "lr_at", "seed_everything", "default_step"]


class StallCheck:
    """Says when the training loss has not moved: after `STALL_FRACTION` of the run, an epoch's mean loss still above
    `STALL_RATIO` of the lower of chance level (ln classes) and the run's first steps. A recipe too strong for the data
    looks exactly like this (issue 19: digits under DeiT's recipe stayed at ln 10 for 5 epochs)."""

    FIRST = 20  # optimiser steps whose mean loss is the run's starting point

    def __init__(self, num_classes: int, total_steps: int) -> None:
        self.chance = math.log(max(2, num_classes))
        self.total = total_steps
        self.first: list[float] = []
        self.reported = False

    def step(self, global_step: int, loss: float) -> None:
        if global_step < self.FIRST:
            self.first.append(loss)

    def check(self, done_steps: int, epoch_loss: float) -> str | None:
        if self.reported or done_steps < STALL_FRACTION * self.total:
            return None
        start = min(self.chance, sum(self.first) / len(self.first)) if self.first else self.chance
        if epoch_loss < STALL_RATIO * start:
            return None
        self.reported = True
        return (
            f"the training loss has not moved: {epoch_loss:.3f} after {done_steps / self.total:.0%} of the run (start {start:.3f}; chance "
            f"ln {math.exp(self.chance):.0f} = {self.chance:.3f}). The augmentation may be too strong for this data, or the learning "
            "rate wrong: try --no-augment, a lighter recipe (--auto-augment none, --random-erasing 0) or another --lr"
        )


def lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up from warmup_lr to lr, then cosine to min_lr, evaluated at optimiser step ``step``."""
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))
    total = max(1, cfg.epochs * steps_per_epoch)
    if step < warm:
        return cfg.warmup_lr + (cfg.lr - cfg.warmup_lr) * step / max(1, warm)
    progress = (step - warm) / max(1, total - warm)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class StepContext:
    """What a custom step sees: where it is in training and how to run forward/backward correctly."""

    epoch: int
    step: int
    global_step: int
    steps_per_epoch: int
    seed: int
    device: torch.device
    dist: DistInfo
    amp_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    scalars: dict[str, float] = field(default_factory=dict)  # a custom step's own scalars, logged with the step's loss

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def no_sync(self, model: nn.Module):
        """Accumulate gradients without DDP all-reduce (for all but the last of several backward passes)."""
        return model.no_sync() if isinstance(model, DistributedDataParallel) else contextlib.nullcontext()

    def rng(self) -> random.Random:
        """A Python RNG identical on every rank for this step (e.g. for sampling subnets)."""
        return random.Random(epoch_seed(self.seed, self.epoch) * 100_003 + self.step)


def default_step(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    with ctx.autocast():
        loss = ctx.criterion(model(images), targets)
    ctx.backward(loss)
    return loss.detach()


def fit(
    model: nn.Module,
    data: DataBundle,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    spec: dict | None = None,
    step_fn: Callable[..., torch.Tensor] = default_step,
    eval_fn: Callable[[nn.Module, Dataset, Any], dict] | None = None,
    extra_modules: dict[str, nn.Module] | None = None,
    resume: bool = False,
    quiet: bool = False,
    evaluate_test: bool = True,
    metadata: dict | None = None,
    device: str | None = None,
    logger: str | RunLogger | None = "none",
) -> dict:
    """Train ``model`` on ``data`` into ``out_dir``; returns the metrics also written to metrics.json.

    ``extra_modules`` (e.g. a distillation connector) are optimised and checkpointed with the model.
    ``spec`` (see nascomp.models) is stored so the final ``out_dir`` loads as a MODEL argument.
    ``logger``: a `nascomp.core.runlog.make_logger` spec (its files go under ``out_dir``) or a ready `RunLogger`
    (used as given, left open). Scalars are logged at the global optimiser step: ``train/loss``, ``train/lr``,
    ``train/images_per_s`` and a custom step's ``ctx.scalars`` every step; ``val/top1``, ``val/loss`` and
    ``train/epoch_loss`` at each epoch's last step. A resumed run drops what was logged from its checkpoint's step on,
    so the curves continue without a step twice. Default none: the API layer (`nascomp.train`...) picks the backends.
    """
    out = Path(out_dir)
    info = init_distributed(device)
    if info.is_main:
        ensure_writable_dir(out)
    workers = resolve_workers(cfg.num_workers, int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size)))
    sampler = EpochSampler(len(data.train), cfg.batch_size, cfg.seed, info.rank, info.world_size, cfg.repeated_aug, keyed=data.per_image)  # type: ignore[arg-type]  # map-style datasets define __len__
    if sampler.samples_per_rank < cfg.batch_size:  # fewer images than a batch: one smaller batch, on a copy of the caller's config
        batch = max(1, sampler.samples_per_rank)
        if cfg.mixing:
            if batch < 2:
                raise NascompError("Mixup/CutMix needs at least 2 training images per process")
            batch -= batch % 2
        cfg = replace(cfg, batch_size=batch)
    sampler.batch_size = cfg.batch_size
    model.to(info.device)
    modules = {"model": model, **(extra_modules or {})}
    for m in modules.values():
        m.to(info.device)
    optimizer = make_optimizer(modules, cfg.opt, cfg.lr, cfg.weight_decay)
    ema = None
    if cfg.ema_decay:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=cfg.ema_decay)
    saved = {**modules, **({"ema": ema.module} if ema is not None else {})}  # what a checkpoint holds
    amp_dtype = None
    if cfg.amp and info.device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(info.device.type, enabled=amp_dtype == torch.float16)
    mixup = make_mixup(cfg.mixup, cfg.cutmix, cfg.mixup_prob, cfg.mixup_switch_prob, cfg.label_smoothing, data.num_classes)
    if mixup is not None:
        from timm.loss import SoftTargetCrossEntropy

        criterion: nn.Module = SoftTargetCrossEntropy()  # Mixup's targets carry the label smoothing
    else:
        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    recipe, recipe_note, rgb_augment = cfg.resolved_recipe(len(data.train))  # type: ignore[arg-type]  # map-style datasets define __len__
    train_tf = data.transform(cfg.resolution, cfg.in_chans, train=rgb_augment if data.per_image else cfg.augment, recipe=recipe)
    eval_tf = data.transform(cfg.resolution, cfg.in_chans, train=False, recipe=recipe)
    eval_fn = eval_fn or (lambda m, ds, tf: evaluate(m, ds, tf, cfg.eval_batch_size, dist_info=info, workers=workers))

    steps_per_epoch = sampler.steps_per_epoch
    global_batch = cfg.batch_size * info.world_size
    schedule = replace(cfg, lr=cfg.lr * global_batch / cfg.lr_base_batch) if cfg.lr_base_batch else cfg
    start_epoch, start_step, history, resumed_rng, resumed_loss = 0, 0, [], None, 0.0
    # the recipe as used (auto fields resolved), so a run records it and resumes only with the same one
    config_doc = {**asdict(cfg), "num_workers": workers, **{f: getattr(recipe, f) for f in AUTO_FIELDS}}
    rgb_only = () if data.per_image else (*AUTO_FIELDS, "crop_pct", "interpolation")  # grey in-memory data never reads them

    found = readable_checkpoint(out) if resume else None
    ckpt = found.path if found else None
    if resume and ckpt is None and (out / "metrics.json").is_file():
        if info.is_main and not quiet:
            console.print(f"[green]{out} already holds a finished run; nothing to resume")
        return read_json(out / "metrics.json")
    if found is not None:
        assert ckpt is not None  # ckpt is found.path
        state = found.state
        if found.rejected and info.is_main:
            console.print(f"[yellow]warning:[/] damaged checkpoint(s) skipped: {'; '.join(found.rejected)}; resuming from {ckpt.name}")
        diff = config_differences(state["config"], config_doc, ignore=rgb_only)
        if diff:
            raise NascompError(f"cannot resume {out}: the run was started with different settings {diff}")
        start_epoch, start_step = checkpoint_progress(ckpt)
        if start_step and len(state["rng"]) != info.world_size:
            raise NascompError(
                f"cannot resume {out} from {ckpt.name}: it was written by {len(state['rng'])} process(es), this run has "
                f"{info.world_size}; resume with the same number of processes"
            )
        load_module_state(saved, found.weights)
        optimizer_from_files(optimizer, found.optimizer, state["optimizer"])
        scaler.load_state_dict(state["scaler"]) if state.get("scaler") else None
        history = state["history"]
        if start_step:
            resumed_rng, resumed_loss = load_rng(ckpt, info.rank), state["loss_sum"]
        if info.is_main and not quiet:
            where = f"in epoch {start_epoch + 1} after step {start_step}" if start_step else f"after epoch {start_epoch}"
            console.print(f"resuming {out} {where} of {cfg.epochs}")
    elif not resume and latest_checkpoint(out) is not None and info.is_main:
        shutil.rmtree(out / CHECKPOINT_DIR)  # a fresh run must not be resumed from a stale one later

    train_module: nn.Module = model
    if info.enabled:
        train_module = DistributedDataParallel(
            model,
            device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters,
        )
    loader = make_loader(data.train, train_tf, cfg.batch_size, sampler=sampler, workers=workers, device=info.device, drop_last=True)
    evaluated = ema.module if ema is not None else model

    stall = StallCheck(data.num_classes, cfg.epochs * steps_per_epoch)
    warnings_raised: list[str] = []
    if recipe_note and data.per_image and cfg.augment and info.is_main and not quiet:
        console.print(f"[dim]{recipe_note}[/]")
    run_log = make_logger(
        logger,
        out,
        run_name=out.name,
        config=config_doc,
        rank=info.rank,
        resume=found is not None,
        resume_step=start_epoch * steps_per_epoch + start_step if found is not None else None,
    )
    checkpoint_every = cast("float | None", cfg.checkpoint_every)  # seconds: TrainConfig.__post_init__ parsed "30m" and the like
    start = last_save = time.time()
    with progress_bar(info.is_main and not quiet) as bars, contextlib.nullcontext() if isinstance(logger, RunLogger) else run_log:
        epoch_bar = bars.add_task("epochs", total=cfg.epochs, completed=start_epoch, info="")
        for epoch in range(start_epoch, cfg.epochs):
            seed_everything(epoch_seed(cfg.seed, epoch))
            first = start_step if epoch == start_epoch else 0
            sampler.set_epoch(epoch, first)
            batches = iter(loader)
            loss_sum = 0.0
            if first:  # continue the interrupted step sequence exactly
                assert resumed_rng is not None  # first > 0 only in the resumed epoch of a mid-epoch checkpoint, which set it
                set_rng_state(resumed_rng)
                loss_sum = resumed_loss
            for m in modules.values():
                m.train()
            batch_bar = bars.add_task(f"epoch {epoch + 1}", total=steps_per_epoch, completed=first, info="")
            t0 = t_step = time.time()
            for step, (images, targets) in enumerate(batches, start=first):
                global_step = epoch * steps_per_epoch + step
                lr = lr_at(global_step, steps_per_epoch, schedule)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                images, targets = images.to(info.device, non_blocking=True), targets.to(info.device, non_blocking=True)
                if mixup is not None:
                    images, targets = mixup(images, targets)
                ctx = StepContext(epoch, step, global_step, steps_per_epoch, cfg.seed, info.device, info, amp_dtype, scaler, criterion)
                optimizer.zero_grad(set_to_none=True)
                loss = step_fn(train_module, images, targets, ctx)
                if info.enabled and extra_modules:
                    _average_gradients(extra_modules.values(), info.world_size)
                if not torch.isfinite(loss):
                    raise NascompError(f"training diverged at epoch {epoch + 1} step {step} (loss {loss.item()}); lower --lr")
                if cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                if ema is not None:
                    ema.update(model, step=global_step + 1)
                value = loss.item()
                loss_sum += value
                stall.step(global_step, value)
                bars.update(batch_bar, advance=1, info=f"loss {value:.3f} lr {lr:.2e}")
                now = time.time()
                run_log.scalars(
                    {"train/loss": value, "train/lr": lr, "train/images_per_s": global_batch / max(now - t_step, 1e-9), **ctx.scalars},
                    global_step,
                )
                t_step = now
                if checkpoint_every and step + 1 < steps_per_epoch and _checkpoint_due(last_save, checkpoint_every, info):
                    states = _gather_rng(info)
                    if info.is_main:
                        save_checkpoint(
                            out,
                            epoch,
                            saved,
                            optimizer,
                            scaler,
                            config_doc,
                            history,
                            cfg.keep_checkpoints,
                            step=step + 1,
                            rng=states,
                            extra={"loss_sum": loss_sum},
                        )
                    last_save = time.time()
            bars.remove_task(batch_bar)
            val = eval_fn(evaluated, data.val, eval_tf)
            record = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / steps_per_epoch,
                "val_top1": val["top1"],
                "val_loss": val["loss"],
                "lr": lr,
                "seconds": time.time() - t0,
            }
            history.append(record)
            bars.update(epoch_bar, advance=1, info=f"val top-1 {val['top1']:.2f}%")
            run_log.scalars(
                {"val/top1": val["top1"], "val/loss": val["loss"], "train/epoch_loss": record["train_loss"]},
                (epoch + 1) * steps_per_epoch - 1,
            )  # before the next epoch's first step, which a resume restarts from
            if info.is_main and not quiet:
                eta = (time.time() - start) / (epoch + 1 - start_epoch) * (cfg.epochs - epoch - 1)  # this session's pace
                console.print(
                    f"epoch {epoch + 1}/{cfg.epochs}  loss {record['train_loss']:.4f}  val top-1 {val['top1']:.2f}%  "
                    f"({record['seconds']:.0f}s, ETA {_clock(eta)})"
                )
            stalled = stall.check((epoch + 1) * steps_per_epoch, record["train_loss"])
            if stalled:
                if cfg.strict:
                    raise NascompError(f"{stalled}; stopped (strict)")
                warnings_raised.append(stalled)
                if info.is_main and not quiet:
                    console.print(f"[yellow]warning:[/] {stalled}")
            if info.is_main:
                save_checkpoint(out, epoch, saved, optimizer, scaler, config_doc, history, cfg.keep_checkpoints)
            last_save = time.time()
    del loader  # stops persistent workers

    if ema is not None:
        model.load_state_dict(ema.module.state_dict())  # the run's result is the averaged weights
    val = eval_fn(model, data.val, eval_tf)
    metrics: dict[str, Any] = {"val": val}
    if evaluate_test:
        metrics["test"] = eval_fn(model, data.test, eval_tf)
    metrics.update(
        epochs=cfg.epochs,
        history=history,
        params=sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()),
        data=data.describe(),
        config=config_doc,
        model=spec,
        world_size=info.world_size,
        device=str(info.device),
        global_batch=global_batch,
        effective_lr=schedule.lr,
        weights="ema" if ema is not None else "trained",
        image_recipe=(recipe_note or "as given")
        if data.per_image
        else "grey in-memory data: flips and shifts (the RGB recipe does not apply)",
        warnings=warnings_raised,
        train_seconds=time.time() - start,
        optimizer_steps=cfg.epochs * steps_per_epoch,  # the run log's last training step + 1
        **(metadata or {}),
    )
    if info.is_main:
        if spec is not None:
            save_model(out, model, spec, {"metrics": {"val_top1": val["top1"], "test_top1": metrics.get("test", {}).get("top1")}})
        atomic_write_json(out / "metrics.json", metrics)
    return metrics


def _clock(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: a remaining time in log lines."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _checkpoint_due(last_save: float, every: float, info: DistInfo) -> bool:
    """Whether ``every`` seconds have passed since the last checkpoint; rank 0's clock decides for all ranks."""
    due = torch.tensor([int(time.time() - last_save >= every)], device=info.device)
    if info.enabled:
        torch.distributed.broadcast(due, 0)
    return bool(due.item())


def _gather_rng(info: DistInfo) -> list[dict]:
    """Every rank's generator states (rank 0 writes them all into a mid-epoch checkpoint)."""
    if not info.enabled:
        return [rng_state()]
    states: list = [None] * info.world_size
    torch.distributed.all_gather_object(states, rng_state())
    return states


def _average_gradients(modules, world_size: int) -> None:
    """DDP all-reduces only the model's gradients; extra modules (e.g. an SRD connector) would drift apart per rank."""
    for module in modules:
        for p in module.parameters():
            if p.requires_grad:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                torch.distributed.all_reduce(p.grad)
                p.grad.div_(world_size)

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
from rich.progress import TaskID
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
    Resumable,
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
    looks exactly like this (issue 19: digits under DeiT's recipe stayed at ln 10 for 5 epochs). Only a cross-entropy loss on
    the labels has that chance level: a distillation loss (soft targets, a student that starts as good as its teacher) barely
    moves when all is well, so its runs are not checked (``enabled=False``)."""

    FIRST = 20  # optimiser steps whose mean loss is the run's starting point

    def __init__(self, num_classes: int, total_steps: int, enabled: bool = True) -> None:
        self.chance = math.log(max(2, num_classes))
        self.total = total_steps
        self.first: list[float] = []
        self.enabled, self.reported = enabled, False

    def step(self, global_step: int, loss: float) -> None:
        if global_step < self.FIRST:
            self.first.append(loss)

    def check(self, done_steps: int, epoch_loss: float) -> str | None:
        if not self.enabled or self.reported or done_steps < STALL_FRACTION * self.total:
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
    stall_check: bool = True,
) -> dict:
    """Train ``model`` on ``data`` into ``out_dir``; returns the metrics also written to metrics.json.

    ``extra_modules`` (e.g. a distillation connector) are optimised and checkpointed with the model.
    ``spec`` (see nascomp.models) is stored so the final ``out_dir`` loads as a MODEL argument.
    ``logger``: a `nascomp.core.runlog.make_logger` spec (its files go under ``out_dir``) or a ready `RunLogger`
    (used as given, left open). Scalars are logged at the global optimiser step: ``train/loss``, ``train/lr``,
    ``train/images_per_s`` and a custom step's ``ctx.scalars`` every step; ``val/top1``, ``val/loss`` and
    ``train/epoch_loss`` at each epoch's last step. A resumed run drops what was logged from its checkpoint's step on,
    so the curves continue without a step twice. Default none: the API layer (`nascomp.train`...) picks the backends.
    ``stall_check``: warn (``cfg.strict``: stop) when the loss stays at its start (`StallCheck`); off for distillation losses.
    """
    run = _Fit(model, data, cfg, Path(out_dir), init_distributed(device), spec, step_fn, eval_fn, extra_modules, quiet, stall_check)
    finished = run.restore(resume)
    if finished is not None:
        return finished
    run.train(logger)
    return run.results(evaluate_test, metadata)


def _fitted_batch(cfg: TrainConfig, sampler: EpochSampler) -> TrainConfig:
    """``cfg``, or a copy with one smaller batch when a process has fewer images than a batch (the caller's stays as given)."""
    if sampler.samples_per_rank >= cfg.batch_size:
        return cfg
    batch = max(1, sampler.samples_per_rank)
    if cfg.mixing:
        if batch < 2:
            raise NascompError("Mixup/CutMix needs at least 2 training images per process")
        batch -= batch % 2
    return replace(cfg, batch_size=batch)


class _Fit:
    """One `fit` call: the state its steps share, built in the order that keeps a run's randomness reproducible."""

    started: float  # time.time() when this session's first epoch began
    last_save: float  # time.time() of the last checkpoint, for ``checkpoint_every``

    def __init__(
        self,
        model: nn.Module,
        data: DataBundle,
        cfg: TrainConfig,
        out: Path,
        info: DistInfo,
        spec: dict | None,
        step_fn: Callable[..., torch.Tensor],
        eval_fn: Callable[[nn.Module, Dataset, Any], dict] | None,
        extra_modules: dict[str, nn.Module] | None,
        quiet: bool,
        stall_check: bool = True,
    ) -> None:
        self.model, self.data, self.out, self.info = model, data, out, info
        self.spec, self.step_fn, self.extra_modules, self.quiet = spec, step_fn, extra_modules, quiet
        if info.is_main:
            ensure_writable_dir(out)
        self.workers = resolve_workers(cfg.num_workers, int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size)))
        n_train = len(data.train)  # type: ignore[arg-type]  # map-style datasets define __len__
        self.sampler = EpochSampler(n_train, cfg.batch_size, cfg.seed, info.rank, info.world_size, cfg.repeated_aug, keyed=data.per_image)
        self.cfg = cfg = _fitted_batch(cfg, self.sampler)
        self.sampler.batch_size = cfg.batch_size
        self._build_optimisation()
        self._build_recipe(eval_fn)
        # where training starts: at the beginning, unless restore() resumes a checkpoint
        self.start_epoch, self.start_step, self.resumed_loss, self.resumed = 0, 0, 0.0, False
        self.history: list[dict] = []
        self.resumed_rng: dict | None = None
        self.stall = StallCheck(data.num_classes, cfg.epochs * self.steps_per_epoch, enabled=stall_check)
        self.warnings: list[str] = []
        self.checkpoint_every = cast("float | None", cfg.checkpoint_every)  # seconds: TrainConfig.__post_init__ parsed "30m" and the like

    def _build_optimisation(self) -> None:
        """The modules on the device and what trains them: optimiser, EMA, AMP scaler, Mixup and the loss."""
        model, cfg, info = self.model, self.cfg, self.info
        model.to(info.device)
        self.modules = {"model": model, **(self.extra_modules or {})}
        for m in self.modules.values():
            m.to(info.device)
        self.optimizer = make_optimizer(self.modules, cfg.opt, cfg.lr, cfg.weight_decay)
        self.ema = None
        if cfg.ema_decay:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(model, decay=cfg.ema_decay)
        self.saved = {**self.modules, **({"ema": self.ema.module} if self.ema is not None else {})}  # what a checkpoint holds
        self.evaluated = self.ema.module if self.ema is not None else model
        self.amp_dtype = None
        if cfg.amp and info.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler(info.device.type, enabled=self.amp_dtype == torch.float16)
        self.mixup = make_mixup(cfg.mixup, cfg.cutmix, cfg.mixup_prob, cfg.mixup_switch_prob, cfg.label_smoothing, self.data.num_classes)
        if self.mixup is not None:
            from timm.loss import SoftTargetCrossEntropy

            self.criterion: nn.Module = SoftTargetCrossEntropy()  # Mixup's targets carry the label smoothing
        else:
            self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def _build_recipe(self, eval_fn: Callable[[nn.Module, Dataset, Any], dict] | None) -> None:
        """The image recipe, validation and schedule as used, and the config a run records and resumes only with."""
        data, cfg, info, workers = self.data, self.cfg, self.info, self.workers
        recipe, self.recipe_note, rgb_augment = cfg.resolved_recipe(len(data.train))  # type: ignore[arg-type]  # map-style datasets define __len__
        self.train_tf = data.transform(cfg.resolution, cfg.in_chans, train=rgb_augment if data.per_image else cfg.augment, recipe=recipe)
        self.eval_tf = data.transform(cfg.resolution, cfg.in_chans, train=False, recipe=recipe)
        self.eval_fn = eval_fn or (lambda m, ds, tf: evaluate(m, ds, tf, cfg.eval_batch_size, dist_info=info, workers=workers))
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.global_batch = cfg.batch_size * info.world_size
        self.schedule = replace(cfg, lr=cfg.lr * self.global_batch / cfg.lr_base_batch) if cfg.lr_base_batch else cfg
        # the recipe as used (auto fields resolved), so a run records it and resumes only with the same one
        self.config_doc = {**asdict(cfg), "num_workers": workers, **{f: getattr(recipe, f) for f in AUTO_FIELDS}}
        self.rgb_only = () if data.per_image else (*AUTO_FIELDS, "crop_pct", "interpolation")  # grey in-memory data never reads them

    def restore(self, resume: bool) -> dict | None:
        """With ``resume``, continue from the newest readable checkpoint, or return the metrics of a run that finished;
        without, clear old checkpoints so a later resume cannot pick them up."""
        out, info = self.out, self.info
        found = readable_checkpoint(out) if resume else None
        if resume and found is None and (out / "metrics.json").is_file():
            if info.is_main and not self.quiet:
                console.print(f"[green]{out} already holds a finished run; nothing to resume")
            return read_json(out / "metrics.json")
        if found is not None:
            self._load(found)
        elif not resume and latest_checkpoint(out) is not None and info.is_main:
            shutil.rmtree(out / CHECKPOINT_DIR)  # a fresh run must not be resumed from a stale one later
        return None

    def _load(self, found: Resumable) -> None:
        """Take weights, optimiser, scaler, history and progress from ``found``, refusing one the run cannot continue."""
        out, info, ckpt, state = self.out, self.info, found.path, found.state
        if found.rejected and info.is_main:
            console.print(f"[yellow]warning:[/] damaged checkpoint(s) skipped: {'; '.join(found.rejected)}; resuming from {ckpt.name}")
        diff = config_differences(state["config"], self.config_doc, ignore=self.rgb_only)
        if diff:
            raise NascompError(f"cannot resume {out}: the run was started with different settings {diff}")
        self.start_epoch, self.start_step = checkpoint_progress(ckpt)
        if self.start_step and len(state["rng"]) != info.world_size:
            raise NascompError(
                f"cannot resume {out} from {ckpt.name}: it was written by {len(state['rng'])} process(es), this run has "
                f"{info.world_size}; resume with the same number of processes"
            )
        load_module_state(self.saved, found.weights)
        optimizer_from_files(self.optimizer, found.optimizer, state["optimizer"])
        self.scaler.load_state_dict(state["scaler"]) if state.get("scaler") else None
        self.history = state["history"]
        if self.start_step:
            self.resumed_rng, self.resumed_loss = load_rng(ckpt, info.rank), state["loss_sum"]
        self.resumed = True
        if info.is_main and not self.quiet:
            where = (
                f"in epoch {self.start_epoch + 1} after step {self.start_step}" if self.start_step else f"after epoch {self.start_epoch}"
            )
            console.print(f"resuming {out} {where} of {self.cfg.epochs}")

    def train(self, logger: str | RunLogger | None) -> None:
        """Every epoch from where the run stands; the loader lives only here, so its persistent workers stop with it."""
        model, cfg, info, data = self.model, self.cfg, self.info, self.data
        train_module: nn.Module = model
        if info.enabled:
            train_module = DistributedDataParallel(
                model,
                device_ids=[info.device.index] if info.device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters,
            )
        loader = make_loader(
            data.train, self.train_tf, cfg.batch_size, sampler=self.sampler, workers=self.workers, device=info.device, drop_last=True
        )
        if self.recipe_note and data.per_image and cfg.augment and info.is_main and not self.quiet:
            console.print(f"[dim]{self.recipe_note}[/]")
        run_log = make_logger(
            logger,
            self.out,
            run_name=self.out.name,
            config=self.config_doc,
            rank=info.rank,
            resume=self.resumed,
            resume_step=self.start_epoch * self.steps_per_epoch + self.start_step if self.resumed else None,
        )
        self.started = self.last_save = time.time()
        with progress_bar(info.is_main and not self.quiet) as bars, contextlib.nullcontext() if isinstance(logger, RunLogger) else run_log:
            epoch_bar = bars.add_task("epochs", total=cfg.epochs, completed=self.start_epoch, info="")
            for epoch in range(self.start_epoch, cfg.epochs):
                loss_sum, lr, t0 = self._train_epoch(epoch, train_module, loader, run_log, bars)
                self._end_epoch(epoch, loss_sum, lr, t0, run_log, bars, epoch_bar)

    def _train_epoch(self, epoch: int, train_module: nn.Module, loader: Any, run_log: RunLogger, bars) -> tuple[float, float, float]:
        """The epoch's optimiser steps, re-seeded from (seed, epoch) so a resumed run draws the same numbers; returns
        the loss sum, the last step's learning rate and when the epoch began."""
        steps_per_epoch = self.steps_per_epoch
        seed_everything(epoch_seed(self.cfg.seed, epoch))
        first = self.start_step if epoch == self.start_epoch else 0
        self.sampler.set_epoch(epoch, first)
        batches = iter(loader)
        loss_sum = 0.0
        if first:  # continue the interrupted step sequence exactly
            assert self.resumed_rng is not None  # first > 0 only in the resumed epoch of a mid-epoch checkpoint, which set it
            set_rng_state(self.resumed_rng)
            loss_sum = self.resumed_loss
        for m in self.modules.values():
            m.train()
        batch_bar = bars.add_task(f"epoch {epoch + 1}", total=steps_per_epoch, completed=first, info="")
        t0 = t_step = time.time()
        for step, (images, targets) in enumerate(batches, start=first):
            global_step = epoch * steps_per_epoch + step
            lr = lr_at(global_step, steps_per_epoch, self.schedule)
            value, scalars = self._step(train_module, epoch, step, global_step, lr, images, targets)
            loss_sum += value
            self.stall.step(global_step, value)
            bars.update(batch_bar, advance=1, info=f"loss {value:.3f} lr {lr:.2e}")
            now = time.time()
            run_log.scalars(
                {"train/loss": value, "train/lr": lr, "train/images_per_s": self.global_batch / max(now - t_step, 1e-9), **scalars},
                global_step,
            )
            t_step = now
            if self.checkpoint_every and step + 1 < steps_per_epoch and _checkpoint_due(self.last_save, self.checkpoint_every, self.info):
                self._save_mid_epoch(epoch, step + 1, loss_sum)
        bars.remove_task(batch_bar)
        return loss_sum, lr, t0

    def _step(
        self, train_module: nn.Module, epoch: int, step: int, global_step: int, lr: float, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[float, dict[str, float]]:
        """One optimiser step at ``lr``; returns its loss and the custom step's own scalars."""
        cfg, info, optimizer, scaler = self.cfg, self.info, self.optimizer, self.scaler
        for g in optimizer.param_groups:
            g["lr"] = lr
        images, targets = images.to(info.device, non_blocking=True), targets.to(info.device, non_blocking=True)
        if self.mixup is not None:
            images, targets = self.mixup(images, targets)
        ctx = StepContext(
            epoch, step, global_step, self.steps_per_epoch, cfg.seed, info.device, info, self.amp_dtype, scaler, self.criterion
        )
        optimizer.zero_grad(set_to_none=True)
        loss = self.step_fn(train_module, images, targets, ctx)
        if info.enabled and self.extra_modules:
            _average_gradients(self.extra_modules.values(), info.world_size)
        if not torch.isfinite(loss):
            raise NascompError(f"training diverged at epoch {epoch + 1} step {step} (loss {loss.item()}); lower --lr")
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if self.ema is not None:
            self.ema.update(self.model, step=global_step + 1)
        return loss.item(), ctx.scalars

    def _save_mid_epoch(self, epoch: int, steps_done: int, loss_sum: float) -> None:
        """A checkpoint after ``steps_done`` steps of ``epoch``, with every rank's generator states to resume from."""
        states = _gather_rng(self.info)
        if self.info.is_main:
            save_checkpoint(
                self.out,
                epoch,
                self.saved,
                self.optimizer,
                self.scaler,
                self.config_doc,
                self.history,
                self.cfg.keep_checkpoints,
                step=steps_done,
                rng=states,
                extra={"loss_sum": loss_sum},
            )
        self.last_save = time.time()

    def _end_epoch(self, epoch: int, loss_sum: float, lr: float, t0: float, run_log: RunLogger, bars, epoch_bar: TaskID) -> None:
        """Validate, record and report the epoch, warn (or stop, strict) on a stalled loss, then checkpoint it."""
        cfg, info, steps_per_epoch = self.cfg, self.info, self.steps_per_epoch
        val = self.eval_fn(self.evaluated, self.data.val, self.eval_tf)
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / steps_per_epoch,
            "val_top1": val["top1"],
            "val_loss": val["loss"],
            "lr": lr,
            "seconds": time.time() - t0,
        }
        self.history.append(record)
        bars.update(epoch_bar, advance=1, info=f"val top-1 {val['top1']:.2f}%")
        run_log.scalars(
            {"val/top1": val["top1"], "val/loss": val["loss"], "train/epoch_loss": record["train_loss"]},
            (epoch + 1) * steps_per_epoch - 1,
        )  # before the next epoch's first step, which a resume restarts from
        if info.is_main and not self.quiet:
            eta = (time.time() - self.started) / (epoch + 1 - self.start_epoch) * (cfg.epochs - epoch - 1)  # this session's pace
            console.print(
                f"epoch {epoch + 1}/{cfg.epochs}  loss {record['train_loss']:.4f}  val top-1 {val['top1']:.2f}%  "
                f"({record['seconds']:.0f}s, ETA {_clock(eta)})"
            )
        stalled = self.stall.check((epoch + 1) * steps_per_epoch, record["train_loss"])
        if stalled:
            if cfg.strict:
                raise NascompError(f"{stalled}; stopped (strict)")
            self.warnings.append(stalled)
            if info.is_main and not self.quiet:
                console.print(f"[yellow]warning:[/] {stalled}")
        if info.is_main:
            save_checkpoint(self.out, epoch, self.saved, self.optimizer, self.scaler, self.config_doc, self.history, cfg.keep_checkpoints)
        self.last_save = time.time()

    def results(self, evaluate_test: bool, metadata: dict | None) -> dict:
        """Evaluate the run's final weights and write them (with a spec, as a loadable model) and metrics.json."""
        model, data, cfg, info, ema = self.model, self.data, self.cfg, self.info, self.ema
        if ema is not None:
            model.load_state_dict(ema.module.state_dict())  # the run's result is the averaged weights
        val = self.eval_fn(model, data.val, self.eval_tf)
        metrics: dict[str, Any] = {"val": val}
        if evaluate_test:
            metrics["test"] = self.eval_fn(model, data.test, self.eval_tf)
        metrics.update(
            epochs=cfg.epochs,
            history=self.history,
            params=sum(p.numel() for p in {id(p): p for p in model.parameters()}.values()),
            data=data.describe(),
            config=self.config_doc,
            model=self.spec,
            world_size=info.world_size,
            device=str(info.device),
            global_batch=self.global_batch,
            effective_lr=self.schedule.lr,
            weights="ema" if ema is not None else "trained",
            image_recipe=(self.recipe_note or "as given")
            if data.per_image
            else "grey in-memory data: flips and shifts (the RGB recipe does not apply)",
            warnings=self.warnings,
            train_seconds=time.time() - self.started,
            optimizer_steps=cfg.epochs * self.steps_per_epoch,  # the run log's last training step + 1
            **(metadata or {}),
        )
        if info.is_main:
            if self.spec is not None:
                save_model(
                    self.out, model, self.spec, {"metrics": {"val_top1": val["top1"], "test_top1": metrics.get("test", {}).get("top1")}}
                )
            atomic_write_json(self.out / "metrics.json", metrics)
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

"""The one training and evaluation loop every feature uses.

`fit` trains any model with AdamW, linear warm-up + cosine decay (set per step, so it is a pure function
of the step and needs no state), label smoothing, gradient clipping, AMP on CUDA and DDP under
`torchrun`. It writes a checkpoint after every epoch (atomically) and `resume=True` continues from the
newest one to bit-identical final weights on CPU: all randomness (shuffling, augmentation, dropout,
subnet sampling) is re-seeded from (seed, epoch) at each epoch start, so no RNG state has to be saved.

Features customise one step with ``step_fn(model, images, targets, ctx) -> loss`` (distillation,
supernet sandwich sampling) and validation with ``eval_fn(model, dataset, transform) -> metrics``.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from nascomp.core.distributed import DistInfo, init_distributed
from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json, ensure_writable_dir, load_tensors, read_json
from nascomp.core.progress import console, progress_bar
from nascomp.core.validate import fraction, non_negative, positive
from nascomp.data import BatchTransform, DataBundle
from nascomp.engine.checkpoint import (
    CHECKPOINT_DIR, latest_checkpoint, load_module_state, optimizer_from_files, save_checkpoint,
)
from nascomp.engine.evaluate import evaluate
from nascomp.models.io import save_model

__all__ = ["TrainConfig", "StepContext", "fit", "lr_at", "seed_everything", "default_step"]


@dataclass
class TrainConfig:
    """A training recipe (AdamW, warm-up + cosine, label smoothing); every value is checked when it is made."""

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
    num_workers: int = 0
    eval_batch_size: int = 256
    augment: bool = True
    find_unused_parameters: bool = False  # DDP: set when steps use a subset of the parameters (supernets)
    keep_checkpoints: int = 2

    def __post_init__(self):
        for name in ("epochs", "batch_size", "resolution", "in_chans", "eval_batch_size", "keep_checkpoints"):
            positive(f"--{name.replace('_', '-')}", getattr(self, name))
        positive("--lr", self.lr, integer=False)
        for name in ("min_lr", "warmup_lr", "warmup_epochs", "weight_decay"):
            non_negative(f"--{name.replace('_', '-')}", getattr(self, name), integer=False)
        non_negative("--workers", self.num_workers)
        non_negative("--grad-clip", self.grad_clip, integer=False)
        if self.grad_clip == 0:
            self.grad_clip = None  # 0 disables clipping
        fraction("--label-smoothing", self.label_smoothing, low_open=False)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


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


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % 2**31


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
        return random.Random(_epoch_seed(self.seed, self.epoch) * 100_003 + self.step)


def default_step(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    with ctx.autocast():
        loss = ctx.criterion(model(images), targets)
    ctx.backward(loss)
    return loss.detach()


def _param_groups(modules: dict[str, nn.Module], weight_decay: float) -> list[dict]:
    """No weight decay on 1-D parameters (norms, biases) and names a model lists in no_weight_decay()."""
    decay, no_decay, seen = [], [], set()
    for module in modules.values():
        skip = set(module.no_weight_decay()) if hasattr(module, "no_weight_decay") else set()
        for name, p in module.named_parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if p.ndim <= 1 or name in skip or "relative_position_bias_table" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def fit(
    model: nn.Module,
    data: DataBundle,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    spec: dict | None = None,
    step_fn: Callable[..., torch.Tensor] = default_step,
    eval_fn: Callable[[nn.Module, Dataset, BatchTransform], dict] | None = None,
    extra_modules: dict[str, nn.Module] | None = None,
    resume: bool = False,
    quiet: bool = False,
    evaluate_test: bool = True,
    metadata: dict | None = None,
    device: str | None = None,
) -> dict:
    """Train ``model`` on ``data`` into ``out_dir``; returns the metrics also written to metrics.json.

    ``extra_modules`` (e.g. a distillation connector) are optimised and checkpointed with the model.
    ``spec`` (see nascomp.models) is stored so the final ``out_dir`` loads as a MODEL argument.
    """
    out = Path(out_dir)
    info = init_distributed(device)
    if info.is_main:
        ensure_writable_dir(out)
    if len(data.train) < cfg.batch_size * info.world_size:
        cfg.batch_size = max(1, len(data.train) // info.world_size)
    model.to(info.device)
    modules = {"model": model, **(extra_modules or {})}
    for m in modules.values():
        m.to(info.device)
    optimizer = torch.optim.AdamW(_param_groups(modules, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
    amp_dtype = None
    if cfg.amp and info.device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler(info.device.type, enabled=amp_dtype == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    train_tf = data.transform(cfg.resolution, cfg.in_chans, train=cfg.augment)
    eval_tf = data.transform(cfg.resolution, cfg.in_chans, train=False)
    eval_fn = eval_fn or (lambda m, ds, tf: evaluate(m, ds, tf, cfg.eval_batch_size, dist_info=info))

    samples_per_rank = len(data.train) // info.world_size
    steps_per_epoch = max(1, samples_per_rank // cfg.batch_size)
    start_epoch, history = 0, []
    config_doc = asdict(cfg)

    ckpt = latest_checkpoint(out) if resume else None
    if resume and ckpt is None and (out / "metrics.json").is_file():
        if info.is_main and not quiet:
            console.print(f"[green]{out} already holds a finished run; nothing to resume")
        return read_json(out / "metrics.json")
    if ckpt is not None:
        state = read_json(ckpt / "state.json")
        if state["config"] != config_doc:
            diff = {k: (state["config"].get(k), v) for k, v in config_doc.items() if state["config"].get(k) != v}
            raise NascompError(f"cannot resume {out}: the run was started with different settings {diff}")
        load_module_state(modules, load_tensors(ckpt / "weights.safetensors"))
        optimizer_from_files(optimizer, load_tensors(ckpt / "optimizer.safetensors"), state["optimizer"])
        scaler.load_state_dict(state["scaler"]) if state.get("scaler") else None
        start_epoch, history = state["epoch"] + 1, state["history"]
        if info.is_main and not quiet:
            console.print(f"resuming {out} after epoch {start_epoch} of {cfg.epochs}")
    elif not resume and latest_checkpoint(out) is not None and info.is_main:
        shutil.rmtree(out / CHECKPOINT_DIR)  # a fresh run must not be resumed from a stale one later

    train_module: nn.Module = model
    if info.enabled:
        train_module = DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters,
        )

    start = time.time()
    with progress_bar(info.is_main and not quiet) as bars:
        epoch_bar = bars.add_task("epochs", total=cfg.epochs, completed=start_epoch, info="")
        for epoch in range(start_epoch, cfg.epochs):
            seed_everything(_epoch_seed(cfg.seed, epoch))
            order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch)))
            shard = order[info.rank :: info.world_size][:samples_per_rank].tolist()
            loader = DataLoader(
                torch.utils.data.Subset(data.train, shard), batch_size=cfg.batch_size, shuffle=False, drop_last=True,
                collate_fn=train_tf, num_workers=cfg.num_workers, persistent_workers=False,
            )
            for m in modules.values():
                m.train()
            batch_bar = bars.add_task(f"epoch {epoch + 1}", total=steps_per_epoch, info="")
            t0, loss_sum = time.time(), 0.0
            for step, (images, targets) in enumerate(loader):
                global_step = epoch * steps_per_epoch + step
                lr = lr_at(global_step, steps_per_epoch, cfg)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                images, targets = images.to(info.device, non_blocking=True), targets.to(info.device, non_blocking=True)
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
                loss_sum += loss.item()
                bars.update(batch_bar, advance=1, info=f"loss {loss.item():.3f} lr {lr:.2e}")
            bars.remove_task(batch_bar)
            val = eval_fn(model, data.val, eval_tf)
            record = {"epoch": epoch + 1, "train_loss": loss_sum / steps_per_epoch, "val_top1": val["top1"], "val_loss": val["loss"], "lr": lr, "seconds": time.time() - t0}
            history.append(record)
            bars.update(epoch_bar, advance=1, info=f"val top-1 {val['top1']:.2f}%")
            if info.is_main and not quiet:
                console.print(f"epoch {epoch + 1}/{cfg.epochs}  loss {record['train_loss']:.4f}  val top-1 {val['top1']:.2f}%  ({record['seconds']:.0f}s)")
            if info.is_main:
                save_checkpoint(out, epoch, modules, optimizer, scaler, config_doc, history, cfg.keep_checkpoints)

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
        train_seconds=time.time() - start,
        **(metadata or {}),
    )
    if info.is_main:
        if spec is not None:
            save_model(out, model, spec, {"metrics": {"val_top1": val["top1"], "test_top1": metrics.get("test", {}).get("top1")}})
        atomic_write_json(out / "metrics.json", metrics)
    return metrics


def _average_gradients(modules, world_size: int) -> None:
    """DDP all-reduces only the model's gradients; extra modules (e.g. an SRD connector) would drift apart per rank."""
    for module in modules:
        for p in module.parameters():
            if p.requires_grad:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                torch.distributed.all_reduce(p.grad)
                p.grad.div_(world_size)



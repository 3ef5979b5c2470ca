"""The page of a training run (``nascomp train``, ``metrics.json`` of `nascomp.engine.fit`): its accuracy with
image-sampling intervals, the recipe, and its curves."""

from __future__ import annotations

import json
from typing import TypeGuard

from nascomp.report import fmt
from nascomp.report.files import RunFiles
from nascomp.report.html import Column, Html, Section, cards, code, key_values, table
from nascomp.report.sections import Content, tensorboard_curves, training_curves

__all__ = ["build", "is_train_run"]

_RECIPE = (
    "epochs",
    "batch_size",
    "lr",
    "min_lr",
    "warmup_epochs",
    "weight_decay",
    "label_smoothing",
    "opt",
    "mixup",
    "cutmix",
    "ema_decay",
    "resolution",
    "in_chans",
    "seed",
)

_EPOCH_COLUMNS = [
    Column("epoch", "epoch", numeric=True),
    Column("train_loss", "training loss", lambda v: f"{v:.4f}", numeric=True),
    Column("val_top1", "val top-1", fmt.pct, numeric=True),
    Column("val_loss", "val loss", lambda v: f"{v:.4f}", numeric=True),
    Column("lr", "last lr", lambda v: f"{v:.3g}", numeric=True),
    Column("seconds", "time", fmt.duration, numeric=True),
]


def is_train_run(metrics: dict | None) -> TypeGuard[dict]:
    return metrics is not None and "history" in metrics


def _split(split: dict | None) -> tuple[str, str]:
    if not split:
        return "–", "not evaluated"
    n = split.get("n")
    return fmt.pct(split.get("top1")), (f"{n} images, {fmt.ci(*fmt.wilson(split['top1'], n), sign=False)}" if n else "")


def build(files: RunFiles, metrics: dict) -> Content:
    spec = metrics.get("model") or {}
    name = (spec.get("kwargs") or {}).get("name") or spec.get("builder") or files.root.name
    content = Content(f"Training: {name}", str(files.root))
    items = [
        ("validation top-1", *_split(metrics.get("val"))),
        ("test top-1", *_split(metrics.get("test"))),
        ("parameters", fmt.count(metrics.get("params")), f"weights: {metrics.get('weights', '?')}"),
        ("training time", fmt.duration(metrics.get("train_seconds")), f"{metrics.get('epochs')} epoch(s)"),
    ]
    content.sections.append(Section("result", "Result", cards(items)))
    data, cfg = metrics.get("data") or {}, metrics.get("config") or {}
    facts = [
        ("data", fmt.data(data)),
        ("device", f"{metrics.get('device')} × {metrics.get('world_size')} process(es), global batch {metrics.get('global_batch')}"),
        ("effective lr", metrics.get("effective_lr")),
        *[(k.replace("_", " "), cfg.get(k)) for k in _RECIPE],
    ]
    body: str = key_values(facts)
    if spec:
        body += Html("<h3>model</h3>") + code(json.dumps(spec, indent=2))
    content.sections.append(Section("run", "What was run", Html(body)))
    files.lack("command line, versions and machine", "train records none yet")
    curves = training_curves([("run", metrics.get("history"))])
    board = tensorboard_curves(files.root, content.warnings)
    if curves or board:
        content.sections.append(Section("training", "Training", Html((curves or "") + (board or ""))))
    if metrics.get("history"):
        content.sections.append(Section("epochs", "Per epoch", table(_EPOCH_COLUMNS, metrics["history"], name="epochs")))
    return content

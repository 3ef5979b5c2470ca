"""`distill`: train a student under a frozen teacher with one of the registered distillation methods."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from nascomp.core.errors import NascompError
from nascomp.core.validate import output_dir, removed_on_failure
from nascomp.data import DataBundle
from nascomp.distillation.base import build_distiller, distillation_step
from nascomp.engine.api import TrainResult, prepare
from nascomp.engine.train import TrainConfig, fit
from nascomp.models.resolve import as_model
from nascomp.spaces.arch import Arch

__all__ = ["distill", "check_teacher"]


def check_teacher(teacher: nn.Module, num_classes: int, in_chans: int, resolution: int, name: str = "teacher") -> nn.Module:
    """The teacher must predict the student's classes from the student's inputs."""
    if getattr(teacher, "num_classes", num_classes) != num_classes:
        raise NascompError(f"{name} predicts {teacher.num_classes} classes but the data has {num_classes}")
    try:
        with torch.no_grad():
            teacher.eval()(torch.zeros(1, in_chans, resolution, resolution))
    except (RuntimeError, AssertionError, ValueError) as e:
        raise NascompError(f"{name} cannot take the student's {in_chans}x{resolution}x{resolution} inputs ({str(e).splitlines()[0][:160]}); "
                           "train the teacher at the same input size") from None
    return teacher


def distill(student: nn.Module | str | os.PathLike | Arch, teacher: nn.Module | str | os.PathLike, data: DataBundle | str = "fashion-mnist",
            out: str | os.PathLike | None = None, *, method: str = "kd", options: Mapping | None = None,
            model_kwargs: Mapping | None = None, data_options: Mapping | None = None, checkpoint: str | os.PathLike | None = None,
            pretrained: bool = False, recipe: TrainConfig | Mapping | None = None, teacher_checkpoint: str | None = None, resume: bool = False,
            quiet: bool = False, device: str | None = None, **overrides: Any) -> TrainResult:
    """Train ``student`` on ``data`` with distillation from the frozen ``teacher``.

    Args:
        student: the model to train (a module, a timm name, an arch, or a saved directory).
        teacher: a trained model (a module, or a saved directory / timm name with ``teacher_checkpoint``).
        data: a `DataBundle` or a dataset name. out: the run directory.
        method: a name in `nascomp.distillation.DISTILLERS`: ``kd`` (logits), ``minivit`` (logits + Q/K/V and
            hidden-state relations), ``srd`` (student features through the teacher's classifier), ``none``.
        options: the method's settings (``alpha``, ``temperature``, ``qkv_weight``, ``layer_pairs``, ``srd_weight``...).
        teacher_checkpoint: weights for a teacher given by timm name.
        model_kwargs, data_options, checkpoint, pretrained, recipe, overrides, resume, quiet, device: as for `nascomp.train`.

    Returns:
        `TrainResult`; metrics.json records the method and its settings.
    """
    if out is None:
        raise NascompError("distill needs out=DIR (--out): where the checkpoints and the trained student go")
    out = output_dir(out)
    module, spec, bundle, cfg = prepare(student, data, model_kwargs=model_kwargs, data_options=data_options, checkpoint=checkpoint,
                                        pretrained=pretrained, recipe=recipe, **overrides)
    teacher_model, _ = as_model(teacher, checkpoint=teacher_checkpoint)
    check_teacher(teacher_model, bundle.num_classes, cfg.in_chans, cfg.resolution)
    distiller = build_distiller(method, module, teacher_model, **dict(options or {}))
    try:
        with removed_on_failure(out):
            metrics = fit(module, bundle, cfg, out, spec=spec, step_fn=distillation_step(distiller), extra_modules={"distiller": distiller},
                          resume=resume, quiet=quiet, device=device,
                          metadata={"distill": {"teacher": str(teacher) if not isinstance(teacher, nn.Module) else "module", **distiller.describe()}})
    finally:
        distiller.close()
    return TrainResult(Path(out), module, metrics)

"""`distill`: train a student under a frozen teacher with one of the registered distillation methods."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nascomp.core.checks import is_module, main_process, require_device
from nascomp.core.errors import NascompError
from nascomp.core.outputs import output_lock
from nascomp.core.runlog import RunLogger, check_logger
from nascomp.core.validate import removed_on_failure
from nascomp.distillation.configs import DistillationConfig, distill_method
from nascomp.distillation.registry import DISTILLERS
from nascomp.engine.api import TrainResult, check_inputs, check_recipe, claim_run, prepare
from nascomp.engine.config import TrainConfig
from nascomp.models.names import check_model_ref

if TYPE_CHECKING:
    from torch import nn

    from nascomp.data import DataBundle
    from nascomp.spaces.arch import Arch

__all__ = ["distill", "check_teacher"]


def check_teacher(teacher: nn.Module, num_classes: int, in_chans: int, resolution: int, name: str = "teacher") -> nn.Module:
    """The teacher must predict the student's classes from the student's inputs."""
    import torch

    if getattr(teacher, "num_classes", num_classes) != num_classes:
        raise NascompError(f"{name} predicts {teacher.num_classes} classes but the data has {num_classes}")
    try:
        with torch.no_grad():
            teacher.eval()(torch.zeros(1, in_chans, resolution, resolution))
    except (RuntimeError, AssertionError, ValueError) as e:
        raise NascompError(
            f"{name} cannot take the student's {in_chans}x{resolution}x{resolution} inputs ({str(e).splitlines()[0][:160]}); "
            "train the teacher at the same input size"
        ) from None
    return teacher


def distill(
    student: nn.Module | str | os.PathLike | Arch,
    teacher: nn.Module | str | os.PathLike,
    data: DataBundle | str = "fashion-mnist",
    out: str | os.PathLike | None = None,
    *,
    method: str | DistillationConfig = "kd",
    options: Mapping | None = None,
    model_kwargs: Mapping | None = None,
    data_options: Mapping | None = None,
    checkpoint: str | os.PathLike | None = None,
    pretrained: bool = False,
    recipe: TrainConfig | Mapping | None = None,
    teacher_checkpoint: str | None = None,
    resume: bool = False,
    quiet: bool = False,
    device: str | None = None,
    overwrite: bool = False,
    logger: str | RunLogger | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train ``student`` on ``data`` with distillation from the frozen ``teacher``.

    Args:
        student: the model to train (a module, a timm name, an arch, or a saved directory).
        teacher: a trained model (a module, or a saved directory / timm name with ``teacher_checkpoint``).
        data: a `DataBundle` or a dataset name. out: the run directory.
        method: a config (`KDConfig`, `WeightDistillationConfig`, `SRDConfig`, `NoDistillationConfig`;
            `nascomp.distillation.configs`), or a name in `nascomp.distillation.DISTILLERS` with ``options``: ``kd`` (logits),
            ``minivit`` (logits + Q/K/V and hidden-state relations), ``srd`` (student features through the teacher's
            classifier), ``none``.
        options: with a method name, its settings (``alpha``, ``temperature``, ``qkv_weight``, ``layer_pairs``, ``srd_weight``...).
        teacher_checkpoint: weights for a teacher given by timm name.
        model_kwargs: as for `nascomp.train`.
        data_options: as for `nascomp.train`.
        checkpoint: as for `nascomp.train`.
        pretrained: as for `nascomp.train`.
        recipe: as for `nascomp.train`.
        resume: as for `nascomp.train`.
        quiet: as for `nascomp.train`.
        device: as for `nascomp.train`.
        overwrite: as for `nascomp.train`.
        logger: as for `nascomp.train`.
        **overrides: recipe fields, as for `nascomp.train`.

    Returns:
        `TrainResult`; metrics.json records the method and its settings.
    """
    method, options = distill_method(method, options)
    if out is None:
        raise NascompError("distill needs out=DIR (--out): where the checkpoints and the trained student go")
    DISTILLERS.get(method)  # an unknown method fails here, with the choices
    check_logger(logger)
    check_inputs(student, data, data_options, checkpoint=checkpoint, device=device)
    check_model_ref(teacher, "--teacher")
    check_inputs(checkpoint=teacher_checkpoint, checkpoint_name="--teacher-checkpoint")
    check_recipe(recipe, **overrides)
    claim = claim_run(
        out,
        resume=resume,
        overwrite=overwrite,
        inputs=[student, teacher, checkpoint, teacher_checkpoint],
        data=data,
        data_options=data_options,
    )
    assert claim is not None  # claim_run returns None only for out=None, refused above
    from nascomp.distillation.base import build_distiller, distillation_step
    from nascomp.engine.train import fit
    from nascomp.models.resolve import as_model

    require_device(device)
    module, spec, bundle, cfg = prepare(
        student,
        data,
        model_kwargs=model_kwargs,
        data_options=data_options,
        checkpoint=checkpoint,
        pretrained=pretrained,
        recipe=recipe,
        **overrides,
    )
    teacher_model, _ = as_model(teacher, checkpoint=teacher_checkpoint)
    check_teacher(teacher_model, bundle.num_classes, cfg.in_chans, cfg.resolution)
    distiller = build_distiller(method, module, teacher_model, **dict(options or {}))
    try:
        with removed_on_failure(claim.path), output_lock(claim, main_process()):
            metrics = fit(
                module,
                bundle,
                cfg,
                claim.path,
                spec=spec,
                step_fn=distillation_step(distiller),
                extra_modules={"distiller": distiller},
                stall_check=not distiller.needs_teacher,  # a teacher's targets have no chance level (StallCheck)
                resume=resume,
                quiet=quiet,
                device=device,
                logger=logger,
                metadata={"distill": {"teacher": "module" if is_module(teacher) else str(teacher), **distiller.describe()}},
            )
    finally:
        distiller.close()
    return TrainResult(claim.path, module, metrics)

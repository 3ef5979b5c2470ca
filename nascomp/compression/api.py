"""`compress`: a trained model made smaller by a registered method, then trained by distillation from itself."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from nascomp.compression.registry import COMPRESSORS
from nascomp.core.errors import NascompError
from nascomp.core.io import load_state_dict_file
from nascomp.core.validate import output_dir, removed_on_failure
from nascomp.cost.counter import count_module
from nascomp.data import DataBundle
from nascomp.distillation.base import build_distiller, distillation_step
from nascomp.engine.api import data_bundle, recipe_config, split_recipe
from nascomp.engine.train import TrainConfig, fit, seed_everything
from nascomp.models.io import load_weights_into
from nascomp.models.registry import build_from_spec
from nascomp.models.resolve import SPEC_ATTR, as_model, model_input_size
from nascomp.models.structure import model_family

__all__ = ["CompressResult", "compress", "INITS"]

INITS = ("teacher", "random")


@dataclass
class CompressResult:
    """What compression did (``summary``: params and MACs before and after, the structure, the distillation)
    and, unless it was a dry run, the trained student, its run directory and metrics."""

    summary: dict
    model: nn.Module
    out: Path | None = None
    metrics: dict | None = None

    @property
    def test_top1(self) -> float | None:
        return (self.metrics or {}).get("test", {}).get("top1")


def _blocks(model: nn.Module) -> dict:
    from nascomp.compression.minivit import sharing_summary

    s = sharing_summary(model)
    return {"total": s["total_blocks"], "unique": s["unique_blocks"], "per_stage": s["per_stage"]}


def compress(model: nn.Module | str | os.PathLike, method: str = "minivit", data: DataBundle | str | None = None,
             out: str | os.PathLike | None = None, *, options: Mapping | None = None, init: str = "teacher",
             teacher: nn.Module | str | os.PathLike | None = None, teacher_checkpoint: str | None = None,
             teacher_kwargs: Mapping | None = None, data_options: Mapping | None = None,
             distill: str = "minivit", distill_options: Mapping | None = None, checkpoint: str | None = None, pretrained: bool = False,
             dry_run: bool = False, recipe: TrainConfig | Mapping | None = None, seed: int = 0, resume: bool = False, quiet: bool = False,
             device: str | None = None, **overrides: Any) -> CompressResult:
    """Compress a trained Swin or ViT/DeiT.

    Args:
        model: the trained model: a module, a saved directory, or a timm name with ``checkpoint`` / ``pretrained``.
        method: a name in `nascomp.compression.registry.COMPRESSORS`: ``minivit`` (weight multiplexing; options
            ``share``, ``head_transform``, ``mlp_transform``) or ``drop-blocks`` (option ``keep``).
        data: the dataset the model was trained on (a `DataBundle` or a name); not needed for ``dry_run``.
        out: the student's run directory (it loads as a model everywhere).
        init: ``teacher`` (the student starts from the trained weights) or ``random`` (the paper's MiniViT).
        teacher: distil from this model instead of the uncompressed one (``teacher_checkpoint``: its weights and
            ``teacher_kwargs``: timm options, for one given by name).
        options: the method's settings. checkpoint, pretrained: the trained model's weights, for a model given by name.
        data_options: how a dataset given by name is loaded (`nascomp.load_data` keywords).
        distill, distill_options: the distillation method and its settings (see `nascomp.distillation`).
        dry_run: only build the student and report params and MACs before and after; no data, no training.
        recipe, overrides, seed, resume, quiet, device: the training run, as for `nascomp.train`.
        **overrides: also timm size options for a model given by name (``img_size``, ``num_classes``...).

    Returns:
        `CompressResult` with the summary, the student, and (after training) its directory and metrics.
    """
    if init not in INITS:
        raise NascompError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    compressor = COMPRESSORS.get(method)()
    training, overrides = split_recipe(overrides)
    if not dry_run:
        if out is None:
            raise NascompError("compress needs out=DIR (--out) for the compressed model (or dry_run=True to only print the structure)")
        if data is None:
            raise NascompError("compress needs data (--data): the dataset the model was trained on, for distillation")
        if not (isinstance(model, nn.Module) or Path(model).is_dir() or checkpoint or pretrained):
            raise NascompError("compression starts from trained weights: pass --checkpoint PATH (timm layout, .safetensors or .pth), "
                               "--pretrained (online), or a model directory saved by `nascomp train` as MODEL")
        out = output_dir(out)
    base, spec = as_model(model, pretrained=pretrained, **overrides)
    if checkpoint:
        try:
            load_weights_into(base, load_state_dict_file(checkpoint), str(checkpoint))
        except NascompError as e:
            raise NascompError(f"{e}. The checkpoint must hold weights of {model} built with the same options it was trained with "
                               "(e.g. --num-classes, --img-size, --patch-size, --embed-dim, --depths, --num-heads, --window-size, --in-chans)") from None
    family = model_family(base)
    in_chans, resolution = model_input_size(base)
    seed_everything(seed)  # a random-init student (and random transforms) must be reproducible
    start = copy.deepcopy(base) if init == "teacher" else build_from_spec(spec)
    opts = dict(options or {})
    opts.setdefault("transform_init", "identity" if init == "teacher" else "random")
    student = compressor.make_student(start, spec, opts)
    student.model.__dict__[SPEC_ATTR] = student.spec
    teacher_model = base
    if teacher is not None:
        by_name = not isinstance(teacher, nn.Module) and not Path(teacher).is_dir()
        teacher_model, _ = as_model(teacher, checkpoint=teacher_checkpoint, **(dict(teacher_kwargs or {}) if by_name else {}))
        if model_input_size(teacher_model) != (in_chans, resolution) or getattr(teacher_model, "num_classes", None) != getattr(base, "num_classes", None):
            raise NascompError(
                f"--teacher {teacher} takes {model_input_size(teacher_model)} (channels, px) and predicts "
                f"{getattr(teacher_model, 'num_classes', '?')} classes, but {model} takes {(in_chans, resolution)} and predicts "
                f"{getattr(base, 'num_classes', '?')}; they must agree")
    before, after = count_module(base, resolution, in_chans), count_module(student.model, resolution, in_chans)
    distiller = build_distiller(distill, student.model, teacher_model, **dict(distill_options or {}))
    summary = {
        "model": str(model) if not isinstance(model, nn.Module) else type(model).__name__, "method": method, "family": family,
        "resolution": resolution, "in_chans": in_chans,
        "params_before": before.params, "params_after": after.params, "params_ratio": round(after.params / before.params, 4),
        "macs_before": before.macs, "macs_after": after.macs,
        "gmacs_before": round(before.macs / 1e9, 4), "gmacs_after": round(after.macs / 1e9, 4),
        "convention": "MACs = multiply-accumulates (what papers call FLOPs); FLOPs = 2 x MACs; at the model's resolution",
        "blocks_before": _blocks(base), "blocks_after": _blocks(student.model), "init": init, **student.structure,
        "teacher": str(teacher) if teacher is not None else (str(model) if not isinstance(model, nn.Module) else "the uncompressed model"),
        "distill": distiller.describe(),
    }
    if dry_run:
        distiller.close()
        return CompressResult(summary, student.model)
    try:
        cfg = recipe_config(recipe, student.model, seed=seed, **training)
        bundle = data_bundle(data, **dict(data_options or {}))
        head = getattr(base, "num_classes", bundle.num_classes)
        if head != bundle.num_classes:
            raise NascompError(
                f"{model} predicts {head} classes but {bundle.name} has {bundle.num_classes}: compress a model trained on this dataset "
                f"(fine-tune it first with `nascomp train {model} --pretrained --data {bundle.name}`), or pass --num-classes if the "
                "checkpoint was trained with it")
        with removed_on_failure(out):
            metrics = fit(student.model, bundle, cfg, out, spec=student.spec, step_fn=distillation_step(distiller),
                          extra_modules={"distiller": distiller}, resume=resume, quiet=quiet, metadata={"compress": summary}, device=device)
    finally:
        distiller.close()
    return CompressResult(summary, student.model, Path(out), metrics)


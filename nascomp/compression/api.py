"""`compress`: a trained model made smaller by a registered method (or a chain ending in int8), trained by distillation
from itself, and measured where it is deployed. The request is checked here, before torch loads; `nascomp.compression.run`
carries it out step by step, and `nascomp.compression.auto` compares every method under a budget."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from nascomp.compression.base import CompressResult
from nascomp.compression.configs import CompressionConfig, method_options
from nascomp.compression.registry import METHOD_OPTIONS
from nascomp.core.checks import is_module, main_process
from nascomp.core.errors import NascompError
from nascomp.core.runlog import RunLogger, check_logger
from nascomp.distillation.configs import DistillationConfig, distill_method
from nascomp.distillation.registry import DISTILLERS
from nascomp.engine.api import check_inputs, check_recipe, split_recipe
from nascomp.engine.config import TrainConfig
from nascomp.models.names import check_model_ref
from nascomp.nas.budget import parse_budget
from nascomp.report import write_report

if TYPE_CHECKING:
    from typing import TypedDict

    from torch import nn

    from nascomp.data import DataBundle

    class _Request(TypedDict):
        """The arguments of `compress` that `run_method` and `compare_methods` take as they are."""

        init: str
        teacher: nn.Module | str | os.PathLike | None
        teacher_checkpoint: str | None
        teacher_kwargs: Mapping | None
        data_options: Mapping | None
        distill: str
        distill_options: Mapping | None
        checkpoint: str | None
        pretrained: bool
        dry_run: bool
        recipe: TrainConfig | Mapping | None
        seed: int
        resume: bool
        quiet: bool
        device: str | None
        overwrite: bool
        logger: str | RunLogger | None


__all__ = ["CompressResult", "compress", "INITS"]

INITS = ("teacher", "random")


def compress(
    model: nn.Module | str | os.PathLike,
    method: str | CompressionConfig | Sequence[CompressionConfig] = "minivit",
    data: DataBundle | str | None = None,
    out: str | os.PathLike | None = None,
    *,
    options: Mapping | None = None,
    init: str = "teacher",
    teacher: nn.Module | str | os.PathLike | None = None,
    teacher_checkpoint: str | None = None,
    teacher_kwargs: Mapping | None = None,
    data_options: Mapping | None = None,
    distill: str | DistillationConfig = "minivit",
    distill_options: Mapping | None = None,
    checkpoint: str | None = None,
    pretrained: bool = False,
    dry_run: bool = False,
    recipe: TrainConfig | Mapping | None = None,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
    device: str | None = None,
    overwrite: bool = False,
    logger: str | RunLogger | None = None,
    **overrides: Any,
) -> CompressResult:
    """Compress a trained Swin or ViT/DeiT.

    Args:
        model: the trained model: a module, a saved directory, or a timm name with ``checkpoint`` / ``pretrained``.
        method: a method config (`ShrinkConfig`, `MiniViTConfig`, `DropBlocksConfig`, `TorchPruningConfig`, `Int8Config`,
            `AutoConfig`; `nascomp.compression.configs`), a list of them for a chain (``[ShrinkConfig(...), Int8Config()]``),
            or a name in `nascomp.compression.registry.COMPRESSORS` or a chain ``"shrink,int8"`` with ``options``:
            ``minivit`` (weight multiplexing; options ``share``, ``head_transform``, ``mlp_transform``);
            ``drop-blocks`` (option ``keep``); ``shrink`` (the best sub-network under option ``budget``; see
            `nascomp.compression.shrink.search.ShrinkMethod` for its options); ``torch-pruning`` (the peer: torch-pruning
            to a params / MACs ``budget``); ``int8`` (int8 in option ``runtime``'s file: ``onnxruntime`` (default) or
            ``executorch``; option ``int8``: ``static`` or ``dynamic``; accuracy and latency measured in that runtime);
            ``auto`` (every method and chain that can meet ``budget``, per runtime in option ``runtimes``, compared in one
            table and Pareto plot; the best exported as its runtime's file).
        data: the dataset the model was trained on (a `DataBundle` or a name); a dry run needs none.
        out: the run directory (the student loads as a model everywhere; int8 adds ``model.int8.onnx`` or ``model.int8.pte``
            and ``int8.json``).
        options: with a method name, its options as a dict: the fields of its config (``budget``, ``keep``, ``share``,
            ``int8``, ``runtime``, ``target``, ``timer``...); a key no method of the chain reads is an error naming the valid
            ones. A latency budget is measured in ``runtime`` (its lookup table too).
        init: ``teacher`` (the student starts from the trained weights) or ``random`` (the paper's MiniViT).
        teacher: distil from this model instead of the uncompressed one (``teacher_checkpoint``: its weights and
            ``teacher_kwargs``: timm options, for one given by name).
        checkpoint: the trained model's weights, for a model given by name.
        pretrained: timm's weights for a model given by name.
        data_options: how a dataset given by name is loaded (`nascomp.load_data` keywords).
        distill: the distillation method: a name (see `nascomp.distillation`) or a config (`KDConfig`, `SRDConfig`,
            `WeightDistillationConfig`, `NoDistillationConfig`).
        distill_options: its settings.
        dry_run: only build the student and report params and MACs before and after; no training.
        recipe: the training recipe, as for `nascomp.train`.
        seed: as for `nascomp.train`.
        resume: as for `nascomp.train`.
        quiet: as for `nascomp.train`.
        device: as for `nascomp.train`.
        overwrite: as for `nascomp.train`.
        logger: as for `nascomp.train`; the log ends with the result's table row (``compress/result``; ``--method auto``:
            ``compress/table``, a row per method).
        **overrides: recipe fields, as for `nascomp.train`; also timm size options for a model given by name
            (``img_size``, ``num_classes``...).

    A run (not a dry run) ends by writing ``report.html`` (`nascomp.report.render_report`); a report that fails is a warning.

    Returns:
        `CompressResult` with the summary, the student, and (after training) its directory, metrics and ONNX file.
    """
    check_logger(logger)
    if init not in INITS:
        raise NascompError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    steps, opts = method_options(method, options)
    distill, distill_options = distill_method(distill, distill_options)
    misplaced = sorted(set(overrides) & METHOD_OPTIONS)
    if misplaced:
        keys = ", ".join(f"{k!r}: ..." for k in misplaced)
        raise NascompError(f"{', '.join(misplaced)}: method option(s), not model options; pass them as options={{{keys}}}")
    budget = parse_budget(opts["budget"]) if opts.get("budget") is not None else None
    DISTILLERS.get(distill)
    check_inputs(model, None if dry_run else data, data_options, checkpoint=checkpoint, device=device)
    check_model_ref(teacher, "--teacher")
    check_inputs(checkpoint=teacher_checkpoint, checkpoint_name="--teacher-checkpoint")
    training, overrides = split_recipe(overrides)
    check_recipe(recipe, seed=seed, **training)
    request: _Request = dict(
        init=init,
        teacher=teacher,
        teacher_checkpoint=teacher_checkpoint,
        teacher_kwargs=teacher_kwargs,
        data_options=data_options,
        distill=distill,
        distill_options=distill_options,
        checkpoint=checkpoint,
        pretrained=pretrained,
        dry_run=dry_run,
        recipe=recipe,
        seed=seed,
        resume=resume,
        quiet=quiet,
        device=device,
        overwrite=overwrite,
        logger=logger,
    )
    if steps == ["auto"]:
        from nascomp.compression.auto import compare_methods

        result = compare_methods(model, data, out, opts, training=training, overrides=overrides, **request)
        if main_process():
            assert result.out is not None  # compare_methods has no dry run: it always writes its folder
            write_report(result.out)
        return result
    if not dry_run:
        if out is None:
            raise NascompError("compress needs out=DIR (--out) for the compressed model (or dry_run=True to only print the structure)")
        if data is None:
            raise NascompError("compress needs data (--data): the dataset the model was trained on, for distillation and measurement")
        if not (is_module(model) or Path(cast("str | os.PathLike", model)).is_dir() or checkpoint or pretrained):
            raise NascompError(
                "compression starts from trained weights: pass --checkpoint PATH (timm layout, .safetensors or .pth), "
                "--pretrained (online), or a model directory saved by `nascomp train` as MODEL"
            )
    from nascomp.compression.run import run_method

    return run_method(model, steps, data, out, opts, budget=budget, training=training, overrides=overrides, **request)

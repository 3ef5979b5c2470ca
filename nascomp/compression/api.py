"""`compress`: a trained model made smaller by a registered method (or a chain ending in int8), trained by distillation
from itself, and measured where it is deployed."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from nascomp.compression.base import CompressResult, log_result
from nascomp.compression.registry import COMPRESSORS, METHOD_OPTIONS, method_chain
from nascomp.core.checks import is_module, main_process, require_device
from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json
from nascomp.core.outputs import output_lock
from nascomp.core.runlog import RunLogger, check_logger
from nascomp.core.validate import removed_on_failure
from nascomp.distillation.registry import DISTILLERS
from nascomp.engine.api import check_inputs, check_recipe, claim_run, recipe_config, split_recipe
from nascomp.engine.config import TrainConfig
from nascomp.models.names import check_model_ref
from nascomp.nas.budget import parse_budget
from nascomp.report import write_report

if TYPE_CHECKING:
    from torch import nn

    from nascomp.data import DataBundle

__all__ = ["CompressResult", "compress", "INITS", "DEFAULT_TARGET"]

INITS = ("teacher", "random")
DEFAULT_TARGET = "mobile-cpu"  # where int8 files are timed when no latency budget names a target


def _blocks(model: nn.Module) -> dict:
    from nascomp.compression.minivit import sharing_summary

    s = sharing_summary(model)
    return {"total": s["total_blocks"], "unique": s["unique_blocks"], "per_stage": s["per_stage"]}


def _bundle_loader(data, data_options: Mapping | None, base: nn.Module, model) -> callable:
    def load() -> DataBundle:
        from nascomp.data import data_bundle

        bundle = data_bundle(data, **dict(data_options or {}))
        head = getattr(base, "num_classes", bundle.num_classes)
        if head != bundle.num_classes:
            raise NascompError(
                f"{model} predicts {head} classes but {bundle.name} has {bundle.num_classes}: compress a model trained on this dataset "
                f"(fine-tune it first with `nascomp train {model} --pretrained --data {bundle.name}`), or pass --num-classes if the "
                "checkpoint was trained with it")
        return bundle

    return load


def compress(model: nn.Module | str | os.PathLike, method: str = "minivit", data: DataBundle | str | None = None,
             out: str | os.PathLike | None = None, *, options: Mapping | None = None, init: str = "teacher",
             teacher: nn.Module | str | os.PathLike | None = None, teacher_checkpoint: str | None = None,
             teacher_kwargs: Mapping | None = None, data_options: Mapping | None = None,
             distill: str = "minivit", distill_options: Mapping | None = None, checkpoint: str | None = None, pretrained: bool = False,
             dry_run: bool = False, recipe: TrainConfig | Mapping | None = None, seed: int = 0, resume: bool = False, quiet: bool = False,
             device: str | None = None, overwrite: bool = False, logger: str | RunLogger | None = None, **overrides: Any) -> CompressResult:
    """Compress a trained Swin or ViT/DeiT.

    Args:
        model: the trained model: a module, a saved directory, or a timm name with ``checkpoint`` / ``pretrained``.
        method: a name in `nascomp.compression.registry.COMPRESSORS`, or a chain ``"shrink,int8"``:
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
        options: the methods' options (``budget``, ``keep``, ``share``, ``int8``, ``runtime``, ``target``, ``timer``...); a
            latency budget is measured in ``runtime`` (its lookup table too).
        init: ``teacher`` (the student starts from the trained weights) or ``random`` (the paper's MiniViT).
        teacher: distil from this model instead of the uncompressed one (``teacher_checkpoint``: its weights and
            ``teacher_kwargs``: timm options, for one given by name).
        checkpoint: the trained model's weights, for a model given by name.
        pretrained: timm's weights for a model given by name.
        data_options: how a dataset given by name is loaded (`nascomp.load_data` keywords).
        distill: the distillation method (see `nascomp.distillation`).
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
    steps = method_chain(method)
    opts = dict(options or {})
    misplaced = sorted(set(overrides) & METHOD_OPTIONS)
    if misplaced:
        raise NascompError(f"{', '.join(misplaced)}: method option(s), not model options; pass them as options={{{', '.join(f'{k!r}: ...' for k in misplaced)}}}")
    budget = parse_budget(opts["budget"]) if opts.get("budget") is not None else None
    DISTILLERS.get(distill)
    check_inputs(model, None if dry_run else data, data_options, checkpoint=checkpoint, device=device)
    check_model_ref(teacher, "--teacher")
    check_inputs(checkpoint=teacher_checkpoint, checkpoint_name="--teacher-checkpoint")
    training, overrides = split_recipe(overrides)
    check_recipe(recipe, seed=seed, **training)
    if steps == ["auto"]:
        from nascomp.compression.auto import compare

        result = compare(compress, model, data, out, options=opts, init=init, teacher=teacher, teacher_checkpoint=teacher_checkpoint,
                         teacher_kwargs=teacher_kwargs, data_options=data_options, distill=distill, distill_options=distill_options,
                         checkpoint=checkpoint, pretrained=pretrained, dry_run=dry_run, recipe=recipe, seed=seed, resume=resume, quiet=quiet,
                         device=device, overwrite=overwrite, logger=logger, **training, **overrides)
        if main_process():
            write_report(result.out)
        return result
    claim = None
    if not dry_run:
        if out is None:
            raise NascompError("compress needs out=DIR (--out) for the compressed model (or dry_run=True to only print the structure)")
        if data is None:
            raise NascompError("compress needs data (--data): the dataset the model was trained on, for distillation and measurement")
        if not (is_module(model) or Path(model).is_dir() or checkpoint or pretrained):
            raise NascompError("compression starts from trained weights: pass --checkpoint PATH (timm layout, .safetensors or .pth), "
                               "--pretrained (online), or a model directory saved by `nascomp train` as MODEL")
        claim = claim_run(out, resume=resume, overwrite=overwrite, inputs=[model, checkpoint, teacher, teacher_checkpoint], data=data,
                          data_options=data_options)
        out = claim.path
    from nascomp.compression.base import CompressContext
    from nascomp.compression.measure import latency_report, timing_options
    from nascomp.core.io import load_state_dict_file
    from nascomp.cost.counter import count_module
    from nascomp.distillation.base import build_distiller, distillation_step
    from nascomp.engine.evaluate import evaluate
    from nascomp.engine.train import fit, seed_everything
    from nascomp.models.io import load_weights_into
    from nascomp.models.registry import build_from_spec
    from nascomp.models.resolve import SPEC_ATTR, as_model, model_input_size
    from nascomp.models.structure import model_family

    require_device(device)
    compressor = COMPRESSORS.get(steps[0])() if steps[0] != "int8" else None
    int8 = COMPRESSORS.get("int8")() if "int8" in steps else None
    base, spec = as_model(model, pretrained=pretrained, **overrides)
    if checkpoint:
        try:
            load_weights_into(base, load_state_dict_file(checkpoint), str(checkpoint))
        except NascompError as e:
            raise NascompError(f"{e}. The checkpoint must hold weights of {model} built with the same options it was trained with "
                               "(e.g. --num-classes, --img-size, --patch-size, --embed-dim, --depths, --num-heads, --window-size, --in-chans)") from None
    for step in (compressor, int8):
        if step is not None:
            step.check(base, opts)
    in_chans, resolution = model_input_size(base)
    target = budget.target if budget is not None and budget.measured else opts.get("target") or DEFAULT_TARGET
    seed_everything(seed)  # a random-init student (and random transforms) must be reproducible
    context = CompressContext(dry_run, seed, quiet, device, loader=None if data is None else _bundle_loader(data, data_options, base, model))
    before = count_module(base, resolution, in_chans)
    name = type(model).__name__ if is_module(model) else str(model)
    summary: dict[str, Any] = {"model": name, "method": ",".join(steps), "resolution": resolution, "in_chans": in_chans,
                               "params_before": before.params, "macs_before": before.macs, "gmacs_before": round(before.macs / 1e9, 4),
                               "convention": "MACs = multiply-accumulates (what papers call FLOPs); FLOPs = 2 x MACs; at the model's resolution"}
    if budget is not None:
        summary["budget"] = budget.to_dict()
    distiller = None
    final = base
    if compressor is not None:
        start = copy.deepcopy(base) if init == "teacher" else build_from_spec(spec)
        opts.setdefault("transform_init", "identity" if init == "teacher" else "random")
        student = compressor.make_student(start, spec, opts, context)
        student.model.__dict__[SPEC_ATTR] = student.spec
        teacher_model = base
        if teacher is not None:
            by_name = not is_module(teacher) and not Path(teacher).is_dir()
            teacher_model, _ = as_model(teacher, checkpoint=teacher_checkpoint, **(dict(teacher_kwargs or {}) if by_name else {}))
            if model_input_size(teacher_model) != (in_chans, resolution) or getattr(teacher_model, "num_classes", None) != getattr(base, "num_classes", None):
                raise NascompError(
                    f"--teacher {teacher} takes {model_input_size(teacher_model)} (channels, px) and predicts "
                    f"{getattr(teacher_model, 'num_classes', '?')} classes, but {model} takes {(in_chans, resolution)} and predicts "
                    f"{getattr(base, 'num_classes', '?')}; they must agree")
        after = count_module(student.model, resolution, in_chans)
        distiller = build_distiller(distill, student.model, teacher_model, **dict(distill_options or {}))
        summary.update({
            "family": model_family(base),
            "params_after": after.params, "params_ratio": round(after.params / before.params, 4),
            "macs_after": after.macs, "gmacs_after": round(after.macs / 1e9, 4),
            "blocks_before": _blocks(base), "blocks_after": _blocks(student.model), "init": init, **student.structure,
            "teacher": str(teacher) if teacher is not None else ("the uncompressed model" if is_module(model) else name),
            "distill": distiller.describe(),
        })
        final = student.model
    else:
        summary.update({"params_after": before.params, "macs_after": before.macs, "gmacs_after": round(before.macs / 1e9, 4)})
    if int8 is not None:
        summary["int8"] = {"mode": opts.get("int8") or "static", "target": target, "runtime": opts.get("runtime") or "onnxruntime"}
    if dry_run:
        if distiller is not None:
            distiller.close()
        return CompressResult(summary, final)
    try:
        with removed_on_failure(out), output_lock(claim, main_process()):
            bundle = context.data()
            if compressor is not None:
                cfg = recipe_config(recipe, final, seed=seed, **training)
                metrics = fit(final, bundle, cfg, out, spec=student.spec, step_fn=distillation_step(distiller),
                              extra_modules={"distiller": distiller}, resume=resume, quiet=quiet, metadata={"compress": summary}, device=device,
                              logger=logger)
                distiller.close()
            else:
                tf = bundle.transform(resolution, in_chans, train=False)
                metrics = {"model_before_int8": {"val": evaluate(final, bundle.val, tf), "test": evaluate(final, bundle.test, tf)},
                           "compress": summary}
            final.cpu()
            timing = timing_options(opts)
            if budget is not None and budget.measured and compressor is not None:
                metrics["latency"] = latency_report(final, target, **timing)
            deployed = None
            if int8 is not None:
                metrics["int8"] = int8.apply(final, Path(out), opts, context, target)
                deployed = Path(metrics["int8"]["file"])
            atomic_write_json(Path(out) / "metrics.json", metrics)
            log_result(logger, Path(out), _result_row(summary, metrics), metrics.get("optimizer_steps", 0))
    finally:
        if distiller is not None:
            distiller.close()
    if main_process():
        write_report(out)
    runtime = opts.get("runtime") or "onnxruntime"
    return CompressResult(summary, final, Path(out), metrics, deployed if runtime == "onnxruntime" else None, pte=deployed if runtime == "executorch" else None)


def _result_row(summary: dict, metrics: dict) -> dict:
    """The run's line of a comparison table: cost before and after, accuracy (of the int8 file when there is one), latency."""
    measured = metrics.get("int8") or metrics
    latency = measured.get("latency") or {}
    row = {"method": summary["method"], "params_before": summary["params_before"], "params_after": summary["params_after"],
           "macs_before": summary["macs_before"], "macs_after": summary["macs_after"],
           "val_top1": (measured.get("val") or {}).get("top1"), "test_top1": (measured.get("test") or {}).get("top1"),
           "latency_ms": latency.get("latency_ms")}
    return {k: v for k, v in row.items() if v is not None}


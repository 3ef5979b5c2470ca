"""One compression run in named steps: load the trained model, make the student (and its distiller), train it by
distillation, deploy (latency, int8), record. `nascomp.compress` checks the request and calls `run_method`; the
``auto`` comparison (`nascomp.compression.auto`) calls it once per method, each in its own folder.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nascomp.compression.base import CompressContext, CompressResult, log_result
from nascomp.compression.registry import COMPRESSORS
from nascomp.core.checks import is_module, main_process, require_device
from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json
from nascomp.core.outputs import output_lock
from nascomp.core.validate import removed_on_failure
from nascomp.engine.api import claim_run, recipe_config
from nascomp.nas.budget import Budget
from nascomp.report import write_report

if TYPE_CHECKING:
    from torch import nn

    from nascomp.compression.base import CompressionMethod, Student
    from nascomp.compression.int8 import Int8Method
    from nascomp.core.runlog import RunLogger
    from nascomp.data import DataBundle
    from nascomp.distillation.base import Distiller
    from nascomp.engine.config import TrainConfig

__all__ = ["run_method", "load_trained", "DEFAULT_TARGET"]

DEFAULT_TARGET = "mobile-cpu"  # where int8 files are timed when no latency budget names a target


@dataclass
class _Run:
    """What the steps share: the request, the trained model and, once made, the student."""

    steps: list[str]
    opts: dict
    budget: Budget | None
    model_ref: Any
    base: nn.Module
    spec: dict
    context: CompressContext
    target: str
    summary: dict
    final: nn.Module
    student: Student | None = None
    distiller: Distiller | None = None
    compressor: CompressionMethod | None = None
    int8: Int8Method | None = None


def load_trained(model, checkpoint: str | None, pretrained: bool, overrides: Mapping) -> tuple[nn.Module, dict]:
    """The trained model and its spec (a module, a saved directory, or a name with ``checkpoint`` / ``pretrained``)."""
    from nascomp.core.io import load_state_dict_file
    from nascomp.models.io import load_weights_into
    from nascomp.models.resolve import as_model

    base, spec = as_model(model, pretrained=pretrained, **overrides)
    if checkpoint:
        try:
            load_weights_into(base, load_state_dict_file(checkpoint), str(checkpoint))
        except NascompError as e:
            raise NascompError(
                f"{e}. The checkpoint must hold weights of {model} built with the same options it was trained with "
                "(e.g. --num-classes, --img-size, --patch-size, --embed-dim, --depths, --num-heads, --window-size, --in-chans)"
            ) from None
    return base, spec


def _bundle_loader(data, data_options: Mapping | None, base: nn.Module, model) -> Callable[[], DataBundle]:
    def load() -> DataBundle:
        from nascomp.data import data_bundle

        bundle = data_bundle(data, **dict(data_options or {}))
        head = getattr(base, "num_classes", bundle.num_classes)
        if head != bundle.num_classes:
            raise NascompError(
                f"{model} predicts {head} classes but {bundle.name} has {bundle.num_classes}: compress a model trained on this dataset "
                f"(fine-tune it first with `nascomp train {model} --pretrained --data {bundle.name}`), or pass --num-classes if the "
                "checkpoint was trained with it"
            )
        return bundle

    return load


def _blocks(model: nn.Module) -> dict:
    from nascomp.compression.minivit import sharing_summary

    s = sharing_summary(model)
    return {"total": s["total_blocks"], "unique": s["unique_blocks"], "per_stage": s["per_stage"]}


def _prepare(
    steps: list[str],
    opts: dict,
    budget: Budget | None,
    model,
    data,
    data_options,
    checkpoint,
    pretrained,
    overrides,
    seed: int,
    quiet: bool,
    device: str | None,
    dry_run: bool,
) -> _Run:
    """Step 1: the trained model, each method's checks against it, where results are timed, the summary's "before"."""
    from nascomp.cost.counter import count_module
    from nascomp.engine.train import seed_everything
    from nascomp.models.resolve import model_input_size

    require_device(device)
    compressor = COMPRESSORS.get(steps[0])() if steps[0] != "int8" else None
    int8 = COMPRESSORS.get("int8")() if "int8" in steps else None
    base, spec = load_trained(model, checkpoint, pretrained, overrides)
    for step in (compressor, int8):
        if step is not None:
            step.check(base, opts)
    in_chans, resolution = model_input_size(base)
    target = budget.target if budget is not None and budget.measured else opts.get("target") or DEFAULT_TARGET
    assert target is not None  # a measured budget names its target (parse_budget)
    seed_everything(seed)  # a random-init student (and random transforms) must be reproducible
    context = CompressContext(
        dry_run, seed, quiet, device, loader=None if data is None else _bundle_loader(data, data_options, base, model)
    )
    before = count_module(base, resolution, in_chans)
    name = type(model).__name__ if is_module(model) else str(model)
    summary: dict[str, Any] = {
        "model": name,
        "method": ",".join(steps),
        "resolution": resolution,
        "in_chans": in_chans,
        "params_before": before.params,
        "macs_before": before.macs,
        "gmacs_before": round(before.macs / 1e9, 4),
        "convention": "MACs = multiply-accumulates (what papers call FLOPs); FLOPs = 2 x MACs; at the model's resolution",
    }
    if budget is not None:
        summary["budget"] = budget.to_dict()
    return _Run(steps, opts, budget, model, base, spec, context, target, summary, base, compressor=compressor, int8=int8)


def _teacher(run: _Run, teacher, teacher_checkpoint, teacher_kwargs) -> nn.Module:
    """The model the student learns from: the uncompressed one, or ``teacher`` (it must take the same input, same classes)."""
    from nascomp.models.resolve import as_model, model_input_size

    if teacher is None:
        return run.base
    by_name = not is_module(teacher) and not Path(teacher).is_dir()
    teacher_model, _ = as_model(teacher, checkpoint=teacher_checkpoint, **(dict(teacher_kwargs or {}) if by_name else {}))
    size = (run.summary["in_chans"], run.summary["resolution"])
    if model_input_size(teacher_model) != size or getattr(teacher_model, "num_classes", None) != getattr(run.base, "num_classes", None):
        raise NascompError(
            f"--teacher {teacher} takes {model_input_size(teacher_model)} (channels, px) and predicts "
            f"{getattr(teacher_model, 'num_classes', '?')} classes, but {run.model_ref} takes {size} and predicts "
            f"{getattr(run.base, 'num_classes', '?')}; they must agree"
        )
    return teacher_model


def _make_student(run: _Run, init: str, teacher, teacher_checkpoint, teacher_kwargs, distill: str, distill_options) -> None:
    """Step 2: the smaller model (from the trained weights or, ``init="random"``, from scratch) and its distiller."""
    from nascomp.cost.counter import count_module
    from nascomp.distillation.base import build_distiller
    from nascomp.models.registry import build_from_spec
    from nascomp.models.resolve import SPEC_ATTR
    from nascomp.models.structure import model_family

    assert run.compressor is not None  # run_method makes a student only when steps start with a method
    start = copy.deepcopy(run.base) if init == "teacher" else build_from_spec(run.spec)
    run.opts.setdefault("transform_init", "identity" if init == "teacher" else "random")
    student = run.compressor.make_student(start, run.spec, run.opts, run.context)
    student.model.__dict__[SPEC_ATTR] = student.spec
    teacher_model = _teacher(run, teacher, teacher_checkpoint, teacher_kwargs)
    after = count_module(student.model, run.summary["resolution"], run.summary["in_chans"])
    run.distiller = build_distiller(distill, student.model, teacher_model, **dict(distill_options or {}))
    before_params = run.summary["params_before"]
    run.summary.update(
        {
            "family": model_family(run.base),
            "params_after": after.params,
            "params_ratio": round(after.params / before_params, 4),
            "macs_after": after.macs,
            "gmacs_after": round(after.macs / 1e9, 4),
            "blocks_before": _blocks(run.base),
            "blocks_after": _blocks(student.model),
            "init": init,
            **student.structure,
            "teacher": str(teacher)
            if teacher is not None
            else ("the uncompressed model" if is_module(run.model_ref) else run.summary["model"]),
            "distill": run.distiller.describe(),
        }
    )
    run.student, run.final = student, student.model


def _train(run: _Run, out: Path, recipe, training: Mapping, seed: int, resume: bool, quiet: bool, device: str | None, logger) -> dict:
    """Step 3: train the student by distillation (then its distiller lets go of it), or score the model int8 starts from."""
    from nascomp.distillation.base import distillation_step
    from nascomp.engine.evaluate import evaluate
    from nascomp.engine.train import fit

    bundle = run.context.data()
    if run.student is None:
        in_chans, resolution = run.summary["in_chans"], run.summary["resolution"]
        tf = bundle.transform(resolution, in_chans, train=False)
        return {
            "model_before_int8": {"val": evaluate(run.final, bundle.val, tf), "test": evaluate(run.final, bundle.test, tf)},
            "compress": run.summary,
        }
    assert run.distiller is not None  # _make_student set it with the student
    cfg = recipe_config(recipe, run.final, seed=seed, **training)
    metrics = fit(
        run.final,
        bundle,
        cfg,
        out,
        spec=run.student.spec,
        step_fn=distillation_step(run.distiller),
        extra_modules={"distiller": run.distiller},
        stall_check=not run.distiller.needs_teacher,  # a teacher's targets have no chance level (StallCheck)
        resume=resume,
        quiet=quiet,
        metadata={"compress": run.summary},
        device=device,
        logger=logger,
    )
    run.distiller.close()  # its hooks come off before the model is timed or exported
    return metrics


def _deploy(run: _Run, out: Path, metrics: dict) -> Path | None:
    """Step 4: latency where a measured budget asks for it, then int8 in its runtime; the file shipped (or None)."""
    from nascomp.compression.measure import latency_report, timing_options

    run.final.cpu()
    if run.budget is not None and run.budget.measured and run.compressor is not None:
        metrics["latency"] = latency_report(run.final, run.target, **timing_options(run.opts))
    if run.int8 is None:
        return None
    metrics["int8"] = run.int8.apply(run.final, out, run.opts, run.context, run.target)
    return Path(metrics["int8"]["file"])


def _result_row(summary: dict, metrics: dict) -> dict:
    """The run's line of a comparison table: cost before and after, accuracy (of the int8 file when there is one), latency."""
    measured = metrics.get("int8") or metrics
    latency = measured.get("latency") or {}
    row = {
        "method": summary["method"],
        "params_before": summary["params_before"],
        "params_after": summary["params_after"],
        "macs_before": summary["macs_before"],
        "macs_after": summary["macs_after"],
        "val_top1": (measured.get("val") or {}).get("top1"),
        "test_top1": (measured.get("test") or {}).get("top1"),
        "latency_ms": latency.get("latency_ms"),
    }
    return {k: v for k, v in row.items() if v is not None}


def run_method(
    model,
    steps: list[str],
    data,
    out: str | os.PathLike | None,
    opts: dict,
    *,
    budget: Budget | None,
    init: str = "teacher",
    teacher=None,
    teacher_checkpoint: str | None = None,
    teacher_kwargs: Mapping | None = None,
    data_options: Mapping | None = None,
    distill: str = "minivit",
    distill_options: Mapping | None = None,
    checkpoint: str | None = None,
    pretrained: bool = False,
    dry_run: bool = False,
    recipe: TrainConfig | Mapping | None = None,
    training: Mapping | None = None,
    overrides: Mapping | None = None,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
    device: str | None = None,
    overwrite: bool = False,
    logger: str | RunLogger | None = None,
) -> CompressResult:
    """A checked request (`nascomp.compress`'s arguments, ``steps`` one method or a chain ending in int8) run step by step."""
    claim = None
    if not dry_run:
        claim = claim_run(
            out,
            resume=resume,
            overwrite=overwrite,
            inputs=[model, checkpoint, teacher, teacher_checkpoint],
            data=data,
            data_options=data_options,
        )
        assert claim is not None  # callers require out unless dry_run
        out = claim.path
    run = _prepare(
        steps, opts, budget, model, data, data_options, checkpoint, pretrained, dict(overrides or {}), seed, quiet, device, dry_run
    )
    with contextlib.ExitStack() as stack:
        if run.compressor is not None:
            _make_student(run, init, teacher, teacher_checkpoint, teacher_kwargs, distill, distill_options)
            assert run.distiller is not None  # set by _make_student
            stack.callback(run.distiller.close)  # also on a dry run or a failure
        else:
            run.summary.update(
                {
                    "params_after": run.summary["params_before"],
                    "macs_after": run.summary["macs_before"],
                    "gmacs_after": run.summary["gmacs_before"],
                }
            )
        if run.int8 is not None:
            run.summary["int8"] = {
                "mode": opts.get("int8") or "static",
                "target": run.target,
                "runtime": opts.get("runtime") or "onnxruntime",
            }
        if dry_run:
            return CompressResult(run.summary, run.final)
        assert out is not None  # claimed above (not dry_run)
        with removed_on_failure(out), output_lock(claim, main_process()):
            metrics = _train(run, Path(out), recipe, dict(training or {}), seed, resume, quiet, device, logger)
            deployed = _deploy(run, Path(out), metrics)
            atomic_write_json(Path(out) / "metrics.json", metrics)
            log_result(logger, Path(out), _result_row(run.summary, metrics), metrics.get("optimizer_steps", 0))
    if main_process():
        write_report(out)
    runtime = opts.get("runtime") or "onnxruntime"
    return CompressResult(
        run.summary,
        run.final,
        Path(out),
        metrics,
        deployed if runtime == "onnxruntime" else None,
        pte=deployed if runtime == "executorch" else None,
    )

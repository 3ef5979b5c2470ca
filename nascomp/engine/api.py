"""`train`: train a model on a dataset into a run directory that loads back as a model.

Its arguments, paths and output folder are checked before torch is loaded (`check_train`), so a mistake is one line
in well under a second; the work imports the training loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nascomp.core.checks import check_device, check_file, check_seed, is_module, main_process, require_device
from nascomp.core.errors import NascompError
from nascomp.core.outputs import OutputClaim, claim_output, output_lock
from nascomp.core.runlog import RunLogger, check_logger
from nascomp.core.validate import removed_on_failure
from nascomp.data.source import check_source
from nascomp.engine.config import TrainConfig
from nascomp.models.names import check_model_ref

if TYPE_CHECKING:
    from torch import nn

    from nascomp.data import DataBundle
    from nascomp.spaces.arch import Arch

__all__ = ["TrainResult", "train", "prepare", "recipe_config", "check_recipe", "split_recipe", "check_inputs", "claim_run", "TRAIN_RUNS"]

# what `resume` may continue in a training command's folder
TRAIN_RUNS = ("a training run (checkpoints)", "a finished run (metrics.json)", "a saved model")


@dataclass
class TrainResult:
    """A finished training run: its directory (loads as a model), the trained module and metrics.json."""

    out: Path
    model: nn.Module
    metrics: dict

    @property
    def val_top1(self) -> float:
        return self.metrics["val"]["top1"]

    @property
    def test_top1(self) -> float | None:
        return (self.metrics.get("test") or {}).get("top1")

    @property
    def params(self) -> int:
        return self.metrics["params"]


def check_recipe(recipe: TrainConfig | Mapping | None, **overrides: Any) -> TrainConfig:
    """The recipe with ``overrides`` (``None`` keeps a value), checked (unknown keys name the valid ones); not yet sized to a model."""
    if isinstance(recipe, Mapping):
        overrides = {**recipe, **overrides}
        recipe = None
    elif recipe is not None and not isinstance(recipe, TrainConfig):
        raise NascompError(f"recipe must be a TrainConfig or a dict of its fields, got {type(recipe).__name__}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise NascompError(f"unknown training options {unknown}; valid: {', '.join(sorted(known))}")
    check_seed(overrides.get("seed"), "--seed")
    base = recipe or TrainConfig()
    values = {**{f.name: getattr(base, f.name) for f in fields(TrainConfig)}, **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(**values)


def recipe_config(recipe: TrainConfig | Mapping | None, model: nn.Module, **overrides: Any) -> TrainConfig:
    """A `TrainConfig` from a config or a dict of its fields plus keyword overrides, sized to ``model``'s input.

    Unknown keys are a user error naming the valid ones; ``None`` values keep the default.
    """
    from nascomp.models.resolve import model_input_size

    in_chans, resolution = model_input_size(model)
    return check_recipe(recipe, **{**overrides, "resolution": resolution, "in_chans": in_chans})


def check_inputs(
    model: Any = None,
    data: Any = None,
    data_options: Mapping | None = None,
    *,
    checkpoint: Any = None,
    device: str | None = None,
    checkpoint_name: str = "--checkpoint",
) -> None:
    """The checks of a model, dataset, checkpoint and device that need no torch (a data object or module passes as given)."""
    check_model_ref(model)
    check_file(checkpoint, checkpoint_name)
    check_device(device)
    if isinstance(data, str):
        options = dict(data_options or {})
        check_source(data, options.get("data_dir"), bool(options.get("download")))


def claim_run(
    out,
    *,
    resume: bool,
    overwrite: bool,
    inputs: Iterable[Any] = (),
    data: Any = None,
    data_options: Mapping | None = None,
    resumable: tuple[str, ...] = TRAIN_RUNS,
) -> OutputClaim | None:
    """`claim_output` for a training command: its model, teacher or checkpoint and its image folder are inputs it must not overwrite."""
    folders: list[object] = [i for i in inputs if isinstance(i, (str, os.PathLike))]  # claim_output skips a None data_dir
    if isinstance(data, str) and data.startswith("imagefolder:"):
        folders.append(data.split(":", 1)[1].strip())
    folders.append((data_options or {}).get("data_dir"))
    return claim_output(out, resume=resume, overwrite=overwrite, inputs=folders, resumable=resumable)


def split_recipe(options: dict) -> tuple[dict, dict]:
    """(training-recipe fields, the rest) of keyword options that mix both; the input size is the model's, never a recipe field."""
    recipe_keys = {f.name for f in fields(TrainConfig)} - {"resolution", "in_chans"}
    return {k: v for k, v in options.items() if k in recipe_keys}, {k: v for k, v in options.items() if k not in recipe_keys}


def prepare(
    model: nn.Module | str | os.PathLike | Arch,
    data: DataBundle | str,
    *,
    model_kwargs: Mapping | None = None,
    data_options: Mapping | None = None,
    checkpoint: str | os.PathLike | None = None,
    pretrained: bool = False,
    recipe: TrainConfig | Mapping | None = None,
    **overrides: Any,
) -> tuple[nn.Module, dict, DataBundle, TrainConfig]:
    """(model, spec, data, config) for a training run, the way every command prepares them.

    A dataset given by name loads first. A model given by name is then built with the random state seeded by the
    recipe's seed (its initial weights belong to the run's seed) and, unless it is a saved directory, with the
    data's number of classes. The config is the recipe with ``overrides``, sized to the model's input.
    """
    from nascomp.data import data_bundle
    from nascomp.engine.train import seed_everything
    from nascomp.models.resolve import as_model

    kwargs = dict(model_kwargs or {})
    if is_module(model) and kwargs:
        raise NascompError(f"model options {sorted(kwargs)} only apply to a model given by name")
    bundle = data_bundle(data, **dict(data_options or {}))
    if is_module(model):
        module, spec = as_model(model, checkpoint=checkpoint)
    else:
        seed_everything(check_recipe(recipe, **overrides).seed)  # the run's seed (an override of None keeps the recipe's)
        if not isinstance(model, (str, os.PathLike)) or not Path(model).is_dir():  # an Arch or a name: sized to the data
            kwargs.setdefault("num_classes", bundle.num_classes)
        module, spec = as_model(model, checkpoint=checkpoint, pretrained=pretrained, **kwargs)
    check_classes(module, bundle, model)
    return module, spec, bundle, recipe_config(recipe, module, **overrides)


def check_classes(module: nn.Module, bundle: DataBundle, model: Any) -> None:
    """A model's classifier and the data must agree on the number of classes (a saved model's head is fixed)."""
    head = getattr(module, "num_classes", None)
    if head is not None and head != bundle.num_classes:
        raise NascompError(
            f"{model if isinstance(model, (str, os.PathLike)) else type(module).__name__} predicts {head} classes but "
            f"{bundle.name} has {bundle.num_classes}; train on data with {head} classes, or start from a model built for "
            f"{bundle.num_classes} (--num-classes {bundle.num_classes} with a timm name)"
        )


def train(
    model: nn.Module | str | os.PathLike | Arch,
    data: DataBundle | str = "fashion-mnist",
    out: str | os.PathLike | None = None,
    *,
    model_kwargs: Mapping | None = None,
    data_options: Mapping | None = None,
    checkpoint: str | os.PathLike | None = None,
    pretrained: bool = False,
    recipe: TrainConfig | Mapping | None = None,
    resume: bool = False,
    quiet: bool = False,
    device: str | None = None,
    metadata: dict | None = None,
    overwrite: bool = False,
    logger: str | RunLogger | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train ``model`` on ``data`` and save it into ``out``.

    Args:
        model: a module (from `nascomp.create_model` or timm), a timm name, an arch, or a saved directory.
        data: a `DataBundle` (`nascomp.load_data`) or a dataset name (loaded with ``data_options``).
        out: the run directory (checkpoints, ``model.safetensors`` + ``model.json``, ``metrics.json``).
        model_kwargs: timm keyword arguments for a model given by name (``img_size``, ``in_chans``...;
            ``num_classes`` defaults to the data's). checkpoint, pretrained: its starting weights.
        data_options: `nascomp.load_data` keywords (``data_dir``, ``limit_train``, ``val_fraction``...).
        recipe: a `TrainConfig` or a dict of its fields; keyword ``overrides`` (``epochs=8, lr=5e-4, seed=1``)
            replace fields. The seed also draws the initial weights of a model given by name.
        resume: continue from the newest checkpoint in ``out`` (bit-identical on CPU).
        quiet: no progress output. device: ``cpu`` or ``cuda`` (default: CUDA when available).
        metadata: extra entries for metrics.json.
        overwrite: replace a run or saved model already in ``out`` (never the model, checkpoint or data being read).
        logger: where loss, learning rate, throughput and validation top-1 are logged as the run goes: ``"tensorboard"``,
            ``"wandb"``, ``"mlflow"``, several joined by commas, ``"none"``, or a `nascomp.core.runlog.RunLogger`. Default
            (None): TensorBoard when its package is installed (``pip install 'nascomp[tensorboard]'``), else none, so
            logging never makes a run fail for a missing optional package. Files go under ``out`` (``tb/``...).

    Returns:
        `TrainResult` with the run directory, the trained model and the metrics (val and test top-1).
    """
    if out is None:
        raise NascompError("train needs out=DIR (--out): where the checkpoints and the trained model go")
    check_logger(logger)
    check_inputs(model, data, data_options, checkpoint=checkpoint, device=device)
    check_recipe(recipe, **overrides)
    claim = claim_run(out, resume=resume, overwrite=overwrite, inputs=[model, checkpoint], data=data, data_options=data_options)
    from nascomp.engine.train import fit

    require_device(device)
    module, spec, bundle, cfg = prepare(
        model,
        data,
        model_kwargs=model_kwargs,
        data_options=data_options,
        checkpoint=checkpoint,
        pretrained=pretrained,
        recipe=recipe,
        **overrides,
    )
    assert claim is not None  # claim_output returns None only for no path, and out was checked above
    with removed_on_failure(claim.path), output_lock(claim, main_process()):
        metrics = fit(
            module, bundle, cfg, claim.path, spec=spec, resume=resume, quiet=quiet, device=device, metadata=metadata, logger=logger
        )
    return TrainResult(claim.path, module, metrics)

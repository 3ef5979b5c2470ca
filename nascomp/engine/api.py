"""`train`: train a model on a dataset into a run directory that loads back as a model."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from nascomp.core.errors import NascompError
from nascomp.core.validate import output_dir, removed_on_failure
from nascomp.data import DataBundle, data_bundle
from nascomp.engine.train import TrainConfig, fit, seed_everything
from nascomp.models.resolve import as_model, model_input_size
from nascomp.spaces.arch import Arch

__all__ = ["TrainResult", "train", "prepare", "recipe_config", "split_recipe"]


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


def recipe_config(recipe: TrainConfig | Mapping | None, model: nn.Module, **overrides: Any) -> TrainConfig:
    """A `TrainConfig` from a config or a dict of its fields plus keyword overrides, sized to ``model``'s input.

    Unknown keys are a user error naming the valid ones; ``None`` values keep the default.
    """
    if isinstance(recipe, Mapping):
        recipe, overrides = None, {**recipe, **overrides}
    elif recipe is not None and not isinstance(recipe, TrainConfig):
        raise NascompError(f"recipe must be a TrainConfig or a dict of its fields, got {type(recipe).__name__}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise NascompError(f"unknown training options {unknown}; valid: {', '.join(sorted(known))}")
    base = recipe or TrainConfig()
    in_chans, resolution = model_input_size(model)
    values = {**{f.name: getattr(base, f.name) for f in fields(TrainConfig)}, "resolution": resolution, "in_chans": in_chans}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)


def split_recipe(options: dict) -> tuple[dict, dict]:
    """(training-recipe fields, the rest) of keyword options that mix both; the input size is the model's, never a recipe field."""
    recipe_keys = {f.name for f in fields(TrainConfig)} - {"resolution", "in_chans"}
    return {k: v for k, v in options.items() if k in recipe_keys}, {k: v for k, v in options.items() if k not in recipe_keys}


def prepare(model: nn.Module | str | os.PathLike | Arch, data: DataBundle | str, *, model_kwargs: Mapping | None = None,
            data_options: Mapping | None = None, checkpoint: str | os.PathLike | None = None, pretrained: bool = False,
            recipe: TrainConfig | Mapping | None = None, **overrides: Any) -> tuple[nn.Module, dict, DataBundle, TrainConfig]:
    """(model, spec, data, config) for a training run, the way every command prepares them.

    A dataset given by name loads first. A model given by name is then built with the random state seeded by the
    recipe's seed (its initial weights belong to the run's seed) and, unless it is a saved directory, with the
    data's number of classes. The config is the recipe with ``overrides``, sized to the model's input.
    """
    kwargs = dict(model_kwargs or {})
    if isinstance(model, nn.Module) and kwargs:
        raise NascompError(f"model options {sorted(kwargs)} only apply to a model given by name")
    bundle = data_bundle(data, **dict(data_options or {}))
    if isinstance(model, nn.Module):
        module, spec = as_model(model, checkpoint=checkpoint)
    else:
        seed_everything(overrides.get("seed", recipe.seed if isinstance(recipe, TrainConfig) else dict(recipe or {}).get("seed", 0)))
        if not Path(model).is_dir():
            kwargs.setdefault("num_classes", bundle.num_classes)
        module, spec = as_model(model, checkpoint=checkpoint, pretrained=pretrained, **kwargs)
    return module, spec, bundle, recipe_config(recipe, module, **overrides)


def train(model: nn.Module | str | os.PathLike | Arch, data: DataBundle | str = "fashion-mnist", out: str | os.PathLike | None = None, *,
          model_kwargs: Mapping | None = None, data_options: Mapping | None = None, checkpoint: str | os.PathLike | None = None,
          pretrained: bool = False, recipe: TrainConfig | Mapping | None = None, resume: bool = False, quiet: bool = False,
          device: str | None = None, metadata: dict | None = None, **overrides: Any) -> TrainResult:
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

    Returns:
        `TrainResult` with the run directory, the trained model and the metrics (val and test top-1).
    """
    if out is None:
        raise NascompError("train needs out=DIR (--out): where the checkpoints and the trained model go")
    out = output_dir(out)
    module, spec, bundle, cfg = prepare(model, data, model_kwargs=model_kwargs, data_options=data_options, checkpoint=checkpoint,
                                        pretrained=pretrained, recipe=recipe, **overrides)
    with removed_on_failure(out):
        metrics = fit(module, bundle, cfg, out, spec=spec, resume=resume, quiet=quiet, device=device, metadata=metadata)
    return TrainResult(Path(out), module, metrics)

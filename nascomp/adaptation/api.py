"""`adapt`: a trained backbone gets a new head and an adapter; only those train; the result merges for deployment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from nascomp.adaptation.configs import AdaptationConfig, adapt_method
from nascomp.adaptation.registry import ADAPTERS
from nascomp.core.checks import is_module, main_process, require_device
from nascomp.core.errors import NascompError
from nascomp.core.io import atomic_write_json, read_json
from nascomp.core.outputs import output_lock
from nascomp.core.runlog import RunLogger, check_logger
from nascomp.core.validate import non_negative, positive, removed_on_failure
from nascomp.engine.api import check_inputs, check_recipe, claim_run, recipe_config, split_recipe
from nascomp.engine.config import TrainConfig

if TYPE_CHECKING:
    from torch import nn

    from nascomp.data import DataBundle

__all__ = ["AdaptResult", "adapt", "MERGED_DIR"]

MERGED_DIR = "merged"


@dataclass
class AdaptResult:
    """The adapter's report (trainable / total parameters, options) and, after training, the run and its metrics."""

    report: dict
    model: nn.Module
    out: Path | None = None
    metrics: dict | None = None

    @property
    def test_top1(self) -> float | None:
        return (self.metrics or {}).get("test", {}).get("top1")


def _load_backbone(model: nn.Module, checkpoint: str) -> None:
    """Load a checkpoint into everything but the head, which is replaced for the new classes anyway."""
    from nascomp.adaptation.methods import head_parameter_names
    from nascomp.core.io import load_state_dict_file
    from nascomp.models.io import load_weights_into

    head_modules = {n.rpartition(".")[0] for n in head_parameter_names(model)}
    is_head = lambda key: key.rpartition(".")[0] in head_modules  # noqa: E731
    state = {k: v for k, v in load_state_dict_file(checkpoint).items() if not is_head(k)}
    state.update({k: v for k, v in model.state_dict().items() if is_head(k)})
    load_weights_into(model, state, checkpoint)


def adapt(
    model: nn.Module | str | os.PathLike,
    method: str | AdaptationConfig,
    data: DataBundle | str | None = None,
    out: str | os.PathLike | None = None,
    *,
    options: Mapping | None = None,
    data_options: Mapping | None = None,
    num_classes: int | None = None,
    checkpoint: str | None = None,
    pretrained: bool = False,
    shots: int | None = None,
    min_epoch_size: int = 256,
    merge: bool = True,
    dry_run: bool = False,
    recipe: TrainConfig | Mapping | None = None,
    seed: int = 0,
    resume: bool = False,
    quiet: bool = False,
    device: str | None = None,
    overwrite: bool = False,
    logger: str | RunLogger | None = None,
    **overrides: Any,
) -> AdaptResult:
    """Adapt a trained backbone to new data with few trainable parameters.

    Args:
        model: the backbone (a module, a timm name, an arch, or a saved directory); ``checkpoint`` loads its
            weights (all but the head), ``pretrained`` takes timm's.
        method: a config (`KAdaptationConfig`, `LoraConfig`, `LokrConfig`, `LinearProbeConfig`, `FullFineTuneConfig`;
            `nascomp.adaptation.configs`), or a name in `nascomp.adaptation.registry.ADAPTERS` with ``options``:
            ``kadaptation``, ``lora``, ``lokr``, ``linear``, ``full``.
        data: the target dataset (a `DataBundle` or a name loaded with ``data_options``); not needed for ``dry_run``.
        out: the run directory; ``out/merged`` holds the adapter folded into plain timm layers (unless ``merge=False``).
        options: the method's settings (KAdaptation: ``n``, ``rank``, ``targets``, ``slow_rank``, ``scale``, ``bias``,
            ``dropout``, ``init``; LoRA: ``rank``, ``alpha``, ``targets``, ``dropout``; LoKr: ``decompose_factor`` for ``dropout``).
        num_classes: classes of the new head (default: the data's).
        shots: train on this many images per class (few-shot), drawn with ``seed``, repeated to ``min_epoch_size``.
        dry_run: build the adapted model and count its parameters only.
        recipe: the training recipe, as for `nascomp.train`.
        seed: as for `nascomp.train`.
        resume: as for `nascomp.train`.
        quiet: as for `nascomp.train`.
        device: as for `nascomp.train`.
        overwrite: as for `nascomp.train`.
        logger: as for `nascomp.train`.
        **overrides: recipe fields, as for `nascomp.train`; also timm size options for a backbone given by name.

    Returns:
        `AdaptResult` with the parameter report, the adapted model and (after training) its directory and metrics.
    """
    method, options = adapt_method(method, options)
    ADAPTERS.get(method)  # an unknown method fails here, with the choices
    check_logger(logger)
    positive("--shots", shots)
    non_negative("--min-epoch-size", min_epoch_size)
    positive("--num-classes", num_classes)
    training, overrides = split_recipe(overrides)
    check_inputs(model, data, data_options, checkpoint=checkpoint, device=device)
    check_recipe(recipe, seed=seed, **training)
    claim = None
    if not dry_run:
        if out is None or data is None:
            raise NascompError("adapt needs data (--data D) and out (--out DIR), or dry_run=True (--dry-run) to only count parameters")
        claim = claim_run(out, resume=resume, overwrite=overwrite, inputs=[model, checkpoint], data=data, data_options=data_options)
    from nascomp.adaptation.fewshot import few_shot_subset
    from nascomp.adaptation.methods import count_parameters, get_method, mark_trainable
    from nascomp.adaptation.model import adapted_spec
    from nascomp.data import data_bundle
    from nascomp.engine.train import fit, seed_everything
    from nascomp.models.resolve import SPEC_ATTR, as_model

    require_device(device)
    adapter = get_method(method)
    settings = adapter.options(**dict(options or {}))
    backbone, base_spec = as_model(model, pretrained=pretrained, **{k: v for k, v in overrides.items() if k != "num_classes"})
    if checkpoint:
        _load_backbone(backbone, checkpoint)
    bundle = data_bundle(data, **dict(data_options or {})) if data is not None else None
    num_classes = num_classes or (bundle.num_classes if bundle else None)
    seed_everything(seed)  # the new head and the adapter's random factors
    if num_classes is not None:
        cast(Any, backbone).reset_classifier(num_classes)  # a timm model
    adapter.apply(backbone, settings)
    mark_trainable(backbone, method)
    counts = count_parameters(backbone).to_dict()
    report = {
        "model": type(model).__name__ if is_module(model) else str(model),
        "method": method,
        "options": settings,
        "num_classes": num_classes,
        **counts,
    }
    spec = adapted_spec(base_spec, method, num_classes, settings)
    backbone.__dict__[SPEC_ATTR] = spec
    if dry_run:
        return AdaptResult(report, backbone)
    assert claim is not None and bundle is not None  # not dry_run: out and data were required above
    if shots:
        bundle.train = few_shot_subset(bundle.train, shots, seed, min_epoch_size)
        report.update(shots=shots)
    cfg = recipe_config(recipe, backbone, seed=seed, **training)
    out = claim.path
    with removed_on_failure(out), output_lock(claim, main_process()):
        metrics = fit(
            backbone, bundle, cfg, out, spec=spec, resume=resume, quiet=quiet, device=device, metadata={"adaptation": report}, logger=logger
        )
        if merge:
            metrics["merged"] = _export_merged(backbone, out, method, base_spec, num_classes, settings, bundle, cfg)
            atomic_write_json(out / "metrics.json", metrics)
    return AdaptResult(report, backbone, out, metrics)


def _export_merged(
    model: nn.Module, out: Path, method: str, base_spec: dict, num_classes: int | None, options: dict, data: DataBundle, cfg: TrainConfig
) -> dict:
    """Fold the adapter in, save OUT/merged, and check merged and unmerged logits agree on real images."""
    import torch

    from nascomp.adaptation.methods import merge_method
    from nascomp.adaptation.model import adapted_spec
    from nascomp.models.io import save_model

    model.eval()
    images, _ = data.transform(cfg.resolution, cfg.in_chans, train=False)([data.test[i] for i in range(min(16, len(data.test)))])  # type: ignore[arg-type]  # map-style datasets define __len__
    device = next(model.parameters()).device
    with torch.no_grad():
        before = model(images.to(device))
        biased = merge_method(model, method)
        after = model(images.to(device))
    diff = (before - after).abs().max().item()
    if diff > 1e-3 * max(1.0, before.abs().max().item()):
        raise NascompError(f"merged model disagrees with the adapted one (max |Δlogit| {diff:.3g}); please report this")
    meta = read_json(out / "model.json")
    save_model(
        out / MERGED_DIR,
        model,
        adapted_spec(base_spec, method, num_classes, options, merged=True, biased=biased),
        {"metrics": meta.get("metrics"), "merged_from": str(out)},
    )
    return {"dir": str(out / MERGED_DIR), "max_abs_logit_diff": diff}

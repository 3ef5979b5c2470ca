"""`count_cost`: params and MACs of anything nascomp accepts as a model, at any input resolution."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nascomp.core.checks import check_file, is_module
from nascomp.core.errors import NascompError
from nascomp.core.io import read_json
from nascomp.core.validate import positive
from nascomp.models.names import check_model_ref
from nascomp.spaces.arch import Arch
from nascomp.spaces.space import SearchSpace

if TYPE_CHECKING:
    from torch import nn

    from nascomp.cost.counter import CostReport

__all__ = ["count_cost", "space_cost_range"]


def count_cost(
    model: nn.Module | str | os.PathLike | Arch | Mapping,
    resolution: int | None = None,
    *,
    in_chans: int | None = None,
    num_classes: int | None = None,
    batch: int = 1,
    cross_check: bool = False,
    checkpoint: str | None = None,
    **overrides: Any,
) -> CostReport:
    """Count params and per-image MACs (attention matmuls included; FLOPs = 2 x MACs).

    Args:
        model: a module, a timm name, a saved model directory, or an `Arch` / arch JSON path. An arch is
            priced analytically (exact, no model is built) unless ``cross_check`` asks for other counters.
        resolution: input side in pixels (default: the model's own). For a model given by name it is also
            the size the model is built for (ViT/Swin position tables depend on it).
        in_chans: input channels (default: the model's; for an arch, the ones it records, as a search's
            ``best_arch.json`` does, else 3; an arch's resolution likewise defaults to its own, else 224).
        num_classes: classes (default: the model's; for an arch, the ones it records, else 1000).
        batch: images per counted forward pass (results are per image).
        cross_check: also count with fvcore, ptflops, thop and PyTorch's FlopCounterMode, and explain gaps.
        checkpoint: weights to load first (they do not change the count; a mismatch is reported).
        **overrides: timm keyword arguments for a model given by name.

    Returns:
        `CostReport` (``params``, ``macs``, ``flops``, per-category MACs, optional ``cross_check`` rows).
    """
    positive("resolution", resolution)
    positive("batch", batch)
    positive("in_chans", in_chans)
    positive("num_classes", num_classes)
    check_model_ref(model)
    check_file(checkpoint, "--checkpoint")
    from nascomp.cost.arch_cost import arch_cost_report

    is_arch = isinstance(model, Arch) or (isinstance(model, (str, os.PathLike)) and str(model).endswith(".json"))
    if is_arch and not cross_check and not checkpoint:
        unsupported = sorted(set(overrides) - {"img_size"})
        if unsupported:
            raise NascompError(f"an arch fixes the architecture; options {unsupported} cannot change it")
        if not isinstance(model, Arch):
            assert isinstance(model, (str, os.PathLike))  # is_arch: an Arch or a path ending .json
            if not Path(model).is_file():
                raise NascompError(f"arch file {model} not found")
            model = Arch.from_dict(read_json(model))
        return arch_cost_report(
            model,
            resolution or overrides.get("img_size") or model.resolution or 224,
            in_chans or model.in_chans or 3,
            num_classes or model.num_classes or 1000,
        )
    from nascomp.cost.counter import count_module
    from nascomp.models.resolve import as_model, model_input_size

    by_name = not is_module(model)
    if by_name:
        if resolution and "img_size" not in overrides:
            overrides["img_size"] = resolution  # timm ViT/Swin (and arch windows) are built for one resolution
        if in_chans:
            overrides.setdefault("in_chans", in_chans)
        if num_classes:
            overrides.setdefault("num_classes", num_classes)
    module, _ = as_model(model, checkpoint=checkpoint, **overrides)
    native_chans, native_res = model_input_size(module)
    try:
        report = count_module(module, resolution or native_res, in_chans or native_chans, batch=batch)
    except (RuntimeError, AssertionError, ValueError) as e:
        raise NascompError(
            f"the model cannot run at {resolution or native_res} px with {in_chans or native_chans} channels "
            f"({str(e).splitlines()[0][:160]}); build it for that size (e.g. img_size=...)"
        ) from None
    if cross_check:
        from nascomp.cost.crosscheck import cross_check as run_cross_check

        report.cross_check = run_cross_check(module, report)
    return report


def space_cost_range(space: SearchSpace | str, num_classes: int = 1000) -> dict:
    """A search space's size and the cost of its smallest and largest members at its own resolution.

    Args:
        space: a `SearchSpace` or a shipped space name / YAML path.
        num_classes: classes of the head the costs include (ImageNet's 1000 by default).

    Returns:
        ``{"name", "resolution", "archs", "gmacs_min", "gmacs_max", "params_min", "params_max", "description"}``.
    """
    from nascomp.cost.arch_cost import arch_cost

    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    lo, hi = (arch_cost(a, space.resolution, num_classes=num_classes) for a in (space.smallest(), space.largest()))
    return {
        "name": space.name,
        "resolution": space.resolution,
        "archs": space.size(),
        "gmacs_min": lo.macs / 1e9,
        "gmacs_max": hi.macs / 1e9,
        "params_min": lo.params,
        "params_max": hi.params,
        "description": space.description,
    }

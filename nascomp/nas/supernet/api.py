"""A trained supernet used from outside a search: inherited-weight accuracy of chosen archs, and subnet extraction."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nascomp.core.checks import check_device, check_seed, is_module, main_process, require_device
from nascomp.core.errors import NascompError
from nascomp.core.outputs import claim_output, output_lock
from nascomp.core.runlog import check_logger
from nascomp.core.validate import non_negative, positive
from nascomp.data.source import check_source
from nascomp.nas.supernet.recipe import SupernetPreset, resolve_recipe
from nascomp.spaces.arch import Arch
from nascomp.spaces.registry import load_arch
from nascomp.spaces.space import SearchSpace

if TYPE_CHECKING:
    from torch import nn

    from nascomp.data import DataBundle
    from nascomp.engine.api import TrainResult
    from nascomp.nas.supernet.model import Supernet

__all__ = ["as_supernet", "subnet_arch", "train_supernet", "SubnetScore", "evaluate_supernet", "extract_subnet"]


def check_supernet_dir(supernet: object) -> None:
    """Refuse a path that is not a supernet run directory, before torch loads (a `Supernet` object passes)."""
    if isinstance(supernet, (str, os.PathLike)):
        path = Path(supernet)
        if not path.is_dir() or not (path / "model.json").is_file():
            raise NascompError(f"{path} is not a supernet run directory (a folder with model.json, written by `nascomp supernet train`)")


def as_supernet(supernet: Supernet | str | os.PathLike) -> Supernet:
    """A `Supernet` as given, or loaded from a run directory of `nascomp.train_supernet`."""
    from nascomp.nas.supernet.model import Supernet, load_supernet

    if isinstance(supernet, Supernet):
        return supernet
    check_supernet_dir(supernet)
    return load_supernet(Path(supernet))


def train_supernet(
    space: SearchSpace | str,
    data: DataBundle | str = "fashion-mnist",
    out: str | os.PathLike | None = None,
    *,
    preset: str | SupernetPreset = "cpu",
    in_chans: int = 3,
    data_dir: str | None = None,
    resume: bool = False,
    quiet: bool = False,
    device: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    eval_archs: Mapping[str, Arch] | None = None,
    logger: str | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train a weight-entangled supernet over ``space`` (uniform or sandwich subnet sampling) into ``out``.

    Args:
        space: a `SearchSpace` or a shipped space name / YAML path.
        data: a `DataBundle` (cut to the preset's ``limit_train`` / ``limit_val``) or a dataset name (loaded so; ``data_dir``
            says where it lives).
        out: the run directory; it then loads with `nascomp.nas.supernet.load_supernet`.
        preset: ``smoke``, ``cpu``, ``full`` or a `SupernetPreset` (`nascomp.nas.supernet.recipe`); keyword ``overrides``
            replace its fields (``epochs``, ``lr``, ``resolution``, ``sampler``, ``num_random``, ``limit_train``,
            ``drop_path_rate``, ``mixup``, ``ema_decay``...) and any other `TrainConfig` field (``amp``, ``num_workers``...).
        in_chans: model input channels (grey images are repeated).
        eval_archs: archs whose inherited validation accuracy is reported every epoch (default: largest and smallest).
        resume: as for `nascomp.train`.
        quiet: as for `nascomp.train`.
        device: as for `nascomp.train`.
        seed: as for `nascomp.train`.
        overwrite: as for `nascomp.train`.
        logger: as for `nascomp.train`; the log adds ``supernet/sampled_macs``.

    Returns:
        `TrainResult` (``.out``, ``.model`` = the `Supernet`, ``.metrics`` = metrics.json).
    """
    check_logger(logger)
    if out is None:
        raise NascompError("train_supernet needs out=DIR (--out): where the checkpoints and the supernet go")
    positive("in_chans", in_chans)
    check_seed(seed)
    check_device(device)
    if isinstance(data, str):
        check_source(data, data_dir)
    space = space if isinstance(space, SearchSpace) else SearchSpace.load(space)
    recipe = resolve_recipe(preset, overrides)  # a SupernetPreset checks itself, the sampler included
    claim = claim_output(
        out,
        resume=resume,
        overwrite=overwrite,
        inputs=[data_dir],
        resumable=("a training run (checkpoints)", "a finished run (metrics.json)", "a saved model"),
    )
    from nascomp.data import load_data
    from nascomp.nas.supernet.train import fit_supernet

    require_device(device)
    bundle = (
        load_data(data, data_dir, limit_train=recipe.limit_train, limit_val=recipe.limit_val)
        if isinstance(data, str)
        else data.limited(recipe.limit_train, recipe.limit_val)
    )
    assert claim is not None  # claim_output returns None only for no path, and out was checked above
    with output_lock(claim, main_process()):
        return fit_supernet(
            space,
            bundle,
            claim.path,
            preset=preset,
            in_chans=in_chans,
            eval_archs=eval_archs,
            resume=resume,
            quiet=quiet,
            device=device,
            seed=seed,
            logger=logger,
            **overrides,
        )


def subnet_arch(supernet: Supernet, arch: Arch | str | os.PathLike) -> Arch:
    """An `Arch`, a shipped arch name or JSON path, or ``largest`` / ``smallest`` of the supernet's space."""
    if isinstance(arch, Arch):
        return arch
    if str(arch) in ("largest", "smallest"):
        return getattr(supernet.space, str(arch))()
    return load_arch(arch)


@dataclass
class SubnetScore:
    """One subnet's validation accuracy with the supernet's inherited weights (`evaluate_supernet`): top-1 and top-5 in %,
    the mean cross-entropy ``loss`` and ``n``, the images evaluated."""

    top1: float
    top5: float
    loss: float
    n: int

    def to_dict(self) -> dict:
        """``{"top1", "top5", "loss", "n"}``."""
        return asdict(self)


def evaluate_supernet(
    supernet: Supernet | str | os.PathLike,
    archs: Sequence[Arch | str],
    data: DataBundle | str = "fashion-mnist",
    *,
    batch_size: int = 256,
    device: str | None = None,
    quiet: bool = True,
    workers: int | None = None,
    **data_options,
) -> list[SubnetScore]:
    """Validation top-1/top-5 and loss of each arch with the supernet's inherited weights.

    Args:
        supernet: a `Supernet` or its run directory. archs: `Arch`es, names, JSON paths, ``largest``, ``smallest``.
        data: the dataset the supernet was trained on (a `DataBundle` or a name; ``data_options`` load it).
        batch_size: images per evaluated batch. device: where to run (default: where the supernet is).
        quiet: no progress bar.
        workers: DataLoader workers for per-image data (default: `nascomp.data.default_workers`).

    Returns:
        One `SubnetScore` (``top1``, ``top5``, ``loss``, ``n``) per arch, in order.
    """
    positive("--batch-size", batch_size)
    non_negative("--workers", workers)
    check_device(device)
    check_supernet_dir(supernet)
    if isinstance(data, str):
        check_source(data, data_options.get("data_dir"), bool(data_options.get("download")))
    from nascomp.data import load_data
    from nascomp.nas.supernet.evaluate import evaluate_archs

    net = as_supernet(supernet)
    if device:
        net.to(device)
    chosen = [subnet_arch(net, a) for a in archs]
    bundle = load_data(data, **data_options) if isinstance(data, str) else data
    if bundle.num_classes != net.num_classes:
        raise NascompError(f"{bundle.name} has {bundle.num_classes} classes, the supernet {net.num_classes}; use its training data")
    scores = evaluate_archs(
        net,
        chosen,
        bundle.val,
        bundle.transform(net.img_size, net.in_chans, train=False),
        batch_size=batch_size,
        quiet=quiet,
        workers=workers,
    )
    return [SubnetScore(**s) for s in scores]


def extract_subnet(
    supernet: Supernet | str | os.PathLike, arch: Arch | str, out: str | os.PathLike | None = None, *, overwrite: bool = False
) -> nn.Module:
    """The standalone model of one subnet with the supernet's weights (its outputs equal the supernet's for that arch).

    Args:
        supernet: a `Supernet` or its run directory.
        arch: an `Arch`, a shipped arch name or JSON path, ``largest`` or ``smallest``.
        out: if given, the folder to save it in (it then loads as a model everywhere); a folder holding another
            model or run is refused unless ``overwrite``.

    Returns:
        A timm ``SwinTransformer``.
    """
    claim = claim_output(out, overwrite=overwrite, inputs=[supernet if not is_module(supernet) else None])
    check_supernet_dir(supernet)
    if not isinstance(arch, Arch) and str(arch) not in ("largest", "smallest"):
        load_arch(arch)  # an unknown name or a bad JSON fails here
    from nascomp.models.io import save_model
    from nascomp.models.resolve import SPEC_ATTR
    from nascomp.models.swin import arch_spec
    from nascomp.nas.supernet.extract import extract
    from nascomp.nas.supernet.model import Supernet

    net = as_supernet(supernet)
    chosen = subnet_arch(net, arch)
    model = extract(net, chosen)
    spec = arch_spec(chosen, net.num_classes, net.in_chans, net.img_size, net.drop_path_rate)
    model.__dict__[SPEC_ATTR] = spec
    if claim is not None:
        with output_lock(claim):
            source = {
                "supernet": str(supernet) if not isinstance(supernet, Supernet) else "module",
                "arch": str(arch) if not isinstance(arch, Arch) else chosen.to_dict(),
            }
            save_model(claim.path, model, spec, {"source": source})
    return model

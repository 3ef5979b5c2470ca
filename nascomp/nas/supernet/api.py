"""A trained supernet used from outside a search: inherited-weight accuracy of chosen archs, and subnet extraction."""

from __future__ import annotations

import os
from typing import Sequence

from torch import nn

from nascomp.core.errors import NascompError
from nascomp.core.validate import non_negative, output_dir, positive
from nascomp.data import DataBundle, load_data
from nascomp.models.io import save_model
from nascomp.models.resolve import SPEC_ATTR
from nascomp.models.swin import arch_spec
from nascomp.nas.supernet.evaluate import evaluate_archs
from nascomp.nas.supernet.extract import extract
from nascomp.nas.supernet.model import Supernet, load_supernet
from nascomp.spaces.arch import Arch
from nascomp.spaces.registry import load_arch

__all__ = ["as_supernet", "subnet_arch", "evaluate_supernet", "extract_subnet"]


def as_supernet(supernet: Supernet | str | os.PathLike) -> Supernet:
    """A `Supernet` as given, or loaded from a run directory of `nascomp.train_supernet`."""
    return supernet if isinstance(supernet, Supernet) else load_supernet(supernet)


def subnet_arch(supernet: Supernet, arch: Arch | str | os.PathLike) -> Arch:
    """An `Arch`, a shipped arch name or JSON path, or ``largest`` / ``smallest`` of the supernet's space."""
    if isinstance(arch, Arch):
        return arch
    if str(arch) in ("largest", "smallest"):
        return getattr(supernet.space, str(arch))()
    return load_arch(arch)


def evaluate_supernet(supernet: Supernet | str | os.PathLike, archs: Sequence[Arch | str], data: DataBundle | str = "fashion-mnist", *,
                      batch_size: int = 256, device: str | None = None, quiet: bool = True, workers: int | None = None,
                      **data_options) -> list[dict]:
    """Validation top-1/top-5 and loss of each arch with the supernet's inherited weights.

    Args:
        supernet: a `Supernet` or its run directory. archs: `Arch`es, names, JSON paths, ``largest``, ``smallest``.
        data: the dataset the supernet was trained on (a `DataBundle` or a name; ``data_options`` load it).
        batch_size: images per evaluated batch. device: where to run (default: where the supernet is).
        quiet: no progress bar.
        workers: DataLoader workers for per-image data (default: `nascomp.data.default_workers`).

    Returns:
        One ``{"top1", "top5", "loss", "n"}`` per arch, in order.
    """
    positive("--batch-size", batch_size)
    non_negative("--workers", workers)
    net = as_supernet(supernet)
    if device:
        net.to(device)
    chosen = [subnet_arch(net, a) for a in archs]
    bundle = data if isinstance(data, DataBundle) else load_data(data, **data_options)
    if bundle.num_classes != net.num_classes:
        raise NascompError(f"{bundle.name} has {bundle.num_classes} classes, the supernet {net.num_classes}; use its training data")
    return evaluate_archs(net, chosen, bundle.val, bundle.transform(net.img_size, net.in_chans, train=False), batch_size=batch_size, quiet=quiet,
                          workers=workers)


def extract_subnet(supernet: Supernet | str | os.PathLike, arch: Arch | str, out: str | os.PathLike | None = None) -> nn.Module:
    """The standalone model of one subnet with the supernet's weights (its outputs equal the supernet's for that arch).

    Args:
        supernet: a `Supernet` or its run directory.
        arch: an `Arch`, a shipped arch name or JSON path, ``largest`` or ``smallest``.
        out: if given, the folder to save it in (it then loads as a model everywhere).

    Returns:
        A timm ``SwinTransformer``.
    """
    out = output_dir(out)
    net = as_supernet(supernet)
    chosen = subnet_arch(net, arch)
    model = extract(net, chosen)
    spec = arch_spec(chosen, net.num_classes, net.in_chans, net.img_size, net.drop_path_rate)
    model.__dict__[SPEC_ATTR] = spec
    if out is not None:
        save_model(out, model, spec, {"source": {"supernet": str(supernet) if not isinstance(supernet, Supernet) else "module",
                                                  "arch": str(arch) if not isinstance(arch, Arch) else chosen.to_dict()}})
    return model

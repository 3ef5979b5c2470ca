"""Inherited-weight accuracy of many archs, cheaply: what search and E-T error evaluation call in a loop.

The evaluation images are decoded once (`nascomp.data.DecodedEvalSet`, kept while they fit in
``cache_bytes``), then every arch only costs its forward passes: ``set_arch`` switches the subnet
without rebuilding, and LayerNorm-only networks need no batch-norm recalibration.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.utils.data import Dataset

from nascomp.core.progress import progress_bar
from nascomp.data import BatchTransform, DecodedEvalSet, SampleTransform
from nascomp.engine import Tally
from nascomp.nas.supernet.model import Supernet
from nascomp.spaces.arch import Arch

__all__ = ["evaluate_archs"]


@torch.no_grad()
def evaluate_archs(
    supernet: Supernet,
    archs: Iterable[Arch],
    dataset: Dataset,
    transform: BatchTransform | SampleTransform,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    amp: bool = True,
    cache_bytes: int | None = None,
    quiet: bool = True,
    workers: int | None = None,
    images: DecodedEvalSet | None = None,
) -> list[dict]:
    """Top-1 / top-5 (%) and mean cross-entropy of each arch with the supernet's weights, in order.

    ``transform`` is ``bundle.transform(resolution, in_chans, train=False)``. The supernet's active arch
    and train/eval mode are restored afterwards. On CUDA, ``amp`` runs in bfloat16 autocast. ``workers``:
    DataLoader workers for per-image data (default: `nascomp.data.default_workers`). ``images``: the same
    split already decoded by an earlier call (`SupernetScorer` keeps one); ``cache_bytes`` caps a new one
    (default: `nascomp.data.default_cache_bytes`).
    """
    archs = list(archs)
    device = torch.device(device) if device else next(supernet.parameters()).device
    if images is None:
        images = DecodedEvalSet(dataset, transform, batch_size=batch_size, device=device, workers=workers, max_bytes=cache_bytes)
    previous, was_training = supernet.arch, supernet.training
    supernet.eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp and device.type == "cuda" else torch.autocast("cpu", enabled=False)
    results = []
    try:
        with progress_bar(not quiet) as bars:
            task = bars.add_task("subnets", total=len(archs), info="")
            for arch in archs:
                supernet.set_arch(arch)
                tally = Tally()
                for x, y in images.batches():
                    with autocast:
                        logits = supernet(x).float()
                    tally.add(logits, y)
                results.append(tally.summary())
                bars.update(task, advance=1, info=f"top-1 {results[-1]['top1']:.2f}%")
    finally:
        supernet.set_arch(previous)
        supernet.train(was_training)
    return results

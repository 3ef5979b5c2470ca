"""Top-1/top-5 accuracy and cross-entropy of a model on a dataset, sharded across DDP ranks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from nascomp.core.distributed import DistInfo, all_reduce_sum
from nascomp.core.errors import NascompError
from nascomp.data import BatchTransform, SampleTransform, make_loader, resolve_workers

__all__ = ["evaluate", "Tally"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    transform: BatchTransform | SampleTransform,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    dist_info: DistInfo | None = None,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    workers: int | None = None,
) -> dict:
    """Top-1/top-5 accuracy (%) and mean cross-entropy; sharded across DDP ranks without padding.

    ``workers``: DataLoader workers for per-image data (default: `nascomp.data.default_workers`).
    """
    dist_info = dist_info or DistInfo(device=torch.device(device))
    indices = range(dist_info.rank, len(dataset), dist_info.world_size)  # type: ignore[arg-type]  # map-style datasets define __len__
    loader = make_loader(
        dataset, transform, batch_size, indices=indices, workers=resolve_workers(workers, dist_info.world_size), device=dist_info.device
    )
    was_training = model.training
    model.eval()
    forward = forward or model
    tally = Tally()
    for images, targets in loader:
        images, targets = images.to(dist_info.device), targets.to(dist_info.device)
        tally.add(forward(images).float(), targets)
    model.train(was_training)
    return Tally(*all_reduce_sum(tally.totals(), dist_info)).summary()


@dataclass
class Tally:
    """Top-1/top-5 hits and summed cross-entropy over batches: the one definition every evaluator shares."""

    correct1: float = 0.0
    correct5: float = 0.0
    loss_sum: float = 0.0
    count: float = 0.0

    def add(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
        hits = logits.topk(min(5, logits.shape[1]), dim=1).indices.eq(targets.view(-1, 1))
        self.correct1 += hits[:, 0].sum().item()
        self.correct5 += hits.any(dim=1).sum().item()
        self.count += len(targets)

    def totals(self) -> list[float]:
        return [self.correct1, self.correct5, self.loss_sum, self.count]

    def summary(self) -> dict:
        if self.count == 0:
            raise NascompError("evaluation set is empty; check --limit-* options")
        n = self.count
        return {"top1": 100.0 * self.correct1 / n, "top5": 100.0 * self.correct5 / n, "loss": self.loss_sum / n, "n": int(n)}

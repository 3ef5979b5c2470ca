"""Few-shot training sets: K images of every class, drawn deterministically from a seed."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset, Subset

from nascomp.core.errors import NascompError

__all__ = ["few_shot_subset"]


def few_shot_subset(dataset: Dataset, shots: int, seed: int, min_size: int = 0) -> Subset:
    """``shots`` images of every class, drawn deterministically from ``seed``; repeated to ``min_size`` if asked."""
    if shots < 1:
        raise NascompError("--shots must be at least 1")
    targets = dataset.targets() if hasattr(dataset, "targets") else torch.tensor([dataset[i][1] for i in range(len(dataset))])  # type: ignore[arg-type]  # map-style datasets define __len__
    gen = torch.Generator().manual_seed(seed)
    chosen = []
    for c in torch.unique(targets).tolist():
        pool = torch.nonzero(targets == c).flatten()
        if len(pool) < shots:
            raise NascompError(f"class {c} has only {len(pool)} training images; lower --shots")
        chosen += pool[torch.randperm(len(pool), generator=gen)[:shots]].tolist()
    repeats = max(1, math.ceil(min_size / len(chosen)))
    return Subset(dataset, chosen * repeats)

"""DataLoaders that can feed a GPU: per-image work in worker processes, pinned memory, persistent workers.

`make_loader` builds every loader nascomp uses (training, validation, test, candidate scoring) from a
dataset and one of the two transforms of `nascomp.data.transforms`:

- a per-image transform (RGB data) runs inside ``workers`` DataLoader processes, so JPEG decoding and
  augmentation scale with cores; on CUDA the batches land in pinned memory and the workers persist across
  epochs. Each image is augmented under its own seed (`nascomp.data.sampling`), set in whichever process
  decodes it, so results do not depend on the number of workers and a resumed run is bit-identical on CPU
  (without workers, the training process's generators are put back after each batch);
- a batch transform (small in-memory grey data) runs in the training process (indexing a tensor needs no
  workers), exactly as before workers existed, so the recorded Fashion-MNIST runs reproduce.

`default_workers` picks the worker count when the user gives none: ``min(8, cores per process - 1)``, and 0
where that would leave fewer than 2 workers (on a 1-2 core machine the training process needs the cores, and
one worker only moves the same work into another process).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset, get_worker_info

from nascomp.core.validate import non_negative

__all__ = ["default_workers", "resolve_workers", "seed_image", "kept_generators", "PerImage", "make_loader"]

MAX_WORKERS = 8


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(local_processes: int = 1, cores: int | None = None) -> int:
    """Workers per process: min(8, cores per process - 1), or 0 when that is below 2 (see the module docstring)."""
    per_process = (cores or _cores()) // max(1, local_processes)
    workers = min(MAX_WORKERS, per_process - 1)
    return workers if workers >= 2 else 0


def resolve_workers(workers: int | None, local_processes: int = 1) -> int:
    """The user's ``--workers`` (checked), or `default_workers` when it is ``None``."""
    non_negative("--workers", workers)
    return default_workers(local_processes) if workers is None else int(workers)


def seed_image(seed: int) -> None:
    """Seed Python's, numpy's and torch's CPU generators (what timm/torchvision transforms draw from); never CUDA's."""
    random.seed(seed)
    np.random.seed(seed)
    torch.random.default_generator.manual_seed(seed)


@contextlib.contextmanager
def kept_generators() -> Iterator[None]:
    """In the training process (no workers), put the CPU generators back afterwards, so dropout, subnet sampling
    and Mixup continue the same streams whatever the data pipeline drew; in a worker there is nothing to keep."""
    if get_worker_info() is not None:
        yield
        return
    states = random.getstate(), np.random.get_state(), torch.random.default_generator.get_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.default_generator.set_state(states[2])


class PerImage(Dataset):
    """``dataset`` seen through a per-image transform; a key is an index or ``(index, augmentation seed)``.

    A batch is fetched in one `__getitems__` call, so keeping the training process's generators costs one
    save and restore per batch (~0.3 ms), not per image.
    """

    def __init__(self, dataset: Dataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]  # a map-style dataset has __len__; torch's Dataset does not declare it

    def _one(self, key: Any) -> tuple[torch.Tensor, int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        image, label = self.dataset[index]
        if seed is not None:
            seed_image(seed)
        return self.transform(image), label

    def __getitem__(self, key: Any) -> tuple[torch.Tensor, int]:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list) -> list[tuple[torch.Tensor, int]]:
        if not any(isinstance(k, tuple) for k in keys):  # evaluation: deterministic transforms
            return [self._one(k) for k in keys]
        with kept_generators():
            return [self._one(k) for k in keys]


def make_loader(
    dataset: Dataset,
    transform,
    batch_size: int,
    *,
    sampler: Sampler | None = None,
    indices: Sequence[int] | None = None,
    workers: int = 0,
    device: torch.device | str = "cpu",
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader over ``dataset`` (or its ``indices``) in ``sampler``'s order (default: in order).

    ``transform`` is a `BatchTransform` or a `SampleTransform` (``bundle.transform(...)``). Workers, pinned
    memory and persistent workers only apply to per-image transforms; reuse the loader across epochs (call the
    sampler's ``set_epoch``) so persistent workers stay up.
    """
    if indices is not None:
        dataset = Subset(dataset, list(indices))
    device = torch.device(device)
    if transform.per_sample is None:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, drop_last=drop_last, collate_fn=transform.collate)
    return DataLoader(
        PerImage(dataset, transform.per_sample),
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        drop_last=drop_last,
        collate_fn=transform.collate,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),  # worker base seeds come from here, not from the global stream
    )

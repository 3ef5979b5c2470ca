"""Which training images one process sees in one epoch, in which order, and with which augmentation seed.

The order is a pure function of (seed, epoch, rank): a resumed run rebuilds it exactly and can start at any
step inside the epoch. With ``repeats > 1`` the order comes from timm's `RepeatAugSampler` (DeiT's repeated
augmentation: every image appears ``repeats`` times per epoch, each copy on a different rank under DDP, and
an epoch keeps the dataset's length). Each rank only ever lists its own shard, so its DataLoader workers
decode only those images.

Images decoded and augmented one by one (`nascomp.data.transforms.SampleTransform`) get their own seed,
derived from (seed, epoch, rank, position in the epoch): the augmentation of an image does not depend on
which worker processes it, on how many workers there are, or on where a resumed run restarted.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from nascomp.core.errors import NascompError

__all__ = ["epoch_seed", "sample_seed", "EpochSampler"]


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed everything random in epoch ``epoch`` of a run with seed ``seed`` starts from."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % 2**31


def sample_seed(seed: int, epoch: int, rank: int, position: int) -> int:
    """The augmentation seed of the image at ``position`` of ``rank``'s order in ``epoch`` (fits numpy's 32 bits)."""
    return (epoch_seed(seed, epoch) * 2_654_435_761 + rank * 40_503 + position * 97) % 2**32


class EpochSampler(Sampler):
    """Indices of this rank's images for the current epoch, from ``start_step`` on; set the epoch before iterating.

    With ``keyed`` each item is ``(index, augmentation seed)`` for per-image pipelines; otherwise a plain index.
    """

    def __init__(
        self, size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1, repeats: int = 1, keyed: bool = False
    ):
        if size < 1:
            raise NascompError("the training set is empty; check --limit-train and the data folder")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.rank, self.world_size, self.repeats, self.keyed = rank, world_size, repeats, keyed
        self.epoch, self.start_step = 0, 0

    @property
    def samples_per_rank(self) -> int:
        return len(self._repeat_sampler()) if self.repeats > 1 else self.size // self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.samples_per_rank // self.batch_size)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def order(self) -> list[int]:
        """This rank's indices for the whole epoch."""
        if self.repeats > 1:
            sampler = self._repeat_sampler()
            sampler.set_epoch(epoch_seed(self.seed, self.epoch))  # timm seeds its shuffle with the "epoch" it is given
            return list(sampler)
        perm = torch.randperm(self.size, generator=torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch)))
        return perm[self.rank :: self.world_size][: self.samples_per_rank].tolist()

    def _repeat_sampler(self):
        from timm.data.distributed_sampler import RepeatAugSampler

        return RepeatAugSampler(range(self.size), num_replicas=self.world_size, rank=self.rank, shuffle=True, num_repeats=self.repeats)

    def __iter__(self) -> Iterator:
        first = self.start_step * self.batch_size
        order = self.order()
        for position in range(first, len(order)):
            index = order[position]
            yield (index, sample_seed(self.seed, self.epoch, self.rank, position)) if self.keyed else index

    def __len__(self) -> int:
        return max(0, self.samples_per_rank - self.start_step * self.batch_size)

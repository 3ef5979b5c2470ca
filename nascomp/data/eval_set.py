"""An evaluation split decoded once and reused: what search scores hundreds of subnets against.

Search runs every candidate over the same validation images. Decoding and resizing them again for each
candidate costs more than the candidate's forward pass on a GPU (25,000 JPEGs at 224 px per candidate in
the ``full`` preset), so `DecodedEvalSet` decodes them once and keeps them on the scoring device. RGB
images (timm's eval transform: resize, centre crop, to-tensor, normalise) are kept as the uint8 crop on
a GPU, and on a CPU when the float input would not fit: four times smaller (25,000 images at 224 px take
3.8 GB instead of 15 GB), and each pass only converts and normalises, with the same float operations as
the transform, so the inputs are bit-identical. Otherwise (a CPU with room, the batched Fashion-MNIST
path) the float input is kept, as the CPU would spend ~1 ms an image converting. A set larger than
``max_bytes`` even as uint8 is streamed through the loader on every pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset

from nascomp.data.loader import make_loader, resolve_workers
from nascomp.data.transforms import BatchTransform, SampleTransform, adapt_channels

__all__ = ["DecodedEvalSet", "default_cache_bytes"]


def default_cache_bytes(device: str | torch.device = "cpu") -> int:
    """A quarter of the device's memory (the host's for the CPU), at most 16 GiB: the cache lives beside the model."""
    device = torch.device(device)
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = 8 * 2**30
    return min(16 * 2**30, total // 4)


def _split_normalize(transform: BatchTransform | SampleTransform):
    """(a transform to the uint8 crop, mean, std) when the float input is that crop / 255, normalised; else None."""
    if not isinstance(transform, SampleTransform):
        return None
    from torchvision import transforms as T

    ops = getattr(transform.transform, "transforms", None)
    if not ops or len(ops) < 2 or not isinstance(ops[-1], T.Normalize) or type(ops[-2]).__name__ not in ("ToTensor", "MaybeToTensor"):
        return None
    norm = ops[-1]
    # per_sample hands the transform an RGB PIL image, which to-tensor turns into its uint8 values / 255
    return SampleTransform(T.Compose([*ops[:-2], T.PILToTensor()]), in_chans=3), norm.mean, norm.std


class DecodedEvalSet:
    """Batches of (model input, labels) for a fixed evaluation split, decoded at most once."""

    def __init__(
        self,
        dataset: Dataset,
        transform: BatchTransform | SampleTransform,
        *,
        batch_size: int = 256,
        device: str | torch.device = "cpu",
        workers: int | None = None,
        max_bytes: int | None = None,
    ):
        self.dataset, self.transform, self.batch_size = dataset, transform, batch_size
        self.device = torch.device(device)
        self.workers = resolve_workers(workers)
        self.max_bytes = default_cache_bytes(self.device) if max_bytes is None else max_bytes
        self.decodes = 0  # passes over the dataset's images (1 once kept; one per pass when streamed)
        self._kept: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._normalize: tuple[torch.Tensor, torch.Tensor] | None = None
        self._streamed = False

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]  # a map-style dataset has __len__; torch's Dataset does not declare it

    @property
    def nbytes(self) -> int:
        """Bytes of images kept (0 before the first pass, or when streamed)."""
        return sum(x.numel() * x.element_size() for x, _ in self._kept or [])

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(float input, labels) on ``device``, batch by batch; the first pass decides whether to keep them."""
        if self._kept is None and not self._streamed:
            self._keep_or_stream()
        if self._kept is None:
            self.decodes += 1
            for x, y in make_loader(self.dataset, self.transform, self.batch_size, workers=self.workers, device=self.device):
                yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            return
        for x, y in self._kept:
            yield (self._to_input(x) if self._normalize is not None else x), y

    def _keep_or_stream(self) -> None:
        sample = self.transform([self.dataset[0]])[0]
        n = len(self)
        keep_bytes = n * sample[0].numel() * sample.element_size()  # the float input
        split = _split_normalize(self.transform)
        if split and (self.device.type == "cuda" or keep_bytes > self.max_bytes):
            keep_bytes = n * 3 * sample.shape[-2] * sample.shape[-1]  # the RGB uint8 crop
        else:
            split = None  # room for the float input on a CPU: a pass then costs nothing
        if keep_bytes > self.max_bytes:
            self._streamed = True
            return
        raw = split[0] if split else self.transform
        kept = []
        self.decodes += 1
        for x, y in make_loader(self.dataset, raw, self.batch_size, workers=self.workers, device=self.device):
            kept.append((x.to(self.device), y.to(self.device)))
        if split:
            _, mean, std = split
            self._normalize = (
                torch.as_tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1),
                torch.as_tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1),
            )
        self._kept = kept

    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        """The same float operations as to-tensor, Normalize and the channel adapter, on a whole batch."""
        assert self._normalize is not None  # called only once _keep_or_stream has set it
        mean, std = self._normalize
        x = x.to(torch.float32).div(255).sub_(mean).div_(std)
        return adapt_channels(x, self.transform.in_chans, dim=1).contiguous()

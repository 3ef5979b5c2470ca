"""The two ways a sample becomes the model's normalised float input.

- `BatchTransform` (small in-memory grey data such as Fashion-MNIST): the collate function converts a whole
  uint8 batch to float, adapts channels (1→3 for RGB models), resizes, augments (flip and shift, training
  only) and normalises in the training process. Doing this per batch keeps Fashion-MNIST at 224 px cheap:
  the 28×28 originals stay in memory and are upsampled only when used.
- `SampleTransform` (RGB data: image folders, CIFAR-10): each image is decoded and augmented on its own by
  timm's transforms (`nascomp.data.recipe`), inside DataLoader workers, so the JPEG and augmentation work
  runs in parallel; the collate function only stacks.

Both are callable on a list of ``(image, label)`` samples (handy for a few images in the calling process);
loaders use ``per_sample`` and ``collate`` (`nascomp.data.loader.make_loader`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nascomp.core.errors import NascompError

__all__ = ["BatchTransform", "SampleTransform", "stack_batch", "adapt_channels"]


@dataclass
class BatchTransform:
    """Collate function: uint8 batch → normalised float batch at the model's resolution and channels."""

    resolution: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: bool = False
    per_sample = None  # the whole batch is transformed at once, in the process that trains

    def collate(self, batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return self(batch)

    def __call__(self, batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([b[0] for b in batch]).float().div_(255.0)
        labels = torch.tensor([b[1] for b in batch], dtype=torch.long)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        images = (images - mean) / std
        if self.train:
            images = self._augment(images)
        images = adapt_channels(images, self.in_chans, dim=1)
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            images = F.interpolate(images, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False, antialias=True)
        return images.contiguous(), labels

    @staticmethod
    def _augment(images: torch.Tensor) -> torch.Tensor:
        """Random horizontal flip and a random shift of up to 1/8 of the side (zero = mean padding)."""
        n, _, h, w = images.shape
        flip = torch.rand(n) < 0.5
        images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
        pad = max(1, h // 8)
        padded = F.pad(images, (pad, pad, pad, pad))
        dx = torch.randint(0, 2 * pad + 1, (n,))
        dy = torch.randint(0, 2 * pad + 1, (n,))
        rows = (dy.view(-1, 1) + torch.arange(h)).view(n, 1, h, 1).expand(n, images.shape[1], h, w + 2 * pad)
        shifted = padded.gather(2, rows)
        cols = (dx.view(-1, 1) + torch.arange(w)).view(n, 1, 1, w).expand(n, images.shape[1], h, w)
        return shifted.gather(3, cols)


def adapt_channels(images: torch.Tensor, in_chans: int, dim: int = 0) -> torch.Tensor:
    """Grey images repeated for an RGB model, RGB averaged for a grey one; anything else is a user error."""
    have = images.shape[dim]
    if have == in_chans:
        return images
    if have == 1:
        return images.expand(*[in_chans if d == dim else -1 for d in range(images.ndim)])
    if in_chans == 1:
        return images.mean(dim, keepdim=True)
    raise NascompError(f"cannot feed {have}-channel images to a {in_chans}-channel model")


def stack_batch(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate already-transformed samples. torch's default collate stacks straight into shared memory inside
    a worker, so the batch reaches the training process without another copy."""
    from torch.utils.data import default_collate

    return tuple(default_collate(batch))


@dataclass
class SampleTransform:
    """One image (PIL, or a uint8 C×H×W tensor) → a normalised float C×H×W tensor through a timm transform."""

    transform: Callable[[Any], torch.Tensor]
    in_chans: int

    def per_sample(self, image: Any) -> torch.Tensor:
        if isinstance(image, torch.Tensor):  # in-memory RGB data (CIFAR-10) stored as uint8 tensors
            from PIL import Image

            array = image.permute(1, 2, 0).numpy()
            image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else np.ascontiguousarray(array))
        if getattr(image, "mode", "RGB") != "RGB":
            image = image.convert("RGB")
        return adapt_channels(self.transform(image), self.in_chans).contiguous()

    collate = staticmethod(stack_batch)

    def __call__(self, batch: list[tuple[Any, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return stack_batch([(self.per_sample(x), y) for x, y in batch])

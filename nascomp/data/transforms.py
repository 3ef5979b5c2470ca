"""The batched transform: a list of uint8 images becomes the model's normalised float input.

`BatchTransform` (the DataLoader's collate function) converts a batch to float, adapts channels (1→3 for
RGB models), resizes to the requested resolution, augments (training only) and normalises. Doing this per
batch keeps Fashion-MNIST at 224 px cheap: the 28×28 originals stay in memory and are upsampled only when used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nascomp.core.errors import NascompError

__all__ = ["BatchTransform"]


@dataclass
class BatchTransform:
    """Collate function: uint8 batch → normalised float batch at the model's resolution and channels."""

    resolution: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: bool = False

    def __call__(self, batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.stack([b[0] for b in batch]).float().div_(255.0)
        labels = torch.tensor([b[1] for b in batch], dtype=torch.long)
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        images = (images - mean) / std
        if self.train:
            images = self._augment(images)
        if images.shape[1] != self.in_chans:
            if images.shape[1] == 1:
                images = images.expand(-1, self.in_chans, -1, -1)
            elif self.in_chans == 1:
                images = images.mean(1, keepdim=True)
            else:
                raise NascompError(f"cannot feed {images.shape[1]}-channel images to a {self.in_chans}-channel model")
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

"""Synthetic stripe images the tests train on (no network, no Debian package), as arrays or as an RGB JPEG image folder.

Ten learnable classes (stripe period 2..6 px x orientation): a tiny ViT learns them within a few dozen steps.
benchmarks/gpu/check.py writes them too where Fashion-MNIST is not installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nascomp.data.folders import write_class_folders

__all__ = ["stripes", "synthetic_tree"]


def stripes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 grey images of 10 learnable classes (stripe period 2..6 px x orientation) and their labels."""
    grid = np.arange(28)
    labels = rng.integers(0, 10, size=n)
    period, vertical = 2 + labels % 5, labels >= 5
    rows = np.broadcast_to((grid[None, :, None] // period[:, None, None]) % 2, (n, 28, 28))
    cols = np.broadcast_to((grid[None, None, :] // period[:, None, None]) % 2, (n, 28, 28))
    images = rng.integers(0, 40, size=(n, 28, 28)) + 200 * np.where(vertical[:, None, None], cols, rows)
    return images.astype(np.uint8), labels


def synthetic_tree(root: str | Path, n_train: int, n_val: int, size: int, seed: int = 0, processes: int = 1) -> Path:
    """The stripe classes as ``root/train`` and ``root/val`` RGB JPEG trees at ``size`` px."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        images, labels = stripes(n, rng)
        write_class_folders(images, labels, root / split, [f"c{c}" for c in range(10)], size=size, processes=processes)
    return root

"""Write grey images (Fashion-MNIST, or synthetic stripes) as an RGB JPEG image folder.

nascomp's real-data path (decode, timm augmentation, workers) needs JPEG files on disk; these machines
have no ImageNet, so benchmarks, the GPU check and the end-to-end tests write Fashion-MNIST (or, where it is
not installed, the synthetic stripe classes the tests use) into ``root/train/<class>/<n>.jpg`` and
``root/val/...`` at the size they need.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["stripes", "write_jpeg_tree", "fashion_mnist_tree", "synthetic_tree"]


def stripes(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28x28 grey images of 10 learnable classes (stripe period 2..6 px x orientation) and their labels."""
    grid = np.arange(28)
    labels = rng.integers(0, 10, size=n)
    period, vertical = 2 + labels % 5, labels >= 5
    rows = np.broadcast_to((grid[None, :, None] // period[:, None, None]) % 2, (n, 28, 28))
    cols = np.broadcast_to((grid[None, None, :] // period[:, None, None]) % 2, (n, 28, 28))
    images = rng.integers(0, 40, size=(n, 28, 28)) + 200 * np.where(vertical[:, None, None], cols, rows)
    return images.astype(np.uint8), labels


def _write(job: tuple[np.ndarray, list[Path], int, int]) -> None:
    from PIL import Image

    images, paths, size, quality = job
    for image, path in zip(images, paths):
        Image.fromarray(image).convert("RGB").resize((size, size), Image.BICUBIC).save(path, quality=quality)


def write_jpeg_tree(images: np.ndarray, labels: Sequence[int], root: str | Path, size: int, class_names: Sequence[str], quality: int = 90,
                    processes: int = 1) -> Path:
    """``images`` (N×H×W uint8, grey) resized to ``size`` px and saved as RGB JPEGs under ``root/<class>/``."""
    root = Path(root)
    for name in class_names:
        (root / name).mkdir(parents=True, exist_ok=True)
    paths = [root / class_names[int(label)] / f"{i:06d}.jpg" for i, label in enumerate(labels)]
    chunks = max(1, processes * 4)
    jobs = [(images[i::chunks], paths[i::chunks], size, quality) for i in range(chunks)]
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(_write, jobs))
    else:
        for job in jobs:
            _write(job)
    return root


def fashion_mnist_tree(root: str | Path, n_train: int, n_val: int, size: int, data_dir: str | Path | None = None, processes: int = 1) -> Path:
    """The first ``n_train`` Fashion-MNIST training and ``n_val`` test images as ``root/train`` and ``root/val`` JPEG trees."""
    from nascomp.data.datasets import FASHION_MNIST_CLASSES, load_data

    bundle = load_data("fashion-mnist", data_dir)
    root = Path(root)
    names = [c.replace("/", "-") for c in FASHION_MNIST_CLASSES]
    for split, dataset, n in (("train", bundle.train, n_train), ("val", bundle.test, n_val)):
        idx = dataset.indices[:n]
        write_jpeg_tree(dataset.images[idx, 0].numpy(), dataset.labels[idx].tolist(), root / split, size, names, processes=processes)
    return root


def synthetic_tree(root: str | Path, n_train: int, n_val: int, size: int, seed: int = 0, processes: int = 1) -> Path:
    """The stripe classes as ``root/train`` and ``root/val`` JPEG trees (for machines without Fashion-MNIST)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        images, labels = stripes(n, rng)
        write_jpeg_tree(images, labels, root / split, size, [f"c{c}" for c in range(10)], processes=processes)
    return root

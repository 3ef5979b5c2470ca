"""Write grey images (Fashion-MNIST, or the tests' synthetic stripes) as an RGB JPEG image folder.

nascomp's real-data path (decode, timm augmentation, workers) needs JPEG files on disk; these machines
have no ImageNet, so benchmarks, the GPU check and the end-to-end tests write Fashion-MNIST into
``root/train/<class>/<n>.jpg`` (+ ``root/val/...``) at the size they need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["write_jpeg_tree", "fashion_mnist_tree"]


def write_jpeg_tree(images: np.ndarray, labels: Sequence[int], root: str | Path, size: int, class_names: Sequence[str] | None = None,
                    quality: int = 90) -> Path:
    """``images`` (N×H×W uint8, grey) resized to ``size`` px and saved as RGB JPEGs under ``root/<class>/``."""
    from PIL import Image

    root = Path(root)
    names = list(class_names) if class_names is not None else [f"class{c:02d}" for c in range(int(max(labels)) + 1)]
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        rgb = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB").resize((size, size), Image.BICUBIC)
        rgb.save(root / names[int(label)] / f"{i:06d}.jpg", quality=quality)
    return root


def fashion_mnist_tree(root: str | Path, n_train: int, n_val: int, size: int, data_dir: str | Path | None = None) -> Path:
    """The first ``n_train`` Fashion-MNIST training and ``n_val`` test images as ``root/train`` and ``root/val`` JPEG trees."""
    from nascomp.data.datasets import FASHION_MNIST_CLASSES, load_data

    bundle = load_data("fashion-mnist", data_dir)
    root = Path(root)
    for split, dataset, n in (("train", bundle.train, n_train), ("val", bundle.test, n_val)):
        idx = dataset.indices[:n]
        write_jpeg_tree(dataset.images[idx, 0].numpy(), dataset.labels[idx].tolist(), root / split, size,
                        [c.replace("/", "-") for c in FASHION_MNIST_CLASSES])
    return root

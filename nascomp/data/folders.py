"""Write in-memory images (Fashion-MNIST, CIFAR-10, or any uint8 array) as an image folder on disk.

nascomp's per-image path (decode, timm augmentation, DataLoader workers) reads ``imagefolder:ROOT``; a machine
without ImageNet can still exercise and time it by writing an installed in-memory dataset as a
``ROOT/train/<class>/<n>.jpg`` + ``ROOT/val/<class>/<n>.jpg`` tree at the size it needs (`write_image_folder`), or
any labelled uint8 array as ``ROOT/<class>/`` (`write_class_folders`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nascomp.core.errors import NascompError
from nascomp.core.validate import non_negative, positive

if TYPE_CHECKING:
    from nascomp.data.datasets import DataBundle

__all__ = ["write_class_folders", "write_image_folder"]

FORMATS = {"jpeg": ".jpg", "png": ".png"}


def _as_hwc(images: np.ndarray) -> np.ndarray:
    """N×H×W (grey), N×1×H×W or N×3×H×W uint8 as N×H×W or N×H×W×3 (the layouts PIL takes)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise NascompError(f"images must be uint8, got {images.dtype}")
    if images.ndim == 4 and images.shape[1] in (1, 3):
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
        raise NascompError(f"images must be N×H×W or N×C×H×W with C = 1 or 3, got shape {tuple(images.shape)}")
    return images


def _write(job: tuple[np.ndarray, list[Path], int | None, int]) -> None:
    from PIL import Image

    images, paths, size, quality = job
    for image, path in zip(images, paths):
        im = Image.fromarray(image).convert("RGB")
        if size is not None:
            im = im.resize((size, size), Image.Resampling.BICUBIC)
        im.save(path, quality=quality) if path.suffix == ".jpg" else im.save(path)


def write_class_folders(
    images: np.ndarray,
    labels: Sequence[int],
    root: str | os.PathLike,
    class_names: Sequence[str],
    *,
    size: int | None = None,
    format: str = "jpeg",
    quality: int = 90,
    processes: int = 1,
) -> Path:
    """Save ``images`` as RGB files under ``root/<class name>/<index:06d>.jpg`` (or ``.png``); return ``root``.

    ``images``: uint8, N×H×W (grey), N×1×H×W or N×3×H×W; ``labels``: N integers indexing ``class_names`` (a ``/`` in a
    name becomes ``-``). ``size`` resizes every image to size×size px (bicubic; None keeps its size). ``format``:
    ``jpeg`` (at ``quality``) or ``png``. ``processes`` > 1 encodes in that many worker processes. Every class gets a
    folder, even one without images; existing files of the same name are replaced.
    """
    if format not in FORMATS:
        raise NascompError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    positive("size", size)
    positive("processes", processes)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise NascompError(f"quality must lie in [1, 100], got {quality}")
    images, labels = _as_hwc(images), [int(label) for label in labels]
    if len(images) != len(labels):
        raise NascompError(f"{len(images)} images but {len(labels)} labels")
    if any(not 0 <= label < len(class_names) for label in labels):
        raise NascompError(f"labels must lie in 0..{len(class_names) - 1} (one per class name)")
    root, names = Path(root), [str(c).replace("/", "-") for c in class_names]
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    paths = [root / names[label] / f"{i:06d}{FORMATS[format]}" for i, label in enumerate(labels)]
    chunks = max(1, processes * 4)
    jobs = [(images[i::chunks], paths[i::chunks], size, quality) for i in range(chunks)]
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            list(pool.map(_write, jobs))
    else:
        for job in jobs:
            _write(job)
    return root


def write_image_folder(
    data: DataBundle | str,
    root: str | os.PathLike,
    *,
    train: int | None = None,
    val: int | None = None,
    size: int | None = None,
    format: str = "jpeg",
    quality: int = 90,
    processes: int = 1,
    data_dir: str | os.PathLike | None = None,
) -> Path:
    """Write an in-memory dataset as the image folder ``root/train/<class>/`` + ``root/val/<class>/``; return ``root``.

    ``data``: a `DataBundle` of in-memory images, or a dataset name `load_data` reads (``fashion-mnist``, ``cifar10``;
    from ``data_dir``). ``root/train`` gets the first ``train`` images of the training split, ``root/val`` the first
    ``val`` images of the held-out test split (None: all; 0: that split is not written), so
    ``load_data(f"imagefolder:{root}")`` reads the tree back as training and held-out images. ``size``, ``format``,
    ``quality`` and ``processes`` as in `write_class_folders`.

        write_image_folder("fashion-mnist", "/data/fmnist-jpeg", train=2048, val=512, size=256)
    """
    from nascomp.data.datasets import TensorImageDataset, data_bundle

    non_negative("train", train)
    non_negative("val", val)
    if isinstance(data, str) and data.startswith("imagefolder:"):
        raise NascompError(f"{data} is an image folder already; write_image_folder writes in-memory datasets (fashion-mnist, cifar10)")
    bundle = data_bundle(data, data_dir=data_dir)
    root = Path(root)
    for split, dataset, n in (("train", bundle.train, train), ("val", bundle.test, val)):
        if n == 0:
            continue
        if not isinstance(dataset, TensorImageDataset):
            raise NascompError(
                f"the {split} split of {bundle.name} is not in memory ({type(dataset).__name__}); "
                "write_image_folder writes in-memory datasets (fashion-mnist, cifar10)"
            )
        idx = dataset.indices[:n]
        write_class_folders(
            dataset.images[idx].numpy(),
            dataset.labels[idx].tolist(),
            root / split,
            bundle.classes,
            size=size,
            format=format,
            quality=quality,
            processes=processes,
        )
    return root

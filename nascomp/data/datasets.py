"""Datasets (Fashion-MNIST, CIFAR-10, image folders) with a fixed validation split, as a `DataBundle`.

In-memory datasets (Fashion-MNIST, CIFAR-10) yield ``(uint8 tensor C×H×W, label)``; image folders yield
``(PIL RGB image at its own size, label)``. `DataBundle.transform` gives what turns them into the model's
input: Fashion-MNIST a `BatchTransform` (per batch, in the training process), the RGB datasets timm's
per-image recipe (`SampleTransform`, run in DataLoader workers; `nascomp.data.recipe`).

Splits: a deterministic validation split is carved from the training set with a fixed seed that does
not depend on the training seed, so search and early stopping never look at the test set and every
run sees the same validation images.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from nascomp.core.errors import NascompError
from nascomp.core.validate import fraction, positive
from nascomp.data.recipe import ImageRecipe, eval_transform, train_transform
from nascomp.data.source import (
    DEBIAN_FASHION_MNIST,
    FASHION_MNIST_FILES,
    IMAGE_EXTENSIONS,
    check_source,
    image_folder_roots,
    resolve_data_dir,
)
from nascomp.data.transforms import BatchTransform, SampleTransform

__all__ = [
    "DataBundle",
    "TensorImageDataset",
    "ImageFolderDataset",
    "load_data",
    "data_bundle",
    "read_idx",
    "split_indices",
]

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Mean/std in [0, 1] units, per source channel.
STATS = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
VAL_SPLIT_SEED = 20211129  # fixed: the validation split must not move with --seed

MISSING_FASHION_MNIST = (
    "Fashion-MNIST not found in {where}. On Debian/Ubuntu as root: "
    "`apt-get update && apt-get install -y dataset-fashion-mnist` (files land in /usr/share/datasets/fashion-mnist/). "
    "Without root: put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
    "t10k-labels-idx1-ubyte.gz in a folder and pass --data-dir DIR (or set NASCOMP_DATA=DIR), or add --download when online."
)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise NascompError(f"{path}: unreadable IDX file ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise NascompError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise NascompError(f"{path}: truncated IDX file ({body.size} of {int(np.prod(dims))} bytes)")
    return body.reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for candidate in (
        folder / f"{stem}.gz",
        folder / stem,
        folder / "FashionMNIST" / "raw" / f"{stem}.gz",
        folder / "FashionMNIST" / "raw" / stem,
    ):
        if candidate.is_file():
            return candidate
    return None


def _fashion_mnist(data_dir: Path | None, download: bool) -> tuple[dict, list[str]]:
    folders = [data_dir] if data_dir else [DEBIAN_FASHION_MNIST]
    if download:
        import torchvision  # online users only: torchvision's downloader writes the same idx files

        target = data_dir or Path.home() / ".cache" / "nascomp"
        torchvision.datasets.FashionMNIST(str(target), download=True)
        folders = [target]
    splits = {}
    for split, (img_stem, lbl_stem) in FASHION_MNIST_FILES.items():
        img = next((p for f in folders if (p := _find_idx(f, img_stem))), None)
        lbl = next((p for f in folders if (p := _find_idx(f, lbl_stem))), None)
        if img is None or lbl is None:
            raise NascompError(MISSING_FASHION_MNIST.format(where=", ".join(str(f) for f in folders)))
        images, labels = read_idx(img), read_idx(lbl)
        if len(images) != len(labels):
            raise NascompError(f"{img} and {lbl} disagree on the number of examples")
        splits[split] = (torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
    return splits, FASHION_MNIST_CLASSES


def _cifar10(data_dir: Path | None, download: bool) -> tuple[dict, list[str]]:
    import torchvision

    root = data_dir or Path.home() / ".cache" / "nascomp"
    try:
        sets = {s: torchvision.datasets.CIFAR10(str(root), train=(s == "train"), download=download) for s in ("train", "test")}
    except RuntimeError:
        raise NascompError(
            f"CIFAR-10 not found under {root}: expected torchvision's layout ({root}/cifar-10-batches-py/). "
            "Pass --data-dir DIR, or add --download when online."
        ) from None
    splits = {s: (torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(d.targets)) for s, d in sets.items()}
    return splits, CIFAR10_CLASSES


class TensorImageDataset(Dataset):
    """In-memory uint8 images (N×C×H×W) and integer labels, optionally viewed through an index list."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, indices: Sequence[int] | None = None):
        self.images, self.labels = images, labels
        self.indices = torch.arange(len(labels)) if indices is None else torch.as_tensor(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self.indices[i])
        return self.images[j], int(self.labels[j])

    def targets(self) -> torch.Tensor:
        return self.labels[self.indices]


class ImageFolderDataset(Dataset):
    """``root/<class>/<image>`` folders; each access decodes one image at its own size (the transform resizes)."""

    EXTENSIONS = IMAGE_EXTENSIONS

    def __init__(self, samples: list[tuple[Path, int]], indices: Sequence[int] | None = None):
        self.samples = samples
        self.indices = list(range(len(samples))) if indices is None else list(indices)

    @classmethod
    def scan(cls, root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
        if not root.is_dir():
            raise NascompError(f"image folder {root} not found")
        classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        samples = [
            (p, label) for label, c in enumerate(classes) for p in sorted((root / c).rglob("*")) if p.suffix.lower() in cls.EXTENSIONS
        ]
        if not samples:
            raise NascompError(f"image folder {root} has no images in class sub-folders (root/<class>/<image>)")
        return samples, classes

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.samples[self.indices[i]]
        try:
            with Image.open(path) as im:
                return im.convert("RGB"), label
        except (OSError, ValueError, SyntaxError) as e:  # PIL's ways of saying "not an image" / "truncated"
            raise NascompError(f"{path}: not a readable image ({type(e).__name__}: {e}); remove or replace the file") from None

    def targets(self) -> torch.Tensor:
        return torch.tensor([self.samples[j][1] for j in self.indices])


@dataclass
class DataBundle:
    """Train / validation / test datasets with what a model needs to consume them.

    ``per_image``: samples are RGB images decoded and augmented one by one with timm's recipe (image folders,
    CIFAR-10); otherwise small grey tensors transformed per batch (Fashion-MNIST).
    """

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    per_image: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def transform(self, resolution: int, in_chans: int, train: bool, recipe: ImageRecipe | None = None) -> BatchTransform | SampleTransform:
        """The model-input transform; ``train`` augments. ``recipe`` sets the RGB augmentation (grey data flips and shifts)."""
        if not self.per_image:
            return BatchTransform(resolution, in_chans, self.mean, self.std, train)
        recipe = recipe or ImageRecipe()
        tf = train_transform(resolution, self.mean, self.std, recipe) if train else eval_transform(resolution, self.mean, self.std, recipe)
        return SampleTransform(tf, in_chans)

    def describe(self) -> dict:
        # a map-style dataset has __len__; torch's Dataset does not declare it
        sizes = {"train": len(self.train), "val": len(self.val), "test": len(self.test)}  # type: ignore[arg-type]
        return {"dataset": self.name, **sizes, "classes": self.num_classes}

    def limited(self, train: int | None = None, val: int | None = None, test: int | None = None) -> DataBundle:
        """The same splits cut to their first ``train`` / ``val`` / ``test`` images (None: all), as `load_data`'s limits cut
        a dataset given by name, so a preset sizes a bundle the way it sizes a name."""
        from dataclasses import replace

        from torch.utils.data import Subset

        def cut(split: Dataset, n: int | None) -> Dataset:
            return split if not n or n >= len(split) else Subset(split, range(n))  # type: ignore[arg-type]  # map-style: has __len__

        return replace(self, train=cut(self.train, train), val=cut(self.val, val), test=cut(self.test, test))


def split_indices(n: int, val_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic (train, val) index split of range(n), independent of any training seed."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(VAL_SPLIT_SEED))
    n_val = int(round(n * val_fraction))
    return perm[n_val:], perm[:n_val]


def _limit(indices: torch.Tensor | list, limit: int | None):
    return indices if not limit else indices[:limit]


def load_data(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    val_fraction: float = 0.1,
    limit_train: int | None = None,
    limit_val: int | None = None,
    limit_test: int | None = None,
    download: bool = False,
    classes: Sequence[int] | None = None,
) -> DataBundle:
    """Load ``fashion-mnist``, ``cifar10`` or ``imagefolder:PATH`` with a fixed validation split.

    ``classes`` keeps only those labels (relabelled 0..k-1 in the given order), for few-shot/transfer work.
    """
    fraction("--val-fraction", val_fraction)
    for option, value in (("--limit-train", limit_train), ("--limit-val", limit_val), ("--limit-test", limit_test)):
        positive(option, value)
    check_source(name, data_dir, download)
    folder = resolve_data_dir(data_dir)
    if name.startswith("imagefolder:"):
        train_root, test_root = image_folder_roots(Path(name.split(":", 1)[1].strip()))
        samples, names = ImageFolderDataset.scan(train_root)
        test_samples = ImageFolderDataset.scan(test_root)[0] if test_root is not None else None
        train_idx, val_idx = split_indices(len(samples), val_fraction)
        if test_samples is None:  # no held-out folder: carve the test set from the training images too
            half = len(val_idx) // 2
            train_idx, val_idx, test_idx = train_idx, val_idx[:half], val_idx[half:]
            test = ImageFolderDataset(samples, _limit(test_idx.tolist(), limit_test))
        else:
            test = ImageFolderDataset(test_samples, _limit(list(range(len(test_samples))), limit_test))
        if classes is not None:
            raise NascompError("--classes is only supported for in-memory datasets (fashion-mnist, cifar10)")
        return DataBundle(
            name,
            ImageFolderDataset(samples, _limit(train_idx.tolist(), limit_train)),
            ImageFolderDataset(samples, _limit(val_idx.tolist(), limit_val)),
            test,
            names,
            *STATS["imagenet"],
            per_image=True,
        )
    loaders = {"fashion-mnist": _fashion_mnist, "cifar10": _cifar10}
    splits, names = loaders[name](folder, download)
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    if classes is not None:
        keep = list(classes)
        if any(c < 0 or c >= len(names) for c in keep):
            raise NascompError(f"--classes {keep} outside 0..{len(names) - 1}")
        remap = torch.full((len(names),), -1, dtype=torch.long)
        remap[torch.tensor(keep)] = torch.arange(len(keep))
        train_keep, test_keep = remap[train_y] >= 0, remap[test_y] >= 0
        train_x, train_y = train_x[train_keep], remap[train_y[train_keep]]
        test_x, test_y = test_x[test_keep], remap[test_y[test_keep]]
        names = [names[c] for c in keep]
    train_idx, val_idx = split_indices(len(train_y), val_fraction)
    test_idx = torch.arange(len(test_y))
    return DataBundle(
        name,
        TensorImageDataset(train_x, train_y, _limit(train_idx, limit_train)),
        TensorImageDataset(train_x, train_y, _limit(val_idx, limit_val)),
        TensorImageDataset(test_x, test_y, _limit(test_idx, limit_test)),
        names,
        *STATS[name],
        per_image=name == "cifar10",
    )


def data_bundle(data: DataBundle | str, **options) -> DataBundle:
    """``data`` as given, or the dataset of that name loaded with ``options`` (see `load_data`)."""
    if isinstance(data, DataBundle):
        return data
    if not isinstance(data, str):
        raise NascompError(
            f"data must be a dataset name (fashion-mnist, cifar10, imagefolder:PATH) or a DataBundle, got {type(data).__name__}"
        )
    return load_data(data, **options)

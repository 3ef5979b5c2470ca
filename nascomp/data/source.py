"""Where a dataset given by name comes from, checked without loading it (no torch): a bad name or path fails at once.

`check_source` answers what `nascomp.data.load_data` would refuse about the name and its files before any work: an
unknown dataset, an empty or missing ``imagefolder:`` path, a folder without class sub-folders or with fewer than two
classes, a missing Fashion-MNIST. Loading reads and checks the images themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

from nascomp.core.errors import NascompError

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "DEBIAN_FASHION_MNIST",
    "FASHION_MNIST_FILES",
    "resolve_data_dir",
    "check_source",
    "image_folder_roots",
]

DATASETS = ("fashion-mnist", "cifar10")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FORMS = "fashion-mnist, cifar10 or imagefolder:PATH"


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """--data-dir, else $NASCOMP_DATA, else None (the dataset's own default)."""
    if data_dir:
        return Path(data_dir)
    if os.environ.get("NASCOMP_DATA"):
        return Path(os.environ["NASCOMP_DATA"])
    return None


def image_folder_roots(root: Path) -> tuple[Path, Path | None]:
    """(training folder, held-out test folder or None) of an image folder: ``root/train`` + ``root/val`` (or ``root/test``),
    or ``root`` itself with the test images carved from it."""
    train = root / "train" if (root / "train").is_dir() else root
    test = root / "val" if (root / "val").is_dir() else root / "test"
    return train, test if train != root and test.is_dir() else None


def _classes(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise NascompError(f"image folder {folder} not found; --data imagefolder:PATH needs PATH/<class>/<image> or PATH/train/<class>/...")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if not any(p.suffix.lower() in IMAGE_EXTENSIONS for c in classes for p in (folder / c).rglob("*")):
        raise NascompError(
            f"image folder {folder} has no images in class sub-folders ({folder}/<class>/<image>; {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    if len(classes) < 2:
        raise NascompError(
            f"image folder {folder} has {len(classes)} class folder(s); a classifier needs at least 2 ({folder}/<class>/...)"
        )
    return classes


def check_source(name, data_dir: str | os.PathLike | None = None, download: bool = False) -> list[str] | None:
    """Raise the user error `load_data` would raise about ``name`` and its folder; the class names of an image folder."""
    if not isinstance(name, str) or not name:
        raise NascompError(f"data must be a dataset name: {FORMS}, got {name!r}")
    folder = resolve_data_dir(data_dir)
    if folder is not None and not folder.is_dir() and not download:
        raise NascompError(f"--data-dir {folder} is not a folder; point it at the folder that holds the dataset files")
    if name.startswith("imagefolder:"):
        path = name.split(":", 1)[1].strip()
        if not path:
            raise NascompError("--data imagefolder: needs a folder after the colon, e.g. imagefolder:/data/flowers")
        train, test = image_folder_roots(Path(path))
        classes = _classes(train)
        if test is not None and _classes(test) != classes:
            raise NascompError(
                f"{test} has class folders {_classes(test)} but {train} has {classes}; the splits must have the same classes"
            )
        return classes
    if name not in DATASETS:
        raise NascompError(f"unknown dataset {name!r}; choose {FORMS}")
    return None

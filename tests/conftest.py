"""Shared fixtures: tiny models and a tiny on-disk Fashion-MNIST-format dataset (no network, no Debian package)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.synthetic import stripes, synthetic_tree

torch.set_num_threads(min(2, torch.get_num_threads()))


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_fake_fashion_mnist(folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """Learnable synthetic data in the idx.gz layout: class = stripe period (2..6 px) x orientation.

    A tiny ViT learns it within a few dozen steps; tests that train on it turn augmentation off.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        images, labels = stripes(n, rng)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one intra-op thread avoids OpenMP synchronisation costs on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fake_fmnist(tmp_path_factory) -> Path:
    return make_fake_fashion_mnist(tmp_path_factory.mktemp("fmnist"))


@pytest.fixture(scope="session")
def jpeg_folder(tmp_path_factory) -> Path:
    """A small RGB JPEG image folder (48 training, 24 held-out images at 40 px) for the per-image pipeline."""
    return synthetic_tree(tmp_path_factory.mktemp("jpegs"), 48, 24, 40)


# A two-stage hierarchical space at 16 px (8x8 and 4x4 maps): supernets over it train inside the default suite.
TINY_SPACE = {
    "name": "tiny",
    "resolution": 16,
    "patch_size": 2,
    "stages": [
        {"depth": [1, 2], "embed_dim": [8, 16], "heads": [1, 2], "qkv_dim": [8, 16], "mlp_ratio": [1.0, 2.0], "window": [4, 8]},
        {"depth": [1, 2], "embed_dim": [16, 24], "heads": [2, 4], "qkv_dim": [8, 16], "mlp_ratio": [1.0, 2.0], "window": [2, 4]},
    ],
}
TINY_VIT = dict(img_size=28, patch_size=7, in_chans=1, embed_dim=32, depth=2, num_heads=2, num_classes=10)
TINY_SWIN = dict(img_size=32, patch_size=4, window_size=4, embed_dim=16, depths=(2, 4), num_heads=(1, 2), in_chans=1, num_classes=10)

# The same tiny models on the command line, as argument lists: TINY_VIT's model (its classes come from the data), the same
# with one block, and TINY_SWIN's size flags (after a Swin model name).
TINY_VIT_ARGS = "vit_tiny_patch16_224 --img-size 28 --patch-size 7 --in-chans 1 --embed-dim 32 --depth 2 --num-heads 2".split()
ONE_BLOCK_VIT_ARGS = "vit_tiny_patch16_224 --img-size 28 --patch-size 7 --in-chans 1 --embed-dim 32 --depth 1 --num-heads 2".split()
TINY_SWIN_FLAGS = (
    "--img-size 32 --patch-size 4 --window-size 4 --embed-dim 16 --depths 2,4 --num-heads 1,2 --in-chans 1 --num-classes 10".split()
)


@pytest.fixture
def tiny_vit():
    import timm

    return timm.create_model("vit_tiny_patch16_224", **TINY_VIT)

"""Data: datasets with a fixed validation split (`load_data` → `DataBundle`) and the batched transform."""

from nascomp.data.datasets import (
    DEBIAN_FASHION_MNIST, DataBundle, ImageFolderDataset, TensorImageDataset, load_data, read_idx, resolve_data_dir, split_indices,
)
from nascomp.data.transforms import BatchTransform

__all__ = [
    "DEBIAN_FASHION_MNIST", "DataBundle", "ImageFolderDataset", "TensorImageDataset", "load_data", "read_idx", "resolve_data_dir",
    "split_indices", "BatchTransform",
]

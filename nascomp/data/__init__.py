"""Data: datasets with a fixed validation split (`load_data` → `DataBundle`), their transforms, samplers and loaders,
and evaluation splits decoded once for search (`DecodedEvalSet`)."""

from nascomp.data.datasets import (
    DEBIAN_FASHION_MNIST, DataBundle, ImageFolderDataset, TensorImageDataset, data_bundle, load_data, read_idx, resolve_data_dir, split_indices,
)
from nascomp.data.eval_set import DecodedEvalSet, default_cache_bytes
from nascomp.data.loader import default_workers, make_loader, resolve_workers
from nascomp.data.recipe import RAND_AUGMENT, ImageRecipe, make_mixup
from nascomp.data.sampling import EpochSampler, epoch_seed
from nascomp.data.transforms import BatchTransform, SampleTransform

__all__ = [
    "DEBIAN_FASHION_MNIST", "DataBundle", "ImageFolderDataset", "TensorImageDataset", "data_bundle", "load_data", "read_idx", "resolve_data_dir",
    "split_indices", "BatchTransform", "SampleTransform", "ImageRecipe", "RAND_AUGMENT", "make_mixup", "EpochSampler", "epoch_seed",
    "default_workers", "make_loader", "resolve_workers", "DecodedEvalSet", "default_cache_bytes",
]

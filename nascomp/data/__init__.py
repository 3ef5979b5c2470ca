"""Data: datasets with a fixed validation split (`load_data` → `DataBundle`), their transforms, samplers and loaders,
evaluation splits decoded once for search (`DecodedEvalSet`), and in-memory images written as an image folder
(`write_image_folder`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nascomp.core.lazy import lazy_exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "DEBIAN_FASHION_MNIST": "nascomp.data.source",
    "DataBundle": "nascomp.data.datasets",
    "ImageFolderDataset": "nascomp.data.datasets",
    "TensorImageDataset": "nascomp.data.datasets",
    "data_bundle": "nascomp.data.datasets",
    "load_data": "nascomp.data.datasets",
    "check_source": "nascomp.data.source",
    "read_idx": "nascomp.data.datasets",
    "resolve_data_dir": "nascomp.data.source",
    "split_indices": "nascomp.data.datasets",
    "BatchTransform": "nascomp.data.transforms",
    "SampleTransform": "nascomp.data.transforms",
    "ImageRecipe": "nascomp.data.recipe",
    "RAND_AUGMENT": "nascomp.data.recipe",
    "make_mixup": "nascomp.data.recipe",
    "EpochSampler": "nascomp.data.sampling",
    "epoch_seed": "nascomp.data.sampling",
    "default_workers": "nascomp.data.loader",
    "make_loader": "nascomp.data.loader",
    "resolve_workers": "nascomp.data.loader",
    "DecodedEvalSet": "nascomp.data.eval_set",
    "default_cache_bytes": "nascomp.data.eval_set",
    "write_class_folders": "nascomp.data.folders",
    "write_image_folder": "nascomp.data.folders",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from nascomp.data.datasets import DataBundle, ImageFolderDataset, TensorImageDataset, data_bundle, load_data, read_idx, split_indices
    from nascomp.data.eval_set import DecodedEvalSet, default_cache_bytes
    from nascomp.data.folders import write_class_folders, write_image_folder
    from nascomp.data.loader import default_workers, make_loader, resolve_workers
    from nascomp.data.recipe import RAND_AUGMENT, ImageRecipe, make_mixup
    from nascomp.data.sampling import EpochSampler, epoch_seed
    from nascomp.data.source import DEBIAN_FASHION_MNIST, check_source, resolve_data_dir
    from nascomp.data.transforms import BatchTransform, SampleTransform

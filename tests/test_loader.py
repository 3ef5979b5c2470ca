"""Epoch order, worker counts and per-image loading: work in workers, results independent of them."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, get_worker_info

from nascomp.core.errors import NascompError
from nascomp.data import EpochSampler, SampleTransform, default_workers, load_data, make_loader, resolve_workers
from nascomp.data.sampling import epoch_seed


def test_plain_order_is_the_seeded_shard_of_a_permutation():
    for rank in (0, 1):
        s = EpochSampler(10, batch_size=2, seed=3, rank=rank, world_size=2)
        s.set_epoch(4)
        perm = torch.randperm(10, generator=torch.Generator().manual_seed(epoch_seed(3, 4)))
        assert list(s) == perm[rank::2][:5].tolist() and s.steps_per_epoch == 2
    s.set_epoch(4, start_step=1)
    assert list(s) == perm[1::2][2:5].tolist() and len(s) == 3


def test_keyed_order_gives_each_position_its_own_seed_and_resumes_mid_epoch():
    s = EpochSampler(12, batch_size=3, seed=0, keyed=True)
    s.set_epoch(1)
    full = list(s)
    assert len({seed for _, seed in full}) == 12
    s.set_epoch(1, start_step=2)
    assert list(s) == full[6:]
    s.set_epoch(2)
    assert [seed for _, seed in s] != [seed for _, seed in full]


def test_repeated_augmentation_puts_each_copy_on_another_rank():
    orders = []
    for rank in range(3):
        s = EpochSampler(30, batch_size=5, seed=1, rank=rank, world_size=3, repeats=3)
        s.set_epoch(0)
        orders.append(s.order())
    assert all(len(o) == 10 for o in orders)  # an epoch keeps the dataset's length over all ranks
    assert orders[0] == orders[1] == orders[2]  # copy r of an image goes to rank r
    assert len(set(orders[0])) == 10


def test_default_workers_follow_the_cores():
    assert default_workers(cores=1) == 0 and default_workers(cores=2) == 0  # the training process needs them
    assert default_workers(cores=4) == 3 and default_workers(cores=64) == 8
    assert default_workers(local_processes=8, cores=64) == 7
    assert resolve_workers(3) == 3
    with pytest.raises(NascompError, match="num_workers"):
        resolve_workers(-1)


class _Recording(Dataset):
    """Grey 8x8 images whose label says which worker decoded them (0: the main process)."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        info = get_worker_info()
        return Image.fromarray(np.full((8, 8), i * 10, dtype=np.uint8)), (info.id + 1 if info else 0)


def _flip_or_not(image):
    """A random per-image transform drawing from all three generators."""
    x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)
    if random.random() < 0.5:
        x = x.flip(-1)
    return x + float(np.random.rand()) + torch.rand(()).item()


def test_images_are_decoded_and_augmented_in_workers_the_same_way_for_any_worker_count():
    tf = SampleTransform(_flip_or_not, in_chans=3)
    runs = {}
    for workers in (0, 2):
        sampler = EpochSampler(16, batch_size=4, seed=5, keyed=True)
        sampler.set_epoch(2)
        loader = make_loader(_Recording(), tf, 4, sampler=sampler, workers=workers, drop_last=True)
        before = torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
        batches = list(loader)
        after = torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
        assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
        runs[workers] = batches
    assert all((y == 0).all() for _, y in runs[0]) and all((y > 0).all() for _, y in runs[2])  # decoded in the workers
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(runs[0], runs[2]))


def test_cifar_style_tensors_go_through_the_per_image_recipe(jpeg_folder):
    data = load_data(f"imagefolder:{jpeg_folder}")
    tf = data.transform(24, 3, train=True)
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)  # how CIFAR-10 is stored
    x, _ = tf([(image, 0), (image, 1)])
    assert x.shape == (2, 3, 24, 24)

"""DecodedEvalSet: the evaluation split is decoded once, kept as uint8 for RGB data, and gives the same inputs bit for bit."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from nascomp.data import DecodedEvalSet, load_data
from nascomp.nas import SupernetScorer
from nascomp.nas.supernet import Supernet, evaluate_archs
from nascomp.spaces import SearchSpace
from tests.conftest import TINY_SPACE


class CountingDataset(Dataset):
    """Counts image reads (decodes happen in this process: the tests use no loader workers)."""

    def __init__(self, inner):
        self.inner, self.reads = inner, 0

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.reads += 1
        return self.inner[i]


def _stream(dataset, transform, batch_size):
    return list(DecodedEvalSet(dataset, transform, batch_size=batch_size, workers=0, max_bytes=0).batches())


@pytest.mark.parametrize("in_chans", [3, 1])
def test_rgb_images_that_fit_only_as_uint8_are_kept_so_and_give_the_transforms_exact_input(jpeg_folder, in_chans):
    data = load_data(f"imagefolder:{jpeg_folder}")
    tf = data.transform(32, in_chans, train=False)
    uint8_bytes = len(data.val) * 3 * 32 * 32
    roomy = DecodedEvalSet(data.val, tf, batch_size=2, workers=0)
    list(roomy.batches())
    assert roomy.nbytes == len(data.val) * in_chans * 32 * 32 * 4  # a CPU with room keeps the float input
    kept = DecodedEvalSet(data.val, tf, batch_size=2, workers=0, max_bytes=uint8_bytes)
    first = list(kept.batches())
    assert kept.nbytes == uint8_bytes  # one byte per RGB value
    streamed = _stream(data.val, tf, 2)
    assert len(first) == len(streamed) == (len(data.val) + 1) // 2 >= 2
    for (x, y), (xs, ys) in zip(first, streamed):
        assert x.dtype == torch.float32 and x.shape[1] == in_chans
        assert torch.equal(x, xs) and torch.equal(y, ys)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, kept.batches()))  # the second pass reads the kept crops
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, roomy.batches()))


def test_grey_batched_data_is_kept_as_its_float_input(fake_fmnist):
    data = load_data("fashion-mnist", fake_fmnist, limit_val=30)
    tf = data.transform(16, 3, train=False)
    kept = DecodedEvalSet(data.val, tf, batch_size=8, workers=0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(kept.batches(), _stream(data.val, tf, 8)))
    assert kept.nbytes == len(data.val) * 3 * 16 * 16 * 4


def test_a_scorer_decodes_the_split_once_however_many_calls_and_streams_what_does_not_fit(jpeg_folder):
    data = load_data(f"imagefolder:{jpeg_folder}")
    tf = data.transform(16, 3, train=False)
    torch.manual_seed(0)
    space = SearchSpace.from_dict(TINY_SPACE)
    net = Supernet(space, num_classes=data.num_classes, in_chans=3, img_size=16, drop_path_rate=0.0)
    archs = [space.smallest(), space.largest()]
    counted = CountingDataset(data.val)
    scorer = SupernetScorer(net, counted, tf, batch_size=2, workers=0)
    first, second = scorer.score(archs[:1]), scorer.score(archs[1:])
    n = len(data.val)
    assert counted.reads == n + 1  # one probe image, then the split once, though two calls ran archs
    assert scorer.images.decodes == 1
    assert first + second == evaluate_archs(net, archs, data.val, tf, batch_size=2, workers=0, cache_bytes=0)  # streamed: same scores

    small = CountingDataset(data.val)
    streamed = DecodedEvalSet(small, tf, batch_size=2, workers=0, max_bytes=n * 3 * 16 * 16 - 1)
    assert evaluate_archs(net, archs, small, tf, images=streamed) == first + second
    assert streamed.nbytes == 0 and streamed.decodes == 2 and small.reads == 2 * n + 1  # one pass per arch

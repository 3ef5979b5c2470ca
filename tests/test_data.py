import gzip

import numpy as np
import pytest
import torch

from nascomp.core.errors import NascompError
from nascomp.data import BatchTransform, load_data, read_idx, split_indices
from tests.conftest import write_idx


def test_read_idx_round_trip(tmp_path):
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)


def test_read_idx_truncated_is_a_clear_error(tmp_path):
    arr = np.zeros((10, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "a.gz", arr)
    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())
    (tmp_path / "b.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(NascompError, match="truncated"):
        read_idx(tmp_path / "b.gz")


def test_validation_split_is_deterministic_disjoint_and_seed_independent():
    a_train, a_val = split_indices(1000, 0.1)
    torch.manual_seed(123)  # the global seed must not move the split
    b_train, b_val = split_indices(1000, 0.1)
    assert torch.equal(a_val, b_val) and len(a_val) == 100
    assert not set(a_train.tolist()) & set(a_val.tolist())
    assert sorted(a_train.tolist() + a_val.tolist()) == list(range(1000))


def test_load_fake_fashion_mnist_limits_and_classes(fake_fmnist):
    d = load_data("fashion-mnist", fake_fmnist, limit_train=50, limit_val=20, limit_test=30)
    assert (len(d.train), len(d.val), len(d.test)) == (50, 20, 30)
    x, y = d.train[0]
    assert x.dtype == torch.uint8 and x.shape == (1, 28, 28)
    sub = load_data("fashion-mnist", fake_fmnist, classes=[7, 3])
    labels = sub.train.targets()
    assert set(labels.tolist()) <= {0, 1} and sub.classes == ["Sneaker", "Dress"]
    # relabelling keeps the images: class 7 is vertical stripes of period 4
    img, lab = sub.train[int((labels == 0).nonzero()[0])]
    assert img[0, :, 4].float().mean() > 200 and img[0, :, 0].float().mean() < 40


def test_env_var_locates_data(fake_fmnist, monkeypatch):
    monkeypatch.setenv("NASCOMP_DATA", str(fake_fmnist))
    assert len(load_data("fashion-mnist").test) == 200


def test_missing_dataset_message_says_how_to_install(tmp_path):
    with pytest.raises(NascompError, match="apt-get install -y dataset-fashion-mnist"):
        load_data("fashion-mnist", tmp_path)


def test_unknown_dataset():
    with pytest.raises(NascompError, match="fashion-mnist, cifar10 or imagefolder"):
        load_data("mnist-but-typo")


def test_batch_transform_resizes_and_repeats_channels():
    batch = [(torch.full((1, 28, 28), 255, dtype=torch.uint8), 3), (torch.zeros((1, 28, 28), dtype=torch.uint8), 1)]
    x, y = BatchTransform(32, 3, (0.5,), (0.5,), train=False)(batch)
    assert x.shape == (2, 3, 32, 32) and y.tolist() == [3, 1]
    assert torch.allclose(x[0], torch.ones_like(x[0]), atol=1e-5) and torch.allclose(x[1], -torch.ones_like(x[1]), atol=1e-5)


def test_augmentation_is_a_flip_or_shift_of_the_input():
    img = torch.arange(64, dtype=torch.float).view(1, 1, 8, 8)
    out = BatchTransform._augment(img.repeat(16, 1, 1, 1))
    assert out.shape == (16, 1, 8, 8)
    # every output row is a (possibly flipped) window of an input row, padded with zeros
    values = set(img.flatten().tolist()) | {0.0}
    assert set(out.flatten().tolist()) <= values
    assert not torch.equal(out, img.repeat(16, 1, 1, 1))


def test_imagefolder(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(5):
                Image.new("RGB", (40 + i, 30), colour).save(tmp_path / split / c / f"{i}.png")
    d = load_data(f"imagefolder:{tmp_path}", val_fraction=0.2)
    assert d.classes == ["cat", "dog"] and len(d.test) == 10 and len(d.train) + len(d.val) == 10 and d.per_image
    image, y = d.test[0]
    assert image.mode == "RGB" and image.size[1] == 30  # decoded at its own size; the transform resizes
    x, labels = d.transform(16, 3, train=False)([d.test[i] for i in range(len(d.test))])
    assert x.shape == (10, 3, 16, 16) and x.dtype == torch.float32
    red = x[:, 0].mean((1, 2)) > x[:, 2].mean((1, 2))
    assert red.tolist() == (labels == 0).tolist()


def test_write_image_folder_round_trips_through_imagefolder(tmp_path, fake_fmnist):
    """An in-memory dataset written as root/train + root/val reads back as the same images, classes and held-out split."""
    from PIL import Image

    from nascomp.data import write_image_folder

    source = load_data("fashion-mnist", fake_fmnist)
    root = write_image_folder(source, tmp_path / "tree", train=20, val=10, format="png")
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(c.replace("/", "-") for c in source.classes)
    assert sum(1 for _ in (root / "train").rglob("*.png")) == 20 and sum(1 for _ in (root / "val").rglob("*.png")) == 10
    image, label = source.train[3]
    written = Image.open(root / "train" / source.classes[label].replace("/", "-") / "000003.png")
    assert written.size == (28, 28) and written.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(written)[..., 0], image[0].numpy())  # PNG is lossless; grey becomes R = G = B
    back = load_data(f"imagefolder:{root}", val_fraction=0.2)
    assert (len(back.train) + len(back.val), len(back.test), back.num_classes) == (20, 10, 10)
    # by name, resized JPEGs, no held-out split
    write_image_folder("fashion-mnist", tmp_path / "jpegs", train=5, val=0, size=40, data_dir=fake_fmnist)
    files = sorted((tmp_path / "jpegs" / "train").rglob("*.jpg"))
    assert len(files) == 5 and Image.open(files[0]).size == (40, 40) and not (tmp_path / "jpegs" / "val").exists()


def test_write_image_folder_refuses_what_it_cannot_write(tmp_path, jpeg_folder):
    from nascomp.data import write_class_folders, write_image_folder

    with pytest.raises(NascompError, match="is an image folder already"):
        write_image_folder(f"imagefolder:{jpeg_folder}", tmp_path / "a")
    with pytest.raises(NascompError, match="not in memory"):
        write_image_folder(load_data(f"imagefolder:{jpeg_folder}"), tmp_path / "a")
    grey = np.zeros((2, 8, 8), dtype=np.uint8)
    for kwargs, message in (
        ({"format": "gif"}, "format must be one of jpeg, png"),
        ({"size": 0}, "size must be positive"),
        ({"quality": 101}, r"quality must lie in \[1, 100\]"),
    ):
        with pytest.raises(NascompError, match=message):
            write_class_folders(grey, [0, 1], tmp_path / "b", ["x", "y"], **kwargs)
    with pytest.raises(NascompError, match=r"labels must lie in 0..1"):
        write_class_folders(grey, [0, 2], tmp_path / "b", ["x", "y"])
    with pytest.raises(NascompError, match="must be uint8"):
        write_class_folders(grey.astype(np.float32), [0, 1], tmp_path / "b", ["x", "y"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

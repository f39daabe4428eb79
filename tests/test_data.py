"""Datasets: decoding, caching, splits, and one clear error for every malformed source."""

from __future__ import annotations

import pickle
import tarfile

import numpy as np
import pytest

from mnas import data
from mnas.errors import MnasError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MNAS_CACHE", str(tmp_path / "cache"))


def make_folder(root, splits=("train", "test"), classes=("cat", "dog"), per_class=3, size=8):
    """A tiny image-folder tree; image i of class c has every pixel = 40 * c + 10 * i (mod 256) (so labels are checkable)."""
    from PIL import Image

    for split in splits:
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(np.full((size, size, 3), (40 * ci + 10 * i) % 256, dtype=np.uint8)).save(d / f"{i:04d}.png")
    return root


def test_digits_shape_and_fixed_split():
    ds = data.load_dataset("digits")
    assert ds.train.x.shape[1:] == (8, 8, 1) and ds.train.x.dtype == np.uint8
    assert len(ds.train) + len(ds.test) == 1797  # scikit-learn's bundled digits
    assert ds.num_classes == 10 and not ds.hflip
    again = data.load_dataset("digits")
    assert np.array_equal(ds.test.y, again.test.y)


def test_validation_split_is_stratified_seeded_and_disjoint():
    ds = data.load_dataset("digits")
    tr, va = ds.split(200, seed=3)
    assert len(va) == 200 and len(tr) == len(ds.train) - 200
    assert np.bincount(va.y).min() >= 19  # 10 classes, 200 images: about 20 each
    tr2, va2 = ds.split(200, seed=3)
    assert np.array_equal(va.x, va2.x)
    _, va3 = ds.split(200, seed=4)
    assert not np.array_equal(va.x, va3.x)
    sub, va4 = ds.split(200, seed=3, train_size=100)
    assert np.array_equal(va4.x, va.x) and len(sub) == 100  # the subset never touches validation
    with pytest.raises(MnasError, match="validation size"):
        ds.split(len(ds.train), seed=0)


def test_image_folder_decodes_labels_and_pixels(tmp_path):
    root = make_folder(tmp_path / "tree")
    ds = data.load_dataset("imagenet-folder", root, resolution=8)
    assert ds.classes == ("cat", "dog")
    assert ds.train.x.shape == (6, 8, 8, 3) and ds.test.x.shape == (6, 8, 8, 3)
    assert list(ds.train.y) == [0, 0, 0, 1, 1, 1]
    assert [int(v) for v in ds.train.x[:, 0, 0, 0]] == [0, 10, 20, 40, 50, 60]


def test_tar_archive_equals_folder_and_cache_is_reused(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "tree", classes=data.CIFAR10_CLASSES, per_class=1)
    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(root / "train", arcname="cifar/train")
        tf.add(root / "test", arcname="cifar/test")
    a = data.load_dataset("cifar10-folder", root)
    b = data.load_dataset("cifar10-folder", archive)
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.y, b.test.y)

    def boom(*a, **k):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(data, "_decode_tree", boom)
    c = data.load_dataset("cifar10-folder", archive)
    assert np.array_equal(c.train.x, b.train.x) and c.mean == b.mean


def test_missing_folder_names_the_path_and_layout(tmp_path):
    with pytest.raises(MnasError, match=r"nowhere does not exist: expected .*train/<class>/\*\.jpg"):
        data.load_dataset("cifar10-folder", tmp_path / "nowhere")


def test_malformed_trees(tmp_path):
    with pytest.raises(MnasError, match=r"split folders \['train'\]: expected"):
        data.load_dataset("imagenet-folder", make_folder(tmp_path / "a", splits=("train",)), resolution=8)
    b = make_folder(tmp_path / "b")
    (b / "test" / "dog").rename(b / "test" / "horse")
    with pytest.raises(MnasError, match="class folders differ"):
        data.load_dataset("imagenet-folder", b, resolution=8)
    c = make_folder(tmp_path / "c")
    for f in (c / "train" / "dog").iterdir():
        f.unlink()
    with pytest.raises(MnasError, match=r"train/dog holds no images"):
        data.load_dataset("imagenet-folder", c, resolution=8)
    d = make_folder(tmp_path / "d")
    (d / "train" / "cat" / "0000.png").write_bytes(b"not an image")
    with pytest.raises(MnasError, match=r"0000\.png is not a readable image"):
        data.load_dataset("imagenet-folder", d, resolution=8)
    e = make_folder(tmp_path / "e")
    with pytest.raises(MnasError, match="are not CIFAR-10's"):
        data.load_dataset("cifar10-folder", e)
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(MnasError, match="not a .tar.gz"):
        data.load_dataset("cifar10-folder", f)


def _write_batches(folder, n=4):
    folder.mkdir(parents=True)
    for name in data._BATCHES:
        x = np.zeros((n, 3072), dtype=np.uint8)
        x[:, 1024:2048] = 7  # green plane
        x[:, 5] = 200  # red, row 0, column 5
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": x, b"labels": list(range(n))}, fh)


def test_cifar10_python_batches_layout(tmp_path):
    _write_batches(tmp_path / "c" / "cifar-10-batches-py")
    ds = data.load_dataset("cifar10", tmp_path / "c")
    assert ds.train.x.shape == (20, 32, 32, 3) and ds.test.x.shape == (4, 32, 32, 3)
    assert ds.train.x[0, 0, 5, 0] == 200 and ds.train.x[0, 0, 6, 0] == 0 and ds.train.x[0, 3, 3, 1] == 7
    assert ds.classes[0] == "airplane"


def test_cifar10_batches_missing_or_malformed(tmp_path):
    with pytest.raises(MnasError, match=r"no CIFAR-10 python batches in .*expected data_batch_1\.\.5 and test_batch"):
        data.load_dataset("cifar10", tmp_path)
    _write_batches(tmp_path / "m")
    (tmp_path / "m" / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(MnasError, match=r"data_batch_3 is not a CIFAR-10 python batch"):
        data.load_dataset("cifar10", tmp_path / "m")


def test_unknown_dataset():
    with pytest.raises(MnasError, match="unknown dataset 'mnist'"):
        data.load_dataset("mnist")


@pytest.mark.slow
def test_shared_cifar10_archive(shared_data):
    ds = data.load_dataset("cifar10-folder", shared_data / "cifar10" / "cifar10_jpg.tar.gz", progress=False)
    assert ds.train.x.shape == (50000, 32, 32, 3) and ds.test.x.shape == (10000, 32, 32, 3)
    assert np.bincount(ds.train.y).tolist() == [5000] * 10
    # per-channel statistics stated in ../shared/data/README.md
    assert np.allclose(ds.mean, (0.4913, 0.4821, 0.4465), atol=1e-4)
    assert np.allclose(ds.std, (0.2452, 0.2428, 0.2606), atol=1e-4)

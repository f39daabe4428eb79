"""Streaming image folders: listing, class-balanced subsets, transforms, worker-independent draws, sharding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mnas.data import folder as F
from mnas.errors import MnasError

PIL = pytest.importorskip("PIL")


def _make_tree(root: Path, counts: dict[str, int], splits=("train", "val"), size=(40, 30)) -> Path:
    """Class ``c`` images: red ``10 * (index of c)``, green and blue ramps along x and y."""
    from PIL import Image

    for split in splits:
        for ci, (c, n) in enumerate(sorted(counts.items())):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n if split == "train" else 2):
                a = np.full((size[1], size[0], 3), 10 * ci, dtype=np.uint8)
                a[:, :, 1] = np.linspace(0, 255, size[0]).astype(np.uint8)[None, :]  # ramps: every crop differs
                a[:, :, 2] = np.linspace(0, 255, size[1]).astype(np.uint8)[:, None]
                Image.fromarray(a).save(d / f"{i:03d}.png")
    return root


def test_scan_lists_classes_and_labels(tmp_path):
    root = _make_tree(tmp_path / "d", {"cat": 3, "ant": 5})
    s = F.scan_folder(root)
    assert set(s) == {"train", "val"} and s["train"].classes == ("ant", "cat")
    assert len(s["train"]) == 8 and np.bincount(s["train"].labels).tolist() == [5, 3]
    assert len(s["val"]) == 4


def test_scan_errors_name_the_problem(tmp_path):
    with pytest.raises(MnasError, match="does not exist"):
        F.scan_folder(tmp_path / "missing")
    root = _make_tree(tmp_path / "t", {"a": 1, "b": 1}, splits=("train",))
    with pytest.raises(MnasError, match=r"split folders \['train'\]"):
        F.scan_folder(root)
    root = _make_tree(tmp_path / "u", {"a": 1, "b": 1})
    (root / "val" / "c").mkdir()
    with pytest.raises(MnasError, match="class folders differ"):
        F.scan_folder(root)


def test_tar_archive_reads_like_the_folder(tmp_path):
    import tarfile

    root = _make_tree(tmp_path / "d", {"x": 2, "y": 3})
    with tarfile.open(tmp_path / "d.tar.gz", "w:gz") as tf:
        tf.add(root, arcname="d")
    a, b = F.scan_folder(root), F.scan_folder(tmp_path / "d.tar.gz")
    assert a["train"].labels.tolist() == b["train"].labels.tolist()
    t = F.Transform(16, False)
    xa, _ = F.FolderImages(a["train"], t)[(3, 0)]
    xb, _ = F.FolderImages(b["train"], t)[(3, 0)]
    assert (xa == xb).all()


def test_balanced_subset_counts():
    y = np.repeat(np.arange(4), [100, 100, 100, 3])  # one class too small: the others take its share
    idx = F.balanced_subset(y, 50, seed=0)
    counts = np.bincount(y[idx], minlength=4)
    assert counts.sum() == 50 and counts[3] == 3 and counts[:3].max() - counts[:3].min() <= 1
    assert len(set(idx.tolist())) == 50
    assert (F.balanced_subset(y, 50, seed=0) == idx).all() and not (F.balanced_subset(y, 50, seed=1) == idx).all()
    # MnasNet's proxy size on an ImageNet-like label vector: 50 per class
    big = np.repeat(np.arange(1000), 60)
    assert (np.bincount(big[F.balanced_subset(big, 50_000, 0)]) == 50).all()
    with pytest.raises(MnasError, match="between 1 and"):
        F.balanced_subset(y, 400)


def test_center_crop_geometry():
    from PIL import Image

    # a horizontal ramp 300 wide, 200 high: value = x coordinate * 255 / 299
    ramp = np.tile(np.linspace(0, 255, 300).astype(np.uint8), (200, 1))
    img = Image.fromarray(np.stack([ramp] * 3, -1))
    out = np.asarray(F.center_crop(img, 224, 0.875))
    assert out.shape == (224, 224, 3)
    # shorter side 200 -> 256 (scale 1.28), width 384; the centre crop keeps x in [80, 304) of 384,
    # i.e. original x in [62.5, 237.5): values about 53 .. 202 at the edges, 127.5 in the middle
    assert abs(int(out[100, 112, 0]) - 127.5) <= 2
    assert abs(int(out[100, 0, 0]) - 62.5 * 255 / 299) <= 3 and abs(int(out[100, 223, 0]) - 237 * 255 / 299) <= 3


def test_inception_crop_draws_area_and_flips():
    from PIL import Image

    a = np.zeros((64, 64, 3), dtype=np.uint8)
    a[:, :32] = 255  # left half white
    img = Image.fromarray(a)
    flips = 0
    for i in range(200):
        out = np.asarray(F.inception_crop(img, 32, np.random.default_rng(i), min_crop=1.0))
        assert out.shape == (32, 32, 3)
        # min_crop=1: the whole image (aspect 1 is within [3/4, 4/3] only as the fallback or a full-area draw)
        flips += out[:, 0].mean() < 128
    assert 70 < flips < 130  # half flipped (binomial 200, 1/2: 5 sigma is +-35)


def test_draws_are_a_function_of_seed_epoch_index_not_of_workers(tmp_path):
    import torch

    root = _make_tree(tmp_path / "d", {"a": 6, "b": 6})
    s = F.scan_folder(root)
    ds = F.FolderImages(s["train"], F.Transform(16, True, "inception", 0.3, seed=3))
    x1, _ = ds[(4, 0)]
    x2, _ = ds[(4, 0)]
    x3, _ = ds[(4, 1)]
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    samp = lambda: F.ShardSampler(len(ds), 4, seed=0, epoch=2)  # noqa: E731
    b0 = [x for x, _ in F.loader(ds, samp(), workers=0)]
    b2 = [x for x, _ in F.loader(ds, samp(), workers=2)]
    assert len(b0) == 3 and all(torch.equal(p, q) for p, q in zip(b0, b2))


def test_shards_two_processes_equal_one_process_two_micro_batches():
    two = [list(F.ShardSampler(40, 8, rank=r, world=2, seed=5, epoch=1)) for r in range(2)]
    one = list(F.ShardSampler(40, 8, world=1, accum=2, seed=5, epoch=1))
    assert len(one) == 10 and [two[r][s] for s in range(5) for r in range(2)] == one
    seen = [i for b in one for i, _ in b]
    assert sorted(seen) == list(range(40))  # every image once per epoch
    # a resumed epoch: the same batches from step 3 on
    assert list(F.ShardSampler(40, 8, accum=2, seed=5, epoch=1, start_step=3)) == one[6:]
    # validation: every image once, split between ranks
    val = [i for r in range(3) for b in F.ShardSampler(10, 4, rank=r, world=3, shuffle=False) for i, _ in b]
    assert sorted(val) == list(range(10))
    with pytest.raises(MnasError, match="multiple of"):
        F.ShardSampler(40, 6, world=4)


@pytest.mark.slow  # reads the 60,000 members of the archive (~6 s)
def test_cifar10_archive_streams(shared_data):
    path = shared_data / "cifar10" / "cifar10_jpg.tar.gz"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    s = F.scan_folder(path)
    # CIFAR-10: 50,000 training and 10,000 test images, 10 classes, 5,000 / 1,000 each
    assert len(s["train"]) == 50_000 and len(s["test"]) == 10_000
    assert (np.bincount(s["train"].labels) == 5000).all() and len(s["train"].classes) == 10
    x, y = F.FolderImages(s["test"], F.Transform(32, False))[(0, 0)]
    assert tuple(x.shape) == (3, 32, 32) and y == 0

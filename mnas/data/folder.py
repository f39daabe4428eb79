"""Streaming image datasets: images decoded per batch by DataLoader workers, not held as one array.

An ImageNet-style tree (``train/<class>/*`` and ``val/<class>/*``, or ``test/``) is read
as a list of ``(file, label)`` pairs; each DataLoader worker opens and decodes its images
with Pillow and applies the split's transform:

- training: Inception-style random-resized crop (area fraction in ``[min_crop, 1]``,
  aspect ratio in ``[3/4, 4/3]``, 10 tries then a centre crop) to ``size``, then a
  horizontal flip with probability 1/2 (:func:`inception_crop`);
- validation: shorter side resized to ``size / crop_fraction`` (256 for 224 at 0.875),
  then the centre ``size``×``size`` crop (:func:`center_crop`).

A ``.tar``/``.tar.gz`` archive of such a tree is held as its *encoded* bytes (about the
size of the archive: 20 MB for CIFAR-10's JPEGs) and decoded the same way. The small
in-memory arrays of :mod:`mnas.data` feed the same pipeline through :class:`ArrayImages`.

Every random draw of an image comes from a generator seeded by ``(seed, epoch, index)``:
the pixels a network sees depend neither on the number of workers nor on the number of
processes, nor on where a resumed run restarted. The datasets are indexed by
``(index, epoch)`` keys, which :class:`ShardSampler` yields.

:func:`balanced_subset` draws a seeded class-balanced subset (MnasNet's 50,000-image
proxy: ``--subset 50000``, 50 images per ImageNet class).
"""

from __future__ import annotations

import io
import math
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from mnas.errors import MnasError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUGMENTS = ("inception", "pad-crop", "none")


# --------------------------------------------------------------------------- listing


@dataclass
class Listing:
    """The images of one split: ``items[i] = (name, label)``; ``blobs`` holds encoded bytes for archives."""

    root: str
    split: str
    classes: tuple[str, ...]
    items: list[tuple[str, int]]
    blobs: dict[str, bytes] | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([y for _, y in self.items], dtype=np.int64)

    def subset(self, indices: Sequence[int]) -> "Listing":
        return Listing(self.root, self.split, self.classes, [self.items[i] for i in indices], self.blobs)

    def read(self, name: str) -> bytes:
        if self.blobs is not None:
            return self.blobs[name]
        return Path(name).read_bytes()


def scan_folder(root: str | Path, splits: tuple[str, ...] = ("train", "val", "test")) -> dict[str, Listing]:
    """``{split: Listing}`` for the splits of ``root`` (a folder or a tar archive) among ``splits``.

    ``train`` is required and at least one of the others; class folders must agree
    between splits; a class folder without images is an error naming it.
    """
    root = Path(root)
    layout = "train/<class>/*.jpg and val/<class>/*.jpg (or test/)"
    if not root.exists():
        raise MnasError(f"image folder {root} does not exist: expected a folder (or .tar/.tar.gz) with {layout}")
    files: dict[tuple[str, str], list[str]] = {}
    blobs: dict[str, bytes] | None = None
    if root.is_file():
        if not root.name.endswith((".tar.gz", ".tgz", ".tar")):
            raise MnasError(f"{root} is a file but not a .tar/.tar.gz archive: expected a folder or archive with {layout}")
        blobs = {}
        try:
            with tarfile.open(root) as tf:
                for m in tf:
                    if not m.isfile() or not m.name.lower().endswith(IMAGE_SUFFIXES):
                        continue
                    parts = Path(m.name).parts[-3:]
                    if len(parts) != 3 or parts[0] not in splits:
                        continue
                    f = tf.extractfile(m)
                    if f is None:
                        continue
                    blobs[m.name] = f.read()
                    files.setdefault((parts[0], parts[1]), []).append(m.name)
        except (tarfile.TarError, OSError, EOFError) as e:
            raise MnasError(f"{root} is not a readable tar archive ({e})") from None
    else:
        for split_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name in splits):
            for cls_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
                files[(split_dir.name, cls_dir.name)] = [str(p) for p in cls_dir.iterdir()
                                                         if p.suffix.lower() in IMAGE_SUFFIXES]
    found = sorted({s for s, _ in files})
    if "train" not in found or len(found) < 2:
        raise MnasError(f"{root} has split folders {found or 'none'}: expected {layout}")
    classes = tuple(sorted(c for s, c in files if s == "train"))
    if len(classes) < 2:
        raise MnasError(f"{root}/train has {len(classes)} class folder(s): expected one folder per class ({layout})")
    out = {}
    for split in found:
        split_classes = tuple(sorted(c for s, c in files if s == split))
        if split_classes != classes:
            raise MnasError(f"{root}: class folders differ between train {list(classes)} and {split} {list(split_classes)}")
        items = []
        for label, c in enumerate(classes):
            names = sorted(files[(split, c)])
            if not names:
                raise MnasError(f"{root}/{split}/{c} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            items.extend((n, label) for n in names)
        out[split] = Listing(str(root), split, classes, items, blobs)
    return out


def balanced_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` images, as class-balanced as possible (counts differ by at most one where
    every class has enough images), drawn with ``numpy.random.default_rng(seed)``."""
    labels = np.asarray(labels)
    if not 0 < n <= len(labels):
        raise MnasError(f"subset {n} must be between 1 and {len(labels)} images")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    quota = {c: 0 for c in classes}
    left = n
    while left:  # water-filling: equal shares, classes that run out give theirs to the others
        open_ = [c for c in classes if quota[c] < len(pools[c])]
        share, extra = divmod(left, len(open_))
        lucky = set(rng.permutation(open_)[:extra].tolist()) if extra else set()
        for c in open_:
            take = min(share + (c in lucky), len(pools[c]) - quota[c])
            quota[c] += take
            left -= take
    return np.sort(np.concatenate([pools[c][: quota[c]] for c in classes]))


# --------------------------------------------------------------------------- transforms


def _rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


def inception_crop(img, size: int, rng: np.random.Generator, min_crop: float = 0.08, hflip: bool = True):
    """Inception-style random-resized crop of a PIL image to ``size``×``size`` (then a flip half the time)."""
    from PIL import Image

    w, h = img.size
    area = w * h
    box = None
    for _ in range(10):
        target = area * rng.uniform(min_crop, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            box = (left, top, left + cw, top + ch)
            break
    if box is None:  # fall back to the largest centred crop within the ratio range
        r = w / h
        cw, ch = (w, h) if 3 / 4 <= r <= 4 / 3 else ((int(round(h * 4 / 3)), h) if r > 4 / 3 else (w, int(round(w * 4 / 3))))
        left, top = (w - cw) // 2, (h - ch) // 2
        box = (left, top, left + cw, top + ch)
    img = img.resize((size, size), Image.Resampling.BILINEAR, box=box)
    if hflip and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return img


def center_crop(img, size: int, crop_fraction: float = 0.875):
    """Shorter side to ``round(size / crop_fraction)``, then the centre ``size``×``size`` crop."""
    from PIL import Image

    w, h = img.size
    short = max(size, int(round(size / crop_fraction)))
    s = short / min(w, h)
    nw, nh = max(short, int(round(w * s))), max(short, int(round(h * s)))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def pad_crop(a: np.ndarray, rng: np.random.Generator, hflip: bool = True, pad: int | None = None) -> np.ndarray:
    """CIFAR augmentation of one ``H×W×C`` array: random crop of its ``pad``-zero-padded copy
    (``pad`` default ``max(1, H // 8)``: 4 at 32×32), then a flip half the time."""
    h, w = a.shape[:2]
    pad = max(1, h // 8) if pad is None else pad
    p = np.pad(a, ((pad, pad), (pad, pad), (0, 0)))
    dy, dx = int(rng.integers(0, 2 * pad + 1)), int(rng.integers(0, 2 * pad + 1))
    out = p[dy:dy + h, dx:dx + w]
    if hflip and rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


@dataclass(frozen=True)
class Transform:
    """What one split does to an image: ``train`` (augment) or not, at ``size``."""

    size: int
    train: bool
    augment: str = "inception"  # inception | pad-crop | none
    min_crop: float = 0.08
    crop_fraction: float = 0.875
    hflip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTS:
            raise MnasError(f"unknown augment {self.augment!r} (choose {', '.join(AUGMENTS)})")
        if not 0 < self.min_crop <= 1:
            raise MnasError(f"min_crop must be in (0, 1], got {self.min_crop}")
        if not 0 < self.crop_fraction <= 1:
            raise MnasError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")

    def pil(self, img, epoch: int, index: int) -> np.ndarray:
        """A decoded RGB PIL image -> uint8 ``size×size×3``."""
        if self.train and self.augment == "inception":
            img = inception_crop(img, self.size, _rng(self.seed, epoch, index), self.min_crop, self.hflip)
            return np.asarray(img, dtype=np.uint8)
        a = np.asarray(center_crop(img, self.size, self.crop_fraction) if img.size != (self.size, self.size) else img,
                       dtype=np.uint8)
        if self.train and self.augment == "pad-crop":
            a = pad_crop(a, _rng(self.seed, epoch, index), self.hflip)
        return a

    def array(self, a: np.ndarray, epoch: int, index: int) -> np.ndarray:
        """One uint8 ``H×W×C`` array (in-memory datasets) -> uint8 ``size×size×C``."""
        if a.shape[0] != self.size or a.shape[1] != self.size or (self.train and self.augment == "inception"):
            from PIL import Image

            img = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
            if self.train and self.augment == "inception":
                out = np.asarray(inception_crop(img, self.size, _rng(self.seed, epoch, index), self.min_crop, self.hflip))
            else:
                out = np.asarray(img.resize((self.size, self.size), Image.Resampling.BILINEAR))
            a = out.reshape(self.size, self.size, -1)
            if not (self.train and self.augment == "pad-crop"):
                return np.ascontiguousarray(a)
        if self.train and self.augment == "pad-crop":
            a = pad_crop(a, _rng(self.seed, epoch, index), self.hflip)
        return a


# --------------------------------------------------------------------------- datasets (torch)


class FolderImages:
    """A map-style dataset over a :class:`Listing`: ``ds[(index, epoch)] -> (uint8 C×H×W tensor, label)``."""

    def __init__(self, listing: Listing, transform: Transform):
        self.listing = listing
        self.transform = transform
        self.channels = 3

    def __len__(self) -> int:
        return len(self.listing)

    def __getitem__(self, key: tuple[int, int]):
        import torch
        from PIL import Image

        index, epoch = key
        name, label = self.listing.items[index]
        try:
            img = Image.open(io.BytesIO(self.listing.read(name))).convert("RGB")
        except Exception as e:  # noqa: BLE001 - PIL raises many types for a bad file
            raise MnasError(f"{name} is not a readable image ({type(e).__name__}: {e})") from None
        a = self.transform.pil(img, epoch, index)
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))), label


class ArrayImages:
    """The same interface over uint8 ``N×H×W×C`` arrays (the small datasets of :mod:`mnas.data`)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform: Transform):
        self.x, self.y = x, y
        self.transform = transform
        self.channels = int(x.shape[3])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, key: tuple[int, int]):
        import torch

        index, epoch = key
        a = self.transform.array(self.x[index], epoch, index)
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))), int(self.y[index])


# --------------------------------------------------------------------------- sampling


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of ``range(n)`` that epoch ``epoch`` visits (depends on ``seed`` and ``epoch`` only)."""
    return np.random.default_rng([seed, 1_000_003, epoch]).permutation(n)


class ShardSampler:
    """A distributed batch sampler with resumable position: yields this rank's micro-batches of ``(index, epoch)``.

    Each epoch visits a seeded permutation in steps of ``global_batch`` images (the last
    partial step is dropped); a step's images are cut into ``world × accum`` equal shards,
    shard ``rank·accum + m`` being micro-batch ``m`` of ``rank``. So 2 processes × 1
    micro-batch and 1 process × 2 micro-batches see exactly the same shards.
    ``start_step`` skips the first steps of the first epoch (a resumed run). For
    validation (``shuffle=False``) every image is visited once, in order, split between
    ranks by stride, the last batch possibly short.
    """

    def __init__(self, n: int, global_batch: int, *, rank: int = 0, world: int = 1, accum: int = 1, seed: int = 0,
                 epoch: int = 0, start_step: int = 0, shuffle: bool = True):
        if shuffle and global_batch % (world * accum):
            raise MnasError(f"batch_size {global_batch} must be a multiple of processes × accum = {world * accum}")
        if shuffle and n < global_batch:
            raise MnasError(f"batch_size {global_batch} is larger than the {n} training images")
        self.n, self.global_batch, self.rank, self.world, self.accum = n, global_batch, rank, world, accum
        self.seed, self.epoch, self.start_step, self.shuffle = seed, epoch, start_step, shuffle

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.global_batch

    @property
    def micro(self) -> int:
        return self.global_batch // (self.world * self.accum)

    def __len__(self) -> int:
        if not self.shuffle:
            mine = len(range(self.rank, self.n, self.world))
            return -(-mine // max(1, self.global_batch // self.world))
        return (self.steps_per_epoch - self.start_step) * self.accum

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if not self.shuffle:
            mine = list(range(self.rank, self.n, self.world))
            per = max(1, self.global_batch // self.world)
            for i in range(0, len(mine), per):
                yield [(j, self.epoch) for j in mine[i:i + per]]
            return
        order = epoch_order(self.n, self.seed, self.epoch)
        b = self.micro
        for step in range(self.start_step, self.steps_per_epoch):
            chunk = order[step * self.global_batch:(step + 1) * self.global_batch]
            for m in range(self.accum):
                k = self.rank * self.accum + m
                yield [(int(i), self.epoch) for i in chunk[k * b:(k + 1) * b]]


def loader(dataset: Any, sampler: ShardSampler, workers: int = 0, pin_memory: bool = False):
    """A ``torch.utils.data.DataLoader`` over ``dataset`` driven by ``sampler`` (uint8 batches, int64 labels)."""
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=False, prefetch_factor=4 if workers else None)

"""Datasets as arrays: decode once, cache as ``.npy`` files, split reproducibly.

``load_dataset(name, data_dir=None)`` returns an :class:`ArrayDataset` (uint8
images ``N×H×W×C`` and int64 labels for a train and a test split). Sources:

=================  ===========================================================
``digits``         scikit-learn's bundled 8×8 digits (1,797 images, 1 channel),
                   for smoke runs; a fixed seeded 80/20 train/test split
``cifar10``        the official python-batch format (``data_batch_1..5``,
                   ``test_batch``) in ``data_dir`` or ``data_dir/cifar-10-batches-py``;
                   ``download=True`` (or ``mnas data fetch cifar10``) fetches it into the data root
``cifar10-folder`` an image-folder tree ``train/<class>/*.jpg`` and
                   ``test/<class>/*.jpg``, or a ``.tar.gz`` of that tree (read
                   straight from the archive; default: ``$MNAS_CIFAR10``, the data
                   root's copy (``mnas data fetch cifar10-folder``) or
                   ``../shared/data/cifar10/cifar10_jpg.tar.gz`` beside the repository)
``imagenet-folder`` ImageNet-style ``train/<class>/*`` and ``val/<class>/*``
                   (or ``test/``), resized (shorter side) and centre-cropped to
                   ``resolution`` when decoded
=================  ===========================================================

Decoded arrays are cached under ``$MNAS_CACHE/datasets`` (default
``~/.cache/mnas``) keyed by the source's path, size and modification time, so
each source is decoded once. A missing or malformed source is a
:class:`~mnas.errors.MnasError` saying what was expected where.

The test split is for final reporting only; search evaluates on a seeded,
class-stratified validation split held out from train (:meth:`ArrayDataset.split`).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import zlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnas.errors import MnasError

DATASETS = ("cifar10", "cifar10-folder", "digits", "imagenet-folder")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
REPO = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """``$MNAS_CACHE`` or ``~/.cache/mnas``."""
    return Path(os.environ.get("MNAS_CACHE") or Path.home() / ".cache" / "mnas").expanduser()


@dataclass
class Split:
    """Images (uint8, ``N×H×W×C``) and labels (int64)."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class ArrayDataset:
    name: str
    train: Split
    test: Split
    classes: tuple[str, ...]
    source: str = ""
    hflip: bool = True  # horizontal flips keep the label (false for digits)
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.mean:
            x = self.train.x.reshape(-1, self.channels)
            mean = [float(x[:, c].mean(dtype=np.float64)) for c in range(self.channels)]
            sq = [float((x[:, c].astype(np.float32) ** 2).mean(dtype=np.float64)) for c in range(self.channels)]
            self.mean = tuple(m / 255.0 for m in mean)
            self.std = tuple(max((q - m * m) ** 0.5 / 255.0, 1e-3) for m, q in zip(mean, sq))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def resolution(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def channels(self) -> int:
        return int(self.train.x.shape[3])

    def split(self, val_size: int | float, seed: int = 0, train_size: int | None = None) -> tuple[Split, Split]:
        """``(train, val)``: a class-stratified validation split held out from train.

        ``val_size`` is a count or a fraction of train; ``train_size`` optionally
        keeps a stratified subset of the rest (a proxy training set). Both depend
        on ``seed`` only, never on the order of calls.
        """
        n = len(self.train)
        nval = int(round(val_size * n)) if isinstance(val_size, float) and val_size < 1 else int(val_size)
        if not 0 < nval < n:
            raise MnasError(f"{self.name}: validation size {val_size} must be between 1 and {n - 1} images")
        rng = np.random.default_rng(seed)
        order = _stratified_order(self.train.y, rng)
        val_idx, rest = order[:nval], order[nval:]
        if train_size is not None:
            if not 0 < train_size <= len(rest):
                raise MnasError(f"{self.name}: train subset {train_size} must be between 1 and {len(rest)} images")
            rest = rest[:train_size]
        val_idx, rest = np.sort(val_idx), np.sort(rest)
        return Split(self.train.x[rest], self.train.y[rest]), Split(self.train.x[val_idx], self.train.y[val_idx])


def _stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation of indices whose every prefix is (nearly) class-balanced."""
    rank = np.empty(len(y), dtype=np.float64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rank[rng.permutation(idx)] = (np.arange(len(idx)) + rng.random()) / len(idx)
    return np.argsort(rank, kind="stable")


# --------------------------------------------------------------------------- entry point


def load_dataset(
    name: str, data_dir: str | Path | None = None, *, download: bool = False, resolution: int | None = None, progress: bool = True
) -> ArrayDataset:
    """Load ``name`` (one of :data:`DATASETS`) from ``data_dir``, decoding only on the first call."""
    if name == "digits":
        return _digits()
    if name == "cifar10":
        return _cifar10_batches(data_dir, download)
    if name == "cifar10-folder":
        src = Path(data_dir) if data_dir else default_cifar10_folder()
        return _folder(name, src, ("train", "test"), None, progress, expected_classes=CIFAR10_CLASSES)
    if name == "imagenet-folder":
        if data_dir is None:
            raise MnasError("imagenet-folder needs --data-dir: a folder with train/<class>/* and val/<class>/* images")
        return _folder(name, Path(data_dir), ("train", ("val", "test")), resolution or 224, progress)
    raise MnasError(f"unknown dataset {name!r} (choose one of {', '.join(DATASETS)})")


def _registry_path(name: str) -> Path:
    from mnas.data.registry import default_path

    return default_path(name)


def default_cifar10_folder() -> Path:
    env = os.environ.get("MNAS_CIFAR10")
    if env:
        return Path(env)
    return _registry_path("cifar10-folder")  # the data root's copy (`mnas data fetch cifar10-folder`), else ../shared/data's


# --------------------------------------------------------------------------- cache


def _source_id(path: Path, extra: str = "") -> str:
    st = path.stat()
    text = f"{path.resolve()}|{st.st_size}|{int(st.st_mtime)}|{extra}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _cached(name: str, key: str, build) -> ArrayDataset:
    folder = cache_dir() / "datasets" / f"{name}-{key}"
    done = folder / "complete"
    if done.exists():
        meta = done.read_text().splitlines()
        try:
            return ArrayDataset(
                name=name,
                train=Split(np.load(folder / "train_x.npy"), np.load(folder / "train_y.npy")),
                test=Split(np.load(folder / "test_x.npy"), np.load(folder / "test_y.npy")),
                classes=tuple(meta[1].split(",")),
                source=meta[0],
                hflip=meta[2] == "1",
                mean=tuple(float(v) for v in meta[3].split(",")),
                std=tuple(float(v) for v in meta[4].split(",")),
            )
        except (OSError, ValueError, IndexError):
            pass  # a damaged cache entry: decode again
    ds = build()
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        s = getattr(ds, split)
        np.save(folder / f"{split}_x.npy", s.x)
        np.save(folder / f"{split}_y.npy", s.y)
    stats = "\n".join(",".join(repr(v) for v in t) for t in (ds.mean, ds.std))
    done.write_text(f"{ds.source}\n{','.join(ds.classes)}\n{int(ds.hflip)}\n{stats}\n")
    return ds


# --------------------------------------------------------------------------- digits


def _digits() -> ArrayDataset:
    from importlib.metadata import version

    return _cached("digits", f"sklearn-{version('scikit-learn')}", _decode_digits)


def _decode_digits() -> ArrayDataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(d.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)[..., None]
    y = d.target.astype(np.int64)
    order = _stratified_order(y, np.random.default_rng(0))
    ntest = len(y) // 5
    te, tr = np.sort(order[:ntest]), np.sort(order[ntest:])
    return ArrayDataset("digits", Split(x[tr], y[tr]), Split(x[te], y[te]), tuple(str(i) for i in range(10)), "sklearn.datasets.load_digits", hflip=False)


# --------------------------------------------------------------------------- CIFAR-10 python batches

_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _cifar10_batches(data_dir: str | Path | None, download: bool) -> ArrayDataset:
    root = Path(data_dir) if data_dir else _registry_path("cifar10").parent  # data root (`mnas data fetch cifar10`)
    folder = _find_batches(root)
    if folder is None and download:
        _download_cifar10(root)
        folder = _find_batches(root)
    if folder is None:
        hint = "; get it with `mnas data fetch cifar10`" + ("" if download else " (or pass download=True / --download)")
        raise MnasError(
            f"cifar10: no CIFAR-10 python batches in {root}: expected data_batch_1..5 and test_batch "
            f"there or in {root / 'cifar-10-batches-py'}{hint}"
        )

    def build() -> ArrayDataset:
        parts = []
        for b in _BATCHES:
            try:
                with open(folder / b, "rb") as f:
                    d = pickle.load(f, encoding="bytes")  # the official format is a pickle
                x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                y = np.asarray(d[b"labels"], dtype=np.int64)
            except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
                raise MnasError(f"cifar10: {folder / b} is not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
            parts.append((np.ascontiguousarray(x), y))
        xtr = np.concatenate([p[0] for p in parts[:5]])
        ytr = np.concatenate([p[1] for p in parts[:5]])
        return ArrayDataset("cifar10", Split(xtr, ytr), Split(*parts[5]), CIFAR10_CLASSES, str(folder))

    return _cached("cifar10", _source_id(folder / "test_batch"), build)


def _find_batches(root: Path) -> Path | None:
    for folder in (root, root / "cifar-10-batches-py"):
        if all((folder / b).is_file() for b in _BATCHES):
            return folder
    return None


def _download_cifar10(root: Path) -> None:  # pragma: no cover - needs a network
    import urllib.request

    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-10-python.tar.gz"
    try:
        urllib.request.urlretrieve(CIFAR10_URL, archive)
    except OSError as e:
        raise MnasError(f"cifar10: could not download {CIFAR10_URL} ({e}); put the python batches in {root} yourself") from None
    with tarfile.open(archive) as tf:
        tf.extractall(root, filter="data")


# --------------------------------------------------------------------------- image folders


def _folder(
    name: str,
    src: Path,
    splits: tuple,
    resolution: int | None,
    progress: bool,
    expected_classes: tuple[str, ...] | None = None,
) -> ArrayDataset:
    test_names = splits[1] if isinstance(splits[1], tuple) else (splits[1],)
    layout = f"train/<class>/*.jpg and {'|'.join(test_names)}/<class>/*.jpg"
    if not src.exists():
        raise MnasError(f"{name}: {src} does not exist: expected a folder (or .tar.gz) with {layout}"
                        + ("; get it with `mnas data fetch cifar10-folder`" if name == "cifar10-folder" else ""))
    key = _source_id(src, f"res={resolution}")

    def build() -> ArrayDataset:
        if src.is_file():
            if not src.name.endswith((".tar.gz", ".tgz", ".tar")):
                raise MnasError(f"{name}: {src} is a file but not a .tar.gz/.tar archive: expected a folder or archive with {layout}")
            files = _tar_files(src, name)
        else:
            files = _dir_files(src)
        return _decode_tree(name, str(src), files, test_names, layout, resolution, progress, expected_classes)

    return _cached(name, key, build)


def _dir_files(root: Path):
    """``{(split, class): [(name, reader)]}`` for a directory tree."""
    out: dict[tuple[str, str], list] = {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for cls_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            files = sorted(p for p in cls_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            out[(split_dir.name, cls_dir.name)] = [(str(p), p.read_bytes) for p in files]
    return out


def _tar_files(path: Path, name: str):
    out: dict[tuple[str, str], list] = {}
    try:
        with tarfile.open(path) as tf:
            for m in tf:
                if not m.isfile() or not m.name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                parts = Path(m.name).parts
                parts = parts[-3:] if len(parts) >= 3 else parts
                if len(parts) != 3:
                    continue
                data = tf.extractfile(m).read()
                out.setdefault((parts[0], parts[1]), []).append((m.name, lambda d=data: d))
            # read the compressed stream to its end: gzip checks its CRC and length only there, and the tar
            # reader stops at the end-of-archive blocks before it; a damaged byte then fails here, by name
            while tf.fileobj is not None and tf.fileobj.read(1 << 20):
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        why = "its checksum does not match: the archive is damaged (download or copy it again)" \
            if "CRC" in str(e) or "length" in str(e) else str(e)
        raise MnasError(f"{name}: {path} is not a readable tar archive ({why})") from None
    for v in out.values():
        v.sort(key=lambda t: t[0])
    return out


def _decode_tree(name, source, files, test_names, layout, resolution, progress, expected_classes) -> ArrayDataset:
    from PIL import Image

    splits_found = sorted({s for s, _ in files})
    test_split = next((t for t in test_names if t in splits_found), None)
    if "train" not in splits_found or test_split is None:
        raise MnasError(f"{name}: {source} has split folders {splits_found or 'none'}: expected {layout}")
    classes = tuple(sorted(c for s, c in files if s == "train"))
    test_classes = tuple(sorted(c for s, c in files if s == test_split))
    if classes != test_classes:
        raise MnasError(f"{name}: {source}: class folders differ between train {list(classes)} and {test_split} {list(test_classes)}")
    if len(classes) < 2:
        raise MnasError(f"{name}: {source}/train has {len(classes)} class folder(s): expected one folder per class ({layout})")
    if expected_classes and set(classes) != set(expected_classes):
        raise MnasError(f"{name}: {source}: class folders {list(classes)} are not CIFAR-10's {list(expected_classes)}")
    for split in ("train", test_split):
        for c in classes:
            if not files[(split, c)]:
                raise MnasError(f"{name}: {source}/{split}/{c} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    total = sum(len(files[(s, c)]) for s in ("train", test_split) for c in classes)
    try:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"decoding {name}", unit="img", disable=not progress, leave=False)
    except ImportError:  # pragma: no cover
        bar = None
    out = {}
    size = resolution
    for split in ("train", test_split):
        xs, ys = [], []
        for ci, c in enumerate(classes):
            for fname, read in files[(split, c)]:
                try:
                    img = Image.open(io.BytesIO(read())).convert("RGB")
                except Exception as e:  # PIL raises many types for a bad file
                    raise MnasError(f"{name}: {fname} is not a readable image ({type(e).__name__})") from None
                if resolution:
                    img = _resize_crop(img, resolution)
                elif size is None:
                    size = img.size[0]
                if img.size != (size, size):
                    raise MnasError(f"{name}: {fname} is {img.size[0]}×{img.size[1]}, expected {size}×{size} like the first image")
                xs.append(np.asarray(img, dtype=np.uint8))
                ys.append(ci)
                if bar is not None:
                    bar.update()
        out[split] = Split(np.stack(xs), np.asarray(ys, dtype=np.int64))
    if bar is not None:
        bar.close()
    return ArrayDataset(name, out["train"], out[test_split], classes, source, hflip=True)


def _resize_crop(img, size: int):
    from PIL import Image

    w, h = img.size
    s = size / min(w, h)
    img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def timed_load(name: str, data_dir=None, **kw) -> tuple[ArrayDataset, float]:
    t0 = time.perf_counter()
    ds = load_dataset(name, data_dir, **kw)
    return ds, time.perf_counter() - t0

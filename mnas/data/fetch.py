"""``mnas data fetch``: download a dataset (resumably), check its sha256, convert it to what mnas reads.

:func:`fetch` installs dataset ``name`` (see :mod:`mnas.data.registry`) under a data
root, from its published URLs or from ``source``: a local file or folder (how to
install a copy made elsewhere, and how the tests run offline) or another URL.

* **Download** (:func:`download`): ``urllib`` into ``NAME.part`` beside the final file;
  a rerun after an interruption asks for the rest (HTTP ``Range``) and appends it,
  or starts over where the server ignores the range; a progress bar (tqdm) on stderr.
* **Check**: every input's sha256 is computed. A file pinned in the registry must match
  (else an error, unless ``check=False``); an input whose hash is not pinned (a release
  that changes, a GitHub archive) is reported with its hash, and its content is checked
  by the conversion instead.
* **Convert**: Accel-NASBench's JSON tarball becomes its CSV
  (:func:`mnas.anb.release.convert_release`), CIFAR-10's tarball is unpacked to its
  batches; the other datasets are used as published. Each result is read back with
  mnas's own loader before ``fetch`` reports success.

Every file is written through a temporary name and renamed, so an interrupted fetch
never leaves a half-written dataset where a loader would find it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mnas.data.registry import Dataset, Source, data_root, get, is_present, load_function
from mnas.errors import MnasError

CHUNK = 1 << 20
USER_AGENT = "mnas-data-fetch (+https://github.com/; urllib)"


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def is_url(text: str) -> bool:
    return str(text).startswith(("http://", "https://"))


# --------------------------------------------------------------------------- download


def download(url: str, dest: str | Path, *, sha256: str | None = None, progress: bool = True,
             timeout: float = 60.0, check: bool = True, offline_hint: str = "`--from FILE`") -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a partial ``.part`` with an HTTP Range request.

    With ``sha256`` (and ``check``) the finished file must have that hash: a mismatch removes
    the ``.part`` (a rerun starts afresh) and raises. ``dest`` appears only when complete.
    """
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the range starts at the end: the .part is already complete
            resp = None
        else:
            raise MnasError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise MnasError(f"cannot download {url} ({reason}): no network here? download the file elsewhere and "
                        f"install it with {offline_hint}") from None
    if resp is not None:
        with resp:
            resumed = have > 0 and getattr(resp, "status", 200) == 206
            if not resumed:
                have = 0  # the server sent the whole file: start over
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            with open(part, "ab" if resumed else "wb") as f, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                    desc=dest.name, disable=not progress, dynamic_ncols=True, leave=False) as bar:
                try:
                    for block in iter(lambda: resp.read(CHUNK), b""):
                        f.write(block)
                        bar.update(len(block))
                except (OSError, urllib.error.URLError) as e:
                    raise MnasError(f"download of {url} broke off after {part.stat().st_size} bytes ({e}): "
                                    "rerun the same command to resume it") from None
    got = sha256_of(part)
    if sha256 and check and got != sha256:
        part.unlink()
        raise MnasError(f"{url}: sha256 {got}, expected {sha256}: the download is corrupt or the file changed "
                        "upstream (rerun to download it again; --no-check accepts it as it is)")
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------- fetch


def fetch(name: str, source: str | Path | None = None, root: str | Path | None = None, *,
          progress: bool = True, check: bool = True, force: bool = False) -> dict[str, Any]:
    """Install dataset ``name`` under ``root`` (default :func:`~mnas.data.registry.data_root`); returns a report.

    ``source``: None (the registry's URLs), a URL, or a local file/folder holding the
    published form (or, for Accel-NASBench, its CSV). Without ``source`` an installed dataset is
    kept unless ``force``; a ``source`` replaces it.
    """
    ds = get(name)
    root = Path(root).expanduser() if root else data_root()
    target = root / ds.target
    report: dict[str, Any] = {"name": name, "path": str(target), "inputs": [], "converted": None}
    if is_present(ds, target) and not force and source is None:  # a --from copy replaces what is there
        report["already_present"] = True
        return report
    downloads = root / ".downloads" / name
    if source is None:
        hint = f"`mnas data fetch {name} --from FILE`" + (" (a folder of them)" if len(ds.sources) > 1 else "")
        inputs = [download(s.url, downloads / s.filename, sha256=s.sha256, progress=progress, check=check,
                           offline_hint=hint) for s in ds.sources]
        pins = {str(p): s for p, s in zip(inputs, ds.sources)}
    elif is_url(str(source)):
        inputs = [download(str(source), downloads / (str(source).rstrip("/").rsplit("/", 1)[-1] or "download"),
                           progress=progress)]
        pins = {}
    else:
        src = Path(source).expanduser()
        if not src.exists():
            raise MnasError(f"--from {src}: no such file or folder")
        inputs = [src]
        pins = {}
    installer = _INSTALLERS.get(name, _install_single_file)
    report.update(installer(ds, inputs, target, pins, check=check, progress=progress))
    if not is_present(ds, target):  # pragma: no cover - an installer that forgot to write its target
        raise MnasError(f"{name}: nothing was installed at {target}")
    if source is None or is_url(str(source)):
        shutil.rmtree(downloads, ignore_errors=True)  # the download served its purpose (a .part is kept on failure)
    return report


def _verify(ds: Dataset, path: Path, pin: Source | None, check: bool) -> dict[str, Any]:
    """sha256 of one input file, and what it was checked against.

    A hash the registry knows (a published file, or another known-good input) verifies it. A
    file the registry pins (the dataset's one source, or the source of the same name) must
    match, unless ``check`` is off. Otherwise the hash is reported and the content checked.
    """
    got = sha256_of(path)
    entry: dict[str, Any] = {"file": str(path), "sha256": got}
    pinned = {s.sha256: s for s in ds.sources if s.sha256}
    same_name = [s for s in ds.sources if s.filename == path.name]
    relevant = pin or (same_name[0] if same_name else ds.sources[0] if len(ds.sources) == 1 else None)
    if got in ds.known_inputs:
        entry["verified"] = ds.known_inputs[got]
    elif got in pinned:
        entry["verified"] = f"sha256 of the published {pinned[got].filename}"
    elif relevant is not None and relevant.sha256:
        if check:
            raise MnasError(f"{path}: sha256 {got} is not that of the published {relevant.filename} "
                            f"({relevant.sha256}, from {relevant.url}): give that file, or pass --no-check to "
                            "install this one anyway")
        entry["verified"] = "no (--no-check)"
    else:
        entry["verified"] = "not pinned: content checked by reading it back"
    return entry


def _copy(src: Path, dest: Path) -> None:
    from mnas.io import atomic_output

    with atomic_output(dest) as tmp:
        shutil.copyfile(src, tmp)


def _install_single_file(ds: Dataset, inputs: list[Path], target: Path, pins: dict, *, check: bool,
                         progress: bool) -> dict[str, Any]:
    src = inputs[0]
    if src.is_dir():
        inner = src / Path(ds.target).name
        if not inner.is_file():
            raise MnasError(f"--from {src} is a folder without {Path(ds.target).name}: give the file itself")
        src = inner
    entry = _verify(ds, src, pins.get(str(src)), check)
    _validate_single(ds, src)
    _copy(src, target)
    return {"inputs": [entry], "converted": None}


def _validate_single(ds: Dataset, path: Path) -> None:
    """Read the file as mnas will (a wrong file fails here, before it is installed)."""
    if ds.reader:
        load_function(ds.reader)(path)
    elif ds.name == "pixel1_singlepath":
        try:
            doc = json.loads(path.read_text())
            ok = isinstance(doc, dict) and len(doc) == 22 and all(isinstance(v, dict) and len(v) == 4 for v in doc.values())
        except (ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            raise MnasError(f"{path} is not Single-Path NAS's pixel1_runtime_model.json "
                            "(expected {layer: {choice: ms}} for 22 layers x 4 choices)")
    elif ds.name == "ofa_predictor":
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] != b"PK" and head[:1] != b"\x80":  # torch's zip format, or a legacy pickle
            raise MnasError(f"{path} is not a torch state dict (OFA's acc_predictor.pth)")


def _install_anb(ds: Dataset, inputs: list[Path], target: Path, pins: dict, *, check: bool,
                 progress: bool) -> dict[str, Any]:
    load_csv = load_function(ds.reader or "")
    src = inputs[0]
    if src.is_dir():
        raise MnasError(f"--from {src} is a folder: give Accel-NASBench's anb_dataset_jsons.tar.gz "
                        "(or an accel_nasbench.csv)")
    entry = _verify(ds, src, pins.get(str(src)), check)
    if src.suffix.lower() == ".csv":
        load_csv(src)  # validated as every loader reads it
        _copy(src, target)
        return {"inputs": [entry], "converted": None}
    from tqdm import tqdm

    convert_release = load_function(ds.converter or "")
    with tqdm(desc="convert", unit="net", file=sys.stderr, disable=not progress, leave=False) as bar:
        counts = convert_release(src, target, progress=bar.update)
    load_csv(target)
    return {"inputs": [entry], "converted": {"from": "release JSON tarball", "to": "csv", **counts}}


CIFAR10_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                   "batches.meta")


def _install_cifar10(ds: Dataset, inputs: list[Path], target: Path, pins: dict, *, check: bool,
                     progress: bool) -> dict[str, Any]:
    src = inputs[0]
    target.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        folder = src / "cifar-10-batches-py" if (src / "cifar-10-batches-py").is_dir() else src
        missing = [b for b in CIFAR10_BATCHES[:6] if not (folder / b).is_file()]
        if missing:
            raise MnasError(f"--from {src}: no CIFAR-10 python batches ({', '.join(missing)} missing)")
        for b in CIFAR10_BATCHES:
            if (folder / b).is_file():
                _copy(folder / b, target / b)
        return {"inputs": [{"file": str(folder), "verified": "folder (batches read back)"}], "converted": None}
    entry = _verify(ds, src, pins.get(str(src)), check)
    found = set()
    try:
        with tarfile.open(src) as tf:
            for m in tf:
                base = Path(m.name).name
                if m.isfile() and base in CIFAR10_BATCHES and Path(m.name).parent.name == "cifar-10-batches-py":
                    f = tf.extractfile(m)
                    if f is None:
                        continue
                    from mnas.io import atomic_output

                    with atomic_output(target / base) as tmp, open(tmp, "wb") as out:
                        shutil.copyfileobj(f, out, CHUNK)
                    found.add(base)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise MnasError(f"{src} is not a readable tar archive ({e}): give cifar-10-python.tar.gz") from None
    missing = [b for b in CIFAR10_BATCHES[:6] if b not in found]
    if missing:
        raise MnasError(f"{src} lacks cifar-10-batches-py/{', '.join(missing)}: is it CIFAR-10's python tarball?")
    return {"inputs": [entry], "converted": {"from": "tar.gz", "to": "cifar-10-batches-py", "files": sorted(found)}}


def _install_cifar10_folder(ds: Dataset, inputs: list[Path], target: Path, pins: dict, *, check: bool,
                            progress: bool) -> dict[str, Any]:
    from mnas.data import CIFAR10_CLASSES

    src = inputs[0]
    if src.is_dir():  # a tree train/<class>/*.jpg: packed into the archive the loader reads
        for split in ("train", "test"):
            have = {p.name for p in (src / split).iterdir() if p.is_dir()} if (src / split).is_dir() else set()
            if have != set(CIFAR10_CLASSES):
                raise MnasError(f"--from {src}: {split}/ has class folders {sorted(have) or 'none'}, expected "
                                f"{', '.join(CIFAR10_CLASSES)}")
        from mnas.io import atomic_output

        with atomic_output(target) as tmp, tarfile.open(tmp, "w:gz") as tf:
            for split in ("train", "test"):
                tf.add(src / split, arcname=split)
        return {"inputs": [{"file": str(src), "verified": "folder (class folders checked)"}],
                "converted": {"from": "folder", "to": "tar.gz"}}
    entry = _verify(ds, src, pins.get(str(src)), check)
    seen: dict[str, set[str]] = {"train": set(), "test": set()}
    try:
        with tarfile.open(src) as tf:
            for m in tf:
                parts = Path(m.name).parts
                if m.isfile() and len(parts) >= 3 and parts[-3] in seen:
                    seen[parts[-3]].add(parts[-2])
    except (tarfile.TarError, OSError, EOFError) as e:
        raise MnasError(f"{src} is not a readable tar archive ({e}): give a .tar.gz of train/<class>/*.jpg, "
                        "test/<class>/*.jpg") from None
    for split, classes in seen.items():
        if classes != set(CIFAR10_CLASSES):
            raise MnasError(f"{src}: {split}/ has class folders {sorted(classes) or 'none'}, expected "
                            f"{', '.join(CIFAR10_CLASSES)}")
    _copy(src, target)
    return {"inputs": [entry], "converted": None}


def _install_note10(ds: Dataset, inputs: list[Path], target: Path, pins: dict, *, check: bool,
                    progress: bool) -> dict[str, Any]:
    load_ofa_table = load_function(ds.reader or "")
    names = [s.filename for s in ds.sources]
    entries = []
    with tempfile.TemporaryDirectory(prefix=".note10-", dir=_parent_for_temp(target)) as tmpdir:
        staged = Path(tmpdir)
        if len(inputs) == 1 and inputs[0].is_file() and not inputs[0].name.endswith(".yaml"):
            try:  # an archive holding the tables
                with tarfile.open(inputs[0]) as tf:
                    for m in tf:
                        base = Path(m.name).name
                        if m.isfile() and base in names:
                            f = tf.extractfile(m)
                            if f is not None:
                                (staged / base).write_bytes(f.read())
            except (tarfile.TarError, OSError, EOFError) as e:
                raise MnasError(f"{inputs[0]} is not a folder or tar archive of OFA's *_lookup_table.yaml ({e})") from None
            files = [staged / n for n in names if (staged / n).is_file()]
        else:
            folder = inputs[0] if len(inputs) == 1 and inputs[0].is_dir() else None
            files = [folder / n for n in names if (folder / n).is_file()] if folder else list(inputs)
        missing = sorted(set(names) - {p.name for p in files}, key=lambda n: int(n.split("_")[0]))
        if missing:
            raise MnasError(f"OFA's Note10 tables: {len(missing)} of {len(names)} missing ({', '.join(missing[:4])}"
                            f"{', ...' if len(missing) > 4 else ''}): give the folder with all of them")
        for p in files:
            entries.append(_verify(ds, p, pins.get(str(p)), check))
        load_ofa_table(files[0].parent if all(p.parent == files[0].parent for p in files) else files[0])
        target.mkdir(parents=True, exist_ok=True)
        for p in files:
            _copy(p, target / p.name)
    return {"inputs": entries, "converted": None}


def _parent_for_temp(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return target.parent


_INSTALLERS = {
    "accel_nasbench": _install_anb,
    "cifar10": _install_cifar10,
    "cifar10-folder": _install_cifar10_folder,
    "note10_ofa": _install_note10,
}

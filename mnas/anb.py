"""Accel-NASBench: the benchmark's CSV, validated, and the per-block choices of a network.

Accel-NASBench (Ahmad et al. 2024, repository afzalxo/Accel-NASBench, Apache-2.0)
trained 5,138 networks of the MnasNet search space on EfficientNet-B0's backbone on
ImageNet (a 16-epoch proxy) and measured them on six accelerators. Its networks
have seven blocks (strides 1,2,2,2,1,2,1; outputs 16,24,40,80,112,192,320 after a
32-channel stem); per block an expansion {1,4,6}, a kernel {3,5}, a number of
layers {1,2,3} ({1,2,3,4} for block 5) and squeeze-excite on/off.

A network's choices are an ``(7, 4)`` integer array ``[e, k, l, se]`` per block, its
compact encoding seven ``EKLS`` groups joined by ``-`` (EfficientNet-B0:
``1311-6321-6521-6331-6531-6541-6311``). :func:`choices_of` gets them from an
encoding, from a sample of the ``anb`` space or from a :class:`~mnas.arch.Network`
(inverse decoding), so evaluators and devices take a network however it was given.

:func:`load_csv` reads ``accel_nasbench.csv`` from a path the user gives
(``path=``/``--table-path``, ``$MNAS_ANB_CSV``, default
``../shared/data/accel_nasbench/accel_nasbench.csv`` beside the repository), checks
it, and keeps it once per process. Nothing is read at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mnas.errors import MnasError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO.parent / "shared" / "data" / "accel_nasbench" / "accel_nasbench.csv"
ENV_VAR = "MNAS_ANB_CSV"

BLOCKS = 7
STRIDES = (1, 2, 2, 2, 1, 2, 1)
CIN = (32, 16, 24, 40, 80, 112, 192)
COUT = (16, 24, 40, 80, 112, 192, 320)
STEM_OUT = 32
HEAD_CONV = 1280
RESOLUTION = 224
EXPANSIONS = (1, 4, 6)
KERNELS = (3, 5)
SE = (0, 1)
MAX_LAYERS = (3, 3, 3, 3, 3, 4, 3)
FIELDS = ("e", "k", "l", "se")
CHOICE_COLUMNS = tuple(f"block{b}_{f}" for b in range(BLOCKS) for f in FIELDS)
EFFICIENTNET_B0 = "1311-6321-6521-6331-6531-6541-6311"

# measured columns: device -> (column, kind). Throughputs become ms per image = 1000 / (images/s).
DEVICE_COLUMNS: dict[str, tuple[str, str]] = {
    "zcu102": ("latency_zcu102_ms", "latency"),
    "vck190": ("latency_vck190_ms", "latency"),
    "a100": ("throughput_a100_ips", "throughput"),
    "rtx3090": ("throughput_3090_ips", "throughput"),
    "tpuv2": ("throughput_tpuv2_ips", "throughput"),
    "tpuv3": ("throughput_tpuv3_ips", "throughput"),
}
REQUIRED_COLUMNS = ("id",) + CHOICE_COLUMNS + ("val_top1", "macs_m", "params_m")
OPTIONAL_COLUMNS = ("split", "val_top5") + tuple(c for c, _ in DEVICE_COLUMNS.values())


# --------------------------------------------------------------------------- the CSV

@dataclass
class AnbData:
    """The benchmark's rows: ``choices`` ``(n, 7, 4)`` int, numeric ``columns``, and a vectorised lookup.

    Ten networks of the CSV were trained twice (two ids, same choices): lookups go
    to the distinct networks (``keys``), whose values are the mean over their rows
    (:meth:`network_values`); ``runs`` says how many rows each one has.
    """

    path: Path
    choices: np.ndarray
    columns: dict[str, np.ndarray]
    split: np.ndarray | None = None
    keys: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]  # sorted distinct pack()
    row_network: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]  # row -> network
    runs: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.keys, self.row_network, self.runs = np.unique(pack(self.choices), return_inverse=True, return_counts=True)
        self._means: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.choices)

    @property
    def networks(self) -> int:
        return len(self.keys)

    def network_choices(self) -> np.ndarray:
        """``(networks, 7, 4)`` choices of the distinct networks, in :attr:`keys` order."""
        first = np.zeros(len(self.keys), dtype=np.int64)
        first[self.row_network[::-1]] = np.arange(len(self.row_network))[::-1]
        return self.choices[first]

    def lookup(self, choices: np.ndarray) -> np.ndarray:
        """Index (into :attr:`keys`) of each network of ``choices`` ``(m, 7, 4)``, -1 where it is not listed."""
        k = pack(np.asarray(choices).reshape(-1, BLOCKS, 4))
        pos = np.minimum(np.searchsorted(self.keys, k), len(self.keys) - 1)
        return np.where(self.keys[pos] == k, pos, -1)

    def network_values(self, name: str) -> np.ndarray:
        """Column ``name`` per distinct network: the mean over its rows, ignoring empty cells (NaN if all empty)."""
        if name not in self._means:
            v = self.column(name)
            ok = ~np.isnan(v)
            total = np.bincount(self.row_network, weights=np.where(ok, v, 0.0), minlength=len(self.keys))
            n = np.bincount(self.row_network, weights=ok.astype(float), minlength=len(self.keys))
            with np.errstate(invalid="ignore", divide="ignore"):
                self._means[name] = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        return self._means[name]

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise MnasError(f"Accel-NASBench CSV {self.path} has no column {name!r}")
        return self.columns[name]


_CACHE: dict[tuple, AnbData] = {}


def default_csv() -> Path:
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else DEFAULT_CSV


def load_csv(path: str | Path | None = None) -> AnbData:
    """The benchmark CSV at ``path`` (default :func:`default_csv`), validated, read once per file version."""
    p = Path(path).expanduser() if path else default_csv()
    where = f"Accel-NASBench CSV {p}"
    if not p.is_file():
        hint = "" if path else f" (the default; set ${ENV_VAR} or pass --table-path)"
        raise MnasError(f"{where} not found{hint}: give the path of accel_nasbench.csv, converted from "
                        "github.com/afzalxo/Accel-NASBench (see ../shared/data/README.md)")
    stamp = (str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size)
    if stamp in _CACHE:
        return _CACHE[stamp]
    import pandas as pd

    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise MnasError(f"{where} is empty: expected a header with {', '.join(REQUIRED_COLUMNS[:3])}, ... and one row per network") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise MnasError(f"{where} is not a readable CSV ({str(e).splitlines()[0]}): re-copy the file") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        shown = ", ".join(missing[:6]) + (f" (and {len(missing) - 6} more)" if len(missing) > 6 else "")
        raise MnasError(f"{where} lacks column(s) {shown}: is it the Accel-NASBench table? "
                        f"expected {', '.join(REQUIRED_COLUMNS[:2])}, ..., val_top1, macs_m, params_m")
    if not len(df):
        raise MnasError(f"{where} has a header but no rows (truncated?): re-copy the file")
    with open(p, encoding="utf-8", errors="replace") as f:  # a row with fewer fields than the header: cut short
        lines = [ln for ln in f.read().splitlines()]
    want = lines[0].count(",")
    for i, ln in enumerate(lines[1:], 2):
        if ln.strip() and ln.count(",") != want:
            last = " (the last line: the file looks truncated, re-copy it)" if i == len(lines) else ""
            raise MnasError(f"{where}: line {i} has {ln.count(',') + 1} fields, the header {want + 1}{last}")
    cols: dict[str, np.ndarray] = {}
    for c in REQUIRED_COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if c in df.columns and c != "split"):
        text = df[c].str.strip()
        empty = text == ""
        if c in REQUIRED_COLUMNS and empty.any():
            i = int(np.flatnonzero(empty.to_numpy())[0])
            last = " (the file looks truncated: re-copy it)" if i >= len(df) - 1 else ""
            raise MnasError(f"{where}: line {i + 2} has no value in column {c!r}{last}")
        values = pd.to_numeric(text.where(~empty, "nan"), errors="coerce")
        bad = values.isna() & ~empty
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise MnasError(f"{where}: line {i + 2}, column {c!r}: {df[c].iloc[i]!r} is not a number")
        cols[c] = values.to_numpy(dtype=float)
    choices = np.stack([cols[c] for c in CHOICE_COLUMNS], axis=1).reshape(-1, BLOCKS, 4)
    if not np.all(choices == np.round(choices)):
        i = int(np.flatnonzero(~np.all(choices == np.round(choices), axis=(1, 2)))[0])
        raise MnasError(f"{where}: line {i + 2} has a non-integer block choice")
    choices = choices.astype(np.int64)
    bad_rows = ~_valid_mask(choices)
    if bad_rows.any():
        i = int(np.flatnonzero(bad_rows)[0])
        try:
            check_choices(choices[i])
        except MnasError as e:
            raise MnasError(f"{where}: line {i + 2}: {e}") from None
    split = df["split"].to_numpy(dtype=str) if "split" in df.columns else None
    data = AnbData(p, choices, cols, split)
    _CACHE[stamp] = data
    return data


def _valid_mask(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c).reshape(-1, BLOCKS, 4)
    ok = np.isin(c[:, :, 0], EXPANSIONS) & np.isin(c[:, :, 1], KERNELS) & np.isin(c[:, :, 3], SE)
    ok &= (c[:, :, 2] >= 1) & (c[:, :, 2] <= np.array(MAX_LAYERS))
    return np.asarray(ok.all(axis=1))


# --------------------------------------------------------------------------- choices

def check_choices(c: Any) -> np.ndarray:
    """``c`` as a validated ``(7, 4)`` int array; an error names the block and field."""
    a = np.asarray(c, dtype=np.int64)
    if a.shape != (BLOCKS, 4):
        raise MnasError(f"anb choices: expected 7 blocks of (e, k, l, se), got shape {a.shape}")
    for b, (e, k, l, se) in enumerate(a):
        if e not in EXPANSIONS:
            raise MnasError(f"anb block {b}: expansion {e} is not one of {EXPANSIONS}")
        if k not in KERNELS:
            raise MnasError(f"anb block {b}: kernel {k} is not one of {KERNELS}")
        if not 1 <= l <= MAX_LAYERS[b]:
            raise MnasError(f"anb block {b}: {l} layers is outside 1..{MAX_LAYERS[b]}"
                            + (" (only block 5 takes 4)" if l == 4 else ""))
        if se not in SE:
            raise MnasError(f"anb block {b}: squeeze-excite {se} is not 0 or 1")
    return a


def parse_code(code: str) -> np.ndarray:
    """``1311-6321-...`` (seven ``EKLS`` groups) -> ``(7, 4)`` array; a bad group is named."""
    text = str(code).strip()
    groups = text.split("-")
    if len(groups) != BLOCKS:
        raise MnasError(f"anb encoding {text!r} has {len(groups)} group(s), expected 7 groups EKLS joined by '-' "
                        f"(e.g. EfficientNet-B0: {EFFICIENTNET_B0})")
    rows = []
    for b, g in enumerate(groups):
        if len(g) != 4 or not g.isdigit():
            raise MnasError(f"anb encoding {text!r}: group {b + 1} {g!r} is not four digits EKLS "
                            "(expansion 1/4/6, kernel 3/5, layers, squeeze-excite 0/1)")
        rows.append([int(ch) for ch in g])
    try:
        return check_choices(rows)
    except MnasError as e:
        raise MnasError(f"anb encoding {text!r}: {str(e).removeprefix('anb ')}") from None


def format_code(c: Any) -> str:
    a = np.asarray(c, dtype=np.int64).reshape(BLOCKS, 4)
    return "-".join("".join(str(int(v)) for v in row) for row in a)


def looks_like_code(text: str) -> bool:
    t = str(text).strip()
    return t.count("-") == BLOCKS - 1 and t.replace("-", "").isdigit()


def pack(choices: np.ndarray) -> np.ndarray:
    """One int64 per network (mixed radix over the option indices), for vectorised lookups."""
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    e = np.searchsorted(np.array(EXPANSIONS), c[:, :, 0])
    k = (c[:, :, 1] == 5).astype(np.int64)
    digit = ((e * 2 + k) * 4 + (c[:, :, 2] - 1)) * 2 + c[:, :, 3]  # 0..47 per block
    return (digit * (48 ** np.arange(BLOCKS, dtype=np.int64))).sum(axis=1)


def choices_of_network(net) -> np.ndarray:
    """Inverse decoding: the ``(7, 4)`` choices of a network built like the benchmark's.

    Walks the blocks, groups consecutive blocks by output channels into the seven
    blocks of EfficientNet-B0's backbone, and reads e = exp / cin of each block's
    first layer, its kernel, its number of layers and se > 0. An error names the
    first thing that does not fit. (Stem, head and activation are checked by
    :func:`choices_of` against the ``anb`` space's own decoding when it is available.)
    """
    from mnas.arch import Bneck, format_block

    why = "not an Accel-NASBench (anb) network"
    if net.stem.out != STEM_OUT or net.stem.stride != 2 or net.stem.kernel != 3:
        raise MnasError(f"{why}: its stem must be a 3x3 stride-2 conv to {STEM_OUT} channels, got {format_block(net.stem, 'stem')}")
    if net.resolution != RESOLUTION:
        raise MnasError(f"{why}: resolution {net.resolution}, the benchmark trained at {RESOLUTION}")
    groups: list[list] = []
    for i, b in enumerate(net.blocks):
        if not groups or b.out != groups[-1][0][1].out:
            groups.append([])
        groups[-1].append((i, b))
    outs = [g[0][1].out for g in groups]
    if tuple(outs) != COUT:
        raise MnasError(f"{why}: its blocks output {'/'.join(map(str, outs))} channels, expected {'/'.join(map(str, COUT))}")
    rows = []
    for s, group in enumerate(groups):
        cin = CIN[s]
        first = group[0][1]
        if len(group) > MAX_LAYERS[s]:
            raise MnasError(f"{why}: block {s} has {len(group)} layers, at most {MAX_LAYERS[s]}")
        for j, (i, b) in enumerate(group):
            lin = cin if j == 0 else COUT[s]
            if not isinstance(b, Bneck):
                raise MnasError(f"{why}: layer {i} ({format_block(b)}) is not an MBConv (ir) block")
            stride = STRIDES[s] if j == 0 else 1
            if b.stride != stride:
                raise MnasError(f"{why}: layer {i} ({format_block(b)}) has stride {b.stride}, expected {stride}")
            if b.exp % lin:
                raise MnasError(f"{why}: layer {i} ({format_block(b)}): expansion width {b.exp} is not a multiple of its input {lin}")
            if b.exp // lin != first.exp // cin or b.kernel != first.kernel or (b.se > 0) != (first.se > 0):
                raise MnasError(f"{why}: layer {i} ({format_block(b)}) differs from the first layer of block {s} "
                                "in expansion, kernel or squeeze-excite (the benchmark shares them per block)")
        e = first.exp // cin
        rows.append([e, first.kernel, len(group), int(first.se > 0)])
    try:
        return check_choices(rows)
    except MnasError as e:
        raise MnasError(f"{why}: {str(e).removeprefix('anb ')}") from None


_SPACE: list = []


def anb_space():
    """The ``anb`` search space, or None where it is not installed (checked once)."""
    if not _SPACE:
        try:
            from mnas.space import load_space

            _SPACE.append(load_space("anb"))
        except (MnasError, ImportError, FileNotFoundError):
            _SPACE.append(None)
    return _SPACE[0]


_STAGE_BLOCKS: dict[tuple[int, int], tuple] = {}


def network_of(c: Any):
    """The ``anb`` space's network of choices ``c`` (needs ``search_spaces/anb.yaml``).

    Fast: a block's layers depend only on its own choices (its input width is fixed), so the
    network is assembled from per-block layer tuples, each decoded once by the space.
    """
    from mnas.arch import Network

    space = anb_space()
    if space is None:
        raise MnasError("the anb search space (search_spaces/anb.yaml) is not available in this installation")
    a = check_choices(c)
    digits = block_digits(a[None])[0]
    blocks: list = []
    for b in range(BLOCKS):
        key = (b, int(digits[b]))
        if key not in _STAGE_BLOCKS:
            ref = space.decode(space.decode_string(format_code(a)))
            start = sum(int(x) for x in a[:b, 2])
            for bb in range(BLOCKS):  # every block of this decoding, while we have it
                s0 = sum(int(x) for x in a[:bb, 2])
                _STAGE_BLOCKS[(bb, int(digits[bb]))] = tuple(ref.blocks[s0:s0 + int(a[bb, 2])])
            assert _STAGE_BLOCKS[key] == tuple(ref.blocks[start:start + int(a[b, 2])])
        blocks.extend(_STAGE_BLOCKS[key])
    net = Network(stem=space.stem, blocks=tuple(blocks), head=space.head, resolution=space.resolution)
    if len(_NET_CHOICES) >= _NET_CHOICES_MAX:
        _NET_CHOICES.clear()
    _NET_CHOICES[net] = a  # choices_of(net) later is a dictionary hit: a batch decoded here is not decoded again
    return net


_NET_CHOICES: dict = {}
_NET_CHOICES_MAX = 200_000


def choices_of(x: Any, space: Any = None, *, strict: bool = True) -> np.ndarray:
    """``(7, 4)`` choices of ``x``: a compact encoding, a sample of the anb space, a Network, or an array.

    With ``strict`` a Network must equal the ``anb`` space's own decoding of its
    choices (stem, head, activations, squeeze-excite widths); skipped when the space
    is not installed.
    """
    from mnas.arch import Network

    if isinstance(x, str):
        if looks_like_code(x):
            return parse_code(x)
        from mnas.resolve import load_arch

        x = load_arch(x)
    if isinstance(x, dict):
        sp = space if space is not None else anb_space()
        if sp is None:
            raise MnasError("a sample needs the anb search space (search_spaces/anb.yaml)")
        code = sp.encode_string(x)
        if looks_like_code(code):
            return parse_code(code)
        return choices_of(sp.decode(x), strict=False)
    if isinstance(x, Network):
        known = _NET_CHOICES.get(x)
        if known is not None:  # built by network_of: in the space by construction
            return known.copy()
        c = choices_of_network(x)
        if strict:
            if anb_space() is not None:
                ref = network_of(c)
                if ref != x:
                    diff = _first_difference(x, ref)
                    raise MnasError(f"not an Accel-NASBench (anb) network: {diff}")
        return c
    return check_choices(x)


def _first_difference(net, ref) -> str:
    from mnas.arch import format_block, format_head

    if net.stem != ref.stem:
        return f"stem {format_block(net.stem, 'stem')}, the benchmark's is {format_block(ref.stem, 'stem')}"
    for i, (a, b) in enumerate(zip(net.blocks, ref.blocks)):
        if a != b:
            return f"layer {i} is {format_block(a)}, the benchmark's is {format_block(b)}"
    if net.head != ref.head:
        return f"head {format_head(net.head)}, the benchmark's is {format_head(ref.head)}"
    return f"it differs from the benchmark's decoding {ref}"


def choices_many(items: Sequence[Any], space: Any = None) -> np.ndarray:
    """``(n, 7, 4)`` choices of many items (see :func:`choices_of`)."""
    if isinstance(items, np.ndarray) and items.ndim == 3:
        return items.astype(np.int64)
    if not len(items):
        return np.zeros((0, BLOCKS, 4), dtype=np.int64)
    return np.stack([choices_of(x, space) for x in items])


# --------------------------------------------------------------------------- features

SLOTS = sum(MAX_LAYERS)  # layer positions over the 7 blocks (22): a block of l layers fills its first l
SLOT_BLOCK = np.repeat(np.arange(BLOCKS), MAX_LAYERS)  # the block of each slot


def layer_costs(choices: np.ndarray, resolution: int = RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """Per layer slot multiply-adds and parameters (millions, ``(n, 22)`` each; 0 where a block is shorter).

    Counted from the choices alone (1x1 expansion unless e = 1, depthwise k x k,
    squeeze-excite int(0.25 x the layer's input) wide, 1x1 projection; no BN).
    """
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    macs = np.zeros((len(c), SLOTS))
    params = np.zeros((len(c), SLOTS))
    h = -(-resolution // 2)
    s = 0
    for b in range(BLOCKS):
        e, k, l, se = (c[:, b, i].astype(float) for i in range(4))
        ho = -(-h // STRIDES[b])
        for j in range(MAX_LAYERS[b]):
            on = l > j
            cin = CIN[b] if j == 0 else COUT[b]
            hi = h if j == 0 else ho
            ex = cin * e
            sq = max(1, int(cin * 0.25))
            expand = np.where(e != 1, cin * ex, 0.0)
            dw = k * k * ex
            sew = se * (2 * ex * sq + ex + sq)
            proj = ex * COUT[b]
            macs[:, s] = on * (expand * hi * hi + dw * ho * ho + se * 2 * ex * sq + proj * ho * ho)
            params[:, s] = on * (expand + dw + sew + proj)
            s += 1
        h = ho
    return macs / 1e6, params / 1e6


def block_costs(choices: np.ndarray, resolution: int = RESOLUTION,
                layers: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per block multiply-adds and parameters (millions, ``(n, 7)`` each) of the MBConv layers
    (summed from :func:`layer_costs`, or from ``layers`` where already computed)."""
    macs, params = layers if layers is not None else layer_costs(choices, resolution)
    per_block = lambda v: np.add.reduceat(v, np.cumsum((0,) + MAX_LAYERS[:-1]), axis=1)  # noqa: E731
    return per_block(macs), per_block(params)


FEATURE_NAMES = (
    list(CHOICE_COLUMNS)
    + [f"block{b}_macs" for b in range(BLOCKS)]
    + [f"block{b}_params" for b in range(BLOCKS)]
    + ["macs", "params", "layers", "se_layers"]
)


def features(choices: np.ndarray) -> np.ndarray:
    """The surrogates' feature matrix ``(n, len(FEATURE_NAMES))`` from choices alone."""
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    macs, params = block_costs(c)
    layers = c[:, :, 2]
    return np.concatenate([
        c.reshape(len(c), -1).astype(float), macs, params,
        macs.sum(1, keepdims=True), params.sum(1, keepdims=True),
        layers.sum(1, keepdims=True).astype(float), (layers * c[:, :, 3]).sum(1, keepdims=True).astype(float),
    ], axis=1)


def one_hot(choices: np.ndarray) -> np.ndarray:
    """One column per (block, field, option): the linear baseline's and ridge model's inputs."""
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    cols = []
    for b in range(BLOCKS):
        for f, opts in enumerate((EXPANSIONS, KERNELS, tuple(range(1, MAX_LAYERS[b] + 1)), SE)):
            for o in opts:
                cols.append(c[:, b, f] == o)
    return np.stack(cols, axis=1).astype(float)


def iter_codes(data: AnbData) -> Iterable[str]:
    for row in data.choices:
        yield format_code(row)


# --------------------------------------------------------------------------- fitted surrogates

def block_digits(choices: np.ndarray) -> np.ndarray:
    """``(n, 7)``: per block the index 0..47 of its (e, k, l, se) combination (the additive tables' column)."""
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    e = np.searchsorted(np.array(EXPANSIONS), c[:, :, 0])
    return ((e * 2 + (c[:, :, 1] == 5)) * 4 + (c[:, :, 2] - 1)) * 2 + c[:, :, 3]


def block_one_hot(choices: np.ndarray) -> np.ndarray:
    """``(n, 7 * 48)`` one-hot of each block's joint choice: an additive per-block table is linear in it."""
    d = block_digits(choices)
    out = np.zeros((len(d), BLOCKS * 48))
    out[np.arange(len(d))[:, None], np.arange(BLOCKS) * 48 + d] = 1.0
    return out


def slot_inputs(choices: np.ndarray, layers: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``(n, 22 * 6)``: per layer slot whether it is there, then (0 where not) expansion / 6, kernel 5,
    squeeze-excite, log(1 + multiply-adds / 0.1 M) and log(1 + parameters / 1 k).

    Unlike one-hot choices this orders the options (2 layers lie between 1 and 3; expansion 4
    nearer 6 than 1) and prices each layer where it sits.
    """
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    slot = np.concatenate([np.arange(n) for n in MAX_LAYERS])
    per = c[:, SLOT_BLOCK, :]  # (n, 22, 4): each slot's block choices
    on = (per[:, :, 2] > slot).astype(float)
    macs, params = layers if layers is not None else layer_costs(c)
    cols = np.stack([on, on * per[:, :, 0] / 6.0, on * (per[:, :, 1] == 5), on * per[:, :, 3],
                     np.log1p(macs * 10.0), np.log1p(params * 1e3)], axis=2)
    return cols.reshape(len(c), -1)


def kernel_inputs(choices: np.ndarray, slots: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Unscaled inputs of the kernel model: one-hot choices, then log per-block and total macs/params
    (then, with ``slots``, :func:`slot_inputs`)."""
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    per_layer = layer_costs(c)
    macs, params = block_costs(c, layers=per_layer)
    cont = np.log(np.concatenate([macs, params, macs.sum(1, keepdims=True), params.sum(1, keepdims=True)], axis=1))
    if slots:
        cont = np.concatenate([cont, slot_inputs(c, per_layer)], axis=1)
    return one_hot(c), cont


class Surrogate:
    """A fitted Accel-NASBench surrogate read from its JSON file (see ``experiments/fit_anb.py``).

    ``components`` are summed with their weights; each is one of

    * ``additive``: ``intercept + sum over blocks of table[block][combination]`` (a per-block lookup
      table over the 48 (e, k, l, se) combinations; the devices' model);
    * ``kernel``: kernel ridge regression over one-hot choices and standardised log
      multiply-adds/parameters (``inputs: onehot+logcost+slots`` adds :func:`slot_inputs`), each
      column times its ``feature_scale`` (learned relevance): ``f = intercept + sum_i dual_i k(z, z_i)``
      with ``k`` an RBF ``exp(-gamma |z - z_i|^2)`` or (``kernel: matern52``) a Matern 5/2 of
      ``lengthscale``, its support networks stored as compact encodings; ``link: log_error`` means
      it was fitted on ``log(100 - top1)``: top1 = ``100 - exp(shift + scale * f)``;
    * ``lightgbm``: a LightGBM model in its native text format, over :func:`features`.

    ``report`` holds the fit's cross-validated figures beside its baselines.
    """

    def __init__(self, doc: dict, path: Path | None = None):
        self.doc, self.path = doc, path
        self.name: str = doc.get("name", path.stem if path else "anb")
        self.target: str = doc.get("target", "")
        self.unit: str = doc.get("unit", "")
        self.report: dict = doc.get("report", {})
        self.digest: str = ""  # of the model file (part of evaluator cache keys)
        self._parts: list[tuple[float, str, Any]] = []
        for comp in doc["components"]:
            kind = comp["kind"]
            if kind == "additive":
                table = np.array(comp["table"], dtype=float)
                self._parts.append((comp["weight"], kind, (float(comp["intercept"]), table)))
            elif kind == "kernel":
                support = np.stack([parse_code(s) for s in comp["support"]])
                mean, std = np.array(comp["cont_mean"]), np.array(comp["cont_std"])
                slots = comp.get("inputs", "onehot+logcost") == "onehot+logcost+slots"
                n_oh = one_hot(support[:1]).shape[1]
                scale = np.concatenate([np.ones(n_oh), np.full(len(mean), float(comp["cont_weight"]))])
                if comp.get("feature_scale") is not None:  # learned relevance (ARD)
                    scale = scale * np.array(comp["feature_scale"], dtype=float)
                shape = comp.get("kernel", "rbf")
                if shape not in ("rbf", "matern52"):
                    raise MnasError(f"surrogate {path}: unknown kernel {shape!r}")
                link = comp.get("link") or {"kind": "identity"}
                if link["kind"] not in ("identity", "log_error"):
                    raise MnasError(f"surrogate {path}: unknown link {link['kind']!r}")
                zs = self._z(support, mean, std, scale, slots)
                self._parts.append((comp["weight"], kind, dict(
                    intercept=float(comp["intercept"]), shape=shape, gamma=float(comp.get("gamma") or 0.0),
                    lengthscale=float(comp.get("lengthscale") or 1.0), zs=zs, zs2=(zs * zs).sum(1), dual=np.array(comp["dual"], dtype=float),
                    mean=mean, std=std, scale=scale, slots=slots, link=link)))
            elif kind == "lightgbm":
                import lightgbm

                self._parts.append((comp["weight"], kind, lightgbm.Booster(model_str=comp["model"])))
            else:
                raise MnasError(f"surrogate {path}: unknown component kind {kind!r}")

    @staticmethod
    def _z(choices, mean, std, scale, slots: bool = False) -> np.ndarray:
        oh, cont = kernel_inputs(choices, slots)
        return np.concatenate([oh, (cont - mean) / std], axis=1) * scale

    @staticmethod
    def kernel_values(shape: str, d2: np.ndarray, gamma: float, lengthscale: float) -> np.ndarray:
        """The kernel at squared distances ``d2``: RBF ``exp(-gamma d2)`` or Matern 5/2 of length ``lengthscale``."""
        if shape == "rbf":
            return np.exp(-gamma * d2)
        r = np.sqrt(5.0 * d2) / lengthscale
        return (1.0 + r + r * r / 3.0) * np.exp(-r)

    @classmethod
    def load(cls, path: str | Path) -> "Surrogate":
        import json

        p = Path(path)
        if not p.is_file():
            raise MnasError(f"surrogate model {p} not found: regenerate it with `python experiments/fit_anb.py`")
        try:
            doc = json.loads(p.read_text())
            if not isinstance(doc, dict) or "components" not in doc:
                raise ValueError("no 'components'")
        except ValueError as e:
            raise MnasError(f"surrogate model {p} is malformed ({e}): regenerate it with `python experiments/fit_anb.py`") from None
        out = cls(doc, p)
        import hashlib

        out.digest = hashlib.sha1(p.read_bytes()).hexdigest()[:12]
        return out

    def predict(self, choices: np.ndarray, chunk: int = 2048) -> np.ndarray:
        c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
        out = np.zeros(len(c))
        for weight, kind, m in self._parts:
            if kind == "additive":
                intercept, table = m
                out += weight * (intercept + table[np.arange(BLOCKS), block_digits(c)].sum(axis=1))
            elif kind == "kernel":
                zs, zs2 = m["zs"], m["zs2"]
                for i in range(0, len(c), chunk):
                    z = self._z(c[i:i + chunk], m["mean"], m["std"], m["scale"], m["slots"])
                    d2 = np.maximum((z * z).sum(1)[:, None] + zs2[None, :] - 2.0 * z @ zs.T, 0.0)
                    f = m["intercept"] + self.kernel_values(m["shape"], d2, m["gamma"], m["lengthscale"]) @ m["dual"]
                    if m["link"]["kind"] == "log_error":  # fitted on log(100 - top1), standardised
                        f = 100.0 - np.exp(m["link"]["shift"] + m["link"]["scale"] * f)
                    out[i:i + chunk] += weight * f
            else:
                out += weight * m.predict(features(c), num_threads=1)
        return out

    def block_contributions(self, choices: Any) -> list[tuple[str, float]]:
        """(label, value) per block of an additive model (``op_breakdown`` for the devices)."""
        c = check_choices(choices)
        parts = [p for p in self._parts if p[1] == "additive"]
        if not parts:
            return []
        rows: list[tuple[str, float]] = [("base (every block at its cheapest)", float(sum(w * m[0] for w, _, m in parts)))]
        d = block_digits(c[None])[0]
        for b in range(BLOCKS):
            rows.append((f"block{b} {''.join(map(str, c[b]))}", float(sum(w * m[1][b, d[b]] for w, _, m in parts))))
        if len(parts) != len(self._parts):  # the rest (interactions the table misses) in one line
            rest = Surrogate({"components": [self.doc["components"][i] for i, p in enumerate(self._parts)
                                              if p[1] != "additive"]}).predict(c[None])[0]
            rows.append(("interactions (LightGBM on the table's residuals)", float(rest)))
        return rows

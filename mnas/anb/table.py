"""Accel-NASBench's CSV: read from where the user keeps it, validated, kept once per process.

:func:`load_csv` reads ``accel_nasbench.csv`` from a path the user gives
(``path=``/``--table-path``, ``$MNAS_ANB_CSV``), else from the data root where
``mnas data fetch accel_nasbench`` installs it, else from the developers'
``../shared/data/accel_nasbench/``; checks it, and keeps it once per process.
Nothing is read at import time. :mod:`mnas.anb.release` converts the benchmark's
release (one JSON per network) into this CSV.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from mnas.anb.choices import BLOCKS, CHOICE_COLUMNS, _valid_mask, check_choices, format_code, pack
from mnas.errors import MnasError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CSV = REPO.parent / "shared" / "data" / "accel_nasbench" / "accel_nasbench.csv"  # the developer fallback (see default_csv)
ENV_VAR = "MNAS_ANB_CSV"

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
    """``$MNAS_ANB_CSV``, else the data root's copy (``mnas data fetch accel_nasbench``), else ``../shared/data``'s."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    from mnas.data.registry import default_path

    return default_path("accel_nasbench")


def load_csv(path: str | Path | None = None) -> AnbData:
    """The benchmark CSV at ``path`` (default :func:`default_csv`), validated, read once per file version."""
    p = Path(path).expanduser() if path else default_csv()
    where = f"Accel-NASBench CSV {p}"
    if not p.is_file():
        from mnas.data.registry import missing_hint

        hint = "" if path else f" (the default; set ${ENV_VAR} or pass --table-path)"
        raise MnasError(f"{where} not found{hint}: give the path of accel_nasbench.csv, or "
                        f"{missing_hint('accel_nasbench')}")
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


def iter_codes(data: AnbData) -> Iterable[str]:
    for row in data.choices:
        yield format_code(row)

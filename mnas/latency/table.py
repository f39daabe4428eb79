"""One versioned latency table per device: a CSV file with a commented YAML header.

::

    # mnas latency table
    # format: 1
    # device: xeon-ort
    # engine: onnxruntime 1.32.0
    # threads: 1
    # cpu: Intel(R) Xeon(R) Processor @ 2.80GHz
    # date: '2025-01-01T12:00:00'
    # method: isolated ops, ...
    # unit: ms
    # correction: {a: 1.08, b: 0.12, n: 8}
    key,ms,spread_ms,count
    conv-in:224x224x3-out:112x112x16-k3-s2-hs,0.412,0.006,50

``ms`` is the op's latency as the header's ``method`` says (the median of
``count`` timed repeats for tables measured by :mod:`mnas.latency.profiler`, the
published mean for imported tables); ``spread_ms`` is its spread (a robust
standard deviation of the repeats, or the published std).

Entries are appended one line at a time while a profile runs (a killed run keeps
every finished line); header changes rewrite the file atomically. Keys come from
:mod:`mnas.latency.keys`. Nothing here imports torch.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mnas.errors import MnasError

FORMAT = 1
COLUMNS = ("key", "ms", "spread_ms", "count")
MAGIC = "mnas latency table"
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "latency_tables"
TABLE_SUFFIXES = (".csv",)


@dataclass(frozen=True)
class Entry:
    ms: float  # the op's latency (see the table's ``method``)
    spread: float  # ms, spread of the repeats
    count: int  # repeats behind ``ms``


@dataclass
class LatencyTable:
    """Header (``meta``) + ``entries``: key -> :class:`Entry`, all in milliseconds."""

    meta: dict = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)
    path: Path | None = None

    @property
    def device(self) -> str:
        return str(self.meta.get("device", self.path.stem if self.path else "unknown"))

    @property
    def correction(self) -> tuple[float, float]:
        """(a, b) of ``latency = a * sum(op ms) + b``; (1, 0) when none was fitted."""
        c = self.meta.get("correction") or {}
        return float(c.get("a", 1.0)), float(c.get("b", 0.0))

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def merge(self, other: "LatencyTable", overwrite: bool = False) -> "LatencyTable":
        """Add ``other``'s entries (keeping ours unless ``overwrite``); headers must agree on engine."""
        for k in ("engine", "threads"):
            if k in self.meta and k in other.meta and self.meta[k] != other.meta[k]:
                raise MnasError(f"cannot merge tables measured with different {k}: {self.meta[k]!r} vs {other.meta[k]!r}")
        for key, e in other.entries.items():
            if overwrite or key not in self.entries:
                self.entries[key] = e
        return self

    def save(self, path: str | Path | None = None) -> Path:
        """Write header and entries atomically (temporary file + rename)."""
        path = Path(path or self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        buf.write(format_header(self.meta))
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for key in sorted(self.entries):
            e = self.entries[key]
            w.writerow((key, _num(e.ms), _num(e.spread), e.count))
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(buf.getvalue())
        os.replace(tmp, path)
        self.path = path
        return path

    def append(self, key: str, entry: Entry) -> None:
        """Add one entry and append its line to the file (one small write; a kill loses nothing before it)."""
        if self.path is None:
            raise ValueError("table has no file; save() it first")
        self.entries[key] = entry
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow((key, _num(entry.ms), _num(entry.spread), entry.count))
        with open(self.path, "a") as f:
            f.write(line.getvalue())
            f.flush()
            os.fsync(f.fileno())


def _num(x: float) -> str:
    return f"{x:.6g}"


def format_header(meta: dict) -> str:
    import yaml

    body = yaml.safe_dump({"format": FORMAT, **meta}, sort_keys=False, default_flow_style=None, width=10_000)
    return f"# {MAGIC}\n" + "".join(f"# {line}\n" for line in body.splitlines())


def load_table(path: str | Path) -> LatencyTable:
    """Read a table written by :meth:`LatencyTable.save` (a truncated last line is dropped)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MnasError(f"{path}: no such latency table")
    text = path.read_text()
    head, body = [], []
    for line in text.splitlines(keepends=True):
        (head if line.startswith("#") and not body else body).append(line)
    if not head or head[0].strip() != f"# {MAGIC}":
        raise MnasError(f"{path}: not an mnas latency table (first line must be '# {MAGIC}')")
    try:
        meta = yaml.safe_load("".join(re.sub(r"^# ?", "", h) for h in head[1:])) or {}
    except yaml.YAMLError as e:
        raise MnasError(f"{path}: header is not valid YAML ({str(e).splitlines()[0]})") from None
    if meta.pop("format", FORMAT) > FORMAT:
        raise MnasError(f"{path}: table format is newer than this mnas understands (upgrade mnas)")
    rows = list(csv.reader(body))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise MnasError(f"{path}: expected the column line {','.join(COLUMNS)} after the header")
    entries: dict[str, Entry] = {}
    for n, row in enumerate(rows[1:], start=len(head) + 2):
        if not row:
            continue
        try:
            key, ms, spread, cnt = row
            entries[key] = Entry(float(ms), float(spread), int(cnt))
        except ValueError:
            if n == len(head) + len(rows):  # a line cut short by a kill: measure it again
                continue
            raise MnasError(f"{path}:{n}: malformed entry {row!r}") from None
    return LatencyTable(meta=meta, entries=entries, path=path)


# --------------------------------------------------------------------------- finding tables by name

def search_dirs() -> list[Path]:
    """Where device names are looked up: $MNAS_LATENCY_TABLES (os.pathsep list), ./latency_tables, shipped."""
    dirs = [Path(p) for p in os.environ.get("MNAS_LATENCY_TABLES", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "latency_tables", SHIPPED_DIR]
    seen, out = set(), []
    for d in dirs:
        r = d.resolve()
        if r not in seen:
            seen.add(r)
            out.append(d)
    return out


def available() -> dict[str, Path]:
    """Device name -> table file, first match in :func:`search_dirs` order."""
    found: dict[str, Path] = {}
    for d in search_dirs():
        if d.is_dir():
            for p in sorted(d.iterdir()):
                if p.suffix in TABLE_SUFFIXES and not p.name.startswith(".") and p.stem not in found:
                    found[p.stem] = p
    return found


def resolve_table(device_or_path: str | Path) -> Path:
    """A device name (see :func:`available`) or a path to a table file."""
    p = Path(device_or_path)
    if p.suffix in TABLE_SUFFIXES + (".yaml", ".yml") and p.is_file():
        return p
    tables = available()
    if str(device_or_path) in tables:
        return tables[str(device_or_path)]
    if p.suffix:
        raise MnasError(f"{p}: no such latency table file")
    import difflib

    close = difflib.get_close_matches(str(device_or_path), tables, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise MnasError(
        f"unknown latency device {str(device_or_path)!r}: {hint}see `mnas latency list`, or measure it with "
        f"`mnas latency profile --device {device_or_path} --engine onnxruntime --arch mobilenet_v3_large`"
    )

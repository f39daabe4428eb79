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
import math
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

    def corrected_ms(self) -> dict[str, float]:
        """key -> op ms, times the per-op-type factor of the header's correction (``per_type``) where it has one."""
        f = (self.meta.get("correction") or {}).get("per_type") or {}
        if not f:
            return {k: e.ms for k, e in self.entries.items()}
        return {k: e.ms * float(f.get(op_type(k), 1.0)) for k, e in self.entries.items()}

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
        from mnas.io import atomic_write_text

        atomic_write_text(path, buf.getvalue())  # a kill or a full disk leaves the old file (mnas/io.py)
        self.path = path
        return path

    def append(self, key: str, entry: Entry) -> None:
        """Add one entry and append its line to the file (one small write; a kill loses nothing before it)."""
        if self.path is None:
            raise ValueError("table has no file; save() it first")
        self.entries[key] = entry
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow((key, _num(entry.ms), _num(entry.spread), entry.count))
        try:
            with open(self.path, "a") as f:
                f.write(line.getvalue())
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            from mnas.io import write_error

            raise write_error(self.path, e) from None


def op_type(key: str) -> str:
    """The kind of op a key names, for per-type corrections: conv (stem), conv1x1, ir, ir_se, ds, pool, fc."""
    kind = key.split("-", 1)[0]
    if kind == "conv":
        return "conv1x1" if "-k1-" in key else "conv"
    if kind == "ir":
        return "ir" if "-se0-" in key else "ir_se"
    return kind


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
        from mnas.io import not_a_file

        raise not_a_file(path, "a latency table")
    from mnas.io import read_text_file

    text = read_text_file(path, "latency table (CSV with a YAML header)")
    text = text.removeprefix("\ufeff")  # a byte-order mark (an editor on Windows) is not part of the format
    head, body = [], []
    for line in text.splitlines(keepends=True):
        (head if line.startswith("#") and not body else body).append(line)
    if not head or head[0].strip() != f"# {MAGIC}":
        raise MnasError(f"{path}: not an mnas latency table (first line must be '# {MAGIC}')")
    try:
        from mnas.io import safe_yaml

        meta = safe_yaml("".join(re.sub(r"^# ?", "", h) for h in head[1:]), path) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "context_mark", None) or getattr(err, "problem_mark", None)
        where = f":{min(mark.line + 2, len(head))}" if mark is not None else ""
        raise MnasError(f"{path}{where}: header is not valid YAML ({str(err).splitlines()[0]}); fix that line or "
                        "profile the table again") from None
    _check_meta(path, meta, head)
    if meta.pop("format", FORMAT) > FORMAT:
        raise MnasError(f"{path}: table format is newer than this mnas understands (upgrade mnas)")
    rows = list(csv.reader(body))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise MnasError(f"{path}: expected the column line {','.join(COLUMNS)} after the header")
    entries: dict[str, Entry] = {}
    seen: dict[str, int] = {}  # key -> line it was last read from
    for n, row in enumerate(rows[1:], start=len(head) + 2):
        if not row:
            continue
        try:
            key, ms, spread, cnt = row
            entry = Entry(float(ms), float(spread), int(cnt))
            old, old_line = entries.get(key), seen.get(key)
            # a repeated key is legitimate only as a re-measuring pass (`profile --remeasure` appends the
            # combined entry, whose count grows); anything else is two tables pasted together or a hand edit
            if old is not None and entry.count <= old.count:
                raise MnasError(f"{path}:{n}: op {key!r} is listed twice (lines {old_line} and {n}); keep one line "
                                "per op (or re-measure it with `mnas latency profile --remeasure`)")
            entries[key], seen[key] = entry, n
        except ValueError:
            if n == len(head) + len(rows) and not text.endswith("\n"):  # a line cut short by a kill: measure it again
                continue
            raise MnasError(f"{path}:{n}: malformed entry {row!r}") from None
        e = entries[key]
        if not (math.isfinite(e.ms) and e.ms >= 0 and math.isfinite(e.spread) and e.spread >= 0 and e.count >= 0):
            raise MnasError(f"{path}:{n}: op {key!r} has time {ms} ms, spread {spread}, count {cnt}: times must be "
                            "finite and >= 0 (re-measure it with `mnas latency profile`)")
        if e.ms > MAX_OP_MS:
            raise MnasError(f"{path}:{n}: op {key!r} has time {ms} ms: more than {MAX_OP_MS:g} ms for one op is not a "
                            "measurement (a unit mix-up?); re-measure it with `mnas latency profile`")
    if entries and not any(e.ms > 0 for e in entries.values()):
        raise MnasError(f"{path}: all {len(entries)} ops have time 0 ms: an empty measurement, not a table; "
                        "profile the device again with `mnas latency profile`")
    return LatencyTable(meta=meta, entries=entries, path=path)


MAX_OP_MS = 1e6  # 1,000 s: above this an entry is a mistake, and a few such entries overflow a sum to inf


def _check_meta(path: Path, meta, head: list[str]) -> None:
    """Header fields the predictor relies on: a mapping, numeric correction/weights, a positive thread count."""

    def line_of(field: str) -> str:
        for i, h in enumerate(head, start=1):
            if re.match(rf"^# ?{re.escape(field)}\s*:", h):
                return f":{i}"
        return ""

    if not isinstance(meta, dict):
        raise MnasError(f"{path}:2: header must be YAML 'field: value' lines, found a {type(meta).__name__}; "
                        "profile the table again")
    for name in ("device", "engine", "unit", "cpu", "method"):
        if name in meta and not (isinstance(meta[name], str) and meta[name].strip()):
            raise MnasError(f"{path}{line_of(name)}: header field {name} must be a non-empty text, got "
                            f"{meta[name]!r}; fix that line" + (" (or delete it: the file name then names the device)"
                                                                 if name == "device" else ""))
    if "unit" in meta and meta["unit"] != "ms":
        raise MnasError(f"{path}{line_of('unit')}: unit must be ms, got {meta['unit']!r} (convert the table to "
                        "milliseconds)")
    fmt = meta.get("format", FORMAT)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise MnasError(f"{path}{line_of('format')}: format must be a whole number >= 1, got {fmt!r}")
    corr = meta.get("correction")
    if corr is not None:
        def number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not isinstance(corr, dict) or not all(number(corr.get(k, 0.0)) for k in ("a", "b")):
            raise MnasError(f"{path}{line_of('correction')}: correction must be {{a: NUMBER, b: NUMBER}}, got {corr!r}; "
                            "fix it or refit it with `mnas latency profile ... --calibrate 8`")
        per_type = corr.get("per_type") or {}
        if not isinstance(per_type, dict):
            raise MnasError(f"{path}{line_of('correction')}: the correction's per_type must map op types to factors "
                            f"(e.g. {{ir: 1.1, conv: 0.9}}), got {per_type!r}; refit it with `mnas latency profile ... "
                            "--calibrate 8`")
        if "a" in corr and corr["a"] <= 0 or not all(number(v) and v > 0 for v in per_type.values()):
            raise MnasError(f"{path}{line_of('correction')}: the correction's factors (a, per_type) must be > 0, got "
                            f"a={corr.get('a')!r}, per_type={per_type!r} (a factor <= 0 makes latencies negative); "
                            "refit it with `mnas latency profile ... --calibrate 8`")
    w = meta.get("feature_weights_ms")
    if w is not None and (not isinstance(w, dict) or not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
                                                            for v in w.values())):
        raise MnasError(f"{path}{line_of('feature_weights_ms')}: feature_weights_ms must map features to numbers "
                        f">= 0; regenerate the table with its script (experiments/fit_pixel1.py)")
    t = meta.get("threads")
    if t is not None and (not isinstance(t, int) or isinstance(t, bool) or t < 1):
        raise MnasError(f"{path}{line_of('threads')}: threads must be a whole number >= 1, got {t!r}")


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
    if p.exists() and not p.is_file():  # a folder, /dev/null, a FIFO: say what it is
        from mnas.io import not_a_file

        raise not_a_file(p, "a latency table file, *.csv")
    if p.is_file():  # an existing file of another kind: say so, not "no such file"
        raise MnasError(f"{p}: not a latency table file (expected an mnas table, *.csv, written by `mnas latency "
                        "profile` or `mnas latency import-ofa`)")
    if p.suffix:
        raise MnasError(f"{p}: no such latency table file")
    import difflib

    close = difflib.get_close_matches(str(device_or_path), tables, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    name = str(device_or_path)
    plain = bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name))  # what `latency profile --device` takes
    measure = (f", or measure it with `mnas latency profile --device {name} --engine onnxruntime --arch "
               "mobilenet_v3_large`") if plain else ""
    raise MnasError(f"unknown latency device {name!r}: {hint}see `mnas latency list`{measure}")


# --------------------------------------------------------------------------- which machine a table belongs to

# SIMD and other flags that change what kernels an engine picks (the full list's hash is kept as well)
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "neon")
LOCAL_ENGINES = ("onnxruntime", "torch")


def this_cpu() -> dict:
    """This machine's CPU: model name, flags that matter to kernels, a hash of all flags, MHz where readable."""
    import hashlib
    import platform

    model, flags, mhz = "", [], None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            k, v = k.strip(), v.strip()
            if k in ("model name", "Model", "Hardware") and not model:
                model = v
            elif k in ("flags", "Features") and not flags:
                flags = v.split()
            elif k == "cpu MHz" and mhz is None:
                mhz = round(float(v))
    except (OSError, ValueError):
        pass
    try:  # the rated maximum, where the kernel exposes it
        mhz = round(int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1000)
    except (OSError, ValueError):
        pass
    return {
        "model": model or platform.processor() or platform.machine(),
        "flags": [f for f in CPU_FLAGS if f in flags],
        "flags_sha1": hashlib.sha1(" ".join(sorted(flags)).encode()).hexdigest()[:12] if flags else "",
        "mhz": mhz,
        "cores": os.cpu_count(),
    }


def is_measured(meta: dict) -> bool:
    """A table measured on a local engine (onnxruntime/torch), not a model (pixel1) or an imported phone table."""
    return (not meta.get("feature_weights_ms") and meta.get("kind") != "modelled"
            and str(meta.get("engine", "")).split(" ")[0] in LOCAL_ENGINES)


def other_cpu(meta: dict, here: dict | None = None, unknown_ok: bool = False) -> str | None:
    """Why a measured table does not belong to this machine (None when it does or when it is not measured).

    A table that records no CPU counts as another machine's unless ``unknown_ok``.
    """
    if not is_measured(meta):
        return None
    here = here or this_cpu()
    info = meta.get("cpu_info") or {}
    model = str(info.get("model") or meta.get("cpu") or "")
    if not model:
        return None if unknown_ok else "the table does not record the CPU it was measured on"
    if model != here["model"]:
        return f"it was measured on {model!r}, this machine is {here['model']!r}"
    if info.get("flags_sha1") and here["flags_sha1"] and info["flags_sha1"] != here["flags_sha1"]:
        return f"it was measured on a {model!r} with other CPU flags ({', '.join(info.get('flags', []))} vs " \
               f"{', '.join(here['flags'])})"
    return None


_WARNED: set[str] = set()


def warn_if_other_cpu(table: LatencyTable, stream=None) -> bool:
    """One stderr line (once per process and table) when a measured table comes from another CPU."""
    import sys

    why = other_cpu(table.meta)
    name = str(table.path or table.device)
    if why is None or name in _WARNED:
        return False
    _WARNED.add(name)
    engine = str(table.meta.get("engine", "onnxruntime")).split(" ")[0]
    spaces = " ".join(table.meta.get("spaces") or ["v3_small"])
    here = re.sub(r"[^a-z0-9]+", "-", this_cpu()["model"].lower()).strip("-")[:24] or "this-cpu"
    (stream or sys.stderr).write(
        f"warning: latency table {table.device} does not hold on this machine: {why}; build one for it with "
        f"`mnas latency calibrate --device {here}-{engine} --engine {engine} --space {spaces}`\n")
    return True

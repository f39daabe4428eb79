"""Accel-NASBench's release format (one JSON per network in a tarball) converted to the CSV mnas reads.

The benchmark ships ``anb_dataset/anb_dataset_jsons.tar.gz``: ``result_<id>.json`` per
network, each ``{"architecture": {"block0_e": 6, ..., "block0_se": false, ...},
"metrics": {"val_top1", "val_top5", "train_time"}, "model_info": {"macs", "params"},
"platform_perf": {"latency_zcu102": {"latency_mean", "latency_std"},
"throughput_a100": {"throughput_mean", "throughput_std"}, ...}}`` (null where not
measured). :func:`convert_release` writes one row per network, sorted by id, with the
columns of :data:`CSV_COLUMNS`; values are copied unchanged (Python's shortest
round-trip form of each float, booleans as 0/1, an empty cell for null).

The ``split`` column is the benchmark's own split
(``configs/data_splits/default_split/{train,val,test}_paths.json`` of its repository;
the val and test ids ship in ``splits.json`` beside this module, every other id is
train). The full release has 5,138 networks: 4,114 train, 512 val, 512 test.
"""

from __future__ import annotations

import csv
import json
import re
import tarfile
from pathlib import Path
from typing import Any, Callable

from mnas.anb.choices import BLOCKS, CHOICE_COLUMNS
from mnas.errors import MnasError

SPLITS_FILE = Path(__file__).resolve().parent / "splits.json"
THROUGHPUT_DEVICES = ("a100", "3090", "tpuv2", "tpuv3", "zcu102", "vck190")  # the release's platform_perf names
LATENCY_DEVICES = ("zcu102", "vck190")
CSV_COLUMNS = (
    ("id", "split") + CHOICE_COLUMNS
    + ("val_top1", "val_top5", "train_time_s", "macs_m", "params_m")
    + tuple(f"latency_{d}_ms" for d in LATENCY_DEVICES)
    + tuple(f"throughput_{d}_ips" for d in THROUGHPUT_DEVICES)
    + tuple(f"throughput_{d}_std" for d in THROUGHPUT_DEVICES)
)
_MEMBER = re.compile(r"(?:^|/)result_(\d+)\.json$")


def splits() -> dict[int, str]:
    """``{id: "val" | "test"}`` of the benchmark's default split (ids not listed are train)."""
    doc = json.loads(SPLITS_FILE.read_text())
    out = {int(i): "val" for i in doc["val"]}
    out.update({int(i): "test" for i in doc["test"]})
    return out


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (int, float)):
        return repr(v)
    raise TypeError(f"expected a number, got {v!r}")


def row_of(doc: dict, rid: int, split: str) -> list[str]:
    """The CSV row (:data:`CSV_COLUMNS`) of one network's JSON document."""
    arch, metrics, info, perf = doc["architecture"], doc["metrics"], doc["model_info"], doc.get("platform_perf") or {}
    row: list[Any] = [arch[c] for c in CHOICE_COLUMNS]
    row += [metrics.get("val_top1"), metrics.get("val_top5"), metrics.get("train_time"), info.get("macs"), info.get("params")]
    row += [(perf.get(f"latency_{d}") or {}).get("latency_mean") for d in LATENCY_DEVICES]
    row += [(perf.get(f"throughput_{d}") or {}).get("throughput_mean") for d in THROUGHPUT_DEVICES]
    row += [(perf.get(f"throughput_{d}") or {}).get("throughput_std") for d in THROUGHPUT_DEVICES]
    return [str(int(rid)), split] + [_cell(v) for v in row]


def convert_release(archive: str | Path, out: str | Path, progress: Callable[[int], None] | None = None) -> dict:
    """Write the CSV of the release tarball ``archive`` to ``out`` (atomically); returns counts per split.

    An archive without any ``result_<id>.json``, a member that is not such a document,
    or an id given twice is a :class:`~mnas.errors.MnasError` naming it.
    """
    from mnas.io import atomic_output

    archive = Path(archive)
    split_of = splits()
    rows: dict[int, list[str]] = {}
    try:
        with tarfile.open(archive) as tf:
            for m in tf:
                hit = _MEMBER.search(m.name)
                if not m.isfile() or not hit:
                    continue
                rid = int(hit.group(1))
                if rid in rows:
                    raise MnasError(f"{archive}: network {rid} appears twice ({m.name})")
                f = tf.extractfile(m)
                try:
                    doc = json.loads(f.read().decode("utf-8")) if f else None
                    rows[rid] = row_of(doc, rid, split_of.get(rid, "train"))
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    raise MnasError(f"{archive}: {m.name} is not an Accel-NASBench result "
                                    f"({type(e).__name__}: {e})") from None
                if progress:
                    progress(1)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise MnasError(f"{archive} is not a readable tar archive ({e}): give Accel-NASBench's "
                        "anb_dataset_jsons.tar.gz") from None
    if not rows:
        raise MnasError(f"{archive} holds no result_<id>.json: is it Accel-NASBench's anb_dataset_jsons.tar.gz?")
    with atomic_output(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as text:
        w = csv.writer(text)  # the csv module's dialect (CRLF line ends), as the table was first converted
        w.writerow(CSV_COLUMNS)
        w.writerows(rows[i] for i in sorted(rows))
    counts = {s: 0 for s in ("train", "val", "test")}
    for r in rows.values():
        counts[r[1]] += 1
    assert len(CSV_COLUMNS) == 2 + 4 * BLOCKS + 5 + 2 + 12
    return {"networks": len(rows), **counts}

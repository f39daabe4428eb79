"""Eras of a modelled device: ``pixel1@table3`` is ``pixel1`` on the scale of one published source.

The same Pixel-1 phone was timed with different TFLite builds by different
publications (the MobileNetV3 paper's Table 9 and Table 3, the TF-slim
README's MobileNetV2 and MobileNetV3 tables, the TF-TPU MnasNet README,
Single-Path NAS's per-layer table): a network's published latency depends on
which source timed it. ``experiments/fit_pixel1.py`` fits, for each source, one
scale factor that takes the table's predictions to that source's published
figures (:func:`era_factor` on the source's networks the zoo defines) and
stores it in the table's header::

    # eras:
    #   table3: {factor: 1.0372, networks: 3, source: "MobileNetV3 paper, Table 3"}

``get_predictor("pixel1@table3")`` (and ``--device pixel1@table3``) is then the
``pixel1`` predictor with its whole-network correction ``a * sum + b``
multiplied by that factor: same ops, same ranking, that source's scale.
Any table whose header lists ``eras`` has them (``pixel1`` and ``pixel1-2018``
ship them); ``docs/latency.md`` lists the factors and their leave-one-out error.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import numpy as np

from mnas.errors import MnasError
from mnas.latency.table import LatencyTable

SEPARATOR = "@"


def era_factor(predicted_ms: Sequence[float], published_ms: Sequence[float]) -> float:
    """The scale ``s`` minimising ``sum((s * predicted / published - 1) ** 2)`` (least relative squares).

    Closed form: ``s = sum(r) / sum(r ** 2)`` with ``r = predicted / published``.
    """
    p = np.asarray(predicted_ms, dtype=float)
    y = np.asarray(published_ms, dtype=float)
    if p.shape != y.shape or p.ndim != 1 or not len(p):
        raise MnasError(f"era factor: need equally many predicted and published latencies (>= 1), got {p.shape} "
                        f"and {y.shape}")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(y)) and np.all(p > 0) and np.all(y > 0)):
        raise MnasError("era factor: latencies must be finite and > 0")
    r = p / y
    return float(r.sum() / (r * r).sum())


def split_era(name: str) -> tuple[str, str] | None:
    """``("pixel1", "table3")`` for ``"pixel1@table3"``; None for a name without an era part."""
    base, sep, era = name.rpartition(SEPARATOR)
    if not sep:
        return None
    if not base or not era:
        raise MnasError(f"latency device {name!r}: write DEVICE{SEPARATOR}ERA, e.g. pixel1{SEPARATOR}table3")
    return base, era


def eras(meta: dict) -> dict[str, dict]:
    """The header's eras (name -> {factor, networks, source}); {} when it has none."""
    out = meta.get("eras") or {}
    if not isinstance(out, dict):
        raise MnasError(f"latency table {meta.get('device', '?')}: header 'eras' must be a mapping, got {out!r}")
    return out


def era_table(table: LatencyTable | None, device: str, era: str, name: str) -> LatencyTable:
    """``table`` (of ``device``) with its whole-network correction scaled by its header's factor for ``era``.

    ``get_predictor(name)`` wraps it in a Predictor (this module imports no predictor: no import cycle).
    """
    known = eras(table.meta) if table is not None else {}  # a model device (madds, the surrogates): no table, no eras
    if table is None or not known:
        raise MnasError(f"latency device {name!r}: {device} has no eras (only a table whose header lists "
                        "'eras' has them, e.g. pixel1, pixel1-2018); use the plain device name")
    if era not in known:
        raise MnasError(f"latency device {name!r}: {device} has no era {era!r}; its eras: {', '.join(known)}")
    entry = known[era]
    factor = entry.get("factor") if isinstance(entry, dict) else None
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
        raise MnasError(f"latency table {device}: era {era!r} needs a factor > 0, got {factor!r}")
    meta = copy.deepcopy(table.meta)
    a, b = table.correction
    correction = dict(meta.get("correction") or {})
    correction.update(a=a * float(factor), b=b * float(factor))
    meta.update(device=f"{device}{SEPARATOR}{era}", correction=correction)
    return LatencyTable(meta=meta, entries=table.entries, path=table.path)

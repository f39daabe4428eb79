"""Fit a table's whole-network correction ``latency = a * sum(ops) + b`` from end-to-end measurements.

Above the profiler (which measures ops and networks) and the predictor (which sums a
network's ops): :func:`calibrate` measures a few networks with a
:class:`~mnas.latency.profiler.Runner`, sums their ops with a
:class:`~mnas.latency.predictor.Predictor` and stores the fit in the table header
(``correction``), which every later prediction from that table applies.
"""

from __future__ import annotations

import numpy as np

from mnas.arch import Network
from mnas.latency.predictor import Predictor
from mnas.latency.profiler import Runner
from mnas.latency.table import LatencyTable

__all__ = ["calibrate"]


def calibrate(table: LatencyTable, nets: list[Network], runner: Runner, names: list[str] | None = None,
              progress: bool = True, num_classes: int = 1000, rounds: int = 8) -> dict:
    """Measure ``nets`` end to end and fit ``latency = a * sum(ops) + b`` (header ``correction``).

    Each network is measured as :func:`mnas.latency.validate.validate` measures:
    the statistic over ``rounds`` interleaved passes. Points from earlier
    calibrations of the same table (header ``networks``/``points_ms``, as [op sum,
    measured] ms) are kept and refitted together; a name measured again is replaced.
    """
    pred = Predictor(table, num_classes=num_classes)
    names = names or [str(n) for n in nets]
    prev = table.meta.get("correction") or {}
    points = dict(zip(prev.get("networks", []), prev.get("points_ms", [])))  # earlier runs' networks are kept
    sums = [pred.op_sum(net) for net in nets]  # a missing op fails here, before any measuring
    measured = runner.time_networks(nets, num_classes, rounds=rounds, progress=progress)
    for name, s_ms, m_ms in zip(names, sums, measured):
        points[name] = [round(float(s_ms), 4), round(float(m_ms), 4)]
    s, m = (np.array([p[i] for p in points.values()], dtype=float) for i in (0, 1))
    if len(s) >= 2 and np.ptp(s) > 0:
        a, b = np.polyfit(s, m, 1)
    else:
        a, b = float(m.sum() / s.sum()), 0.0
    fit = a * s + b
    corr = {
        "a": round(float(a), 6), "b": round(float(b), 6), "n": int(len(s)), "rounds": rounds,
        "mape_raw_sum": round(float(np.mean(np.abs(s - m) / m) * 100), 3),
        "mape_fit": round(float(np.mean(np.abs(fit - m) / m) * 100), 3),
        "networks": list(points), "points_ms": list(points.values()),
    }
    table.meta["correction"] = corr
    table.save()
    return corr

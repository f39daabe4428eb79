"""The contract every evaluator passes (reusable: ``from evaluator_contract import check_evaluator_contract``).

``make(cache_path)`` builds a fresh evaluator that persists its results in
``cache_path``; ``nets`` are at least two different architectures it can
evaluate, and ``samples`` (optional) the matching space samples.
"""

from __future__ import annotations

import math

from mnas.accuracy.base import Evaluator


def check_evaluator_contract(make, nets, tmp_path, samples=None) -> list[dict]:
    assert len(nets) >= 2
    samples = samples or [None] * len(nets)
    cache = tmp_path / "contract-cache.sqlite"
    ev = make(cache)
    assert isinstance(ev, Evaluator)
    assert isinstance(ev.name, str) and ev.name
    assert isinstance(ev.config(), dict)

    first = [ev.evaluate(n, s) for n, s in zip(nets, samples)]
    for r in first:
        assert isinstance(r, dict)
        assert 0.0 <= r["top1"] <= 100.0, r
        assert isinstance(r["loss"], float) and (math.isnan(r["loss"]) or r["loss"] >= 0.0), r
        assert r["cost_s"] >= 0.0, r
        assert r["cached"] is False
        assert r["evaluator"] == ev.name
    assert ev.cache_hits == 0

    # the same architecture again: served from the cache, identical metrics
    again = ev.evaluate(nets[0], samples[0])
    assert again["cached"] is True
    assert ev.cache_hits == 1
    assert again["top1"] == first[0]["top1"]
    assert again["cost_s"] == first[0]["cost_s"]  # the cost of computing it, recorded once

    # a fresh evaluator on the same cache file computes nothing
    ev2 = make(cache)
    for n, s, r in zip(nets, samples, first):
        r2 = ev2.evaluate(n, s)
        assert r2["cached"] is True
        assert r2["top1"] == r["top1"]
    assert ev2.cache_hits == len(nets)
    assert ev2.evaluations == 0
    return first

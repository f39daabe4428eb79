"""How well one accuracy signal ranks a space's networks against a reference signal.

:func:`fidelity` samples ``samples`` distinct networks of a space, scores them with an evaluator and
with a reference evaluator (any two registered kinds, e.g. ``imagenet`` against ``ofa``), and reports
for the evaluator *and*, measured the same way on the same networks, for the trivial baselines
multiply-adds and parameters:

- Kendall τ-b and Spearman ρ against the reference;
- MAE (pp) after the median offset: ``|s - r - median(s - r)|`` averaged (for the baselines, which are
  not in percent, after a least-squares line from log2 of the count to the reference, fitted on the
  same networks: a generous calibration);
- top-k overlap: the share of the reference's k best networks among the signal's k best
  (k = ``top_k``, default a tenth of the samples);
- regret under a latency cap: the reference's best top-1 among networks within ``cap_ms`` on
  ``device``, minus the reference top-1 of the network the signal picks there (pp; 0 = the same pick).

``fidelity_table`` turns the result into rows (a pandas DataFrame) for printing or saving.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from mnas.errors import MnasError


def _sample_networks(space, n: int, seed: int, resolution: int | None) -> tuple[list, list[dict]]:
    rng = random.Random(seed)
    names = {c.name for c in space.choices()}
    if resolution is not None and "resolution" not in names and space.resolution != resolution:
        raise MnasError(f"space {space.name}: --resolution {resolution} is not one of its resolutions "
                        f"({space.resolution}); leave it out")
    if resolution is not None and "resolution" in names:
        opts = next(c.options for c in space.choices() if c.name == "resolution")
        if resolution not in opts:
            raise MnasError(f"space {space.name}: --resolution {resolution} is not one of its resolutions "
                            f"{list(opts)}")
    seen: set[str] = set()
    samples: list[dict] = []
    tries = 0
    while len(samples) < n and tries < 20 * n + 100:
        tries += 1
        s = space.sample(rng)
        if resolution is not None and "resolution" in names:
            s["resolution"] = resolution
        key = repr(sorted(s.items()))
        if key not in seen:
            seen.add(key)
            samples.append(s)
    if len(samples) < n:
        raise MnasError(f"space {space.name} has only {len(samples)} distinct networks to sample, asked for {n} "
                        "(use fewer --samples)")
    return [space.decode(s) for s in samples], samples


def _scores(ev, nets: list, samples: list[dict]) -> np.ndarray:
    return np.array([float(r["top1"]) for r in ev.evaluate_many(nets, samples)])


def signal_quality(signal: np.ndarray, ref: np.ndarray, latency: np.ndarray, cap_ms: float, k: int,
                   percent: bool) -> dict[str, Any]:
    """τ, ρ, MAE after the offset (or after a log-linear fit when not ``percent``), top-k overlap, regret."""
    from scipy.stats import kendalltau, spearmanr

    signal, ref = np.asarray(signal, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if percent:
        d = signal - ref
        mae = float(np.abs(d - np.median(d)).mean())
    else:
        x = np.log2(np.maximum(signal, 1e-300))
        a, b = np.polyfit(x, ref, 1) if np.ptp(x) > 0 else (0.0, float(ref.mean()))
        mae = float(np.abs(a * x + b - ref).mean())
    order_s = np.argsort(-signal, kind="stable")[:k]
    order_r = np.argsort(-ref, kind="stable")[:k]
    overlap = len(set(order_s.tolist()) & set(order_r.tolist())) / k
    ok = np.flatnonzero(latency <= cap_ms)
    regret = math.nan
    if len(ok):
        pick = ok[np.argmax(signal[ok])]
        regret = float(ref[ok].max() - ref[pick])
    return {"kendall_tau": float(kendalltau(signal, ref)[0]), "spearman_rho": float(spearmanr(signal, ref)[0]),
            "mae_pp": mae, "top_k_overlap": overlap, "regret_pp": regret}


def fidelity(space: Any, evaluator: str, reference: str, samples: int = 1000, seed: int = 0,
             device: str = "madds", cap_ms: float | None = None, top_k: int | None = None,
             resolution: int | None = None, evaluator_options: dict | None = None,
             reference_options: dict | None = None) -> dict[str, Any]:
    """Score ``samples`` networks of ``space`` with ``evaluator`` and ``reference``; see the module doc."""
    from mnas.accuracy import get_evaluator
    from mnas.counting import count
    from mnas.latency import get_predictor
    from mnas.space import load_space

    if samples < 3:
        raise MnasError(f"fidelity needs at least 3 samples, got {samples}")
    sp = load_space(space)
    nets, smp = _sample_networks(sp, samples, seed, resolution)
    ev = get_evaluator(evaluator, space=sp, **(evaluator_options or {}))
    ref_ev = get_evaluator(reference, space=sp, **(reference_options or {}))
    ref = _scores(ref_ev, nets, smp)
    est = _scores(ev, nets, smp)
    pred = get_predictor(device)
    missing = next((m for m in (pred.missing(n) for n in nets[:50]) if m), None)
    if missing:
        raise MnasError(f"device {device} cannot price networks of space {sp.name} (no {missing[0]}); "
                        "choose another --device (mnas latency list)")
    latency = np.asarray(pred.predict_many(nets), dtype=np.float64)
    cap = float(np.median(latency)) if cap_ms is None else float(cap_ms)
    k = int(top_k) if top_k else max(1, samples // 10)
    if not 1 <= k <= samples:
        raise MnasError(f"--top-k must be between 1 and the number of samples ({samples}), got {k}")
    counts = [count(n) for n in nets]
    madds = np.array([c.madds for c in counts], dtype=np.float64)
    params = np.array([c.params for c in counts], dtype=np.float64)
    signals = {
        evaluator: signal_quality(est, ref, latency, cap, k, percent=True),
        "multiply-adds": signal_quality(madds, ref, latency, cap, k, percent=False),
        "parameters": signal_quality(params, ref, latency, cap, k, percent=False),
    }
    return {"space": sp.name, "evaluator": evaluator, "reference": reference, "samples": samples, "seed": seed,
            "resolution": resolution, "device": device, "cap_ms": cap, "top_k": k,
            "within_cap": int((latency <= cap).sum()), "reference_top1_mean": float(ref.mean()),
            "signals": signals}


def fidelity_table(result: dict):
    """One row per signal (the evaluator, then the baselines)."""
    import pandas as pd

    rows = [{"signal": name, **vals} for name, vals in result["signals"].items()]
    return pd.DataFrame(rows, columns=["signal", "kendall_tau", "spearman_rho", "mae_pp", "top_k_overlap", "regret_pp"])


def render(result: dict) -> str:
    r = result
    res = f" at {r['resolution']} px" if r["resolution"] else ""
    lines = [f"{r['samples']} networks of {r['space']}{res} (seed {r['seed']}), {r['evaluator']} against "
             f"{r['reference']}; top-k = {r['top_k']}; regret under {r['cap_ms']:.2f} ms on {r['device']} "
             f"({r['within_cap']} networks within)", "",
             f"{'signal':<16} {'Kendall τ':>9} {'Spearman ρ':>10} {'MAE pp':>8} {'top-k':>6} {'regret pp':>9}"]
    for name, v in r["signals"].items():
        lines.append(f"{name:<16} {v['kendall_tau']:>9.3f} {v['spearman_rho']:>10.3f} {v['mae_pp']:>8.2f} "
                     f"{v['top_k_overlap']:>6.2f} {v['regret_pp']:>9.2f}")
    lines += ["", "MAE: the evaluator's after its median offset from the reference; the baselines' after a "
              "least-squares line from log2(count) to the reference on the same networks."]
    return "\n".join(lines)

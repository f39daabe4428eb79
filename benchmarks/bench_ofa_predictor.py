"""Throughput of the `ofa` evaluator (Once-for-All's accuracy predictor in numpy), beside OFA's torch model.

    python benchmarks/bench_ofa_predictor.py [--n 100000] [--threads 0]

Prints networks per second for: ``evaluate_many(nets, samples)`` (the search's path: samples of the
``ofa`` space encoded without reading the networks), ``evaluate_many(nets)`` (Network objects parsed
block by block), the MLP alone on encoded features, ``evaluate`` one network at a time (uncached),
and, as the baseline measured side by side, OFA's own predictor as its tutorial runs it (the same
weights in a torch ``nn.Sequential``, fed precomputed features, i.e. its matrix products alone),
plus the load average (the machine is shared; the figures move with it). All paths agree bit for
bit with ``evaluate`` (checked here on a subset).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnas.accuracy import get_evaluator  # noqa: E402
from mnas.accuracy.ofa import _encode_samples, features  # noqa: E402
from mnas.space import load_space  # noqa: E402


def per_s(fn, n: int, repeat: int = 3) -> float:
    """Networks per second, best of ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=0, help="torch threads for the baseline (0: torch's default)")
    args = ap.parse_args()
    sp = load_space("ofa")
    rng = random.Random(0)
    samples = [sp.sample(rng) for _ in range(args.n)]
    nets = [sp.decode(s) for s in samples]
    ev = get_evaluator("ofa", space=sp)
    ev_nets = get_evaluator("ofa")

    ref = [ev.evaluate(n)["top1"] for n in nets[:500]]
    assert [r["top1"] for r in ev.evaluate_many(nets[:500], samples[:500])] == ref
    assert [r["top1"] for r in ev_nets.evaluate_many(nets[:500])] == ref

    load0 = os.getloadavg()[0]
    r_samples = per_s(lambda: ev.evaluate_many(nets, samples), len(nets))
    r_nets = per_s(lambda: ev_nets.evaluate_many(nets), len(nets))
    ks, es, res, _ = _encode_samples(samples)
    x = features(ks, es, res)
    r_mlp = per_s(lambda: ev.predictor.predict(x), len(nets))
    m = min(len(nets), 5000)
    one = get_evaluator("ofa")  # the networks are distinct: every call computes (and fills the memory cache)
    r_one = per_s(lambda: [one.evaluate(n) for n in nets[:m]], m, repeat=1)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model = torch.nn.Sequential(torch.nn.Linear(128, 400), torch.nn.ReLU(), torch.nn.Linear(400, 400), torch.nn.ReLU(),
                                torch.nn.Linear(400, 400), torch.nn.ReLU(), torch.nn.Linear(400, 1))
    with torch.no_grad():
        for layer, (w, b) in zip([model[0], model[2], model[4], model[6]], ev.predictor.weights):
            layer.weight.copy_(torch.from_numpy(w.T.copy()))
            layer.bias.copy_(torch.from_numpy(b))
        xt = torch.from_numpy(x)
        r_torch = per_s(lambda: model(xt), len(nets))
        assert np.abs(model(xt[:500])[:, 0].numpy() * 100 - np.array(ref)).max() < 1e-4
    load1 = os.getloadavg()[0]

    print(f"{len(nets)} random ofa sub-networks, networks per second (best of 3; load average "
          f"{load0:.1f} -> {load1:.1f} on {os.cpu_count()} CPUs)")
    print(f"  ofa evaluate_many(nets, samples)   {r_samples:12,.0f}   (the search's path)")
    print(f"  ofa evaluate_many(nets)            {r_nets:12,.0f}   (Network objects parsed block by block)")
    print(f"  ofa MLP alone (numpy, float32)     {r_mlp:12,.0f}")
    print(f"  ofa evaluate, one by one           {r_one:12,.0f}   ({m} networks, uncached)")
    print(f"  baseline: OFA's torch MLP alone    {r_torch:12,.0f}   (torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, same features)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Latency prediction throughput: the plain per-network path vs the vectorised search-space path.

    python benchmarks/bench_latency_predict.py [--device pixel1] [--space v3_large] [--n 200000]

Prints architectures/s for ``Predictor.predict`` on decoded networks (decode
time excluded), for ``SpacePredictor.predict_indices`` on an index matrix, and
the ratio. The two agree exactly (checked here on the plain path's samples).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnas.latency import get_predictor  # noqa: E402
from mnas.space import load_space  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="pixel1")
    ap.add_argument("--space", default="v3_large")
    ap.add_argument("--n", type=int, default=200_000, help="samples for the vectorised path")
    ap.add_argument("--n-plain", type=int, default=2_000, help="networks for the plain path")
    args = ap.parse_args()

    pred = get_predictor(args.device)
    sp = load_space(args.space)
    t0 = time.perf_counter()
    fast = pred.compile_space(sp)
    compile_s = time.perf_counter() - t0

    rng = random.Random(0)
    samples = [sp.sample(rng) for _ in range(args.n_plain)]
    nets = [sp.decode(s) for s in samples]
    t0 = time.perf_counter()
    plain = pred.predict_many(nets)
    plain_rate = len(nets) / (time.perf_counter() - t0)

    idx_check = fast.encode(samples)
    assert np.allclose(fast.predict_indices(idx_check), plain, rtol=1e-12), "vectorised path disagrees"

    # an index matrix of random option indices (what a sampler would hand over)
    sizes = np.array([len(c.options) for c in fast.choices])
    idx = (np.random.default_rng(0).random((args.n, len(sizes))) * sizes).astype(np.int64)
    fast.predict_indices(idx[:1000])
    t0 = time.perf_counter()
    out = fast.predict_indices(idx)
    vec_rate = len(out) / (time.perf_counter() - t0)

    print(f"device {pred.device}, space {sp.name} ({len(fast.choices)} choices, {len(fast.positions)} op positions); "
          f"compile {compile_s:.1f} s")
    print(f"plain Predictor.predict_many (decoded networks): {plain_rate:12,.0f} architectures/s")
    print(f"vectorised predict_indices (index matrix):       {vec_rate:12,.0f} architectures/s")
    print(f"ratio: {vec_rate / plain_rate:,.0f}x (results identical on {len(nets)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

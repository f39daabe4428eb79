"""Speed of the `imagenet` estimate: one network at a time vs ``evaluate_many``, and the model alone.

    python benchmarks/bench_imagenet_estimate.py [--space v3_small] [--n 2000]

Prints microseconds per network for ``evaluate`` (uncached, a fresh evaluator), for
``evaluate_many`` (features per network + one matrix product), for the model's matrix
product alone on precomputed features, and beside them the shipped ``predictor``
(gradient-boosted trees) on the same networks. The two imagenet paths agree exactly
(checked here).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnas.accuracy import get_evaluator  # noqa: E402
from mnas.accuracy.imagenet import features_many  # noqa: E402
from mnas.space import load_space  # noqa: E402


def us_per(fn, n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="v3_small")
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    sp = load_space(args.space)
    rng = random.Random(0)
    nets = [sp.decode(sp.sample(rng)) for _ in range(args.n)]

    one = get_evaluator("imagenet", warn=False)
    singles: list = []
    t_one = us_per(lambda: singles.extend(one.evaluate(n)["top1"] for n in nets), len(nets))
    many = get_evaluator("imagenet", warn=False)
    batch: list = []
    t_many = us_per(lambda: batch.extend(r["top1"] for r in many.evaluate_many(nets)), len(nets))
    assert np.allclose(singles, batch, rtol=0, atol=1e-9)
    X = features_many(nets)
    reps = 1000
    t_model = us_per(lambda: [many.model.predict(X) for _ in range(reps)], len(nets) * reps)
    t_feat = us_per(lambda: features_many(nets), len(nets))
    pred = get_evaluator("predictor", space=args.space)
    t_pred = us_per(lambda: [pred.evaluate(n) for n in nets], len(nets))

    print(f"{len(nets)} {args.space} networks, microseconds per network")
    print(f"  imagenet evaluate (one by one, uncached)   {t_one:9.1f}")
    print(f"  imagenet evaluate_many (uncached)          {t_many:9.1f}   (one by one / many: {t_one / t_many:.2f})")
    print(f"    of which features (counting)             {t_feat:9.1f}")
    print(f"    the model alone (matrix product)         {t_model:9.3f}")
    print(f"  predictor evaluate (boosted trees)         {t_pred:9.1f}   (predictor / imagenet evaluate_many: {t_pred / t_many:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

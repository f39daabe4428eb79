"""Networks per second of the shipped NAS-Bench-Macro supernet: `mnas eval --batch` vs one at a time.

    python benchmarks/bench_supernet_batch.py [--n 600] [--singles 20] [--workers 1,2] [--order random|key]
                                              [--old-scoring]

Scores ``--n`` NAS-Bench-Macro keys (a seeded random sample, or ``--order key``: the first n in key
order, the most prefix sharing) with the ``supernet`` evaluator on its shipped weights (default
scoring: batch norm recalibrated on the 1,000 held-out images themselves, loss/top-1 on them, 16×16):

* baseline: ``evaluate`` one network at a time (``--singles`` of them, the rate extrapolated);
* ``mnas eval --space nasbench_macro --evaluator supernet --batch FILE -o workers=W`` end to end
  (process start, data decoding from the cache, loading the weights included), per ``--workers``;
* ``--old-scoring``: the same batch runs with the previous scoring (recalibration on 2×64 training
  images, ``-o calib_batches=2``) side by side.

Prints networks/s and the ratio to the baseline, with the machine's load. No asserts: speed is
reported, not tested (the machine is shared).
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--singles", type=int, default=20)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--order", choices=("random", "key"), default="random")
    ap.add_argument("--old-scoring", action="store_true", help="also time the previous 2x64-image recalibration")
    args = ap.parse_args(argv)

    import torch

    from mnas.accuracy import get_evaluator
    from mnas.space import load_space

    space = load_space("nasbench_macro")
    keys = ["".join(c) for c in itertools.product("012", repeat=8)]  # the benchmark's 6,561 keys
    keys = keys[: args.n] if args.order == "key" else random.Random(0).sample(keys, args.n)
    print(f"{args.n} NAS-Bench-Macro keys ({args.order} order), load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} CPUs")
    rows = []
    torch.set_num_threads(1)
    ev = get_evaluator("supernet", space=space, threads=1)
    singles = [space.decode_string(k) for k in keys[: args.singles]]
    t0 = time.perf_counter()
    for s in singles:
        ev._evaluate(space.decode(s), s)  # uncached: the scoring itself
    one = args.singles / (time.perf_counter() - t0)
    rows.append(("evaluate, one at a time (1 thread)", one, 1.0))
    with tempfile.TemporaryDirectory() as tmp:
        batch = Path(tmp) / "keys.txt"
        batch.write_text("\n".join(keys) + "\n")
        runs = [(w, "") for w in [int(v) for v in args.workers.split(",") if v]]
        if args.old_scoring:
            runs += [(w, "calib_batches=2") for w, _ in list(runs)]
        for w, extra in runs:
            cmd = [sys.executable, "-m", "mnas", "eval", "--space", "nasbench_macro", "--evaluator", "supernet",
                   "--batch", str(batch), "-o", f"workers={w}", "-o", "threads=1"] + (["-o", extra] if extra else [])
            env = {**os.environ, "MNAS_CACHE": str(Path(tmp) / f"cache{w}{extra}")}  # nothing served from a cache
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
            dt = time.perf_counter() - t0
            if out.returncode != 0:
                print(out.stderr[-2000:])
                return 1
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            assert len(lines) == len(keys), (len(lines), len(keys))
            rate = len(keys) / dt
            label = f"mnas eval --batch, workers={w}" + (f", {extra} (previous scoring)" if extra else "")
            rows.append((f"{label} (end to end, {dt:.0f} s)", rate, rate / one))
    print(f"\n| path | networks/s | × one at a time |\n|---|---:|---:|")
    for name, rate, ratio in rows:
        print(f"| {name} | {rate:.1f} | {ratio:.1f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

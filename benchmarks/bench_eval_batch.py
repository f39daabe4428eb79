"""Networks per second: `evaluate_many` / `mnas eval --batch` vs one network at a time (anb space).

    python benchmarks/bench_eval_batch.py [--n 2000] [--cli-singles 3]

For the ``table`` evaluator (needs the Accel-NASBench CSV) and the ``anb`` surrogate:

* in process: ``evaluate`` in a loop vs one ``evaluate_many`` call (networks decoded beforehand);
* end to end: ``mnas eval --space anb --batch FILE`` on N lines vs separate ``mnas eval CODE``
  processes (a few timed, the rate extrapolated).

Prints a table with networks/s and the ratio batch / one-by-one. No asserts: speed is reported,
not tested.
"""

from __future__ import annotations

import argparse
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
    ap.add_argument("--n", type=int, default=2000, help="networks per measurement")
    ap.add_argument("--cli-singles", type=int, default=3, help="separate `mnas eval` processes to time")
    args = ap.parse_args(argv)

    from mnas import anb
    from mnas.accuracy import get_evaluator
    from mnas.space import load_space

    space = load_space("anb")
    try:
        data = anb.load_csv()
        listed = [anb.format_code(c) for c in data.network_choices()]
    except Exception as e:  # noqa: BLE001 - the CSV is optional here
        print(f"table rows skipped: {e}")
        listed = []
    rng = random.Random(0)
    random_codes = [space.encode_string(space.sample(rng)) for _ in range(args.n)]
    rows = []
    mnas = [sys.executable, "-m", "mnas"]
    for kind, codes in (("table", rng.sample(listed, min(args.n, len(listed))) if listed else []), ("anb", random_codes)):
        if not codes:
            continue
        nets = [anb.network_of(anb.parse_code(c)) for c in codes]
        ev = get_evaluator(kind, space=space)
        t = time.perf_counter()
        one = [ev.evaluate(n)["top1"] for n in nets]
        t_one = time.perf_counter() - t
        ev = get_evaluator(kind, space=space)  # fresh: no cache hits
        t = time.perf_counter()
        many = [r["top1"] for r in ev.evaluate_many(nets)]
        t_many = time.perf_counter() - t
        assert max(abs(a - b) for a, b in zip(one, many)) < 1e-9
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("\n".join(codes) + "\n")
        t = time.perf_counter()
        out = subprocess.run(mnas + ["eval", "--space", "anb", "-e", kind, "--batch", f.name], capture_output=True, text=True, cwd=REPO)
        t_cli = time.perf_counter() - t
        assert out.returncode == 0 and len(out.stdout.splitlines()) == len(codes), out.stderr
        t = time.perf_counter()
        for c in codes[: args.cli_singles]:
            subprocess.run(mnas + ["eval", c, "--space", "anb", "-e", kind, "--json"], capture_output=True, cwd=REPO, check=True)
        t_single = (time.perf_counter() - t) / max(1, args.cli_singles)
        Path(f.name).unlink()
        rows.append((kind, len(codes), len(codes) / t_one, len(codes) / t_many, len(codes) / t_cli, 1 / t_single))
    print(f"\n{'evaluator':<9} {'n':>5}  {'evaluate/s':>11} {'evaluate_many/s':>16} {'ratio':>6}   "
          f"{'CLI --batch/s':>13} {'CLI single/s':>12} {'ratio':>7}")
    for kind, n, a, b, c, d in rows:
        print(f"{kind:<9} {n:>5}  {a:>11.0f} {b:>16.0f} {b / a:>5.1f}x   {c:>13.0f} {d:>12.2f} {c / d:>6.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

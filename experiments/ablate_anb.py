"""Ablations of the shipped Accel-NASBench accuracy surrogate: each row removes one part of it.

    python experiments/ablate_anb.py [--csv PATH] [--jobs 2] [--rows all]

Same 10 folds as ``experiments/fit_anb.py`` (``KFold(shuffle=True, random_state=0)``; rows ending in
``@split1`` use ``random_state=1``, a split the design was not chosen on), each model refitted per fold.
Results go to ``experiments/results/anb_ablation.jsonl``, one line per row, written as each row
finishes; a rerun skips the rows already there (delete the file to redo them). Prints a table.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments"))

import fit_anb  # noqa: E402

OUT = REPO / "experiments" / "results" / "anb_ablation.jsonl"
# row -> (what it is, matern_fit overrides or "previous", KFold random_state)
ROWS = {
    "shipped": ("the shipped recipe", {}, 0),
    "no noise model": ("one ridge strength for every network (no log-linear noise model)", {"noise_model": False}, 0),
    "no Huber rounds": ("no down-weighting of large leave-one-out residuals", {"huber_rounds": 0}, 0),
    "no slot costs": ("per-slot presence and choices, without their multiply-adds/parameters", {"slots": "choices"}, 0),
    "no slot inputs": ("one-hot + per-block log costs only", {"slots": "none"}, 0),
    "top-1 itself": ("fitted on top-1, not log(100 - top-1)", {"link": "identity"}, 0),
    "RBF kernel": ("RBF instead of Matern 5/2 (length 15.8, the previous model's width)", {"kernel": "rbf", "lengthscale": 15.81}, 0),
    "no learned relevance": ("fixed relevances, ridge strength and noise (no Adam steps)", {"steps": 0}, 0),
    "shipped @split1": ("the shipped recipe on a second split", {}, 1),
    "previous @split1": ("the previous model (0.8 RBF learned relevance + 0.2 LightGBM) on a second split", "previous", 1),
}


@functools.lru_cache(maxsize=1)
def _networks(csv):
    """(choices, top-1) of the benchmark's distinct networks, read once per worker process."""
    from mnas import anb

    data = anb.load_csv(csv)
    return data.network_choices(), data.network_values("val_top1")


def _fold(args):
    row, f, csv = args
    from sklearn.model_selection import KFold

    _, cfg, seed = ROWS[row]
    C, y = _networks(csv)
    tr, te = list(KFold(fit_anb.FOLDS, shuffle=True, random_state=seed).split(np.arange(len(C))))[f]
    if cfg == "previous":
        comps = [{**fit_anb.kernel_fit(C[tr], y[tr]), "weight": 0.8}, {**fit_anb.lgb_fit(C[tr], y[tr]), "weight": 0.2}]
    else:
        comps = [fit_anb.matern_fit(C[tr], y[tr], cfg)]
    return row, te, fit_anb.as_predictor(comps).predict(C[te])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rows", default="all", help="comma-separated row names, or all")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        print(f"ablate_anb: --jobs must be a whole number >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    from mnas import anb

    data = anb.load_csv(args.csv)
    y = data.network_values("val_top1")
    done = {json.loads(line)["row"]: json.loads(line) for line in OUT.read_text().splitlines()} if OUT.exists() else {}
    rows = list(ROWS) if args.rows == "all" else args.rows.split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        print(f"ablate_anb: unknown row {unknown[0]!r}; rows are: {', '.join(ROWS)}", file=sys.stderr)
        return 2
    todo = [r for r in rows if r not in done]
    preds = {r: np.full(len(y), np.nan) for r in todo}
    left = {r: fit_anb.FOLDS for r in todo}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        for row, te, p in pool.map(_fold, [(r, f, args.csv) for r in todo for f in range(fit_anb.FOLDS)]):
            preds[row][te] = p
            left[row] -= 1
            if left[row] == 0:
                rec = {"row": row, "what": ROWS[row][0], "overrides": ROWS[row][1], "kfold_random_state": ROWS[row][2],
                       **fit_anb.metrics(preds[row], y), "wall_s": round(time.perf_counter() - t0, 1)}
                done[row] = rec
                OUT.parent.mkdir(parents=True, exist_ok=True)
                with OUT.open("a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                print(f"  {row:<22} tau {rec['kendall_tau']:.4f}  RMSE {rec['rmse']:.4f} pp  ({rec['wall_s']:.0f} s)", flush=True)
    print(f"\n| row | what | Kendall τ | RMSE (pp) | MAE (pp) |\n|---|---|---:|---:|---:|")
    for r in rows:
        d = done[r]
        print(f"| {r} | {d['what']} | {d['kendall_tau']:.4f} | {d['rmse']:.4f} | {d['mae']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

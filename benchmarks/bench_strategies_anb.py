"""Strategies on Accel-NASBench (``anb``, ≈10¹¹ networks) with the ImageNet surrogate and a pixel1 target.

    nice -n 10 python benchmarks/bench_strategies_anb.py [--seeds 3] [--budget 8000] [--short-budget 2000]
        [--strategies random,evolution,rl,tpe,nsga2] [--skip-multi] [--out benchmarks/results/strategies_anb.md]

Single objective: each strategy searches ``anb`` (``anb`` evaluator, ``pixel1`` latency) under the
``hard`` reward (ACC below the target, ACC × (LAT/T)^−1 above it) at T = the space's median
pixel1 latency (measured here on 20,000 uniform samples); the figure is the surrogate top-1 of the
best *feasible* network (latency ≤ T) after 100 / 500 / 2,000 / 8,000 samples, mean over seeds
(and the worst seed). Random search is the baseline: uniform samples scored in batches through the
evaluator's vectorised path (the same distribution as Optuna's RandomSampler), so it gets every
seed and the full budget cheaply. The target of issue 11: the best strategy reaches random's
8,000-sample result within 800 samples ("samples to random@8000", median over seeds).

Multi-objective (``--reward pareto``: accuracy up, pixel1 latency down): hypervolume after N
samples as a fraction of a reference front's, with the reference point (the 1st percentile of
accuracy, the 99th of latency over uniform samples). The reference front is the Pareto front of
everything this benchmark evaluated plus 50,000 uniform samples.

Every search goes through ``mnas.search.runner.run_search`` with in-memory storage (no journal):
the same samplers, rounds and windows as ``mnas search``. Results of finished runs are kept in
``runs/bench_strategies_anb.runs.jsonl`` (``--runs``) so a killed benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHECKPOINTS = (100, 500, 800, 2000, 8000)


def uniform_samples(space, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    choices = space.choices()
    idx = [rng.integers(0, len(c.options), size=n) for c in choices]
    return [{c.name: c.options[int(i[j])] for c, i in zip(choices, idx)} for j in range(n)]


def score(space, predictor, evaluator, samples: list[dict], chunk: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    acc, lat = [], []
    for i in range(0, len(samples), chunk):
        s = samples[i:i + chunk]
        nets = [space.decode(x) for x in s]
        lat.append(np.asarray(predictor.predict_many(nets), dtype=float))
        acc.append(np.array([r["top1"] for r in evaluator.evaluate_many(nets, s)], dtype=float))
    return np.concatenate(acc), np.concatenate(lat)


def best_feasible_curve(acc: np.ndarray, lat: np.ndarray, target: float) -> np.ndarray:
    """Running best surrogate top-1 among samples with latency <= target (NaN until the first)."""
    a = np.where(lat <= target, acc, -np.inf)
    best = np.maximum.accumulate(a)
    return np.where(np.isfinite(best), best, np.nan)


def run_strategy(strategy: str, seed: int, trials: int, *, reward: str, target: float | None, comp_objs) -> dict:
    from mnas.search.config import SearchConfig
    from mnas.search.runner import run_search

    space, predictor, evaluator = comp_objs
    with tempfile.TemporaryDirectory(prefix="mnas-bench-anb-") as tmp:
        cfg = SearchConfig(target_ms=target, space="anb", evaluator="anb", device="pixel1", strategy=strategy,
                           trials=trials, reward=reward, seed=seed, out=str(Path(tmp) / "run"), storage="memory")
        t0 = time.perf_counter()
        res = run_search(cfg, progress=False, plot=False, space=space, predictor=predictor, evaluator=evaluator,
                         log=lambda m: None)
        wall = time.perf_counter() - t0
    df = res.table[res.table["state"] == "COMPLETE"].sort_values("number")
    return {"strategy": strategy, "seed": seed, "trials": int(len(df)), "reward": reward, "target": target,
            "wall_s": wall, "acc": df["accuracy"].round(4).tolist(), "lat": df["latency_ms"].round(4).tolist()}


def load_done(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass  # a line cut short by a kill
    return out


def samples_to_reach(curve: np.ndarray, level: float) -> float:
    hit = np.flatnonzero(curve >= level - 1e-9)
    return float(hit[0] + 1) if len(hit) else math.inf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--random-seeds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=8000)
    ap.add_argument("--short-budget", type=int, default=2000, help="budget for --short strategies")
    ap.add_argument("--short", default="tpe,nsga2", help="strategies run with --short-budget only (slow per trial)")
    ap.add_argument("--strategies", default="evolution,rl,tpe,nsga2")
    ap.add_argument("--multi-strategies", default="evolution,tpe,nsga2")
    ap.add_argument("--multi-budget", type=int, default=2000)
    ap.add_argument("--multi-seeds", type=int, default=2)
    ap.add_argument("--skip-multi", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/strategies_anb.md")
    ap.add_argument("--runs", default="runs/bench_strategies_anb.runs.jsonl",
                    help="every finished run's trials (JSON lines; reused by a rerun, not committed)")
    args = ap.parse_args()

    import warnings

    warnings.simplefilter("ignore")
    from mnas.accuracy import get_evaluator
    from mnas.latency import get_predictor
    from mnas.plots import hypervolume, pareto_front
    from mnas.space import load_space

    import pandas as pd

    t_start = time.time()
    space = load_space("anb")
    predictor = get_predictor("pixel1")
    evaluator = get_evaluator("anb", space=space)
    comp = (space, predictor, evaluator)
    out = Path(args.out)
    runs_path = Path(args.runs)
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    done = load_done(runs_path)

    def have(strategy, seed, reward, trials):
        return next((r for r in done if (r["strategy"], r["seed"], r["reward"], r["trials"]) == (strategy, seed, reward, trials)),
                    None)

    # the space's median latency and the random baseline (vectorised)
    ref_samples = uniform_samples(space, 20000, seed=12345)
    ref_acc, ref_lat = score(space, predictor, evaluator, ref_samples)
    target = float(np.round(np.median(ref_lat), 1))
    print(f"anb on pixel1: median latency of 20,000 uniform samples {np.median(ref_lat):.2f} ms -> target {target:g} ms",
          file=sys.stderr, flush=True)
    random_curves = []
    for seed in range(args.random_seeds):
        acc, lat = score(space, predictor, evaluator, uniform_samples(space, args.budget, seed))
        random_curves.append(best_feasible_curve(acc, lat, target))

    argv_text = " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [f"Produced by `python benchmarks/bench_strategies_anb.py {argv_text}` (anb space, anb surrogate, "
             f"pixel1), machine load average {os.getloadavg()[0]:.1f} at the start. Wall times per run are medians "
             f"over seeds (a run paused by the machine's scheduler would skew a mean).", ""]
    # ------------------------------------------------------------------ single objective
    table = []
    level_random = float(np.median([c[min(args.budget, len(c)) - 1] for c in random_curves]))

    def summarize(name, curves, seeds, wall):
        row = {"strategy": name, "seeds": seeds, "samples": len(curves[0])}
        for n in CHECKPOINTS:
            vals = [c[n - 1] for c in curves if len(c) >= n]
            row[f"best@{n}"] = f"{np.mean(vals):.2f} ({np.min(vals):.2f})" if vals else "-"
        reach = [samples_to_reach(c, level_random) for c in curves]
        med = float(np.median(reach))
        row["samples to random@8000 (median)"] = f"{med:.0f}" if math.isfinite(med) else f">{len(curves[0])}"
        row["reached"] = f"{sum(math.isfinite(x) for x in reach)}/{len(reach)}"
        row["wall s / run (median)"] = f"{wall:.0f}"
        table.append(row)

    summarize("random", random_curves, args.random_seeds, 0.0)
    for strategy in [s for s in args.strategies.split(",") if s]:
        trials = args.short_budget if strategy in args.short.split(",") else args.budget
        curves, walls = [], []
        for seed in range(args.seeds):
            r = have(strategy, seed, "hard", trials)
            if r is None:
                print(f"  {strategy} seed {seed}: {trials} trials ...", file=sys.stderr, flush=True)
                r = run_strategy(strategy, seed, trials, reward="hard", target=target, comp_objs=comp)
                with open(runs_path, "a") as f:
                    f.write(json.dumps(r) + "\n")
                done.append(r)
                print(f"  {strategy} seed {seed}: {r['wall_s']:.0f} s", file=sys.stderr, flush=True)
            curves.append(best_feasible_curve(np.array(r["acc"]), np.array(r["lat"]), target))
            walls.append(r["wall_s"])
        summarize(strategy, curves, args.seeds, float(np.median(walls)))  # median: robust to a paused run
    lines += [f"### Single objective: best feasible surrogate top-1 (%) under {target:g} ms on pixel1 (hard reward)", "",
              f"Mean over seeds (worst seed in brackets). Random: {args.random_seeds} seeds of uniform samples scored in "
              f"batches; its median 8,000-sample result is **{level_random:.2f} %**. `samples to random@8000`: the "
              f"median number of samples a strategy needed to find a feasible network at least that good.", ""]
    cols = list(table[0])
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in table]
    lines.append("")

    # ------------------------------------------------------------------ multi objective
    if not args.skip_multi:
        acc_lo, lat_hi = float(np.percentile(ref_acc, 1)), float(np.percentile(ref_lat, 99))
        ref = (acc_lo, lat_hi)
        big_acc, big_lat = score(space, predictor, evaluator, uniform_samples(space, 50000, seed=777))
        pool = [pd.DataFrame({"accuracy": big_acc, "latency_ms": big_lat})]
        multi_runs = {}
        for strategy in [s for s in args.multi_strategies.split(",") if s]:
            for seed in range(args.multi_seeds):
                r = have(strategy, seed, "pareto", args.multi_budget)
                if r is None:
                    print(f"  pareto {strategy} seed {seed}: {args.multi_budget} trials ...", file=sys.stderr, flush=True)
                    r = run_strategy(strategy, seed, args.multi_budget, reward="pareto", target=None, comp_objs=comp)
                    with open(runs_path, "a") as f:
                        f.write(json.dumps(r) + "\n")
                    done.append(r)
                multi_runs.setdefault(strategy, []).append(r)
                pool.append(pd.DataFrame({"accuracy": r["acc"], "latency_ms": r["lat"]}))
        random_multi = []
        for seed in range(args.multi_seeds):
            a, l_ = score(space, predictor, evaluator, uniform_samples(space, args.multi_budget, 1000 + seed))
            random_multi.append({"acc": a.tolist(), "lat": l_.tolist(), "wall_s": 0.0})
        multi_runs = {"random": random_multi, **multi_runs}
        reference = pareto_front(pd.concat(pool, ignore_index=True))
        hv_ref = hypervolume(reference, ref)
        mrows = []
        for strategy, runs in multi_runs.items():
            row = {"strategy": strategy, "seeds": len(runs)}
            for n in (100, 500, 1000, args.multi_budget):
                fr = [hypervolume(pd.DataFrame({"accuracy": r["acc"][:n], "latency_ms": r["lat"][:n]}), ref) / hv_ref
                      for r in runs]
                row[f"hv@{n}"] = f"{np.mean(fr):.4f} ({np.min(fr):.4f})"
            row["wall s / run (median)"] = f"{np.median([r['wall_s'] for r in runs]):.0f}"
            mrows.append(row)
        lines += ["### Multi-objective (`--reward pareto`: accuracy vs pixel1 latency): hypervolume fraction", "",
                  f"Fraction of the reference front's hypervolume (the front of all {sum(len(p) for p in pool):,} networks "
                  f"this benchmark scored, 50,000 of them uniform), reference point ({acc_lo:.2f} %, {lat_hi:.1f} ms); "
                  "mean over seeds (worst in brackets). Random: uniform samples.", ""]
        cols = list(mrows[0])
        lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in mrows]
        lines.append("")
    lines.append(f"Total wall time {time.time() - t_start:.0f} s (including runs reused from {runs_path.name}).")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

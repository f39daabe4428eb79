"""Search strategies against exhaustive ground truth: NAS-Bench-Macro (all 6,561 networks trained).

Single objective (accuracy): for each strategy and seed, sample until the global
best network (``22212220``, 93.13 %, and its equivalent key ``22212202``: an
identity after a stage's first layer is moved to the stage's end) is drawn;
report the median number of samples (every trial counts, repeats included) and
the best accuracy found after 50/100/200/500 samples.

Multi-objective (accuracy up, latency down; latency from the ``pixel1`` table,
or multiply-adds as a labelled stand-in with ``--latency madds``): hypervolume of
the front found after 100/300/500/1000 samples, as a fraction of the exact
front's (all 6,561 enumerated), reference point = (worst accuracy, worst latency)
of the whole space.

Trials run through Optuna's in-memory storage (the ask/tell loop of a real
search without the database). Usage::

    python benchmarks/bench_strategies.py                # 10 seeds, all strategies (~30-60 min on 2 busy cores)
    python benchmarks/bench_strategies.py --seeds 3 --quick
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mnas.plots import hypervolume, pareto_front  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
BEST = "22212220"
SINGLE_BUDGETS = (50, 100, 200, 500)
MULTI_BUDGETS = (100, 300, 500, 1000)


def load_benchmark(latency: str):
    """(space, distributions, table DataFrame indexed by code with accuracy/latency/canonical)."""
    from mnas.accuracy import get_evaluator
    from mnas.accuracy.table import canonical_key
    from mnas.search.strategies.base import distributions
    from mnas.space import load_space

    space = load_space("nasbench_macro")
    ev = get_evaluator("table", space=space)
    choices = space.choices()
    import itertools

    samples = [dict(zip([c.name for c in choices], combo)) for combo in itertools.product(*(c.options for c in choices))]
    codes = [space.encode_string(s) for s in samples]
    acc = [ev.evaluate(None, s)["top1"] for s in samples]
    if latency == "pixel1":
        from mnas.latency import get_predictor

        lat = get_predictor("pixel1", num_classes=10).predict_many([space.decode(s) for s in samples])
    else:
        from mnas.counting import count

        lat = [count(space.decode(s), 10).madds / 1e6 for s in samples]
    df = pd.DataFrame({"code": codes, "accuracy": acc, "latency": np.asarray(lat, dtype=float),
                       "canonical": [canonical_key(c) for c in codes]}).set_index("code")
    return space, distributions(choices), df


def _code(space, choices, params) -> str:
    return "".join(str(params[c.name]) for c in choices)


def run_single(name, seed, space, dists, df, cap):
    import optuna

    from mnas.search.strategies import get_strategy

    best_canon = df.loc[BEST, "canonical"]
    study = optuna.create_study(direction="maximize", sampler=get_strategy(name, dists, seed=seed))
    choices = space.choices()
    hit, seen, best, curve = None, set(), -math.inf, {}
    acc = df["accuracy"].to_dict()
    canon = df["canonical"].to_dict()
    for i in range(1, cap + 1):
        t = study.ask(dists)
        code = _code(space, choices, t.params)
        a = acc[code]
        study.tell(t, a)
        seen.add(canon[code])
        best = max(best, a)
        if i in SINGLE_BUDGETS:
            curve[i] = best
        if hit is None and canon[code] == best_canon:
            hit = (i, len(seen))
            if i >= max(SINGLE_BUDGETS):
                break
    for b in SINGLE_BUDGETS:
        curve.setdefault(b, best)
    return hit, curve


def run_multi(name, seed, space, dists, df, ref, exact_hv, budget):
    import optuna

    from mnas.search.strategies import get_strategy

    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=get_strategy(name, dists, seed=seed, multi_objective=True))
    choices = space.choices()
    acc, lat = df["accuracy"].to_dict(), df["latency"].to_dict()
    pts, out = [], {}
    for i in range(1, budget + 1):
        t = study.ask(dists)
        code = _code(space, choices, t.params)
        study.tell(t, (acc[code], lat[code]))
        pts.append((acc[code], lat[code]))
        if i in MULTI_BUDGETS:
            out[i] = hypervolume(pts, ref) / exact_hv
    return out


def markdown(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub Markdown table (no extra dependency)."""
    def cell(v):
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def median_censored(values: list, cap: int) -> str:
    """Median of hit counts where a miss (None) counts as beyond the cap."""
    xs = sorted(v if v is not None else math.inf for v in values)
    m = statistics.median(xs)
    return f">{cap}" if math.isinf(m) else f"{m:g}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--strategies", default="random,evolution,tpe,rl,nsga2")
    ap.add_argument("--cap", type=int, default=1000, help="sample cap per run (random: 10x)")
    ap.add_argument("--latency", default="pixel1", choices=["pixel1", "madds"])
    ap.add_argument("--skip-multi", action="store_true")
    ap.add_argument("--skip-single", action="store_true")
    ap.add_argument("--quick", action="store_true", help="cap 500, multi budget 500")
    args = ap.parse_args(argv)

    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings

    warnings.simplefilter("ignore")
    space, dists, df = load_benchmark(args.latency)
    best_canon = df.loc[BEST, "canonical"]
    n_best = int((df["canonical"] == best_canon).sum())
    p = n_best / len(df)
    analytic = math.ceil(math.log(0.5) / math.log(1 - p))
    print(f"NAS-Bench-Macro: {len(df)} keys, best {BEST} = {df.loc[BEST, 'accuracy']:.2f} % "
          f"({n_best} equivalent keys); random search's exact median samples to hit it: {analytic}")
    strategies = args.strategies.split(",")
    cap = 500 if args.quick else args.cap
    RESULTS.mkdir(parents=True, exist_ok=True)
    md = []

    if not args.skip_single:
        rows = []
        for name in strategies:
            t0 = time.time()
            hits, curves = [], []
            for seed in range(args.seeds):
                hit, curve = run_single(name, seed, space, dists, df, cap * (10 if name == "random" else 1))
                hits.append(hit)
                curves.append(curve)
            c = cap * (10 if name == "random" else 1)
            row = {
                "strategy": name,
                "seeds": args.seeds,
                "median_samples_to_best": median_censored([h[0] if h else None for h in hits], c),
                "median_unique_to_best": median_censored([h[1] if h else None for h in hits], c),
                "hit_rate": sum(h is not None for h in hits) / len(hits),
                "sample_cap": c,
                **{f"best_acc@{b}": float(np.mean([cv[b] for cv in curves])) for b in SINGLE_BUDGETS},
                "wall_s": round(time.time() - t0, 1),
            }
            rows.append(row)
            print(f"  {name:<10} median samples to best {row['median_samples_to_best']:>6}  "
                  f"hit {row['hit_rate']:.0%}  best@500 {row['best_acc@500']:.3f}  ({row['wall_s']} s)", flush=True)
        single = pd.DataFrame(rows)
        rnd = single.set_index("strategy").get("median_samples_to_best", {}).get("random")

        def ratio(v):
            try:
                return f"{float(v) / float(rnd):.3f}"
            except (TypeError, ValueError):
                return "n/a"

        single["vs_random"] = single["median_samples_to_best"].map(ratio)
        single["vs_random_exact"] = single["median_samples_to_best"].map(
            lambda v: f"{float(v) / analytic:.3f}" if not str(v).startswith(">") else "n/a")
        single.to_csv(RESULTS / "strategies_single.csv", index=False)
        print()
        print(single.to_string(index=False))
        md += ["### Single objective: samples to the global best (22212220, 93.13 %)", "",
               f"{args.seeds} seeds; random search's exact median is {analytic} samples "
               f"(p = {n_best}/{len(df)} per sample).", "", markdown(single), ""]

    if not args.skip_multi:
        ref = (float(df["accuracy"].min()), float(df["latency"].max()))
        exact = pareto_front(df.rename(columns={"latency": "latency_ms"}), "accuracy", "latency_ms")
        exact_hv = hypervolume(exact, ref)
        budget = 500 if args.quick else max(MULTI_BUDGETS)
        label = "pixel1 latency (ms)" if args.latency == "pixel1" else "multiply-adds (M) as a latency stand-in"
        print(f"\nmulti-objective (accuracy vs {label}): exact front {len(exact)} networks, HV {exact_hv:.4g}")
        rows = []
        for name in [s for s in strategies if s != "rl"]:
            t0 = time.time()
            runs = [run_multi(name, seed, space, dists, df, ref, exact_hv, budget) for seed in range(args.seeds)]
            row = {"strategy": name, "seeds": args.seeds, "latency": args.latency}
            for b in MULTI_BUDGETS:
                if b <= budget:
                    row[f"hv_frac@{b}"] = float(np.mean([r[b] for r in runs]))
                    row[f"hv_frac_min@{b}"] = float(np.min([r[b] for r in runs]))
            row["wall_s"] = round(time.time() - t0, 1)
            rows.append(row)
            print(f"  {name:<10} " + "  ".join(f"HV@{b} {row[f'hv_frac@{b}']:.4f}" for b in MULTI_BUDGETS if b <= budget)
                  + f"  ({row['wall_s']} s)", flush=True)
        multi = pd.DataFrame(rows)
        multi.to_csv(RESULTS / "strategies_multi.csv", index=False)
        print()
        print(multi.to_string(index=False))
        md += [f"### Multi-objective: hypervolume fraction of the exact front (accuracy vs {label})", "",
               f"{args.seeds} seeds; mean (and worst seed) fraction of the exact front's hypervolume; "
               "rl is single-objective only.", "", markdown(multi, ".4f"), ""]
    if md:
        cmd = "python benchmarks/bench_strategies.py " + " ".join(argv if argv is not None else sys.argv[1:])
        (RESULTS / "strategies.md").write_text("\n".join([f"Produced by `{cmd.strip()}`", ""] + md))
        print(f"\nwrote {RESULTS}/strategies_single.csv, strategies_multi.csv, strategies.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""mnas's strategies beside peer libraries on one black box: samples to a milestone, best@N, CPU per sample.

    nice -n 10 python benchmarks/bench_peers.py [--seeds 5] [--budget 2000] [--target-ms 82.3]
        [--entries mnas:bo,mnas:evolution,...,optuna:tpe,hyperopt:anneal,nevergrad:NGOpt]
        [--out benchmarks/results/peers_anb.md] [--runs runs/bench_peers.runs.jsonl]

The black box is the one of ``benchmarks/bench_strategies_anb.py`` (imported from there): a network
of the ``anb`` space (Accel-NASBench, ≈10¹¹ networks), its ``anb`` surrogate top-1 and its pixel1
latency, under the ``hard`` reward (ACC at or below the target, ACC × T/LAT above it). A run's figure
after N samples is the best surrogate top-1 among its *feasible* samples (latency ≤ T). A sample is
one accuracy evaluation: proposals the latency screen rejects (``mnas/search/screen.py``, on by
default for the hard reward) are not samples.

The milestone is random search's median best after 8,000 uniform samples (``--random-seeds`` seeds,
vectorised); ``samples to milestone`` is the median over seeds of the first sample at least that good
(``>N`` when fewer than half the seeds reach it within the budget; ``reached`` counts them).

Entries: ``mnas:STRATEGY`` runs ``mnas.search.runner.run_search`` (in-memory storage; the sampler,
rounds and windows of ``mnas search``), options after ``;`` as ``key=value`` and ``;noscreen`` to
turn the latency screen off (``;noscreen`` with the old evolution options is mnas before issue 26).
``optuna:tpe`` (``TPESampler`` with Optuna's defaults), ``optuna:cmaes`` (``CmaEsSampler`` on option
indices), ``optuna:gp`` (``GPSampler``), ``hyperopt:tpe``/``hyperopt:anneal`` and ``nevergrad:NAME``
(any optimizer of Nevergrad's registry, on ``Choice`` parameters) drive the same black box through
their own ask/tell. A peer whose package is missing is skipped with a line (``pip install -e .[bench]``).
``@N`` after an entry caps its budget (for peers whose cost per sample grows with the history).

``CPU ms / sample``: process CPU time of the whole run over its samples, including the black box
itself (``random`` shows the black box's share: the same for every entry), median over seeds.
Finished runs are kept in ``--runs`` (JSON lines), so a killed benchmark continues where it stopped.
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
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_strategies_anb import best_feasible_curve, load_done, samples_to_reach, score, uniform_samples  # noqa: E402

CHECKPOINTS = (100, 500, 2000)
DEFAULT_ENTRIES = ",".join([
    "mnas:bo", "mnas:evolution", "mnas:evolution;mutation_prob=0.05",
    "mnas:evolution;population_size=20;sample_size=5;dedup=False",
    "mnas:evolution;population_size=20;sample_size=5;dedup=False;noscreen",
    "mnas:tpe", "mnas:tpe;noscreen", "mnas:nsga2", "mnas:rl", "mnas:random",
    "optuna:tpe", "optuna:cmaes", "hyperopt:tpe", "hyperopt:anneal", "nevergrad:NGOpt",
    "nevergrad:PortfolioDiscreteOnePlusOne",
])


class BlackBox:
    """Option indices -> (surrogate top-1, pixel1 ms), the hard reward, and a log of every sample."""

    def __init__(self, space, predictor, evaluator, target_ms: float):
        self.space, self.predictor, self.evaluator, self.target = space, predictor, evaluator, target_ms
        self.choices = space.choices()
        self.sizes = [len(c.options) for c in self.choices]
        self.acc: list[float] = []
        self.lat: list[float] = []

    def __call__(self, idx) -> float:
        sample = {c.name: c.options[int(i)] for c, i in zip(self.choices, idx)}
        acc, lat = score(self.space, self.predictor, self.evaluator, [sample])
        a, ms = float(acc[0]), float(lat[0])
        self.acc.append(a)
        self.lat.append(ms)
        return a if ms <= self.target else a * self.target / ms  # the hard reward


def parse_entry(entry: str) -> tuple[str, str, dict, bool, int | None]:
    """``lib:name;k=v;...;noscreen@N`` -> (lib, name, options, screen, budget cap)."""
    cap = None
    if "@" in entry:
        entry, _, c = entry.rpartition("@")
        cap = int(c)
    lib, _, rest = entry.partition(":")
    parts = rest.split(";")
    name, opts, screen = parts[0], {}, True
    for p in parts[1:]:
        if p == "noscreen":
            screen = False
            continue
        k, _, v = p.partition("=")
        opts[k] = json.loads(v.lower()) if v.lower() in ("true", "false", "null") else (
            json.loads(v) if v.replace(".", "", 1).replace("-", "", 1).isdigit() else v)
    return lib, name, opts, screen, cap


def run_mnas(name, opts, screen, seed, budget, comp, target) -> tuple[list, list]:
    from mnas.search.config import SearchConfig
    from mnas.search.runner import run_search

    space, predictor, evaluator = comp
    with tempfile.TemporaryDirectory(prefix="mnas-bench-peers-") as tmp:
        cfg = SearchConfig(target_ms=target, space="anb", evaluator="anb", device="pixel1", strategy=name,
                           strategy_options=opts, trials=budget, reward="hard", seed=seed,
                           out=str(Path(tmp) / "run"), storage="memory", screen=None if screen else False)
        res = run_search(cfg, progress=False, plot=False, space=space, predictor=predictor, evaluator=evaluator,
                         log=lambda m: None)
    df = res.table[res.table["state"] == "COMPLETE"].sort_values("number")
    return df["accuracy"].tolist(), df["latency_ms"].tolist()


def run_optuna(name, seed, budget, box: BlackBox) -> None:
    import warnings

    import optuna
    from optuna.distributions import CategoricalDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    names = [c.name for c in box.choices]
    dists: dict[str, Any]
    if name == "cmaes":
        dists = {n: IntDistribution(0, k - 1) for n, k in zip(names, box.sizes)}
        sampler = optuna.samplers.CmaEsSampler(seed=seed)
    else:
        dists = {n: CategoricalDistribution(tuple(range(k))) for n, k in zip(names, box.sizes)}
        sampler = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler,
                   "random": optuna.samplers.RandomSampler}[name](seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(budget):
        t = study.ask(dists)
        study.tell(t, box([t.params[n] for n in names]))


def run_hyperopt(name, seed, budget, box: BlackBox) -> None:
    import logging

    import hyperopt
    from hyperopt import hp

    logging.getLogger("hyperopt").setLevel(logging.ERROR)
    names = [c.name for c in box.choices]
    space = {n: hp.choice(n, list(range(k))) for n, k in zip(names, box.sizes)}
    algo = {"tpe": hyperopt.tpe.suggest, "anneal": hyperopt.anneal.suggest}[name]
    hyperopt.fmin(lambda p: -box([p[n] for n in names]), space, algo=algo, max_evals=budget,
                  rstate=np.random.default_rng(seed), show_progressbar=False)


def run_nevergrad(name, seed, budget, box: BlackBox) -> None:
    import warnings

    import nevergrad as ng

    warnings.simplefilter("ignore")
    param = ng.p.Tuple(*[ng.p.Choice(list(range(k))) for k in box.sizes])
    param.random_state = np.random.RandomState(seed)
    opt = ng.optimizers.registry[name](parametrization=param, budget=budget, num_workers=1)
    for _ in range(budget):
        x = opt.ask()
        opt.tell(x, -box(list(x.value)))


def markdown_table(rows: list[dict]) -> list[str]:
    """Rows (dicts with the same keys) as the lines of a Markdown table, columns in key order."""
    cols = list(rows[0])
    return (["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            + ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows])


def proposal_cost(comp, target: float, sizes: list[int], strategies: list[str], reps: int, out: Path) -> None:
    """CPU ms per proposal of each strategy (screened) given ``n`` finished trials, beside each other."""
    import warnings

    import optuna
    from optuna.trial import create_trial

    from mnas.search.screen import Screen, ScreenedSampler
    from mnas.search.strategies import get_strategy
    from mnas.search.strategies.base import distributions, sample_from_params

    warnings.simplefilter("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space, predictor, evaluator = comp
    dists = distributions(space.choices())
    screen = Screen(space, predictor, target)
    rng = np.random.default_rng(0)
    idx = (rng.random((max(sizes) * 3, len(screen.sizes))) * screen.sizes).astype(np.int64)
    idx = idx[screen.latency_indices(idx) <= target][: max(sizes)]
    params = [screen.params_of(r) for r in idx]
    samples = [sample_from_params(space.choices(), p) for p in params]
    acc = [r["top1"] for r in evaluator.evaluate_many([None] * len(samples), samples)]  # batched: not timed
    load0 = os.getloadavg()[0]
    rows = []
    for name in strategies:
        lib, strat, opts, _, _ = parse_entry(name)
        window = opts.pop("_window", None)  # mnas's runner shows tpe only its newest 500 trials
        row = {"strategy": name}
        for n in sizes:
            sampler = ScreenedSampler(get_strategy(strat, dists, seed=0, options=opts), Screen(space, predictor, target))
            study = optuna.create_study(direction="maximize", sampler=sampler)
            keep = slice(max(0, n - (window or n)), n)
            study.add_trials([create_trial(params=p, distributions=dists, value=v)
                              for p, v in list(zip(params, acc))[:n][keep]])
            for _ in range(2):  # warm: imports, first fit
                study.tell(study.ask(dists), 60.0)
            c0 = time.process_time()
            for _ in range(reps):
                study.tell(study.ask(dists), 60.0)
            row[f"ms @ {n} trials"] = f"{1e3 * (time.process_time() - c0) / reps:.1f}"
            print(f"  proposal cost {name} @ {n}: {row[f'ms @ {n} trials']} ms", file=sys.stderr, flush=True)
        rows.append(row)
    lines = [f"Produced by `python benchmarks/bench_peers.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}`: CPU ms "
             f"per proposal (ask + tell, latency screen on, pixel1 ≤ {target:g} ms) given n finished anb trials, "
             f"{reps} proposals each after 2 warm-up ones; machine load average {load0:.1f} at the start, "
             f"{os.getloadavg()[0]:.1f} at the end (2 cores shared). `tpe` is mnas's TPE on its default window "
             "(`;_window=500`: the newest 500 trials, as `mnas search` runs it), `mnas:tpe` the same sampler on all n.", ""]
    lines += markdown_table(rows)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


PEERS = {"optuna": ("optuna", run_optuna), "hyperopt": ("hyperopt", run_hyperopt),
         "nevergrad": ("nevergrad", run_nevergrad)}


def requirement(lib: str, name: str) -> str | None:
    """The package an entry needs (None: mnas itself)."""
    if lib == "mnas":
        return None
    if lib not in PEERS:
        raise SystemExit(f"unknown library {lib!r} in an entry (mnas, {', '.join(PEERS)})")
    return "cmaes" if (lib, name) == ("optuna", "cmaes") else PEERS[lib][0]


def available(package: str | None) -> bool:
    import importlib.util

    return package is None or importlib.util.find_spec(package) is not None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--random-seeds", type=int, default=10)
    ap.add_argument("--milestone-samples", type=int, default=8000)
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--target-ms", type=float, default=82.3, help="pixel1 target (default: the space's median latency)")
    ap.add_argument("--entries", default=DEFAULT_ENTRIES)
    ap.add_argument("--out", default="benchmarks/results/peers_anb.md")
    ap.add_argument("--runs", default="runs/bench_peers.runs.jsonl",
                    help="every finished run (JSON lines; reused by a rerun, not committed)")
    ap.add_argument("--report-only", action="store_true", help="only tabulate the runs already in --runs")
    ap.add_argument("--proposal-cost", default=None, metavar="SIZES",
                    help="instead: CPU ms per proposal at these numbers of finished trials (e.g. 100,500,2000) for "
                         "--cost-strategies; writes --out")
    ap.add_argument("--cost-strategies", default="mnas:bo,mnas:tpe;_window=500,mnas:tpe,mnas:evolution,mnas:random")
    ap.add_argument("--cost-reps", type=int, default=10)
    args = ap.parse_args()

    import warnings

    warnings.simplefilter("ignore")
    from mnas.accuracy import get_evaluator
    from mnas.latency import get_predictor
    from mnas.space import load_space

    t_start = time.time()
    load0 = os.getloadavg()[0]
    space = load_space("anb")
    predictor = get_predictor("pixel1")
    evaluator = get_evaluator("anb", space=space)
    comp = (space, predictor, evaluator)
    target = args.target_ms
    if args.proposal_cost:
        proposal_cost(comp, target, [int(x) for x in args.proposal_cost.split(",")], args.cost_strategies.split(","),
                      args.cost_reps, Path(args.out))
        return 0
    runs_path = Path(args.runs)
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    done = load_done(runs_path)

    # the milestone: random's median best after 8,000 uniform samples (vectorised), and random's own curves
    random_curves, finals = [], []
    for seed in range(args.random_seeds):
        key = ("__random__", seed, args.milestone_samples, target)
        r = next((x for x in done if (x["entry"], x["seed"], x["budget"], x["target"]) == key), None)
        if r is None or len(r["curve"]) < args.budget:
            acc, lat = score(space, predictor, evaluator, uniform_samples(space, args.milestone_samples, seed))
            c = best_feasible_curve(acc, lat, target)
            r = {"entry": key[0], "seed": seed, "budget": key[2], "target": target, "final": float(c[-1]),
                 "curve": np.round(c[: args.budget], 4).tolist()}
            with open(runs_path, "a") as f:
                f.write(json.dumps(r) + "\n")
            done.append(r)
        random_curves.append(np.array(r["curve"], dtype=float))
        finals.append(r["final"])
    milestone = float(np.median(finals))
    print(f"milestone (random's median best of {args.milestone_samples} samples, {args.random_seeds} seeds): "
          f"{milestone:.2f} %", file=sys.stderr, flush=True)

    rows, skipped = [], []

    def summarize(label, curves, cpu_ms, budget):
        row = {"entry": label, "seeds": len(curves), "budget": budget}
        reach = [samples_to_reach(c, milestone) for c in curves]
        med = float(np.median(reach))
        row["samples to milestone (median)"] = f"{med:.0f}" if math.isfinite(med) else f">{budget}"
        row["reached"] = f"{sum(math.isfinite(x) for x in reach)}/{len(reach)}"
        for n in CHECKPOINTS:
            vals = [c[n - 1] for c in curves if len(c) >= n]
            row[f"best@{n}"] = f"{np.median(vals):.2f} ({np.min(vals):.2f})" if vals else "-"
        row["CPU ms / sample"] = f"{np.median(cpu_ms):.1f}" if cpu_ms else "-"
        rows.append(row)

    summarize("random (uniform, vectorised)", [c[: args.budget] for c in random_curves], [], args.budget)
    rows[-1]["entry"] = f"random (uniform, {args.random_seeds} seeds, vectorised)"
    for entry in [e for e in args.entries.split(",") if e]:
        lib, name, opts, screen, cap = parse_entry(entry)
        budget = min(args.budget, cap) if cap else args.budget
        need = requirement(lib, name)
        if not available(need):
            skipped.append(f"`{entry}`: {need} is not installed (`pip install -e .[bench]`)")
            print(f"  skip {entry}: {need} not installed", file=sys.stderr, flush=True)
            continue
        curves, cpu = [], []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            r = next((x for x in done if (x["entry"], x["seed"], x["budget"], x["target"]) == (entry, seed, budget, target)),
                     None)
            if r is None:
                if args.report_only:
                    continue
                print(f"  {entry} seed {seed}: {budget} samples ...", file=sys.stderr, flush=True)
                c0, w0 = time.process_time(), time.perf_counter()
                if lib == "mnas":
                    accs, lats = run_mnas(name, opts, screen, seed, budget, comp, target)
                else:
                    box = BlackBox(space, predictor, evaluator, target)
                    PEERS[lib][1](name, seed, budget, box)
                    accs, lats = box.acc[:budget], box.lat[:budget]
                r = {"entry": entry, "seed": seed, "budget": budget, "target": target,
                     "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0,
                     "load": os.getloadavg()[0], "acc": np.round(accs, 4).tolist(), "lat": np.round(lats, 4).tolist()}
                with open(runs_path, "a") as f:
                    f.write(json.dumps(r) + "\n")
                done.append(r)
                print(f"  {entry} seed {seed}: {r['cpu_s']:.0f} CPU s", file=sys.stderr, flush=True)
            curves.append(best_feasible_curve(np.array(r["acc"]), np.array(r["lat"]), target))
            cpu.append(1e3 * r["cpu_s"] / max(1, len(r["acc"])))
        if curves:
            summarize(entry, curves, cpu, budget)

    argv_text = " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [f"Produced by `python benchmarks/bench_peers.py {argv_text}` (anb space, anb surrogate top-1, pixel1 "
             f"latency, hard reward, target {target:g} ms); machine load average {load0:.1f} at the start (2 cores "
             "shared: CPU figures are inflated by contention, compare them with each other, not across runs).", "",
             f"Milestone: random search's median best feasible top-1 after {args.milestone_samples:,} uniform samples "
             f"({args.random_seeds} seeds) = **{milestone:.2f} %**. best@N: median over seeds (worst seed in brackets). "
             "A sample is one accuracy evaluation (proposals rejected by the latency screen are not samples).", ""]
    lines += markdown_table(rows)
    lines.append("")
    if skipped:
        lines += ["Skipped (package absent): " + "; ".join(skipped) + ".", ""]
    lines.append(f"Total wall time {time.time() - t_start:.0f} s (including runs reused from {runs_path.name}).")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

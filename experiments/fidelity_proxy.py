"""Fidelity of short proxy training against NAS-Bench-Macro's 50-epoch CIFAR-10 accuracies.

Picks ``--archs`` architectures of the ``nasbench_macro`` space stratified over
the benchmark's accuracy range (one random architecture per accuracy quantile
bin, seeded, distinct canonical networks only), trains each from scratch with
the ``train`` evaluator on a CIFAR-10 subset for a short budget, and reports
Kendall τ and Spearman ρ between the proxy's validation top-1 and the
benchmark's mean test accuracy. One row per architecture goes to ``--out``
(CSV); training results live in an SQLite cache, so a killed run resumes where
it stopped.

    nice python experiments/fidelity_proxy.py --archs 20 --resolution 16 --train-size 5000 --epochs 1
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def stratified_keys(table: dict, n: int, seed: int) -> list[str]:
    """One key per accuracy quantile bin (``n`` bins), among canonical keys only."""
    from mnas.accuracy.table import canonical_key

    keys = sorted({k for k in table if canonical_key(k) == k}, key=lambda k: table[k]["mean_acc"])
    rng = random.Random(seed)
    bins = [keys[len(keys) * i // n : len(keys) * (i + 1) // n] for i in range(n)]
    return [rng.choice(b) for b in bins]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0, help="architecture selection and training seed")
    ap.add_argument("--dataset", default="cifar10-folder")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--train-size", type=int, default=5000)
    ap.add_argument("--val-size", type=int, default=2000)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "fidelity_proxy.csv"))
    ap.add_argument("--cache", default=None, help="SQLite results cache (default: beside --out, .sqlite)")
    args = ap.parse_args(argv)

    import pandas as pd
    from scipy.stats import kendalltau, spearmanr
    from tqdm import tqdm

    from mnas.accuracy import get_evaluator
    from mnas.accuracy.table import load_table
    from mnas.space import load_space

    space = load_space("nasbench_macro")
    table = load_table()
    keys = stratified_keys(table, args.archs, args.seed)
    cache = args.cache or str(Path(args.out).with_suffix(".sqlite"))
    ev = get_evaluator(
        "train",
        space=space,
        cache=cache,
        dataset=args.dataset,
        data_dir=args.data_dir,
        resolution=args.resolution,
        small_input=0,  # the benchmark's networks are made for small inputs already
        train_size=args.train_size,
        val_size=args.val_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        threads=args.threads,
    )
    rows = []
    t0 = time.perf_counter()
    for key in tqdm(keys, desc="proxy training", unit="arch", file=sys.stderr):
        net = space.decode(space.decode_string(key))
        r = ev.evaluate(net)
        rows.append({"key": key, "bench_mean_acc": table[key]["mean_acc"], "bench_std": table[key]["std"],
                     "proxy_top1": r["top1"], "proxy_loss": r["loss"], "cost_s": r["cost_s"],
                     "params": table[key]["params"], "flops": table[key]["flops"], "arch": str(net)})
        pd.DataFrame(rows).to_csv(args.out, index=False)  # after each architecture: nothing is lost
    df = pd.DataFrame(rows)
    tau = kendalltau(df.proxy_top1, df.bench_mean_acc)
    rho = spearmanr(df.proxy_top1, df.bench_mean_acc)
    tau_flops = kendalltau(df.flops, df.bench_mean_acc)
    print(f"{len(df)} architectures, proxy: {args.dataset} res {args.resolution}, {args.train_size} train images, "
          f"{args.epochs:g} epoch(s), batch {args.batch_size}, val {args.val_size}")
    print(f"Kendall tau  = {tau.statistic:.3f} (p={tau.pvalue:.2g})")
    print(f"Spearman rho = {rho.statistic:.3f} (p={rho.pvalue:.2g})")
    print(f"baseline: Kendall tau of FLOPs vs benchmark accuracy on the same archs = {tau_flops.statistic:.3f}")
    print(f"training cost: {df.cost_s.sum():.0f} s total, {df.cost_s.mean():.1f} s per architecture "
          f"(this run {time.perf_counter() - t0:.0f} s wall, load average {os.getloadavg()[0]:.1f})")
    print(f"rows: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fit (and ship) the accuracy predictors: measure (architecture, top-1) pairs, fit, report held-out τ.

For each MobileNetV3 space (``v3_small``, ``v3_large``) it samples architectures
(seeded, round-robin over the spaces so both grow together), measures each with
the ``train`` evaluator (short proxy training on a CIFAR-10 subset; results in an
SQLite cache, so a killed run resumes), writes the pairs to
``experiments/predictor_data_<space>.csv`` and fits the gradient-boosted-tree
predictor, saved as JSON to ``mnas/accuracy/models/<space>.json`` with its
data description and held-out Kendall τ. ``--table`` also fits one for
``nasbench_macro`` on the benchmark's own accuracies (a check of the predictor
itself with plentiful, clean labels).

    nice python experiments/fit_predictor.py             # measure for 50 min at most, then fit
    python experiments/fit_predictor.py --fit-only          # refit from the CSVs
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPACES = ("v3_small", "v3_large")


def proxy_options(args) -> dict:
    return dict(dataset=args.dataset, data_dir=args.data_dir, resolution=args.resolution, small_input=args.small_input,
                train_size=args.train_size, val_size=args.val_size, epochs=args.epochs, batch_size=args.batch_size,
                seed=0, threads=args.threads)


def measure(args) -> None:
    import pandas as pd
    from tqdm import tqdm

    from mnas.accuracy import get_evaluator
    from mnas.space import load_space

    spaces = {name: load_space(name) for name in args.spaces}
    evs = {name: get_evaluator("train", space=sp, cache=str(HERE / "predictor_data.sqlite"), **proxy_options(args))
           for name, sp in spaces.items()}
    rngs = {name: random.Random(f"{name}-{args.seed}") for name in spaces}
    rows = {name: [] for name in spaces}
    deadline = time.time() + args.minutes * 60
    bar = tqdm(total=args.per_space * len(spaces), desc="proxy training", unit="arch", file=sys.stderr)
    for i in range(args.per_space):
        for name, sp in spaces.items():
            if time.time() > deadline:
                bar.close()
                print(f"stopped at the {args.minutes} min budget", file=sys.stderr)
                return
            sample = sp.sample(rngs[name])
            net = sp.decode(sample)
            r = evs[name].evaluate(net, sample)
            rows[name].append({"i": i, "code": sp.encode_string(sample), "top1": r["top1"], "loss": r["loss"],
                               "cost_s": r["cost_s"], "arch": str(net)})
            pd.DataFrame(rows[name]).to_csv(HERE / f"predictor_data_{name}.csv", index=False)
            bar.update()
    bar.close()


def fit_all(args) -> None:
    import pandas as pd

    from mnas.accuracy.predictor import fit, shipped_model
    from mnas.arch import parse_network

    for name in args.spaces:
        path = HERE / f"predictor_data_{name}.csv"
        if not path.is_file():
            print(f"{name}: no data ({path})")
            continue
        df = pd.read_csv(path)
        nets = [parse_network(a) for a in df.arch]
        meta = {"space": name, "data": f"{len(df)} random {name} architectures, top-1 from the train evaluator",
                "proxy": proxy_options(args), "fitted": time.strftime("%Y-%m-%d")}
        model, rep = fit(nets, df.top1, seed=0, meta=meta, n_estimators=args.trees)
        out = model.save(shipped_model(name))
        print(f"{name}: {rep['n']} pairs, top-1 {df.top1.min():.1f}..{df.top1.max():.1f} %, {rep['method']}: "
              f"Kendall tau {rep['kendall_tau']:.3f}, Spearman rho {rep['spearman_rho']:.3f}, MAE {rep['mae']:.2f} "
              f"-> {out} ({out.stat().st_size / 1024:.0f} KiB)")
    if args.table:
        from mnas.accuracy.table import canonical_key, load_table
        from mnas.space import load_space
        from scipy.stats import kendalltau

        from mnas.accuracy.predictor import encode_many

        sp, tab = load_space("nasbench_macro"), load_table()
        keys = sorted(k for k in tab if canonical_key(k) == k)
        rng = random.Random(args.seed)
        sel = rng.sample(keys, args.table)
        nets = [sp.decode(sp.decode_string(k)) for k in sel]
        meta = {"space": "nasbench_macro", "data": f"{len(sel)} NAS-Bench-Macro architectures, the benchmark's mean CIFAR-10 accuracy",
                "fitted": time.strftime("%Y-%m-%d")}
        model, rep = fit(nets, [tab[k]["mean_acc"] for k in sel], seed=0, meta=meta, n_estimators=args.trees)
        rest = [k for k in keys if k not in set(sel)]
        tau_all = kendalltau(model.predict(encode_many([sp.decode(sp.decode_string(k)) for k in rest])),
                             [tab[k]["mean_acc"] for k in rest]).statistic
        out = model.save(shipped_model("nasbench_macro"))
        print(f"nasbench_macro: fit on {rep['n']} benchmark pairs, held-out Kendall tau {rep['kendall_tau']:.3f}; "
              f"on all {len(rest)} other canonical architectures tau {tau_all:.3f} -> {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", nargs="+", default=list(SPACES))
    ap.add_argument("--per-space", type=int, default=40)
    ap.add_argument("--minutes", type=float, default=50, help="stop measuring after this long (then fit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", default="cifar10-folder")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--small-input", type=int, default=1, help="stride-2 layers (stem first) run at stride 1")
    ap.add_argument("--train-size", type=int, default=4000)
    ap.add_argument("--val-size", type=int, default=1000)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--trees", type=int, default=200)
    ap.add_argument("--table", type=int, default=0, metavar="N", help="also fit nasbench_macro on N benchmark pairs")
    ap.add_argument("--fit-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.fit_only:
        measure(args)
    fit_all(args)
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

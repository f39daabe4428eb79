"""Agreement of a MobileNetV3-space supernet (CIFAR-10) with the ImageNet top-1 estimate (issue 13, item 4).

The same recipe as ``experiments/fidelity_supernet.py`` for the ``v3_small`` /
``v3_large`` spaces: one weight-sharing supernet trained on CIFAR-10 (the shared
jpg tarball, 2,000 training images held out) with FairNAS's fair sampling, then
``--nets`` random networks of the space (seeded ``space.sample``) scored by the
``supernet`` evaluator (BN recalibration + held-out top-1 / loss,
``evaluate_many``: prefix sharing) and by the ``imagenet`` evaluator (the linear
ImageNet top-1 estimate). No ground truth exists for these spaces, so this is
information, not a fidelity figure: Kendall tau / Spearman rho of the supernet's
top-1 and -loss against the estimate, always beside the trivial rankings of
the same networks measured the same way (multiply-adds, parameters, number of
blocks vs the estimate) and the supernet against multiply-adds.

Outputs under ``--out-dir`` (default ``experiments/results``):

* ``supernet_v3_agreement_<space>.csv`` — one row per network as it is scored
  (index, code, supernet top-1/loss, ImageNet estimate, madds, params, blocks,
  cost_s); a restart reuses its rows;
* ``supernet_v3_agreement_<space>.json`` — figures, config, timings, command;
* ``supernet_v3_agreement_<space>.png`` — scatter plots.

The supernet is cached (``$MNAS_CACHE/supernets``, keyed by space, dataset and
config) and checkpointed: training resumes after a kill.

    python experiments/supernet_v3_agreement.py                      # v3_small, 600 steps, 500 networks
    python experiments/supernet_v3_agreement.py --space v3_large
    python experiments/supernet_v3_agreement.py --phase train        # only train (resumable)
    MNAS_CACHE=/tmp/c python experiments/supernet_v3_agreement.py --steps 3 --nets 10 --out-dir /tmp/o  # smoke
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "experiments" / "results"
DATASET = "cifar10-folder"
SPACES = ("v3_small", "v3_large")
# fidelity_supernet.py's recipe, with fair sampling and CIFAR-10's own 32x32 input (no low-res phase)
CONFIG = dict(steps=600, batch=64, sampling="fair", lr=0.05, weight_decay=4e-5, label_smoothing=0.1,
              warmup_steps=50, val_size=2000, low_res=0, low_res_fraction=0.0, seed=0, checkpoint_every=50)
SCORING = dict(calib_batches=2, calib_batch_size=64, val_images=1000, seed=0)
CHUNK = 50  # networks per evaluate_many call (rows reach the CSV after each)
COLUMNS = ["index", "code", "supernet_top1", "supernet_loss", "imagenet_top1", "madds", "params", "blocks",
           "cost_s", "network"]


def config(steps: int, batch: int, sampling: str, seed: int):
    from mnas.accuracy.supernet_train import SupernetConfig

    return SupernetConfig(**{**CONFIG, "steps": steps, "batch": batch, "sampling": sampling, "seed": seed})


def outputs(out_dir: Path, space: str) -> dict:
    stem = out_dir / f"supernet_v3_agreement_{space}"
    return {"csv": stem.with_suffix(".csv"), "json": stem.with_suffix(".json"), "png": stem.with_suffix(".png")}


def draw(space, n: int, seed: int) -> list[dict]:
    """``n`` random samples of ``space`` from one seeded generator (the same networks every run)."""
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(n)]


def read_rows(path: Path) -> dict[int, dict]:
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {int(r["index"]): r for r in csv.DictReader(f)}


def score(space, samples: list[dict], checkpoint: Path, csv_path: Path, data_dir=None, threads: int = 1,
          chunk: int = CHUNK) -> float:
    """Score the networks not in ``csv_path`` yet, appending rows chunk by chunk; returns the seconds spent."""
    from mnas.accuracy import get_evaluator
    from mnas.accuracy.supernet_net import subnet_arch
    from mnas.counting import count

    codes = [space.encode_string(s) for s in samples]
    done = read_rows(csv_path)
    for i, r in done.items():
        if i < len(codes) and r["code"] != codes[i]:
            raise SystemExit(f"{csv_path} row {i} holds network {r['code']}, not {codes[i]} (another seed or space?): "
                             f"delete it or pass another --out-dir")
    todo = [i for i in range(len(samples)) if i not in done]
    if not todo:
        return 0.0
    nets = [space.decode(s) for s in samples]
    imagenet = get_evaluator("imagenet", space=space)
    est = {i: r["top1"] for i, r in zip(todo, imagenet.evaluate_many([nets[i] for i in todo]))}
    opts = {"data_dir": data_dir} if data_dir else {}
    sup = get_evaluator("supernet", space=space, checkpoint=str(checkpoint), dataset=DATASET, threads=threads,
                        **SCORING, **opts)
    # prefix order before cutting into chunks, so networks sharing their first layers share a chunk
    todo.sort(key=lambda i: repr([k for k, _ in sup.scorer._steps(subnet_arch(space, samples[i]))]))
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    new = not csv_path.exists()
    t0 = time.perf_counter()
    with open(csv_path, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(COLUMNS)
        for a in range(0, len(todo), chunk):
            part = todo[a : a + chunk]
            print(f"scoring networks {a + 1}-{a + len(part)} of the {len(todo)} left", flush=True)
            for i, r in zip(part, sup.evaluate_many([nets[i] for i in part], [samples[i] for i in part])):
                c = count(nets[i])
                w.writerow([i, codes[i], f"{r['top1']:.2f}", f"{r['loss']:.5f}", f"{est[i]:.3f}", c.madds, c.params,
                            len(nets[i].blocks), f"{r['cost_s']:.3f}", str(nets[i])])
            f.flush()
    return time.perf_counter() - t0


def agreement(df) -> dict:
    """Kendall tau / Spearman rho of every signal against the ImageNet estimate, and of the supernet vs madds."""
    from scipy.stats import kendalltau, spearmanr

    est, madds = df["imagenet_top1"], df["madds"]
    signals = {"supernet_top1": df["supernet_top1"], "supernet_neg_loss": -df["supernet_loss"],
               "baseline_madds": madds, "baseline_params": df["params"], "baseline_blocks": df["blocks"]}
    out = {}
    for name, v in signals.items():
        out[f"kendall_tau_{name}"] = float(kendalltau(v, est).statistic)
        out[f"spearman_rho_{name}"] = float(spearmanr(v, est).statistic)
    for name in ("supernet_top1", "supernet_neg_loss"):
        out[f"kendall_tau_{name}_vs_madds"] = float(kendalltau(signals[name], madds).statistic)
        out[f"spearman_rho_{name}_vs_madds"] = float(spearmanr(signals[name], madds).statistic)
    return out


def summarise(space_name: str, df, record: dict, checkpoint: Path, paths: dict, extra: dict) -> dict:
    import torch

    out = {
        "space": space_name,
        "networks": int(len(df)),
        "distinct_networks": int(df["network"].nunique()),
        "reference": "imagenet evaluator (linear ImageNet top-1 estimate, mnas/accuracy/models/imagenet.json); "
                     "no ground truth exists for this space: agreement, not fidelity",
        **agreement(df),
        "supernet_top1_mean": float(df["supernet_top1"].mean()),
        "supernet_top1_range": [float(df["supernet_top1"].min()), float(df["supernet_top1"].max())],
        "imagenet_top1_range": [float(df["imagenet_top1"].min()), float(df["imagenet_top1"].max())],
        "madds_range": [int(df["madds"].min()), int(df["madds"].max())],
        "train_config": record.get("config"),
        "train_seconds": record.get("train_seconds"),
        "train_seconds_per_step": (record.get("train_seconds") or 0) / max(1, (record.get("config") or {}).get("steps", 1)),
        "scoring": SCORING,
        "scoring_seconds": round(float(df["cost_s"].sum()), 1),
        "scoring_seconds_per_network": round(float(df["cost_s"].mean()), 3),
        "dataset": DATASET,
        "supernet_file": str(checkpoint),
        "torch_threads": torch.get_num_threads(),
        **extra,
    }
    paths["json"].write_text(json.dumps(out, indent=2, default=str) + "\n")
    return out


def plot(df, s: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels = [(-df["supernet_loss"], "supernet -loss (CIFAR-10 held out)", "supernet_neg_loss"),
              (df["supernet_top1"], "supernet top-1 (%), BN recalibrated", "supernet_top1"),
              (df["madds"] / 1e6, "multiply-adds (M, at 224)", "baseline_madds")]
    for ax, (y, label, key) in zip(axes, panels):
        sc = ax.scatter(df["imagenet_top1"], y, s=6, alpha=0.6, c=df["blocks"], cmap="viridis")
        ax.set_xlabel("ImageNet top-1 estimate (%)")
        ax.set_ylabel(label)
        ax.set_title(f"tau {s['kendall_tau_' + key]:.3f}, rho {s['spearman_rho_' + key]:.3f}", fontsize=9)
    fig.colorbar(sc, ax=axes[-1], label="blocks")
    fig.suptitle(f"{s['space']}: supernet ({(s['train_config'] or {}).get('steps')} fair steps, CIFAR-10) vs the "
                 f"ImageNet estimate on {s['networks']} random networks", fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def table(s: dict) -> str:
    rows = [("supernet -loss", "supernet_neg_loss"), ("supernet top-1", "supernet_top1"),
            ("multiply-adds", "baseline_madds"), ("parameters", "baseline_params"), ("blocks", "baseline_blocks")]
    lines = [f"{s['space']}: {s['networks']} random networks, agreement with the ImageNet estimate",
             f"{'signal':<16} {'tau':>7} {'rho':>7}"]
    lines += [f"{name:<16} {s['kendall_tau_' + k]:>7.3f} {s['spearman_rho_' + k]:>7.3f}" for name, k in rows]
    lines.append(f"supernet vs madds: tau {s['kendall_tau_supernet_neg_loss_vs_madds']:.3f} (-loss), "
                 f"{s['kendall_tau_supernet_top1_vs_madds']:.3f} (top-1)")
    lines.append(f"train {s['train_seconds'] or 0:.0f} s ({s['train_seconds_per_step']:.2f} s/step); scoring "
                 f"{s['scoring_seconds']:.0f} s ({s['scoring_seconds_per_network']:.2f} s/network)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", choices=SPACES, default="v3_small")
    ap.add_argument("--phase", choices=("train", "all"), default="all")
    ap.add_argument("--steps", type=int, default=CONFIG["steps"], help=f"supernet training steps (default {CONFIG['steps']})")
    ap.add_argument("--batch", type=int, default=CONFIG["batch"])
    ap.add_argument("--sampling", choices=("uniform", "sandwich", "fair"), default=CONFIG["sampling"])
    ap.add_argument("--seed", type=int, default=0, help="training seed and the seed of the random networks")
    ap.add_argument("--nets", type=int, default=500, help="random networks to score (default 500)")
    ap.add_argument("--chunk", type=int, default=CHUNK, help="networks per scoring call (CSV rows after each)")
    ap.add_argument("--data-dir", default=None, help="CIFAR-10 image folder or .tar.gz (default: the shared tarball)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--out-dir", default=str(RESULTS), help="where the CSV, JSON and PNG go (default experiments/results)")
    args = ap.parse_args(argv)

    import pandas as pd
    import torch

    from mnas.accuracy.supernet import ensure_trained
    from mnas.accuracy.supernet_train import read_checkpoint
    from mnas.space import load_space

    torch.set_num_threads(args.threads)
    space = load_space(args.space)
    cfg = config(args.steps, args.batch, args.sampling, args.seed)
    t0 = time.time()
    path = ensure_trained(space, DATASET, args.data_dir, cfg)
    wall = {"train_call": round(time.time() - t0, 1)}
    print(f"supernet: {path} ({wall['train_call']:.0f} s this call)", flush=True)
    if args.phase == "train":
        return 0
    paths = outputs(Path(args.out_dir), args.space)
    samples = draw(space, args.nets, args.seed)
    wall["score_call"] = round(score(space, samples, path, paths["csv"], args.data_dir, args.threads, args.chunk), 1)
    df = pd.read_csv(paths["csv"], dtype={"code": str})
    df = df[df["index"] < args.nets].drop_duplicates("index").sort_values("index")
    record = read_checkpoint(path)
    command = "python experiments/supernet_v3_agreement.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    s = summarise(args.space, df, record, path, paths,
                  {"seed_networks": args.seed, "wall_seconds_this_call": wall, "command": command.strip()})
    plot(df, s, paths["png"])
    print(table(s))
    print(f"wrote {paths['json']}, {paths['csv']}, {paths['png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

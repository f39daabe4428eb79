"""Fidelity of the weight-sharing supernet on NAS-Bench-Macro (the headline figure of the supernet evaluator).

Trains one supernet over the ``nasbench_macro`` space on CIFAR-10 (the shared
jpg tarball, 2,000 training images held out for validation), scores
architectures with it (batch-norm recalibration + top-1 on the fixed held-out
images) and compares with the benchmark's ``mean_acc`` (3 seeds, 50 epochs
each): Kendall τ and Spearman ρ.

Outputs under ``experiments/results/`` (named by the training length, ``<N>steps``):

* ``fidelity_supernet_<N>steps.csv`` (or ``.shardIofK.csv`` per process) — key, wave,
  supernet_top1, supernet_loss, benchmark_mean_acc, benchmark_flops, network
* ``fidelity_supernet_<N>steps.json`` — τ and ρ of top-1 and of −loss, the FLOPs-only
  baseline on the same keys, config, timings
* ``fidelity_supernet_<N>steps.png`` — scatter plot
* ``fidelity_supernet_<N>steps_waves.jsonl`` — seconds per scored wave

Keys are scored in waves of 150 drawn in a seeded random order, so any number of
whole waves is a uniform random sample of the 6,561 keys; the summary uses whole
waves only. Keys that name one network (identities moved to a stage's end) are
scored once.

Every phase resumes: the supernet is cached (``~/.cache/mnas/supernets``) and
checkpointed; scores are appended to the CSV as they come.

    python experiments/fidelity_supernet.py                 # train + score + summarise
    python experiments/fidelity_supernet.py --phase train   # only train (resumable)
    python experiments/fidelity_supernet.py --archs 1050    # score a uniform sample of keys
    python experiments/fidelity_supernet.py --shard 0/2 & python experiments/fidelity_supernet.py --shard 1/2
    python experiments/fidelity_supernet.py --steps 700     # the shorter-trained supernet
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "experiments" / "results"
from mnas.data.registry import default_path  # noqa: E402

BENCH = default_path("nasbench_macro")  # the data root (`mnas data fetch nasbench_macro`), else ../shared/data

# The budget: 2 CPU cores shared by ~8 processes of 5 engineers (load average ~10), so one
# process gets a quarter to a third of a core. 1400 steps of 64 images (90k images, ~1.9 epochs
# of the 48k training split) at 16x16 input (CIFAR-10 downscaled 2x: 4x cheaper than 32x32),
# scoring at 16x16 too; ~30 min of training here.
CONFIG = dict(steps=1400, batch=64, sampling="uniform", lr=0.05, weight_decay=4e-5, label_smoothing=0.1,
              warmup_steps=50, val_size=2000, low_res=16, low_res_fraction=1.0, seed=0, checkpoint_every=50)
DATASET = "cifar10-folder"


def config():
    from mnas.accuracy.supernet_train import SupernetConfig

    return SupernetConfig(**CONFIG)


def set_outputs(steps: int, tag: str = "") -> None:
    """Output files named by the training length, so runs of different budgets sit side by side."""
    global CSV, SUMMARY, PNG, WAVES_LOG
    stem = RESULTS / f"fidelity_supernet_{tag}{steps}steps"
    CSV, SUMMARY, PNG = stem.with_suffix(".csv"), stem.with_suffix(".json"), stem.with_suffix(".png")
    WAVES_LOG = Path(f"{stem}_waves.jsonl")


RESTART: dict = {}  # --restart STEPS:LR: a second cosine cycle from the finished supernet's weights


def restart_config():
    """The warm restart's config: the parent's, with its own steps and peak rate, no warm-up, init = the parent."""
    from mnas.accuracy.supernet_train import SupernetConfig, default_path

    from mnas.space import load_space

    parent = default_path(load_space("nasbench_macro"), DATASET, config(), 10)
    return SupernetConfig(**{**CONFIG, "steps": RESTART["steps"], "lr": RESTART["lr"], "warmup_steps": 0,
                             "init": str(parent)})


def phase_train(space, data_dir=None, snapshots: tuple[int, ...] = ()) -> Path:
    """Train (resumably); at each step in ``snapshots`` also write a scoreable copy ``<file>.step<N>.pt``.
    With ``--restart``, then the warm restart from the finished supernet (resumable too)."""
    path = _train_main(space, data_dir, snapshots)
    if RESTART:
        from mnas.accuracy.supernet import ensure_trained

        path = ensure_trained(space, DATASET, data_dir, restart_config())
    return path


def _train_main(space, data_dir=None, snapshots: tuple[int, ...] = ()) -> Path:
    from mnas.accuracy.supernet import ensure_trained
    from mnas.accuracy.supernet_train import FORMAT, default_path, space_fingerprint

    import torch

    for n in sorted(snapshots):
        if n >= config().steps:
            continue
        final = default_path(space, DATASET, config(), 10)
        snap = final.with_name(f"{final.stem}.step{n}.pt")
        if snap.exists() or final.exists():
            continue
        ckpt_path = ensure_trained(space, DATASET, data_dir, config(), stop_after=n)
        ck = torch.load(ckpt_path, weights_only=True)
        if ck["state"]["step"] != n:
            continue  # resumed past it
        torch.save({"format": FORMAT, "space_fingerprint": space_fingerprint(space), "model": ck["model"],
                    "config": CONFIG | {"snapshot_step": n}, "num_classes": 10, "losses": ck["state"]["losses"],
                    "train_seconds": ck["state"]["seconds"], "meta": {"snapshot_of": str(final)}}, snap)
        print(f"snapshot at step {n}: {snap} ({ck['state']['seconds']:.0f} s of training)", flush=True)
    return ensure_trained(space, DATASET, data_dir, config())


def snapshot_path(space, step: int) -> Path:
    from mnas.accuracy.supernet_train import default_path

    final = default_path(space, DATASET, config(), 10)
    return final if step >= CONFIG["steps"] else final.with_name(f"{final.stem}.step{step}.pt")


SCORING = dict(calib_batches=2, calib_batch_size=64, val_images=1000, seed=0)
CSV = RESULTS / "fidelity_supernet.csv"
SUMMARY = RESULTS / "fidelity_supernet.json"
PNG = RESULTS / "fidelity_supernet.png"
WAVES_LOG = RESULTS / "fidelity_supernet_waves.jsonl"


def load_benchmark() -> dict:
    if not BENCH.is_file():
        raise SystemExit(f"NAS-Bench-Macro table {BENCH} is absent: get it with `mnas data fetch nasbench_macro`")
    return json.loads(BENCH.read_text())


def waves(keys: list[str], size: int, seed: int = 0) -> list[list[str]]:
    """The keys in a seeded random order, cut into waves: any number of whole waves is a uniform sample."""
    import random

    order = sorted(keys)
    random.Random(seed).shuffle(order)
    return [order[i : i + size] for i in range(0, len(order), size)]


def shard_csv(shard: int, shards: int) -> Path:
    return CSV if shards == 1 else CSV.with_name(f"{CSV.stem}.shard{shard}of{shards}.csv")


def read_scores():
    """All scored rows: the CSV and any shard CSVs beside it."""
    import pandas as pd

    files = [f for f in [CSV, *sorted(CSV.parent.glob(f"{CSV.stem}.shard*.csv"))] if f.exists()]
    return pd.concat([pd.read_csv(f, dtype={"key": str}) for f in files], ignore_index=True).drop_duplicates("key")


PREFIX_CHUNK = 243  # 3^5 keys: one chunk shares its first three layers


def phase_score(space, path: Path, bench: dict, max_archs: int, wave_size: int, minutes: float, data_dir=None,
                shard: int = 0, shards: int = 1, order: str = "waves") -> None:
    """Score keys wave by wave, appending rows to the CSV (a restart skips scored keys).

    With ``shards > 1`` this process takes waves ``shard, shard + shards, ...`` and
    writes its own CSV beside the main one (several processes share the work).
    ``order="prefix"`` scores the same keys in key order instead (each shard a contiguous
    range): networks sharing their first layers share that work, ~3x less per network when
    all 6,561 are scored; only a finished run's waves are whole.
    """
    import csv

    from mnas.accuracy.supernet import make_scorer
    from mnas.accuracy.supernet_net import subnet_arch
    from mnas.accuracy.supernet_train import load_supernet

    supernet, record = load_supernet(space, path)
    scorer = make_scorer(supernet, record, DATASET, data_dir, **SCORING)
    out_csv = shard_csv(shard, shards)
    done = set()
    for f in [CSV, *CSV.parent.glob(f"{CSV.stem}.shard*.csv")]:
        if f.exists():
            with open(f) as fh:
                done |= {row["key"] for row in csv.DictReader(fh)}
    new = not out_csv.exists()
    t_end = time.time() + minutes * 60
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["key", "wave", "supernet_top1", "supernet_loss", "benchmark_mean_acc", "benchmark_flops", "network"])
        all_waves = waves(list(bench), wave_size)[: max(1, -(-max_archs // wave_size))]
        wave_of = {k: wi for wi, wave in enumerate(all_waves) for k in wave}
        if order == "prefix":
            # the same keys, each shard a contiguous range of them in key order, cut into chunks: keys sharing
            # their first layers are scored together (prefix sharing); rows keep their random wave's number
            keys = sorted(wave_of)
            lo, hi = shard * len(keys) // shards, (shard + 1) * len(keys) // shards
            jobs = [(f"prefix chunk {i // PREFIX_CHUNK}", keys[i:min(i + PREFIX_CHUNK, hi)])
                    for i in range(lo, hi, PREFIX_CHUNK)]
        else:
            jobs = [(f"wave {wi}", wave) for wi, wave in enumerate(all_waves) if wi % shards == shard]
        for label, wave in jobs:
            todo = [k for k in wave if k not in done]
            if not todo:
                continue
            if time.time() > t_end:
                print(f"time budget of {minutes} min spent: stopping before {label}", flush=True)
                break
            # one score per distinct network (identities moved to a stage's end make keys coincide)
            by_net: dict = {}
            for k in todo:
                arch = subnet_arch(space, space.decode_string(k))
                by_net.setdefault(arch.key, (arch, []))[1].append(k)
            archs = [a for a, _ in by_net.values()]
            groups = [ks for _, ks in by_net.values()]
            t0, c0 = time.time(), time.process_time()

            def write(i, r):
                for k in groups[i]:
                    net = space.decode(space.decode_string(k))
                    w.writerow([k, wave_of[k], f"{r['top1']:.2f}", f"{r['loss']:.5f}", bench[k]["mean_acc"],
                                bench[k]["flops"], str(net)])
                f.flush()

            scorer.score_many(archs, callback=write)
            dt = time.time() - t0
            print(f"{label}: {len(todo)} keys, {len(archs)} networks, {dt:.0f} s", flush=True)
            with open(WAVES_LOG, "a") as lf:
                lf.write(json.dumps({"wave": label, "keys": len(todo), "networks": len(archs), "seconds": round(dt, 1),
                                     "cpu_seconds": round(time.process_time() - c0, 1)}) + "\n")


def summarise(path: Path, wall: dict) -> dict:
    import pandas as pd
    import torch
    from scipy.stats import kendalltau, spearmanr

    df = read_scores()
    # only whole waves: together they are a uniform random sample of the benchmark's keys
    all_waves = waves(list(load_benchmark()), WAVE)
    sizes = df.groupby("wave")["key"].transform("count")
    d = df[sizes == df["wave"].map(lambda w: len(all_waves[w]))]
    record = torch.load(path, weights_only=True)
    wave_log = [json.loads(line) for line in WAVES_LOG.read_text().splitlines()] if WAVES_LOG.exists() else []
    parent_s = _parent_seconds(record)
    out = {
        "keys_scored": int(len(d)),
        "distinct_networks": int(d["network"].nunique()),
        "benchmark_keys": 6561,
        "kendall_tau_top1": float(kendalltau(d["supernet_top1"], d["benchmark_mean_acc"]).statistic),
        "spearman_rho_top1": float(spearmanr(d["supernet_top1"], d["benchmark_mean_acc"]).statistic),
        "kendall_tau_neg_loss": float(kendalltau(-d["supernet_loss"], d["benchmark_mean_acc"]).statistic),
        "spearman_rho_neg_loss": float(spearmanr(-d["supernet_loss"], d["benchmark_mean_acc"]).statistic),
        "baseline_kendall_tau_flops": float(kendalltau(d["benchmark_flops"], d["benchmark_mean_acc"]).statistic),
        "baseline_spearman_rho_flops": float(spearmanr(d["benchmark_flops"], d["benchmark_mean_acc"]).statistic),
        **{f"baseline_{m}_{name}": v for name, (t, r) in baselines(d).items() for m, v in (("kendall_tau", t), ("spearman_rho", r))},
        "supernet_top1_mean": float(d["supernet_top1"].mean()),
        "supernet_top1_range": [float(d["supernet_top1"].min()), float(d["supernet_top1"].max())],
        "train_config": record.get("config"),
        "train_seconds": (record.get("train_seconds") or 0) + parent_s,
        "train_seconds_parent": parent_s,
        "scoring": SCORING,
        "dataset": DATASET,
        "supernet_file": str(path),
        "scoring_seconds_total": round(sum(w["seconds"] for w in wave_log), 1),
        "scoring_seconds_per_network": round(sum(w["seconds"] for w in wave_log) / max(1, sum(w["networks"] for w in wave_log)), 3),
        "torch_threads": torch.get_num_threads(),
        "wall_seconds_this_call": wall,
    }
    SUMMARY.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return out


MODELS = REPO / "mnas" / "accuracy" / "models"


def _parent(cfg: dict) -> dict:
    """The record of the supernet a warm restart started from (``{}`` without one)."""
    import torch

    init = cfg.get("init")
    if not init or not Path(init).is_file():
        return {}
    return torch.load(init, weights_only=True, map_location="cpu")


def _parent_steps(cfg: dict) -> int:
    """Training steps of the supernet a warm restart started from (0 without one)."""
    return int((_parent(cfg).get("config") or {}).get("steps", 0))


def _parent_seconds(record: dict) -> float:
    """Training seconds of the supernet a warm restart started from (0 without one)."""
    return float(_parent(record.get("config") or {}).get("train_seconds") or 0.0)


def ship(space, path: Path, summary: dict) -> None:
    """Copy a supernet scored on all 6,561 keys into the package: weights (``torch.load(...,
    weights_only=True)``), its scores of every key (CSV) and its fidelity figures (JSON)."""
    import torch

    df = read_scores()
    if len(df) < 6561 or summary.get("keys_scored", 0) < 6561:
        raise SystemExit(f"score all 6,561 keys first ({len(df)} scored): --phase score --order prefix")
    rec = torch.load(path, weights_only=True)
    keep = ("format", "space_fingerprint", "model", "config", "num_classes", "losses", "train_seconds", "meta")
    MODELS.mkdir(parents=True, exist_ok=True)
    torch.save({k: rec[k] for k in keep if k in rec}, MODELS / "supernet_nasbench_macro.pt")
    df.sort_values("key")[["key", "supernet_top1", "supernet_loss"]].to_csv(
        MODELS / "supernet_nasbench_macro.scores.csv", index=False)
    fid = {k: v for k, v in summary.items() if "tau" in k or "rho" in k}
    fid.update({"keys": summary["keys_scored"], "benchmark": "NAS-Bench-Macro mean_acc (CIFAR-10, 3 seeds x 50 epochs)",
                "train_config": summary.get("train_config"), "train_cpu_minutes": round((summary.get("train_seconds") or 0) / 60, 1),
                "torch_threads": summary.get("torch_threads"), "scoring": summary.get("scoring"),
                "dataset": summary.get("dataset"),
                "made_by": "python experiments/fidelity_supernet.py --phase ship (experiments/results/"
                           + SUMMARY.name + ")"})
    (MODELS / "supernet_nasbench_macro.fidelity.json").write_text(json.dumps(fid, indent=2) + "\n")
    print(f"shipped {MODELS / 'supernet_nasbench_macro.pt'} ({(MODELS / 'supernet_nasbench_macro.pt').stat().st_size / 1e6:.1f} MB)"
          f", its scores of {len(df)} keys and fidelity figures")


def baselines(d) -> dict:
    """Trivial rankings of the same keys: (Kendall tau, Spearman rho) of FLOPs, parameters, non-identity layers."""
    from scipy.stats import kendalltau, spearmanr

    bench = load_benchmark()
    acc = d["benchmark_mean_acc"]
    sig = {"flops": d["key"].map(lambda k: bench[k]["flops"]), "params": d["key"].map(lambda k: bench[k]["params"]),
           "layers": d["key"].map(lambda k: sum(ch != "0" for ch in k))}
    out = {n: (float(kendalltau(v, acc).statistic), float(spearmanr(v, acc).statistic)) for n, v in sig.items()}
    out["predictor100"] = predictor_baseline(list(d["key"]), bench)
    return out


def predictor_baseline(keys: list[str], bench: dict, labels: int = 100, draws: int = 10) -> tuple[float, float]:
    """A predictor fitted on ``labels`` benchmark accuracies: ridge regression on the one-hot layer choices
    (8 layers x 3 options), fitted on ``labels`` keys drawn from the whole benchmark and ranked on ``keys``
    (its own training keys included, a small favour); mean (tau, rho) over ``draws`` seeded draws."""
    import numpy as np
    from scipy.stats import kendalltau, spearmanr

    def onehot(ks):
        return np.array([[1.0 if c == str(o) else 0.0 for c in k for o in range(3)] for k in ks])

    everything = sorted(bench)
    x_eval, y_eval = onehot(keys), np.array([bench[k]["mean_acc"] for k in keys])
    taus, rhos = [], []
    for seed in range(draws):
        pick = list(np.random.default_rng(seed).choice(len(everything), labels, replace=False))
        ks = [everything[i] for i in pick]
        x, y = onehot(ks), np.array([bench[k]["mean_acc"] for k in ks])
        xm, ym = x.mean(0), y.mean()
        w = np.linalg.solve((x - xm).T @ (x - xm) + 1.0 * np.eye(x.shape[1]), (x - xm).T @ (y - ym))
        pred = (x_eval - xm) @ w
        taus.append(float(kendalltau(pred, y_eval).statistic))
        rhos.append(float(spearmanr(pred, y_eval).statistic))
    return float(np.mean(taus)), float(np.mean(rhos))


def plot(summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = read_scores()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    ax.scatter(df["benchmark_mean_acc"], df["supernet_top1"], s=5, alpha=0.5)
    ax.set_xlabel("NAS-Bench-Macro mean top-1 (%), 50 epochs x 3 seeds")
    ax.set_ylabel("supernet top-1 (%), BN recalibrated")
    ax.set_title(f"supernet vs benchmark: Kendall tau {summary['kendall_tau_top1']:.3f}, "
                 f"Spearman rho {summary['spearman_rho_top1']:.3f}\n({summary['keys_scored']} architectures; "
                 f"FLOPs alone: tau {summary['baseline_kendall_tau_flops']:.3f})", fontsize=8)
    fig.tight_layout()
    fig.savefig(PNG, dpi=130)


WAVE = 150


def curve(stems: list[str], out: str) -> dict:
    """Kendall tau / Spearman rho of several scored supernets on the keys they ALL scored (whole
    waves), beside FLOPs / parameters / non-identity layers on the same keys; JSON + PNG of tau
    against training seconds (one torch thread, wall clock on the shared 2-core machine)."""
    import pandas as pd
    from scipy.stats import kendalltau, spearmanr

    global CSV
    frames = {}
    for stem in stems:
        CSV = RESULTS / f"fidelity_supernet_{stem}.csv"
        frames[stem] = read_scores().set_index("key")
    all_waves = waves(list(load_benchmark()), WAVE)
    common = None
    for df in frames.values():
        whole = [w for w in range(len(all_waves)) if set(all_waves[w]) <= set(df.index)]
        keys = {k for w in whole for k in all_waves[w]}
        common = keys if common is None else common & keys
    keys = sorted(common)
    rows = []
    for stem, df in frames.items():
        d = df.loc[keys]
        summ = json.loads((RESULTS / f"fidelity_supernet_{stem}.json").read_text())
        cfg = summ.get("train_config") or {}
        steps = cfg.get("snapshot_step", cfg.get("steps", 0)) + _parent_steps(cfg)
        recal = (summ.get("scoring") or {}).get("calib_batches", 2)
        rows.append({"run": stem, "sampling": cfg.get("sampling"), "steps": steps,
                     "warm_restart": bool(cfg.get("init")),
                     "bn_recalibration": "validation images" if recal == 0 else f"{recal}x64 training images",
                     "subnet_passes": steps * (3 if cfg.get("sampling") != "uniform" else 1),
                     "train_minutes": round((summ.get("train_seconds") or 0) / 60, 1),
                     "tau_top1": float(kendalltau(d["supernet_top1"], d["benchmark_mean_acc"]).statistic),
                     "rho_top1": float(spearmanr(d["supernet_top1"], d["benchmark_mean_acc"]).statistic),
                     "tau_loss": float(kendalltau(-d["supernet_loss"], d["benchmark_mean_acc"]).statistic),
                     "rho_loss": float(spearmanr(-d["supernet_loss"], d["benchmark_mean_acc"]).statistic)})
    base = baselines(frames[stems[0]].loc[keys].reset_index())
    res = {"keys": len(keys), "runs": rows,
           "baselines": {n: {"tau": t, "rho": r} for n, (t, r) in base.items()}}
    (RESULTS / f"{out}.json").write_text(json.dumps(res, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for samp, mk in (("fair", "o"), ("uniform", "s"), ("sandwich", "^")):
        for recal in sorted({r["bn_recalibration"] for r in rows}):
            rs = sorted((r for r in rows if r["sampling"] == samp and r["bn_recalibration"] == recal),
                        key=lambda r: r["train_minutes"])
            if not rs:
                continue
            what = samp if recal.endswith("training images") and recal.startswith("2x") else f"{samp}, BN on {recal}"
            ax.plot([r["train_minutes"] for r in rs], [r["tau_loss"] for r in rs], marker=mk, label=f"{what}: by loss")
            ax.plot([r["train_minutes"] for r in rs], [r["tau_top1"] for r in rs], marker=mk, ls="--",
                    label=f"{what}: by top-1")
    names = {"flops": "FLOPs alone", "params": "parameters alone", "layers": "non-identity layers",
             "predictor100": "predictor on 100 labels"}
    for (n, (t, _)), c in zip(base.items(), ("tab:gray", "tab:brown", "tab:red", "tab:purple")):
        ax.axhline(t, color=c, ls=":", label=names.get(n, n))
    ax.set_xlabel("training minutes (one torch thread, shared 2-core machine)")
    ax.set_ylabel("Kendall tau vs NAS-Bench-Macro mean top-1")
    ax.set_title(f"supernet ranking fidelity on the same {len(keys)} random keys", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{out}.png", dpi=130)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", choices=("train", "score", "summary", "all", "curve", "ship"), default="all")
    ap.add_argument("--order", choices=("waves", "prefix"), default="waves",
                    help="score: random waves (any whole waves are a uniform sample) or key order (prefix sharing)")
    ap.add_argument("--runs", default="", help="curve: comma-separated result stems (fidelity_supernet_<stem>.csv)")
    ap.add_argument("--out", default="fidelity_supernet_curve", help="curve: output stem under experiments/results")
    ap.add_argument("--archs", type=int, default=6561, help="score at most this many keys (uniform sample, whole waves)")
    ap.add_argument("--shard", default="0/1", help="I/N: this process scores waves I, I+N, ... (run N processes)")
    ap.add_argument("--minutes", type=float, default=1e9, help="start no new wave after this many minutes of scoring")
    ap.add_argument("--data-dir", default=None, help="CIFAR-10 image folder or .tar.gz (default: the shared tarball)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=CONFIG["steps"], help=f"supernet training steps (default {CONFIG['steps']})")
    ap.add_argument("--sampling", default=CONFIG["sampling"], help="uniform | sandwich | fair (default uniform)")
    ap.add_argument("--snapshots", default="", help="comma-separated steps at which to keep a scoreable copy")
    ap.add_argument("--calib-batches", type=int, default=SCORING["calib_batches"],
                    help=f"scoring: BN recalibration on this many batches of {SCORING['calib_batches']} training "
                         f"images; 0: on the validation images themselves (default {SCORING['calib_batches']})")
    ap.add_argument("--val-images", type=int, default=SCORING["val_images"],
                    help=f"scoring: held-out images per network (default {SCORING['val_images']}; the split has 2,000)")
    ap.add_argument("--scoring-seed", type=int, default=SCORING["seed"], help="scoring: which images (default 0)")
    ap.add_argument("--restart", default="", metavar="STEPS:LR",
                    help="then a second cosine cycle of STEPS steps from peak rate LR, starting from the finished "
                         "supernet's weights (fresh optimizer, no warm-up), e.g. 1350:0.02")
    ap.add_argument("--score-step", type=int, default=None,
                    help="score the snapshot of this step instead of the finished supernet")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    CONFIG["steps"] = args.steps
    CONFIG["sampling"] = args.sampling
    tag = "" if args.sampling == "uniform" else f"{args.sampling}_"
    if args.score_step is not None and args.score_step < args.steps:
        tag += f"of{args.steps}_"
    if args.restart:
        st, lr = args.restart.split(":")
        RESTART.update(steps=int(st), lr=float(lr))
        tag += f"{args.steps}steps_restart_lr{lr.replace('.', 'p')}_"
    scoring = dict(calib_batches=args.calib_batches, calib_batch_size=SCORING["calib_batch_size"],
                   val_images=args.val_images, seed=args.scoring_seed)
    if scoring != SCORING:  # another scoring of the same weights: its own files
        SCORING.update(scoring)
        calib = "calval" if args.calib_batches == 0 else f"cal{args.calib_batches}x{SCORING['calib_batch_size']}"
        tag = f"{calib}_val{args.val_images}_s{args.scoring_seed}_" + tag
    set_outputs(RESTART["steps"] if RESTART else (args.score_step or args.steps), tag)
    if args.phase == "curve":
        print(json.dumps(curve(args.runs.split(","), args.out), indent=2))
        return 0
    from mnas.space import load_space

    space = load_space("nasbench_macro")
    t0 = time.time()
    if args.score_step is not None and args.score_step < args.steps:
        path = snapshot_path(space, args.score_step)
        if not path.exists():
            raise SystemExit(f"no snapshot at step {args.score_step}: train with --snapshots {args.score_step}")
    else:
        path = phase_train(space, args.data_dir, tuple(int(v) for v in args.snapshots.split(",") if v))
    wall = {"train_call": round(time.time() - t0, 1)}
    print(f"supernet: {path} ({wall['train_call']:.0f} s)", flush=True)
    if args.phase == "train":
        return 0
    if args.phase in ("score", "all"):
        t1 = time.time()
        shard, shards = (int(v) for v in args.shard.split("/"))
        phase_score(space, path, load_benchmark(), args.archs, WAVE, args.minutes, args.data_dir, shard, shards,
                    args.order)
        if shards > 1 and shard != 0:
            return 0  # shard 0 writes the summary
        wall["score_call"] = round(time.time() - t1, 1)
    if args.phase == "ship":
        ship(space, path, json.loads(SUMMARY.read_text()))
        return 0
    summary = summarise(path, wall)
    plot(summary)
    print(json.dumps({k: v for k, v in summary.items() if "tau" in k or "rho" in k or k == "keys_scored"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

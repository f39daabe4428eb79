"""Probes behind the shipped supernet's recipe: how scoring and a few training levers move its ranking.

All on the same 600 NAS-Bench-Macro keys as the fidelity curve (waves 0-3 of
experiments/fidelity_supernet.py), Kendall τ against the benchmark's ``mean_acc``.
Each probe appends one JSON line to ``experiments/results/supernet_probes.jsonl``.

    python experiments/supernet_probes.py scoring --calib-batches 2 --val-images 1000 --seed 0
    python experiments/supernet_probes.py scoring --calib-batches 0 --val-images 1000 --seed 2
    python experiments/supernet_probes.py finetune --option -1 --steps 1350       # one more cosine cycle, unsplit
    python experiments/supernet_probes.py finetune --option 0 --steps 450         # few-shot: s1.l1 fixed to 0 (and 1, 2)
    python experiments/supernet_probes.py score-finetuned --which split            # or ctrl

``scoring`` rescores the weights of experiments/fidelity_supernet.py's 4,200-step run (the
``--weights`` file, default the shipped one as it was before the warm restart: pass it) with
another batch-norm recalibration: ``--calib-batches N`` batches of 64 training images, or 0 for
the validation images themselves. ``finetune`` is the probe that led to the warm restart (now
``mnas supernet train --init``): a second cosine cycle at peak rate 0.02 from the given weights,
fair sampling, optionally with the first layer's op fixed (a few-shot sub-supernet, Zhao et al.
2021); its own seeds (999 + option), written to ``--out-dir``. Every figure is reported, not
asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "experiments" / "results"
from mnas.data.registry import default_path  # noqa: E402

BENCH = default_path("nasbench_macro")  # the data root (`mnas data fetch nasbench_macro`), else ../shared/data
KEYS_FROM = RESULTS / "fidelity_supernet_fair_of4200_1400steps.csv"  # its 600 keys: waves 0-3
CHOICE = "s1.l1.block"


def _keys() -> list[str]:
    import pandas as pd

    return list(pd.read_csv(KEYS_FROM, dtype={"key": str})["key"])


def _report(row: dict) -> None:
    print(json.dumps(row), flush=True)
    with open(RESULTS / "supernet_probes.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def _tau(keys, scores: dict) -> dict:
    from scipy.stats import kendalltau, spearmanr

    bench = json.loads(BENCH.read_text())
    acc = [bench[k]["mean_acc"] for k in keys]
    neg = [-scores[k][0] for k in keys]
    return {"tau_loss": kendalltau(neg, acc).statistic, "rho_loss": spearmanr(neg, acc).statistic,
            "tau_top1": kendalltau([scores[k][1] for k in keys], acc).statistic}


def _score(groups: dict, files: dict, calib_batches: int, val_images: int, seed: int) -> dict:
    from mnas.accuracy.supernet import make_scorer
    from mnas.accuracy.supernet_net import subnet_arch
    from mnas.accuracy.supernet_train import load_supernet
    from mnas.space import load_space

    sp = load_space("nasbench_macro")
    out = {}
    for g, ks in groups.items():
        sn, rec = load_supernet(sp, files[g])
        sc = make_scorer(sn, rec, "cifar10-folder", calib_batches=calib_batches, val_images=val_images, seed=seed)
        for k, r in zip(ks, sc.score_many([subnet_arch(sp, sp.decode_string(k)) for k in ks], progress=False)):
            out[k] = (r["loss"], r["top1"])
    return out


def cmd_scoring(a) -> None:
    keys = _keys()
    t0 = time.time()
    scores = _score({0: keys}, {0: a.weights}, a.calib_batches, a.val_images, a.seed)
    _report({"probe": "scoring", "weights": Path(a.weights).name, "calib_batches": a.calib_batches,
             "val_images": a.val_images, "seed": a.seed, **_tau(keys, scores), "seconds": round(time.time() - t0)})


def cmd_finetune(a) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from mnas import training
    from mnas.accuracy.supernet import load_data
    from mnas.accuracy.supernet_net import subnet_arch
    from mnas.accuracy.supernet_train import SupernetConfig, fair_samples, load_supernet, make_optimizer
    from mnas.space import load_space

    torch.set_num_threads(1)
    sp = load_space("nasbench_macro")
    sn, rec = load_supernet(sp, a.weights)
    ds, tr, _ = load_data("cifar10-folder", None, 2000, 0, None)  # the training split the supernet was trained on
    opt = make_optimizer(sn, SupernetConfig(lr=a.lr))
    rng, gen = random.Random(1000 + a.option), torch.Generator().manual_seed(1000 + a.option)
    m, s = training.stats(ds.mean, ds.std)
    y = torch.from_numpy(np.asarray(tr.y, dtype=np.int64))
    sn.train()
    t0 = time.time()
    for step in range(a.steps):
        idx = torch.randint(0, len(y), (64,), generator=gen)
        xb = training.augment(training.to_input(torch.from_numpy(tr.x[idx.numpy()]), m, s, tr.x.shape[1], 3), gen, True)
        xb = F.interpolate(xb, size=16, mode="bilinear", antialias=True, align_corners=False)
        training.set_lr(opt, 0.5 * a.lr * (1 + math.cos(math.pi * step / a.steps)))
        opt.zero_grad(set_to_none=True)
        for smp in fair_samples(sp, rng):
            if a.option >= 0:
                smp[CHOICE] = a.option
            F.cross_entropy(sn.run(xb, subnet_arch(sp, smp)), y[idx], label_smoothing=0.1).backward()
        torch.nn.utils.clip_grad_norm_(sn.parameters(), 5.0)
        opt.step()
    out = Path(a.out_dir) / f"{CHOICE}_{a.option}_{a.steps}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**rec, "model": sn.state_dict()}, out)
    print(f"{out} ({time.time() - t0:.0f} s)")


def cmd_score_finetuned(a) -> None:
    keys = _keys()
    d = Path(a.out_dir)
    if a.which == "split":  # each key scored by the sub-supernet of its first layer's op
        groups = {o: [k for k in keys if k[0] == str(o)] for o in range(3)}
        files = {o: d / f"{CHOICE}_{o}_{a.steps}.pt" for o in range(3)}
    else:
        groups, files = {-1: keys}, {-1: d / f"{CHOICE}_-1_{a.steps}.pt"}
    t0 = time.time()
    scores = _score(groups, files, a.calib_batches, a.val_images, a.seed)
    _report({"probe": f"finetune_{a.which}", "steps_each": a.steps, "calib_batches": a.calib_batches,
             "val_images": a.val_images, "seed": a.seed, **_tau(keys, scores), "seconds": round(time.time() - t0)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("scoring", "finetune", "score-finetuned"):
        p = sub.add_parser(name)
        p.add_argument("--weights", default=str(Path.home() / ".cache/mnas/supernets/df80c75700917635.pt"),
                       help="the 4,200-step fair supernet (experiments/fidelity_supernet.py's cache file)")
        p.add_argument("--calib-batches", type=int, default=0)
        p.add_argument("--val-images", type=int, default=1000)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--option", type=int, default=-1, help=f"finetune: fix {CHOICE} to this option (-1: no split)")
        p.add_argument("--steps", type=int, default=450)
        p.add_argument("--lr", type=float, default=0.02)
        p.add_argument("--which", choices=("split", "ctrl"), default="ctrl")
        p.add_argument("--out-dir", default="/tmp/mnas_probes")
    a = ap.parse_args(argv)
    if not BENCH.is_file():
        raise SystemExit(f"NAS-Bench-Macro table {BENCH} is absent: get it with `mnas data fetch nasbench_macro`")
    {"scoring": cmd_scoring, "finetune": cmd_finetune, "score-finetuned": cmd_score_finetuned}[a.cmd](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())

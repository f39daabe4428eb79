"""Training images/s of `mnas train` (mnas.train.loop): V3-Small at 224 and 32 px, 1 vs 2 processes; the data
pipeline alone; on CUDA also V3-Large, bfloat16 autocast + channels-last.

Each configuration trains a synthetic ImageNet-style folder (random JPEGs written once under --tmp) for a fixed
number of steps (two epochs) through the real command (`python -m mnas train`, `--nproc K` for K processes), and
reads the images/s of its second epoch from metrics.csv (that excludes start-up, the first steps and validation). The data-pipeline
figure decodes and augments the same folder through the same DataLoader (no network), so it bounds what
training can reach. The baseline beside each training figure is the in-memory train evaluator's loop
(mnas.accuracy.train, one process, the images already decoded) on the same network and size.

    python benchmarks/bench_train_dist.py                       # CPU: 224 and 32 px, 1 and 2 processes
    python benchmarks/bench_train_dist.py --device cuda --nets mobilenet_v3_small mobilenet_v3_large \
        --sizes 224 --procs 1 --batch 256 --steps 30 --workers 8   # a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_folder(root: Path, classes: int, per_class: int, size: int) -> Path:
    import numpy as np
    from PIL import Image

    done = root / f"done-{classes}-{per_class}-{size}"
    if done.exists():
        return root
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", max(2, per_class // 10))):
        for c in range(classes):
            d = root / split / f"c{c:03d}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 256, (size, size * 5 // 4, 3), dtype=np.uint8)
                Image.fromarray(a).save(d / f"{i}.jpg", quality=85)
    done.write_text("")
    return root


def pipeline_ips(root: Path, size: int, batch: int, workers: int, batches: int) -> float:
    from mnas.data import folder as F

    s = F.scan_folder(root)
    ds = F.FolderImages(s["train"], F.Transform(size, True, "inception"))
    sampler = F.ShardSampler(len(ds), batch, seed=0)
    n, t0 = 0, None
    for k, (x, _) in enumerate(F.loader(ds, sampler, workers)):
        if k == 1:  # the first batch includes the workers' start
            t0, n = time.perf_counter(), 0
        n += len(x)
        if k >= batches:
            break
    return n / (time.perf_counter() - t0) if t0 else float("nan")


def train_ips(net: str, root: Path, size: int, procs: int, batch: int, steps: int, workers: int, device: str,
              out: Path, threads: int | None = None) -> float:
    cmd = [sys.executable, "-m", "mnas", "train", net, "--recipe", "mnasnet-proxy", "--dataset", "folder",
           "--data-dir", str(root), "--resolution", str(size), "--batch-size", str(batch), "--steps", str(steps),
           "--workers", str(workers), "--device", device, "--set", "holdout=null", "--set", "warmup_epochs=0",
           "--set", f"save_every_steps={10 ** 9}", "--no-progress", "--out", str(out), "--json"]
    if procs > 1:
        cmd += ["--nproc", str(procs)]
    if threads:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    import pandas as pd

    return float(pd.read_csv(out / "metrics.csv")["images_per_s"].iloc[-1])


def baseline_ips(net: str, size: int, batch: int, steps: int, threads: int | None = None) -> float:
    """The in-memory loop (mnas.accuracy.train.train_and_evaluate) on random uint8 images of the same size."""
    import numpy as np

    from mnas import zoo
    from mnas.accuracy.train import TrainConfig, train_and_evaluate
    from mnas.data import ArrayDataset, Split

    rng = np.random.default_rng(0)
    n = batch * 2
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = np.arange(n, dtype=np.int64) % 10
    ds = ArrayDataset("bench", Split(x, y), Split(x[:batch], y[:batch]), tuple(str(i) for i in range(10)))
    cfg = TrainConfig(dataset="bench", steps=steps, batch_size=batch, small_input=0, val_size=batch, threads=threads)
    r = train_and_evaluate(zoo.get(net).with_resolution(size), Split(x, y), Split(x[:batch], y[:batch]), ds, cfg)
    return float(r["images_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nets", nargs="+", default=["mobilenet_v3_small"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[224, 32])
    ap.add_argument("--procs", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps in all (two epochs)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads per process (default: cores / processes; the baseline: all cores)")
    ap.add_argument("--tmp", default=None, help="where the synthetic folders go (default a temporary folder)")
    ap.add_argument("--out", default=None, help="write the rows as JSON here too")
    args = ap.parse_args()
    tmp = Path(args.tmp or tempfile.mkdtemp(prefix="bench-train-dist-"))
    # two epochs of steps/2 each: the figure is the second epoch's (no process start, no first-step warm-up)
    per_class = max(4, args.batch * max(1, args.steps // 2) // args.classes)
    rows = []
    print(f"device {args.device}, batch {args.batch} (global), {args.steps} steps, {args.workers} loader worker(s)"
          f"/process, threads/process {args.threads or 'cores / processes'}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    for size in args.sizes:
        root = make_folder(tmp / f"img{size}", args.classes, per_class, max(size, 32) * 8 // 7)
        p = pipeline_ips(root, size, args.batch, args.workers, batches=max(3, args.steps))
        print(f"data pipeline  {size:3d} px  decode + inception crop + flip: {p:8.1f} images/s ({args.workers} worker(s))")
        rows.append({"what": "pipeline", "size": size, "images_per_s": p, "workers": args.workers})
        for net in args.nets:
            base = baseline_ips(net, size, args.batch, args.steps, args.threads) if args.device == "cpu" else float("nan")
            for k in args.procs:
                ips = train_ips(net, root, size, k, args.batch, args.steps, args.workers, args.device,
                                tmp / f"run-{net}-{size}-{k}-{time.time_ns()}", args.threads)
                print(f"train {net:20s} {size:3d} px  {k} process(es): {ips:8.1f} images/s   "
                      f"(in-memory train evaluator, 1 process: {base:8.1f})")
                rows.append({"what": "train", "net": net, "size": size, "procs": k, "images_per_s": ips,
                             "baseline_in_memory_images_per_s": base, "device": args.device})
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""Supernet speed on this CPU: training steps/s, and seconds to score one sub-network
(BN recalibration + validation top-1) one at a time vs batched by shared prefixes.

Weights do not change the timing, so the supernet here is untrained (no checkpoint
needed) and the images are random tensors of the real shape.

    python benchmarks/bench_supernet.py                       # NAS-Bench-Macro space, 32x32
    python benchmarks/bench_supernet.py --resolution 16 --nets 40 --threads 2
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="nasbench_macro")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--nets", type=int, default=20, help="sub-networks to score")
    ap.add_argument("--val-images", type=int, default=1000)
    ap.add_argument("--calib-batches", type=int, default=2)
    ap.add_argument("--calib-batch-size", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import os

    import torch
    import torch.nn.functional as F

    from mnas.accuracy.supernet import SubnetScorer
    from mnas.accuracy.supernet_net import Supernet, subnet_arch
    from mnas.space import load_space

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sp = load_space(args.space)
    sn = Supernet.from_space(sp, 10)
    r = args.resolution
    rng = random.Random(0)
    print(f"space {sp.name}, input {r}x{r}, torch threads {args.threads}, load average {os.getloadavg()[0]:.1f}")

    # training throughput (uniform sampling)
    opt = torch.optim.SGD(sn.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(args.batch, 3, r, r), torch.randint(0, 10, (args.batch,))
    sn.train()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.train_steps):
        arch = subnet_arch(sp, sp.sample(rng))
        opt.zero_grad()
        F.cross_entropy(sn.run(x, arch), y).backward()
        opt.step()
    dt = (time.perf_counter() - t0) / args.train_steps
    cpu = (time.process_time() - c0) / args.train_steps
    print(f"train: {dt:.2f} s/step ({cpu:.2f} s CPU) of {args.batch} images ({args.batch / dt:.0f} images/s), uniform sampling")
    # fair sampling (FairNAS): one step = k sub-networks covering every option of every layer once
    from mnas.accuracy.supernet_train import fair_samples

    t0, c0 = time.perf_counter(), time.process_time()
    passes = 0
    for _ in range(args.train_steps):
        opt.zero_grad()
        for s in fair_samples(sp, rng):
            F.cross_entropy(sn.run(x, subnet_arch(sp, s)), y).backward()
            passes += 1
        opt.step()
    fdt = (time.perf_counter() - t0) / args.train_steps
    fcpu = (time.process_time() - c0) / args.train_steps
    k = passes // args.train_steps
    print(f"train: {fdt:.2f} s/step ({fcpu:.2f} s CPU), fair sampling ({k} sub-networks per step): "
          f"{fdt / k:.2f} s per sub-network pass, {fdt / k / dt:.2f}x uniform's")

    calib = [torch.randn(args.calib_batch_size, 3, r, r) for _ in range(args.calib_batches)]
    scorer = SubnetScorer(sn, calib, torch.randn(args.val_images, 3, r, r), torch.randint(0, 10, (args.val_images,)))
    archs = [subnet_arch(sp, sp.sample(rng)) for _ in range(args.nets)]
    t0, c0 = time.perf_counter(), time.process_time()
    for a in archs:
        scorer.score(a)
    one = (time.perf_counter() - t0) / len(archs)
    one_cpu = (time.process_time() - c0) / len(archs)
    t0, c0 = time.perf_counter(), time.process_time()
    scorer.score_many(archs, progress=False)
    many = (time.perf_counter() - t0) / len(archs)
    many_cpu = (time.process_time() - c0) / len(archs)
    imgs = args.val_images + args.calib_batches * args.calib_batch_size
    print(f"score one sub-network ({args.calib_batches}x{args.calib_batch_size} calibration + {args.val_images} "
          f"validation images): {one:.2f} s each ({one_cpu:.2f} s CPU), one at a time (baseline)")
    print(f"score_many over {len(archs)} random sub-networks (shared prefixes): {many:.2f} s each ({many_cpu:.2f} s CPU), "
          f"{one / many:.2f}x the baseline ({imgs} images per network)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

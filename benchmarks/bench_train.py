"""Training throughput (images/s) of one SGD step for MobileNetV3-Small at 32×32, batch 128.

Compares memory formats (channels-first vs channels-last) and thread counts side
by side, with and without ``torch.use_deterministic_algorithms``, on the CPU
(and on CUDA with bfloat16 autocast when a GPU is present). The network is the
one the ``train`` evaluator trains at 32×32: V3-Small with the small-input
adaptation (stem and first stride-2 block at stride 1).

    python benchmarks/bench_train.py [--arch mobilenet_v3_small] [--steps 10] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import time


def step_rate(net, batch: int, steps: int, threads: int, channels_last: bool, deterministic: bool, device: str = "cpu", amp: bool = False) -> float:
    import torch
    import torch.nn.functional as F

    from mnas.model import build

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build(net, 10).to(device).to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 3, net.resolution, net.resolution, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)

    def one() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(x).float(), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):  # warm-up
        one()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="mobilenet_v3_small")
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    args = ap.parse_args()

    import torch

    from mnas.accuracy.train import adapt_small_input
    from mnas.resolve import load_arch

    net = adapt_small_input(load_arch(args.arch, args.resolution))
    print(f"{args.arch} @ {args.resolution}×{args.resolution} (trained as: stem s{net.stem.stride}, final map {net.final_size}×{net.final_size}), batch {args.batch}, {args.steps} steps")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    rows = []
    for threads in sorted(set(args.threads)):
        for cl in (False, True):
            for det in (True, False):
                r = step_rate(net, args.batch, args.steps, threads, cl, det)
                rows.append((f"cpu threads={threads}", "channels_last" if cl else "channels_first", det, r))
    if torch.cuda.is_available():
        for cl in (False, True):
            for amp in (False, True):
                r = step_rate(net, args.batch, args.steps * 5, 1, cl, False, "cuda", amp)
                rows.append((f"cuda {'bf16' if amp else 'fp32'}", "channels_last" if cl else "channels_first", False, r))
    base = rows[0][3]
    print(f"{'device':<18} {'memory format':<15} {'determ.':<8} {'images/s':>9} {'vs first':>9}")
    for dev, fmt, det, r in rows:
        print(f"{dev:<18} {fmt:<15} {str(det):<8} {r:>9.1f} {r / base:>8.2f}×")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

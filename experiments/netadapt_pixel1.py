"""NetAdapt on the modelled Pixel-1: MobileNetV3-Large shrunk to 15 % below its predicted latency.

The README example. Proxy accuracy: CIFAR-10 (the shared JPEG copy, a 10,000-image
training subset and a 500-image validation split held out from train) at
32×32; latency: ``latency_tables/pixel1.csv`` at 224×224.

The shipped ``pixel1`` table lists the ops of the zoo networks and search spaces;
NetAdapt's proposals have widths no table lists (e.g. 112 expanded channels), which
the predictor prices with the cost model stored in the table's header
(``mnas.latency.opmodel``), the same model that produced the listed entries.

    python experiments/netadapt_pixel1.py --out runs/netadapt-v3l-pixel1 --workers 2
    python experiments/netadapt_pixel1.py --out runs/netadapt-v3l-pixel1 --resume   # after a kill

Writes the path table and plot to ``experiments/results/netadapt_pixel1_path.csv``
and ``experiments/results/netadapt_pixel1.png``, and prints the wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments"))

from mnas import zoo  # noqa: E402
from mnas.latency import get_predictor  # noqa: E402

RESULTS = REPO / "experiments" / "results"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="mobilenet_v3_large")
    ap.add_argument("--out", default="runs/netadapt-v3l-pixel1")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reduction", type=float, default=0.15, help="target = (1 - reduction) x seed latency")
    ap.add_argument("--pretrain-steps", type=int, default=800)
    ap.add_argument("--finetune-steps", type=int, default=10)
    ap.add_argument("--final-steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--train-size", type=int, default=10000)
    ap.add_argument("--val-size", type=int, default=500)
    ap.add_argument("--dataset", default="cifar10-folder")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from mnas.netadapt import NetAdapt, NetAdaptConfig
    from mnas.netadapt.report import path_table, plot_path

    pred = get_predictor("pixel1")
    seed = zoo.get(args.arch)
    seed_ms = pred.predict(seed)
    t0 = time.perf_counter()
    if args.resume:
        run = NetAdapt.open(args.out, predictor=pred)
    else:
        cfg = NetAdaptConfig(arch=str(seed), device="pixel1", target_ms=round((1 - args.reduction) * seed_ms, 2),
                             dataset=args.dataset, image_size=32, budget="default",
                             pretrain_steps=args.pretrain_steps, finetune_steps=args.finetune_steps,
                             final_steps=args.final_steps, batch_size=args.batch_size, train_size=args.train_size,
                             val_size=args.val_size)
        run = NetAdapt.create(args.out, cfg, predictor=pred)
    summary = run.run("local", args.workers)
    wall = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    table = path_table(args.out)
    table.to_csv(RESULTS / "netadapt_pixel1_path.csv", index=False)
    plot_path(args.out, RESULTS / "netadapt_pixel1.png")
    summary["wall_s_this_call"] = wall
    summary["ops_priced_by_model"] = pred.modelled_ops
    (RESULTS / "netadapt_pixel1_summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    cols = ["step", "kind", "layers", "channels_before", "channels_after", "latency_ms", "top1", "proposals", "cost_s"]
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print(json.dumps({k: v for k, v in summary.items() if k != "groups"}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

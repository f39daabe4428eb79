"""`mnas supernet train`: train a search space's weight-sharing supernet once (cached, resumable)."""

from __future__ import annotations

from mnas.cli.common import add_json_flag, print_json


def register(sub) -> None:
    p = sub.add_parser("supernet", help="train a weight-sharing supernet over a search space")
    ssub = p.add_subparsers(dest="supernet_command", metavar="ACTION", parser_class=type(p))
    pt = ssub.add_parser("train", help="train (or resume, or find in the cache) the supernet of SPACE on a dataset")
    pt.add_argument("--space", required=True, help="search space name (search_spaces/) or YAML path")
    pt.add_argument("--dataset", default="cifar10-folder",
                    help="cifar10 | cifar10-folder | digits | imagenet-folder (default cifar10-folder)")
    pt.add_argument("--data-dir", default=None, help="dataset location (default: the dataset's own default)")
    g = pt.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=float, default=None, help="passes over the training split (sets --steps)")
    g.add_argument("--steps", type=int, default=None, help="optimizer steps (default 2000)")
    pt.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    pt.add_argument("--sampling", choices=("uniform", "sandwich"), default="uniform",
                    help="per step: one random sub-network, or largest + smallest + random (default uniform)")
    pt.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate, cosine decay (default 0.05)")
    pt.add_argument("--val-size", type=int, default=2000, help="training images held out for evaluation (default 2000)")
    pt.add_argument("--train-size", type=int, default=None, help="train on a stratified subset of this many images")
    pt.add_argument("--low-res", type=int, default=0, help="train at this input size (0: the dataset's own)")
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    pt.add_argument("--out", default=None, help="output file (default ~/.cache/mnas/supernets/<hash>.pt)")
    pt.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_json_flag(pt)
    pt.set_defaults(func=cmd_train)
    p.set_defaults(func=lambda a: p.print_help())


def cmd_train(args) -> int:
    import math
    import time

    import torch

    from mnas.accuracy.supernet import ensure_trained, load_data
    from mnas.accuracy.supernet_train import SupernetConfig
    from mnas.errors import MnasError
    from mnas.space import load_space

    if args.threads:
        torch.set_num_threads(args.threads)
    space = load_space(args.space)
    steps = args.steps or 2000
    if args.epochs is not None:
        if args.epochs <= 0:
            raise MnasError(f"--epochs must be positive, got {args.epochs}")
        _, tr, _ = load_data(args.dataset, args.data_dir, args.val_size, args.seed, args.train_size)
        steps = max(1, math.ceil(args.epochs * len(tr) / args.batch))
    if args.low_res < 0:
        raise MnasError(f"--low-res must be >= 0, got {args.low_res}")
    cfg = SupernetConfig(steps=steps, batch=args.batch, sampling=args.sampling, lr=args.lr, val_size=args.val_size,
                         train_size=args.train_size, low_res=args.low_res,
                         low_res_fraction=1.0 if args.low_res else 0.0, seed=args.seed)
    t0 = time.perf_counter()
    path = ensure_trained(space, args.dataset, args.data_dir, cfg, args.out, progress=not args.no_progress)
    record = torch.load(path, weights_only=False)
    out = {"supernet": str(path), "space": space.name, "dataset": args.dataset, "steps": cfg.steps,
           "sampling": cfg.sampling, "train_seconds": record.get("train_seconds"),
           "final_loss": (sum(record["losses"][-50:]) / len(record["losses"][-50:])) if record.get("losses") else None,
           "seconds_this_call": round(time.perf_counter() - t0, 1)}
    if args.json:
        print_json(out)
    else:
        for k, v in out.items():
            print(f"{k:<18} {v}")
        print(f"use it with: mnas eval ARCH --space {space.name} --evaluator supernet (checkpoint {path})")
    return 0

"""`mnas train ARCH`: train a network from scratch with a named recipe (one process, `--nproc K`, or torchrun)."""

from __future__ import annotations

from mnas.cli.common import add_json_flag, print_json
from mnas.errors import MnasError

# flag -> recipe field (the shorthands; `--set FIELD=VALUE` reaches every field)
SHORTHANDS = ("dataset", "data_dir", "epochs", "steps", "batch_size", "lr", "subset", "holdout", "resolution",
              "seed", "threads", "device", "accum")


def register(sub) -> None:
    from mnas.train.recipes import DATASETS, names

    p = sub.add_parser("train", help="train a network from scratch with a paper's recipe (torch.distributed, resumable)",
                       description="Train ARCH from scratch into a run folder (config.yaml, metrics.csv/.parquet, best.pt, "
                       "last.pt, checkpoint.pt, curve.png, summary.json). Several processes: `--nproc K` or "
                       "`torchrun --nproc-per-node K -m mnas train ...`.")
    p.add_argument("arch", metavar="ARCH", nargs="?", default=None,
                   help="reference name, text form, YAML/JSON file (e.g. a search's top/1.yaml), or with --space its encoding")
    p.add_argument("--recipe", "-r", default="quick", help=f"{', '.join(names())}, or a YAML file of recipe fields (default quick)")
    p.add_argument("--out", default=None, help="run folder (default runs/train/<recipe>-<arch>)")
    p.add_argument("--resume", metavar="DIR", default=None, help="continue the run in DIR from its last checkpoint")
    p.add_argument("--space", default=None, help="search space whose compact encoding ARCH is")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="imagenet-folder/folder stream images; the others are in-memory")
    p.add_argument("--data-dir", default=None, help="image folder (train/<class>/*, val/<class>/*) or its .tar/.tar.gz")
    p.add_argument("--epochs", type=float, default=None)
    p.add_argument("--steps", type=int, default=None, help="optimizer steps in all (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=None, help="global batch (all processes together)")
    p.add_argument("--accum", type=int, default=None, help="micro-batches per optimizer step")
    p.add_argument("--lr", type=float, default=None, help="learning rate at the recipe's lr_batch (scaled linearly)")
    p.add_argument("--subset", type=int, default=None, help="train on a seeded class-balanced subset of N images")
    p.add_argument("--holdout", type=int, default=None, help="validate on N training images held out (class-balanced)")
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--workers", dest="data_workers", type=int, default=None, help="DataLoader workers per process (0: decode in the training process)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads per process")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    p.add_argument("--set", "-s", action="append", default=[], metavar="FIELD=VALUE",
                   help="any recipe field (repeatable), e.g. --set ema_decay=0.999 --set augment=none")
    p.add_argument("--nproc", type=int, default=1, help="train on K processes (torch.distributed.run on this machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list-recipes", action="store_true", help="print the recipes and exit")
    add_json_flag(p)
    p.set_defaults(func=cmd_train)


def overrides(args) -> dict:
    from mnas.run import parse_options

    out = {k: getattr(args, k) for k in SHORTHANDS if getattr(args, k, None) is not None}
    if args.data_workers is not None:
        out["workers"] = args.data_workers
    out.update(parse_options(args.set, "--set"))
    return out


def cmd_train(args) -> int:
    import sys
    from pathlib import Path

    from mnas.train import recipes

    if args.list_recipes:
        rows = {n: recipes.recipe(n).to_dict() for n in recipes.names()}
        if args.json:
            print_json(rows)
        else:
            for n, r in rows.items():
                print(f"{n:14s} {r['description']}")
        return 0
    if args.nproc < 1:
        raise MnasError(f"--nproc must be >= 1, got {args.nproc}")
    from mnas.train.loop import dist_env
    from mnas.train.run import load_run, save_run

    d = dist_env()
    ov = overrides(args)
    if args.resume is not None:
        if args.arch is not None:
            raise MnasError("give ARCH or --resume DIR, not both (a resumed run trains the network saved in DIR)")
        out = Path(args.resume)
        net, rc, _ = load_run(out, ov)
    else:
        if args.arch is None:
            raise MnasError("give the architecture to train (a reference name such as mobilenet_v3_small, a file, or a "
                            "text form), or --resume DIR")
        from mnas.resolve import load_arch

        space = None
        if args.space is not None:
            from mnas.space import load_space

            space = load_space(args.space)
        net = load_arch(args.arch, space=space)
        rc = recipes.recipe(args.recipe, **ov)
        if rc.dataset in ("imagenet-folder", "folder"):  # before the run folder is made
            if rc.data_dir is None:
                raise MnasError(f"dataset {rc.dataset} needs --data-dir: a folder (or .tar/.tar.gz) with "
                                "train/<class>/* and val/<class>/* images")
            if not Path(rc.data_dir).exists():
                raise MnasError(f"--data-dir {rc.data_dir} does not exist: give a folder (or .tar/.tar.gz) with "
                                "train/<class>/* and val/<class>/* images")
        slug = Path(args.arch).stem if Path(args.arch).suffix else args.arch
        slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in slug)[:60]
        out = Path(args.out) if args.out else Path("runs") / "train" / f"{Path(args.recipe).stem}-{slug}"
        if d.main:
            if d.world > 1 and (out / "config.yaml").is_file():  # torchrun again after a failure: same run, resumed
                saved_net, saved_rc, _ = load_run(out)
                if saved_rc != rc or str(saved_net) != str(net):
                    raise MnasError(f"{out} holds a training run with other settings; continue it with "
                                    f"`--resume {out}` or choose another --out")
            else:
                save_run(out, net, args.recipe, rc, max(args.nproc, d.world))
    if args.nproc > 1 and d.world == 1:
        return _launch(args, out)
    lock = None
    if d.main:
        from mnas.io import claim_run_dir

        lock = claim_run_dir(out, "training run", create=False)
    from mnas.io import GracefulStop
    from mnas.train.loop import train

    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
    with GracefulStop() as stop:
        summary = train(net, rc, out, progress=not args.no_progress, log=log, stop=stop)
    if lock is not None:
        lock.release()
    if d.main:
        if args.json:
            print_json({"run_dir": str(out), **summary})
        else:
            print(f"{out}: top-1 {summary['top1']:.2f} %  top-5 {summary['top5']:.2f} % (best epoch "
                  f"{summary['best_epoch']:.2f}; final {summary['final_top1']:.2f} %)  "
                  f"{summary['params'] / 1e6:.2f} M params  {summary['madds'] / 1e6:.1f} M multiply-adds")
    return 0


def _launch(args, out) -> int:
    """``--nproc K``: the run folder is written; K processes of ``torch.distributed.run`` resume it."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
           "-m", "mnas", "train", "--resume", str(out)]
    for flag, k in (("--workers", "data_workers"), ("--threads", "threads"), ("--device", "device")):
        if getattr(args, k) is not None:
            cmd += [flag, str(getattr(args, k))]
    if args.no_progress:
        cmd.append("--no-progress")
    stdout = subprocess.DEVNULL if args.json else None
    proc = subprocess.Popen(cmd, stdout=stdout)
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.wait()  # the terminal's Ctrl-C reached the workers too: they save and stop
        raise
    if rc != 0:
        raise MnasError(f"{args.nproc} training processes ended with exit code {rc}; what was checkpointed is kept: "
                        f"continue with `mnas train --resume {out}`")
    summary = json.loads((out / "summary.json").read_text())
    if args.json:
        print_json({"run_dir": str(out), **summary})
    return 0  # without --json, rank 0 printed the epochs and the summary line

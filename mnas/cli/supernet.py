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
    pt.add_argument("--sampling", choices=("uniform", "sandwich", "fair"), default="uniform",
                    help="per step: one random sub-network; largest + smallest + random; or fair: 3 sub-networks using every option of every layer once (default uniform)")
    pt.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate, cosine decay (default 0.05)")
    pt.add_argument("--val-size", type=int, default=None,
                    help="training images held out for evaluation (default 2000; 360 for digits)")
    pt.add_argument("--train-size", type=int, default=None, help="train on a stratified subset of this many images")
    pt.add_argument("--low-res", type=int, default=0, help="train at this input size (0: the dataset's own)")
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--init", default="", metavar="FILE",
                    help="start from this finished supernet's weights (a second cosine cycle from --lr, fresh optimizer)")
    pt.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps (default 50)")
    pt.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    pt.add_argument("--out", default=None, help="output file (default ~/.cache/mnas/supernets/<hash>.pt)")
    pt.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_json_flag(pt)
    pt.set_defaults(func=cmd_train)
    p.set_defaults(func=lambda a: p.print_help())


# validation images held out by default: 2000, but a fifth of the 1,797 digits (a smoke dataset)
DEFAULT_VAL_SIZE = {"digits": 360}


def _settings(space, dataset: str, cfg) -> dict:
    """What a supernet file was trained with: checked before a file or checkpoint at --out is reused."""
    import dataclasses

    from mnas.accuracy.supernet_train import space_fingerprint

    return {"space": getattr(space, "name", "?"), "space_fingerprint": space_fingerprint(space), "dataset": dataset,
            "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "checkpoint_every"}}


def _settings_path(out):
    return out.with_name(out.name + ".settings.json")


def _differences(saved: dict, wanted: dict) -> list[str]:
    diff = [f"{k} ({saved.get(k)!r} there, {wanted[k]!r} now)" for k in ("space", "dataset") if saved.get(k) != wanted[k]]
    if "space_fingerprint" in saved and saved["space_fingerprint"] != wanted["space_fingerprint"] \
            and not any(d.startswith("space") for d in diff):
        diff.append("space (same name, other choices)")
    sc, wc = saved.get("config") or {}, wanted["config"]
    diff += [f"{k} ({sc[k]!r} there, {wc[k]!r} now)" for k in wc if k in sc and sc[k] != wc[k]]
    return diff


def _check_existing(out, wanted: dict) -> None:
    """An --out that already holds a supernet (or its checkpoint) must have been trained with these settings."""
    import json

    import torch

    from mnas.errors import MnasError
    from mnas.io import read_text_file

    side = _settings_path(out)
    fix = f"choose another --out, or delete {out} to train it anew"
    if out.is_file():
        from mnas.accuracy.supernet_train import file_format

        fmt = file_format(out)
        if fmt not in ("torch", "legacy torch"):
            raise MnasError(f"--out {out} exists and is not a supernet file (it holds {fmt}); {fix}")
        try:
            record = torch.load(out, weights_only=True, map_location="cpu")
        except Exception as e:  # a torch file of other objects, or a damaged one
            raise MnasError(f"--out {out} exists and is not a supernet file ({type(e).__name__}); {fix}") from None
        if not isinstance(record, dict) or "model" not in record or "config" not in record:
            raise MnasError(f"--out {out} exists and is not a finished mnas supernet; {fix}")
        meta = record.get("meta") or {}
        saved = {"space": meta.get("space"), "dataset": meta.get("dataset"), "config": record["config"]}
        if side.is_file():
            saved["space_fingerprint"] = json.loads(read_text_file(side, "supernet settings JSON")).get(
                "space_fingerprint")
        diff = _differences(saved, wanted)
        if diff:
            raise MnasError(f"--out {out} holds a supernet trained with other settings: {'; '.join(diff)}; {fix}")
        return
    ckpt = out.with_suffix(".ckpt")
    if ckpt.is_file():
        if not side.is_file():
            raise MnasError(f"{ckpt} is a checkpoint of unknown settings (no {side.name}); resuming it could mix two "
                            f"trainings: delete it, or choose another --out")
        try:
            saved = json.loads(read_text_file(side, "supernet settings JSON"))
        except ValueError:
            raise MnasError(f"{side} is damaged: delete it and {ckpt}, or choose another --out") from None
        diff = _differences(saved, wanted)
        if diff:
            raise MnasError(f"{ckpt} is an unfinished training with other settings: {'; '.join(diff)}; resume it with "
                            f"the same flags, or {fix}")


def _saved_step(ckpt) -> int | None:
    import torch

    try:
        return int(torch.load(ckpt, weights_only=True, map_location="cpu")["state"]["step"])
    except Exception:
        return None


def cmd_train(args) -> int:
    import json
    import math
    import time
    from pathlib import Path

    import torch

    from mnas.accuracy.supernet import ensure_trained, load_data
    from mnas.accuracy.supernet_train import SupernetConfig, default_path
    from mnas.errors import MnasError
    from mnas.io import Interrupted, atomic_write_text
    from mnas.space import load_space

    if args.threads:
        torch.set_num_threads(args.threads)
    space = load_space(args.space)
    val_size = args.val_size if args.val_size is not None else DEFAULT_VAL_SIZE.get(args.dataset, 2000)
    steps = 2000 if args.steps is None else args.steps
    if args.epochs is not None:
        _, tr, _ = load_data(args.dataset, args.data_dir, val_size, args.seed, args.train_size)
        steps = max(1, math.ceil(args.epochs * len(tr) / args.batch))
    if args.warmup_steps is None:
        args.warmup_steps = 50  # the default (a shorter training than that just never reaches the peak rate)
    elif args.warmup_steps and args.warmup_steps >= steps:
        given = f"--steps {steps}" if args.epochs is None else f"{steps} steps (--epochs {args.epochs:g})"
        raise MnasError(f"--warmup-steps {args.warmup_steps} must be less than {given}: the warm-up is part of the "
                        "training; lower --warmup-steps (0 = none) or train longer")
    cfg = SupernetConfig(steps=steps, batch=args.batch, sampling=args.sampling, lr=args.lr, val_size=val_size,
                         train_size=args.train_size, low_res=args.low_res,
                         low_res_fraction=1.0 if args.low_res else 0.0, seed=args.seed,
                         init=str(Path(args.init).expanduser()) if args.init else "", warmup_steps=args.warmup_steps)
    wanted = _settings(space, args.dataset, cfg)
    out = Path(args.out) if args.out else None
    if out is not None:
        _check_existing(out, wanted)
    t0 = time.perf_counter()
    if out is None:  # the cache file named by the settings' hash: where a resumed training's checkpoint is
        ds, _, _ = load_data(args.dataset, args.data_dir, val_size, args.seed, args.train_size)
        target = default_path(space, args.dataset, cfg, ds.num_classes)
    else:
        target = out
    cached = target.is_file()
    side = _settings_path(out) if out is not None else None
    new_side = side is not None and not cached and not side.exists()
    if side is not None and not cached:
        atomic_write_text(side, json.dumps(wanted, indent=2) + "\n")
    try:
        path = ensure_trained(space, args.dataset, args.data_dir, cfg, args.out, progress=not args.no_progress)
    except MnasError:
        # refused before any training was saved (a wrong --dataset, a missing --data-dir): leave nothing behind
        if new_side and side is not None and not out.exists() and not out.with_suffix(".ckpt").exists():
            side.unlink(missing_ok=True)
        raise
    except KeyboardInterrupt as e:
        ckpt = Path(target).with_suffix(".ckpt")
        step = _saved_step(ckpt) if ckpt.is_file() else None
        what = str(e) if isinstance(e, Interrupted) else "interrupted by SIGINT"
        if step is None:
            raise Interrupted(f"{what}: nothing saved (no checkpoint yet; one is written every "
                              f"{cfg.checkpoint_every} steps)") from None
        raise Interrupted(f"{what}: training saved at step {step} of {cfg.steps} in {ckpt}; run the same command "
                          "again to continue") from None
    from mnas.accuracy.supernet_train import read_checkpoint

    record = read_checkpoint(path)
    out_d = {"supernet": str(path), "space": space.name, "dataset": args.dataset, "steps": cfg.steps,
             "sampling": cfg.sampling, "status": "found (already trained with these settings)" if cached else "trained",
             "train_seconds": record.get("train_seconds"),
             "final_loss": (sum(record["losses"][-50:]) / len(record["losses"][-50:])) if record.get("losses") else None,
             "seconds_this_call": round(time.perf_counter() - t0, 1)}
    if args.json:
        print_json(out_d)
    else:
        for k, v in out_d.items():
            print(f"{k:<18} {v}")
        print(f"use it with: mnas eval ARCH --space {space.name} --evaluator supernet (checkpoint {path})")
    return 0

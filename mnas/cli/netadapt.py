"""`mnas netadapt`: shrink a network layer by layer until its predicted latency meets a target."""

from __future__ import annotations

from mnas.cli.common import add_json_flag, print_json
from mnas.registries import devices, evaluators, listing

# flags that define a run (saved in its config.yaml); --resume refuses them
# the command line's defaults where they differ from NetAdaptConfig's (the library's default data is the
# offline `digits`; a user's run trains on CIFAR-10)
CLI_DEFAULTS = {"dataset": "cifar10-folder"}
RUN_FLAGS = ("arch", "device", "target_ms", "evaluator", "eval_option", "dataset", "data_dir", "image_size", "budget",
             "select", "delta", "pretrain_steps", "finetune_steps", "final_steps", "batch_size", "train_size",
             "val_size", "lr", "finetune_lr", "seed")


def register(sub) -> None:
    p = sub.add_parser(
        "netadapt",
        help="shrink a network layer by layer to a latency target (NetAdapt, as in MobileNetV3)",
        description="Each step proposes shrinking one expansion layer or one residual group's bottleneck by the fewest "
                    "channels (multiples of 8) that save δ of predicted latency, fine-tunes every proposal from the "
                    "kept (largest-L2-norm) filters, and keeps the best by ΔAcc/|ΔLatency|; until the target is met. "
                    "Every step is saved in the run folder; --resume continues a killed run.",
    )
    p.add_argument("--arch", metavar="NAME|FILE", help="seed network: a reference name, a file or a text form")
    p.add_argument("--device", help=f"latency table: {listing(devices())}, or a table file")
    p.add_argument("--target-ms", type=float, help="stop when the predicted latency is at or below this (ms)")
    p.add_argument("--evaluator", choices=("finetune", *evaluators()),
                   help="finetune (default): inherit weights and fine-tune each proposal; or score proposals with an "
                        "mnas evaluator (`mnas eval`), without weights")
    p.add_argument("--eval-option", action="append", metavar="KEY=VALUE",
                   help="option for a non-finetune evaluator (repeatable; e.g. space=v3_large)")
    p.add_argument("--dataset", help="proxy data (default cifar10-folder; digits for smoke runs)")
    p.add_argument("--data-dir", help="where the dataset lives (see `mnas eval --help`)")
    p.add_argument("--image-size", type=int, help="training image size (default 32); latency stays at the arch's resolution")
    p.add_argument("--budget", choices=("smoke", "default", "paper"),
                   help="fine-tuning steps: smoke (10 per proposal), default (300), paper (10,000, as MobileNetV3)")
    p.add_argument("--select", choices=("ratio", "accuracy"),
                   help="ratio: max ΔAcc/|ΔLatency| (MobileNetV3, default); accuracy: max accuracy (NetAdapt)")
    p.add_argument("--delta", type=float, help="δ, the latency each step must save, as a fraction of the seed's (0.01)")
    for name, what in (("pretrain-steps", "training steps of the seed before step 1"),
                       ("finetune-steps", "fine-tuning steps per proposal (the paper's T)"),
                       ("final-steps", "fine-tuning steps of the final network (0 = none)"),
                       ("batch-size", "batch size"), ("train-size", "training subset size (images)"),
                       ("val-size", "validation split held out from train (images)")):
        p.add_argument(f"--{name}", type=int, help=f"{what}; default from --budget")
    p.add_argument("--lr", type=float, help="learning rate of pretraining (cosine), default 0.05")
    p.add_argument("--finetune-lr", type=float, help="learning rate of proposal/final fine-tuning, default 0.01")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="run a step's proposals in a local process pool (default) or as Ray tasks")
    p.add_argument("--workers", type=int, default=1, help="parallel proposals (processes or Ray CPUs), default 1")
    p.add_argument("--out", metavar="RUN", help="new run folder (default runs/netadapt-ARCH-DEVICE-TARGETms)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN from its last finished step")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_json_flag(p)
    p.set_defaults(func=cmd_netadapt)


def _options(items) -> dict:
    from mnas.run import parse_options

    return parse_options(items, "--eval-option")


def make_config(args):
    """The run's :class:`~mnas.netadapt.NetAdaptConfig` from the flags."""
    from pathlib import Path

    from mnas.errors import MnasError
    from mnas.netadapt import NetAdaptConfig
    from mnas.resolve import load_arch

    missing = [f"--{n.replace('_', '-')}" for n in ("arch", "device", "target_ms") if getattr(args, n) is None]
    if missing:
        raise MnasError(f"netadapt needs {', '.join(missing)} (or --resume RUN to continue a run)")
    net = load_arch(args.arch)
    given = {k: getattr(args, k) for k in ("evaluator", "dataset", "data_dir", "image_size", "budget", "select",
                                           "delta", "pretrain_steps", "finetune_steps", "final_steps", "batch_size",
                                           "train_size", "val_size", "lr", "finetune_lr", "seed")
             if getattr(args, k) is not None}
    for k, v in CLI_DEFAULTS.items():
        given.setdefault(k, v)
    device = args.device if not Path(args.device).is_file() else str(Path(args.device).resolve())
    options = _options(args.eval_option)
    evaluator = args.evaluator or "finetune"
    if evaluator == "finetune":
        if options:
            raise MnasError("--eval-option sets an option of a scoring --evaluator (`mnas eval`); the default, "
                            "finetune, takes none (its settings are --finetune-steps, --finetune-lr, --batch-size, ...): "
                            "add --evaluator NAME or drop --eval-option")
    else:
        from mnas.cli.common import check_options, evaluator_option_spec

        check_options(f"the {evaluator} evaluator", options, evaluator_option_spec(evaluator),
                      lambda k: f"--eval-option {k}={options[k]!r}")
        unused = [f"--{k.replace('_', '-')}" for k in ("pretrain_steps", "finetune_steps", "final_steps", "finetune_lr",
                                                       "lr", "image_size") if getattr(args, k) is not None]
        if unused:
            raise MnasError(f"{', '.join(unused)} set NetAdapt's fine-tuning, which --evaluator {evaluator} replaces "
                            f"(it scores proposals without training them): drop {', '.join(unused)}, or use "
                            "--evaluator finetune")
    return NetAdaptConfig(arch=str(net), device=device, target_ms=args.target_ms,
                          evaluator_options=options, **given)


def cmd_netadapt(args) -> int:
    import re
    from pathlib import Path

    from mnas.errors import MnasError
    from mnas.netadapt import NetAdapt
    from mnas.netadapt.report import path_table

    if args.workers < 1:
        raise MnasError(f"--workers must be >= 1, got {args.workers}")
    progress = not (args.no_progress or args.json)
    if args.resume:
        # --data-dir says where the data lives, not what it is: a resume may correct it (issue 15)
        given = [f"--{n.replace('_', '-')}" for n in RUN_FLAGS if getattr(args, n) is not None and n != "data_dir"]
        if given or args.out:
            extra = given + (["--out"] if args.out else [])
            raise MnasError(f"--resume continues {args.resume} with its saved settings (config.yaml): "
                            f"drop {', '.join(extra)}")
        run = NetAdapt.open(args.resume, progress=progress)
        if args.data_dir is not None and args.data_dir != run.config.data_dir:
            import yaml

            from mnas.io import atomic_write_text

            run.config.data_dir = args.data_dir
            atomic_write_text(Path(args.resume) / "config.yaml", yaml.safe_dump(run.config.to_dict(), sort_keys=False))
    else:
        config = make_config(args)
        out = args.out
        if out is None:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(args.arch).stem if Path(args.arch).is_file() else args.arch)[:40]
            dev = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(args.device).stem)
            out = f"runs/netadapt-{name}-{dev}-{args.target_ms:g}ms"
        run = NetAdapt.create(out, config, progress=progress)
    try:
        summary = run.run(args.backend, args.workers)
    except KeyboardInterrupt as e:  # one line that says how to go on (issue 15)
        from mnas.io import Interrupted, signal_name

        steps = len(list(run.dir.glob("step_*.yaml")))
        saved = f"{steps} finished step(s) are saved in {run.dir}" if steps else f"no step had finished ({run.dir} " \
            "holds its settings)"
        raise Interrupted(f"interrupted by {signal_name(getattr(e, 'signum', None) or 2)}: {saved}; continue with "
                          f"`mnas netadapt --resume {run.dir}`", getattr(e, "signum", None)) from None
    table = path_table(run.dir)
    if args.json:
        rows = table.drop(columns=["arch"]).astype(object)
        print_json({**summary, "path": rows.where(rows.notna(), None).to_dict(orient="records")})
        return 0
    print(f"NetAdapt on {summary['device']}: {summary['seed_latency_ms']:.2f} ms -> {summary['latency_ms']:.2f} ms "
          f"(target {summary['target_ms']:g} ms, δ = {summary['delta_ms']:.3f} ms) in {summary['steps']} steps, "
          f"{summary['wall_s']:.0f} s")
    cols = ["step", "kind", "layers", "channels_before", "channels_after", "latency_ms", "top1", "proposals"]
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print(f"final network   {summary['arch']}")
    print(f"run folder      {run.dir}  (plot: mnas plot netadapt {run.dir})")
    return 0

"""`mnas replay v3-large|v3-small`: rerun how MobileNetV3 was found, phase by phase, and compare."""

from __future__ import annotations

from mnas.cli.common import add_json_flag, print_json
from mnas.registries import devices, evaluators, listing, strategies


def register(sub) -> None:
    p = sub.add_parser(
        "replay",
        help="replay the MobileNetV3 discovery (search, NetAdapt, manual redesign) and compare with the paper",
        description="v3-large: MnasNet-A1 -> NetAdapt to V3-Large's latency -> the manual redesign steps. "
                    "v3-small: block-wise search (w = -0.15, 15.8 ms) -> NetAdapt -> the redesign steps. "
                    "Writes report.md, replay.png and the data of every phase to the run folder; running the "
                    "same command again resumes a killed replay (finished phases are skipped).",
    )
    p.add_argument("replay", choices=("v3-large", "v3-small", "mnasnet"),
                   help="which network's discovery to replay (mnasnet: MnasNet's search stage on Accel-NASBench, "
                        "mnas/replay/mnasnet.py)")
    p.add_argument("--variant", choices=("mnasnet", "efficientnet"), default=None,
                   help="mnasnet only: 75 ms on pixel1 (MnasNet) or 400 M multiply-adds on madds (EfficientNet-B0)")
    p.add_argument("--budget", choices=("smoke", "default", "paper"), default=None,
                   help="smoke (seconds), default (under a minute on 2 cores: 800 search trials and NetAdapt "
                        "scored by the imagenet estimate), "
                        "paper (real training / fine-tuning, Ray)")
    p.add_argument("--evaluator", choices=evaluators(),
                   help="accuracy signal for search, NetAdapt and the report (default: the budget's)")
    p.add_argument("--eval-option", action="append", metavar="KEY=VALUE",
                   help="option for the evaluator (repeatable; see `mnas eval --help`)")
    p.add_argument("--dataset", help="proxy data for training evaluators")
    p.add_argument("--data-dir", help="where the dataset lives")
    p.add_argument("--device", default=None, help=f"latency table: {listing(devices())}, or a table file (default pixel1; "
                   "madds for mnasnet --variant efficientnet)")
    p.add_argument("--target-ms", type=float,
                   help="NetAdapt's target (default: the published V3's predicted latency on --device)")
    p.add_argument("--trials", type=int, help="search trials (v3-small; default from --budget)")
    p.add_argument("--strategy", choices=strategies(), help="search strategy (v3-small; default from --budget: rl = MnasNet's controller)")
    p.add_argument("--delta", type=float, help="NetAdapt's δ as a fraction of the seed's latency (default from --budget)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", metavar="RUN", help="run folder (default runs/replay-NAME-BUDGET); an existing one resumes")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    add_json_flag(p)
    p.set_defaults(func=cmd_replay)


def parse_eval_options(args) -> dict:
    from mnas.run import parse_options

    return parse_options(args.eval_option, "--eval-option")


def make_config(args):
    from pathlib import Path

    from mnas.run import parse_options
    from mnas.replay import ReplayConfig

    args.device = args.device or "pixel1"
    device = args.device if not Path(args.device).is_file() else str(Path(args.device).resolve())
    given = {k: getattr(args, k) for k in ("evaluator", "target_ms", "trials", "strategy", "delta", "dataset", "data_dir")
             if getattr(args, k) is not None}
    return ReplayConfig(replay=args.replay, budget=args.budget, device=device, seed=args.seed,
                        evaluator_options=parse_options(args.eval_option, "--eval-option"), **given)


# the flags each replay does not read (given one, the command is refused: it would change nothing)
UNUSED: dict[str, tuple[str, ...]] = {
    "v3-large": ("variant", "trials", "strategy"),  # no search phase: MnasNet-A1 is the seed
    "v3-small": ("variant",),
    "mnasnet": ("budget", "eval_option"),  # the search stage alone, scored by the anb surrogate
}


def check_flags(args) -> None:
    from mnas.errors import MnasError

    given = [f"--{k.replace('_', '-')}" for k in UNUSED.get(args.replay, ()) if getattr(args, k, None) not in (None, [])]
    if given:
        raise MnasError(f"replay {args.replay} does not use {', '.join(given)} (see `mnas replay --help`): drop "
                        f"{'it' if len(given) == 1 else 'them'}")


def cmd_replay(args) -> int:
    from mnas.replay import run_replay

    check_flags(args)
    if args.replay == "mnasnet":  # MnasNet's search stage: its own module (H4)
        from mnas.replay.mnasnet import cmd_replay_mnasnet

        args.variant = args.variant or "mnasnet"
        return cmd_replay_mnasnet(args)

    args.budget = args.budget or "default"
    config = make_config(args)
    from mnas.cli.common import check_options, evaluator_option_spec

    options = parse_eval_options(args)
    check_options(f"the {config.evaluator} evaluator", options, evaluator_option_spec(config.evaluator),
                  lambda k: f"--eval-option {k}={options[k]!r}")
    out = args.out or f"runs/replay-{args.replay}-{args.budget}"
    try:
        summary = run_replay(config, out, progress=not (args.no_progress or args.json))
    except KeyboardInterrupt as e:  # one line that says how to go on (issue 15)
        from mnas.io import Interrupted, signal_name

        name = signal_name(getattr(e, "signum", None) or 2)
        raise Interrupted(f"interrupted by {name}: finished phases and trials are saved in {out}; run the same "
                          "command again to continue", getattr(e, "signum", None)) from None
    if args.json:
        print_json(summary)
        return 0
    f, p = summary["found"], summary["published"]
    dev = summary["device"]
    print(f"replay {summary['replay']} ({summary['budget']} budget, {summary['evaluator']} evaluator, {dev})")
    for r in summary["redesign"]:
        if r["applied"]:
            paper = "" if r["paper_ms"] is None else f"   (paper {r['paper_ms']:+g} ms, {r['paper_madds_m']:+g} M)"
            print(f"  {r['step']:<11} {r['delta_ms']:+7.2f} ms {r['delta_madds'] / 1e6:+7.1f} M madds{paper}")
        else:
            print(f"  {r['step']:<11} skipped: {r['skipped_because']}")
    w = max(len("replayed"), len(p["name"]))
    print(f"  {'':<{w}}  {'params':>8}  {'madds':>8}  {'latency':>9}  top-1")
    for name, d in (("replayed", f), (p["name"], p)):
        top1 = "n/a" if d["top1"] is None else f"{d['top1']:.2f} %"
        print(f"  {name:<{w}}  {d['params'] / 1e6:>7.2f}M  {d['madds'] / 1e6:>7.1f}M  {d['latency_ms']:>6.2f} ms  {top1}")
    print(f"  wall time {sum(summary['wall_s'].values()):.0f} s")
    print(f"report: {summary['report']}")
    return 0

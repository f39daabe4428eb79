"""`mnas search`: platform-aware architecture search (plots of its runs: `mnas plot pareto|search`, mnas/cli/plot.py).

    mnas search --target-ms 15                       # V3-Small-like space, pixel1, predictor, v3-small reward
    mnas search --resume runs/20250101-120000        # continue a killed run
    mnas search --config runs/X/config.yaml          # re-run a saved configuration
"""

from __future__ import annotations

import argparse

from mnas.cli.common import add_json_flag, print_json, space_evaluator_help
from mnas.registries import devices, evaluators, listing, spaces, strategies
from mnas.errors import MnasError
from mnas.search.config import SPACE_REWARDS

# flag dest -> SearchConfig field (flags left at None do not override the config file)
_FIELDS = ("target_ms", "space", "layerwise", "device", "evaluator", "dataset", "data_dir", "strategy", "trials",
           "reward", "alpha", "beta", "seed", "out", "storage", "batch", "window", "backend", "address", "gpus_per_trial", "top",
           "screen", "screen_tries")
# data_dir: where the data lives, not what it is; a resume may correct it (issue 15)
_RESUME_OK = {"trials", "backend", "address", "gpus_per_trial", "top", "data_dir"}


def register(sub) -> None:
    p = sub.add_parser(
        "search",
        help="platform-aware architecture search (MnasNet reward, RL/evolution/TPE/NSGA-II/random)",
        description="Search a space for the best network under a latency target; every trial is stored "
        "(resumable), results go to a run folder.",
    )
    p.add_argument("--target-ms", type=float, default=None, help="latency target in ms on --device")
    p.add_argument("--space", default=None, help=f"search space: {listing(spaces())}, or a YAML file (default v3_small)")
    p.add_argument("--layerwise", action="store_true", default=None, help="per-layer choices instead of per-stage")
    p.add_argument("--device", default=None, help=f"latency table: {listing(devices())}, or a table file (default pixel1)")
    p.add_argument("--evaluator", default=None, choices=evaluators(),
                   help=f"accuracy signal (default: the space's own: {space_evaluator_help()})")
    p.add_argument("--evaluator-option", action="append", default=[], metavar="KEY=VALUE",
                   help="evaluator option (repeatable), e.g. epochs=3")
    p.add_argument("--dataset", default=None, help="dataset for the train/supernet evaluators")
    p.add_argument("--data-dir", default=None, help="where the dataset lives")
    p.add_argument("--strategy", default=None, choices=strategies(), help="search strategy (default evolution; tpe with --reward pareto)")
    p.add_argument("--strategy-option", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy option (repeatable), e.g. population_size=50")
    p.add_argument("--trials", type=int, default=None, help="number of completed trials to reach (default 300)")
    p.add_argument("--reward", default=None, help="soft, hard, v3-small, pareto or custom (default v3-small; on "
                   f"{', '.join(SPACE_REWARDS)}: soft, MnasNet's)")
    p.add_argument("--alpha", type=float, default=None, help="reward exponent at or below the target (custom)")
    p.add_argument("--beta", type=float, default=None, help="reward exponent above the target (custom)")
    p.add_argument("--seed", type=int, default=None, help="strategy seed (default 0)")
    p.add_argument("--out", default=None, help="run folder (default runs/<timestamp>)")
    p.add_argument("--resume", default=None, metavar="RUN", help="continue the search in run folder RUN")
    p.add_argument("--config", default=None, metavar="FILE", help="settings from a config.yaml; flags override")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna RDB URL (postgresql://…, mysql://…) or journal:FILE; default: trials.journal in the run "
                        "folder for instant evaluators (predictor, table, anb), trials.db (SQLite, heartbeats) otherwise")
    p.add_argument("--window", type=int, default=None, metavar="N",
                   help="the strategy sees only the newest N trials (default: 500 for tpe, whose cost grows with "
                        "every trial; all for the others)")
    p.add_argument("--batch", type=int, default=None, metavar="K",
                   help="trials asked, measured together and stored per round (journal storage; default: 64 for random, "
                        "the controller's batch_size for rl, 1 for the others: the sequential trials)")
    p.add_argument("--screen", action=argparse.BooleanOptionalAction, default=None,
                   help="price each proposal with the latency model first and measure only those within --target-ms "
                        "(default: on for --reward hard, off otherwise); the trials table's 'screened' column counts "
                        "the proposals rejected")
    p.add_argument("--screen-tries", type=int, default=None, metavar="N",
                   help="proposals per trial before the last one is repaired towards the target (default 100)")
    p.add_argument("--backend", default=None, choices=["local", "ray"], help="run trials here or through Ray Tune")
    p.add_argument("--address", default=None, metavar="HOST:PORT", help="Ray cluster address (with --backend ray)")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="GPUs per Ray trial (default 0)")
    p.add_argument("--top", type=int, default=None, help="how many top architectures to print and save (default 5)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_flag(p)
    p.set_defaults(func=cmd_search)


def _options(pairs: list[str], flag: str) -> dict:
    from mnas.run import parse_options

    return parse_options(pairs, flag)


def config_from_args(args):
    """The :class:`SearchConfig` for these flags (on top of --config / the resumed run's config)."""
    from pathlib import Path

    from mnas.search.config import SearchConfig
    from mnas.search.runner import CONFIG_FILE

    given = {f: getattr(args, f) for f in _FIELDS if getattr(args, f, None) is not None}
    evo, sto = _options(args.evaluator_option, "--evaluator-option"), _options(args.strategy_option, "--strategy-option")
    if args.resume:
        if args.config:
            raise MnasError("give --resume RUN or --config FILE, not both (a run folder holds its config)")
        changed = sorted(set(given) - _RESUME_OK - {"out"}) + (["evaluator_option"] if evo else []) + (
            ["strategy_option"] if sto else [])
        if changed:
            raise MnasError(f"--resume keeps the run's settings; cannot change {', '.join(changed)} "
                            f"(only {', '.join(sorted(_RESUME_OK))})")
        base = SearchConfig.load(Path(args.resume) / CONFIG_FILE).to_dict()
        base["out"] = args.resume
    elif args.config:
        base = SearchConfig.load(args.config).to_dict()
        base["out"] = None  # a re-run writes a new run folder unless --out says otherwise
    else:
        base = {}
    base.update(given)
    if evo:
        base["evaluator_options"] = {**base.get("evaluator_options", {}), **evo}
    if sto:
        base["strategy_options"] = {**base.get("strategy_options", {}), **sto}
    cfg = SearchConfig.from_dict(base, where="search settings")
    if cfg.target_ms is None and cfg.reward != "pareto":
        raise MnasError(f"reward {cfg.reward!r} needs a latency target: add --target-ms MS (e.g. --target-ms 15) "
                        "or use --reward pareto")
    source = args.config or (str(Path(args.resume) / CONFIG_FILE) if args.resume else None)
    check_run_options(cfg, evo, sto, source)
    if args.resume:  # a damaged journal is refused before the run's settings are touched
        from mnas.search.storage import JOURNAL_FILE, is_journal, journal_path, verify_journal

        journal = journal_path(cfg.storage) if is_journal(cfg.storage) else Path(args.resume) / JOURNAL_FILE
        if journal.is_file():
            verify_journal(journal, table=Path(args.resume) / "trials.csv")
    return cfg


def check_run_options(cfg, evo: dict, sto: dict, source: str | None) -> None:
    """At parse time, before a run folder exists: option values, options the run does not use, conflicting flags."""
    from mnas.cli.common import check_options, evaluator_option_spec, strategy_option_spec

    def origin(flag: str, field: str, given: dict):
        return lambda k: f"{flag} {k}={given[k]!r}" if k in given else f"{source}: {field}.{k}"

    check_options(f"strategy {cfg.strategy!r}", cfg.strategy_options, strategy_option_spec(cfg.strategy),
                  origin("--strategy-option", "strategy_options", sto))
    check_options(f"the {cfg.evaluator} evaluator", cfg.evaluator_options, evaluator_option_spec(cfg.evaluator),
                  origin("--evaluator-option", "evaluator_options", evo))
    probe_strategy(cfg.strategy, cfg.strategy_options, seed=cfg.seed, multi_objective=cfg.reward == "pareto",
                   reward=cfg.reward)
    if cfg.backend != "ray":
        unused = [f"--{k.replace('_', '-')}" if k != "cpus_per_trial" else k for k, default in
                  (("address", None), ("gpus_per_trial", 0.0), ("cpus_per_trial", 1.0)) if getattr(cfg, k) != default]
        if unused:
            raise MnasError(f"{' and '.join(unused)} only appl{'y' if len(unused) > 1 else 'ies'} with --backend ray (trials run here, on this "
                            f"machine's CPUs): add --backend ray or drop {' and '.join(unused)}")
    if not cfg.cpus_per_trial > 0:
        raise MnasError(f"cpus_per_trial must be > 0, got {cfg.cpus_per_trial}")
    if cfg.reward != "custom" and (cfg.alpha is not None or cfg.beta is not None):
        raise MnasError(f"--alpha/--beta set the exponents of --reward custom; reward {cfg.reward!r} has its own: "
                        "add --reward custom or drop them")


def probe_strategy(name: str, options: dict, *, seed: int, multi_objective: bool, reward: str) -> None:
    """Build strategy ``name`` once on a two-option space, so its own checks (ranges, single objective) refuse a
    bad setting now rather than after the run folder is made."""
    from optuna.distributions import CategoricalDistribution

    from mnas.search.strategies import get_strategy

    try:
        get_strategy(name, {"probe": CategoricalDistribution([0, 1])}, seed=seed, multi_objective=multi_objective,
                     options=options)
    except MnasError as e:
        if multi_objective and "objective" in str(e):
            from mnas.registries import strategies

            ok = []
            for other in strategies():
                try:
                    get_strategy(other, {"probe": CategoricalDistribution([0, 1])}, seed=0, multi_objective=True)
                    ok.append(other)
                except Exception:
                    continue
            raise MnasError(f"--reward {reward} (accuracy and latency, a Pareto front) needs a multi-objective "
                            f"strategy; --strategy {name} optimises one number: use --strategy "
                            f"{' or '.join(ok) or 'tpe'}, or a scalar --reward (soft, hard, v3-small)") from None
        raise
    except Exception:  # a strategy that needs a real space to be built: its checks run when the search starts
        return


# what a resumed search's trials mean (README: "Failures, interrupts and resuming")
RESUME_NOTE = ("finished trials were kept, not re-run; the strategy was re-seeded (seed x 1000003 + stored trials), "
               "so trials after the resume point differ from an uninterrupted run's")


def cmd_search(args) -> int:
    from mnas.search.runner import run_search

    cfg = config_from_args(args)
    res = run_search(cfg, resume=bool(args.resume), progress=not args.no_progress and not args.json)
    summary = {
        "run_dir": str(res.run_dir),
        "completed": res.completed,
        "fastest_ms": res.fastest_ms,
        "wall_s": round(res.wall_s, 2),
        "target_ms": cfg.target_ms,
        "device": cfg.device,
        "space": cfg.space,
        "strategy": cfg.strategy,
        "reward": cfg.reward,
        "top": res.top,
        "resumed": bool(args.resume),
    }
    if args.resume:
        summary["resume_note"] = RESUME_NOTE
    if args.json:
        print_json(summary)
        return 0
    print(f"{res.completed} trials ({cfg.strategy}, {cfg.space}, {cfg.evaluator} accuracy, latency on {cfg.device}"
          f"{'' if cfg.target_ms is None else f', target {cfg.target_ms:g} ms'}) in {res.wall_s:.1f} s")
    if res.fastest_ms is not None:
        print(f"fastest network the space allows: {res.fastest_ms:.2f} ms")
    if args.resume:
        print(f"resumed: {RESUME_NOTE}")
    print()
    acc_head = "est. ImageNet top-1" if cfg.evaluator == "imagenet" else "acc"
    aw = max(6, len(acc_head))
    cw = max([4] + [len(t.get("code") or "") for t in res.top])
    print(f"{'#':>2}  {'latency':>9}  {acc_head:>{aw}}  {'madds':>8}  {'params':>9}  {'reward':>8}  {'code':<{cw}}  architecture")
    for t in res.top:
        print(f"{t['rank']:>2}  {t['latency_ms']:>7.2f}ms  {t['accuracy']:>{aw}.2f}  {t['madds'] / 1e6:>7.1f}M  "
              f"{t['params'] / 1e6:>8.2f}M  {t['reward']:>8.3f}  {t.get('code') or '-':<{cw}}  {t['arch']}")
    print()
    print(f"run folder: {res.run_dir}  (config.yaml, trials.csv/.parquet, "
          f"{'trials.journal' if (res.run_dir / 'trials.journal').exists() else 'trials.db'}, top/*.yaml, pareto.png)")
    return 0


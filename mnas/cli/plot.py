"""`mnas plot pareto|search|netadapt|replay RUN`: pictures of finished (or running) runs.

Each handler reads a run folder through the library's compute function (a table,
tested without matplotlib) and hands it to the matching renderer.
"""

from __future__ import annotations

from pathlib import Path

from mnas.cli.common import add_json_flag, print_json


def register(sub) -> None:
    p = sub.add_parser("plot", help="plot runs: Pareto fronts, search progress, NetAdapt paths, replays")
    psub = p.add_subparsers(dest="plot_command", metavar="KIND", parser_class=type(p))

    pp = psub.add_parser("pareto", help="accuracy against latency of every trial, Pareto front highlighted, "
                                        "reference networks at their latency")
    pp.add_argument("runs", nargs="+", metavar="RUN", help="search run folder(s)")
    pp.add_argument("--out", metavar="PNG", help="image file (default RUN/pareto.png)")
    pp.add_argument("--device", help="latency table for the reference networks (default: the run's device)")
    add_json_flag(pp)
    pp.set_defaults(func=cmd_pareto)

    ps = psub.add_parser("search", help="reward per trial and the best so far")
    ps.add_argument("run", metavar="RUN", help="search run folder")
    ps.add_argument("--out", metavar="PNG", help="image file (default RUN/search.png)")
    add_json_flag(ps)
    ps.set_defaults(func=cmd_search)

    pn = psub.add_parser("netadapt", help="accuracy against latency along a NetAdapt path")
    pn.add_argument("run", metavar="RUN", help="NetAdapt run folder")
    pn.add_argument("--out", metavar="PNG", help="image file (default RUN/path.png)")
    add_json_flag(pn)
    pn.set_defaults(func=cmd_netadapt)

    pr = psub.add_parser("replay", help="a replay's path beside the published networks")
    pr.add_argument("run", metavar="RUN", help="replay run folder")
    pr.add_argument("--out", metavar="PNG", help="image file (default RUN/replay.png)")
    add_json_flag(pr)
    pr.set_defaults(func=cmd_replay)

    p.set_defaults(func=lambda a: p.print_help())


def _run_dir(path: str) -> Path:
    from mnas.errors import MnasError

    p = Path(path)
    if not p.is_dir():
        raise MnasError(f"{path} is not a folder: give a run folder")
    return p


def _records(df) -> list[dict]:
    import json

    return json.loads(df.to_json(orient="records"))


def _done(out: Path, what: str, n: int, as_json: bool, data) -> int:
    if as_json:
        print_json({"plot": str(out), what: data})
    else:
        print(f"{out}  ({n} {what})")
    return 0


def cmd_netadapt(args) -> int:
    from mnas.netadapt.report import path_table, plot_path

    run = _run_dir(args.run)
    table = path_table(run)
    out = plot_path(run, args.out or run / "path.png")
    return _done(Path(out), "steps", len(table), args.json, _records(table.drop(columns=["arch"])))


def cmd_replay(args) -> int:
    from mnas.replay import plot_replay, reference_points, replay_points

    run = _run_dir(args.run)
    if _is_mnasnet_replay(run):
        from mnas.replay.mnasnet import replot

        out, done = replot(run, args.out)
        keep = [c for c in ("number", "accuracy", "latency_ms", "reward", "arch") if c in done.columns]
        return _done(Path(out), "trials", len(done), args.json, _records(done[keep]))
    points, refs = replay_points(run), reference_points(run)
    evaluator = _replay_evaluator(run)
    out = plot_replay(points, refs, args.out or run / "replay.png", title=f"replay: {run.name}", evaluator=evaluator)
    return _done(Path(out), "points", len(points), args.json, _records(points.drop(columns=["arch"])))


def _is_mnasnet_replay(run: Path) -> bool:
    import json

    try:
        return json.loads((run / "summary.json").read_text()).get("replay") == "mnasnet"
    except (OSError, ValueError, AttributeError):
        return False


def _replay_evaluator(run: Path) -> str | None:
    """The evaluator a replay scored with (its config.yaml), for the axis label."""
    from mnas.io import load_yaml_file

    cfg = run / "config.yaml"
    data = load_yaml_file(cfg, "replay config YAML") if cfg.is_file() else None
    return data.get("evaluator") if isinstance(data, dict) else None


def _run_device(run: Path) -> str | None:
    """The device a search run used (its config.yaml), if it says."""
    from mnas.io import load_yaml_file

    cfg = run / "config.yaml"
    if not cfg.is_file():
        return None
    data = load_yaml_file(cfg, "search config YAML")
    return data.get("device") if isinstance(data, dict) else None


def _run_config(run: Path):
    """A search run's :class:`~mnas.search.config.SearchConfig` (its config.yaml), or None without one."""
    from mnas.search.config import SearchConfig

    cfg = run / "config.yaml"
    return SearchConfig.load(cfg) if cfg.is_file() else None


def _warn_if_short(run: Path, n_table: int) -> None:
    """One warning line when a run's trials table holds fewer trials than its storage (a cut or copied file)."""
    import sys

    import optuna

    from mnas.cli.dashboard import run_storage
    from mnas.errors import MnasError
    from mnas.search.config import SearchConfig

    try:
        storage = run_storage(run)
        name = SearchConfig.load(run / "config.yaml").study_name
        study = optuna.load_study(study_name=name, storage=storage)
        stored = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    except (MnasError, KeyError, ValueError):  # no storage to compare with (a copied table, memory storage)
        return
    if stored > n_table:
        print(f"warning: {run}: the trials table holds {n_table} of the {stored} completed trials in the run's "
              f"storage; rewrite it with `mnas search --resume {run}`", file=sys.stderr)


def cmd_pareto(args) -> int:
    from mnas.errors import MnasError
    from mnas.plots import ACC, LAT, load_trials, pareto_front, plot_pareto

    runs = [_run_dir(r) for r in args.runs]
    device = args.device or _run_device(runs[0])
    others = {d for d in (_run_device(r) for r in runs[1:]) if d}
    if args.device is None and others - {device}:
        raise MnasError(f"the runs used different devices ({', '.join(sorted({device, *others} - {None}))}): "
                        "their latencies do not compare; choose one with --device")
    fronts: list[dict] = []
    for r in runs:
        _warn_if_short(r, len(load_trials(r)))
        front = pareto_front(load_trials(r))
        keep = [c for c in ("number", ACC, LAT, "madds", "params", "reward", "arch") if c in front.columns]
        fronts.append({"run": str(r), "trials": len(load_trials(r)), "front": _records(front[keep])})
    out = args.out or runs[0] / "pareto.png"
    config = _run_config(runs[0])
    drawn: dict = {}
    if config is None or not device:  # a bare trials table: its points and fronts alone
        refs = None
        if device:
            from mnas.latency import get_predictor
            from mnas.run import zoo_references

            refs = zoo_references(get_predictor(device))
        out = plot_pareto(runs, out, device=device, references=refs, data_out=drawn)
    else:
        from mnas.latency import get_predictor
        from mnas.run import INSTANT_EVALUATORS, build_evaluator
        from mnas.search.runner import plot_search_pareto

        config.device = device
        evaluator = None
        if config.evaluator in INSTANT_EVALUATORS:
            try:
                evaluator = build_evaluator(config.evaluator, config.evaluator_options, config.space)
            except MnasError:  # e.g. a benchmark file no longer where it was: the references go unscored
                evaluator = None
        out = plot_search_pareto(config, runs, Path(out), predictor=get_predictor(device), evaluator=evaluator,
                                 multi_objective=config.reward == "pareto", data_out=drawn)
    if args.json:
        refs_drawn = drawn.get("references")
        print_json({"plot": str(out), "device": device, "runs": fronts, "ylabel": drawn.get("ylabel"),
                    "title": drawn.get("title"), "target_ms": drawn.get("target_ms"), "chosen": drawn.get("chosen"),
                    "references": [] if refs_drawn is None else _records(refs_drawn),
                    "references_left_out": drawn.get("left_out", [])})
    else:
        for f in fronts:
            print(f"{f['run']}: {f['trials']} trials, {len(f['front'])} on the Pareto front")
        print(out)
    return 0


def cmd_search(args) -> int:
    from mnas.plots import load_trials, plot_search, search_curve

    run = _run_dir(args.run)
    curve = search_curve(load_trials(run))
    out = plot_search(run, args.out or run / "search.png")
    return _done(Path(out), "trials", len(curve), args.json, _records(curve))

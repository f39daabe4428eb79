"""`mnas replay mnasnet`: MnasNet's search stage on ImageNet data, through Accel-NASBench's surrogate.

MnasNet (Tan et al., CVPR 2019) searched its factorized hierarchical space with an RNN
controller trained by PPO, about 8,000 sampled models, each scored by the soft reward
``ACC × (LAT / T)^w`` with ``w = −0.07`` and ``T = 75 ms`` on a Pixel-1 phone.
EfficientNet-B0 (Tan & Le, ICML 2019) came out of the same search with FLOPS in place of
latency: ``ACC × (FLOPS / 400M)^−0.07``. Accel-NASBench (``anb``) is that space on
EfficientNet-B0's backbone with ImageNet ground truth for 4,616 trained networks and a
surrogate for all ≈10¹¹, so the search stage can be rerun on a CPU:

==================  =========================================================================
``mnasnet``         RL controller, soft reward w = −0.07, 8,000 samples, T = 75 ms on ``pixel1``
``efficientnet``    the same with T = 400 M multiply-adds on ``madds`` (EfficientNet-B0's search)
==================  =========================================================================

The run folder holds the search (``search/``, resumable: running the same command again
continues a killed search), ``report.md`` (the found network block by block beside
EfficientNet-B0 and the benchmark's best listed network under the same target, with
surrogate and, where listed, the benchmark's own top-1, parameters, multiply-adds and
latency), ``summary.json`` and ``pareto.png`` (every trial, the front, the reference points).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mnas.errors import MnasError

VARIANTS: dict[str, dict[str, Any]] = {
    "mnasnet": {"device": "pixel1", "target_ms": 75.0, "unit": "ms",
                "title": "MnasNet's search stage: ACC x (LAT/75 ms)^-0.07 on pixel1"},
    "efficientnet": {"device": "madds", "target_ms": 400.0, "unit": "M multiply-adds",
                     "title": "EfficientNet-B0's search: ACC x (FLOPS/400M)^-0.07"},
}
W = -0.07  # MnasNet's soft constraint, alpha = beta = w
SEARCH_DIR = "search"


@dataclass
class ReplayMnasnetConfig:
    variant: str = "mnasnet"
    trials: int = 8000
    target_ms: float | None = None  # default: the variant's (75 ms / 400 M)
    device: str | None = None  # default: the variant's (pixel1 / madds)
    strategy: str = "rl"
    seed: int = 0
    evaluator: str = "anb"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise MnasError(f"unknown mnasnet variant {self.variant!r} (choose one of {', '.join(VARIANTS)})")
        v = VARIANTS[self.variant]
        self.device = self.device or v["device"]
        self.target_ms = float(self.target_ms if self.target_ms is not None else v["target_ms"])
        if not math.isfinite(self.target_ms) or self.target_ms <= 0:
            raise MnasError(f"--target-ms must be a positive number, got {self.target_ms}")
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise MnasError(f"--trials must be a whole number >= 1, got {self.trials!r}")
        if self.evaluator not in ("anb",):
            raise MnasError(f"replay mnasnet scores networks with the anb surrogate; --evaluator {self.evaluator} "
                            "does not apply (the benchmark's table top-1 is reported beside it where listed)")


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(msg, file=sys.stderr, flush=True)


def describe(net, *, surrogate, predictor, data=None) -> dict[str, Any]:
    """The report's row for one ``anb`` network: code, blocks, surrogate/table top-1, params, madds, latency."""
    from mnas.anb import BLOCKS, choices_of, format_code
    from mnas.counting import count

    c = choices_of(net)
    code = format_code(c)
    table = None
    if data is not None:
        i = int(data.lookup(c[None])[0])
        if i >= 0:
            table = float(data.network_values("val_top1")[i])
    counts = count(net)
    return {
        "code": code,
        "blocks": [{"block": b, "expand": int(c[b, 0]), "kernel": int(c[b, 1]), "layers": int(c[b, 2]),
                    "se": bool(c[b, 3])} for b in range(BLOCKS)],
        "surrogate_top1": float(surrogate.evaluate(net)["top1"]),
        "table_top1": table,
        "params": int(counts.params),
        "madds": int(counts.madds),
        "latency": float(predictor.predict(net)),
        "arch": str(net),
    }


def best_listed(data, predictor, target: float):
    """The benchmark's best (table top-1) listed network with latency <= ``target``.

    ``(net, how many qualify, latency of every listed network, their table top-1)``, or None.
    """
    import numpy as np

    from mnas.anb import network_of

    choices = data.network_choices()
    nets = [network_of(c) for c in choices]
    lat = np.asarray(predictor.predict_many(nets), dtype=float)
    top1 = data.network_values("val_top1")
    ok = np.flatnonzero((lat <= target) & ~np.isnan(top1))
    if not len(ok):
        return None
    i = int(ok[np.argmax(top1[ok])])
    return nets[i], int(len(ok)), lat, top1


def run_replay_mnasnet(config: ReplayMnasnetConfig, out: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the replay in ``out``; write report.md, summary.json, pareto.png; return the summary."""
    from mnas.anb import EFFICIENTNET_B0, load_csv, network_of, parse_code
    from mnas.latency import get_predictor
    from mnas.search.config import SearchConfig
    from mnas.search.runner import CONFIG_FILE, run_search
    from mnas.space import load_space

    out = Path(out)
    search_dir = out / SEARCH_DIR
    v = VARIANTS[config.variant]
    space = load_space("anb")
    predictor = get_predictor(config.device)
    from mnas.run import build_evaluator

    surrogate = build_evaluator("anb", {}, space)
    resume = (search_dir / CONFIG_FILE).is_file()
    if resume:
        sc = SearchConfig.load(search_dir / CONFIG_FILE)
        if (sc.target_ms, sc.device, sc.strategy, sc.seed) != (config.target_ms, config.device, config.strategy,
                                                               config.seed):
            raise MnasError(f"{out} holds a replay with target {sc.target_ms:g} on {sc.device}, strategy "
                            f"{sc.strategy}, seed {sc.seed}: rerun with those settings to resume it, or use another --out")
        sc.trials = max(sc.trials, config.trials)
    else:
        sc = SearchConfig(target_ms=config.target_ms, space="anb", device=config.device, evaluator="anb",
                          strategy=config.strategy, trials=config.trials, reward="soft", seed=config.seed,
                          out=str(search_dir))
    _log(f"replay mnasnet ({config.variant}): {config.trials} samples, {config.strategy}, soft reward w = {W}, "
         f"target {config.target_ms:g} {v['unit']} on {config.device}", progress)
    before = _previous_search(out)  # (trials, seconds) of the search so far, from an earlier summary
    t0 = time.time()
    res = run_search(sc, resume=resume, progress=progress, space=space, predictor=predictor, evaluator=surrogate,
                     plot=False, log=lambda m: _log(f"search: {m}", progress))
    search_s = time.time() - t0
    if before is not None and resume:
        # a rerun of a finished replay reloads the search: its time is the earlier runs' plus what was added
        search_s = before[1] + (search_s if res.completed > before[0] else 0.0)
    if not res.top:
        raise MnasError(f"the search in {search_dir} finished no trial; see {search_dir / 'trials.csv'}")
    from mnas.arch import parse_network

    found = parse_network(res.top[0]["arch"])

    try:
        data = load_csv()
    except MnasError as e:
        data = None
        _log(f"benchmark table not available ({e}); the report lists surrogate figures only", progress)
    rows = {"found": describe(found, surrogate=surrogate, predictor=predictor, data=data),
            "efficientnet_b0": describe(network_of(parse_code(EFFICIENTNET_B0)), surrogate=surrogate,
                                        predictor=predictor, data=data)}
    listed = None
    qualifying = None
    if data is not None:
        got = best_listed(data, predictor, config.target_ms)
        if got is not None:
            net, qualifying, listed_lat, listed_top1 = got
            rows["best_listed"] = describe(net, surrogate=surrogate, predictor=predictor, data=data)
            listed = (listed_lat, listed_top1)
    for r in rows.values():
        acc = r["surrogate_top1"]
        r["reward"] = acc * (r["latency"] / config.target_ms) ** W
    done = res.table[res.table["state"] == "COMPLETE"]
    first_best = int(done.loc[done["reward"].idxmax(), "number"])
    summary = {
        "replay": "mnasnet", "variant": config.variant, "title": v["title"], "device": config.device,
        "target": config.target_ms, "unit": v["unit"], "w": W, "strategy": config.strategy, "seed": config.seed,
        "trials": int(res.completed), "best_found_at_trial": first_best,
        "search_wall_s": round(search_s, 1), "search_run": str(search_dir),
        "surrogate": {"model": getattr(getattr(surrogate, "model", None), "name", "anb"),
                      "cv_rmse_pp": surrogate._info.get("cv_rmse_pp") if hasattr(surrogate, "_info") else None,
                      "cv_kendall_tau": surrogate._info.get("cv_kendall_tau") if hasattr(surrogate, "_info") else None},
        "benchmark_networks_within_target": qualifying,
        "networks": rows,
    }
    plot_replay(done, rows, listed, config, out / "pareto.png")
    from mnas.io import atomic_write_text

    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    atomic_write_text(out / "report.md", report(summary))
    summary["report"] = str(out / "report.md")
    return summary


def _previous_search(out: Path) -> tuple[int, float] | None:
    """(trials, search seconds) in ``out/summary.json`` from an earlier run of this replay, if any."""
    try:
        s = json.loads((out / "summary.json").read_text())
        return int(s["trials"]), float(s["search_wall_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def replot(run_dir: str | Path, out_png: str | Path | None = None) -> tuple[Path, Any]:
    """Redraw a finished MnasNet replay's plot from its folder (``mnas plot replay``); returns the path and the trials."""
    from mnas.plots import load_trials

    run_dir = Path(run_dir)
    try:
        s = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError) as e:
        raise MnasError(f"{run_dir}: no readable summary.json (has the replay finished?): {e}") from None
    config = ReplayMnasnetConfig(variant=s["variant"], trials=int(s["trials"]), target_ms=s["target"],
                                 device=s["device"], strategy=s["strategy"], seed=int(s["seed"]))
    done = load_trials(run_dir / SEARCH_DIR)
    listed = None
    try:
        from mnas.anb import load_csv
        from mnas.latency import get_predictor

        got = best_listed(load_csv(), get_predictor(config.device), config.target_ms)
        listed = None if got is None else (got[2], got[3])
    except MnasError:  # the benchmark table is not here: the searched networks alone
        pass
    return plot_replay(done, s["networks"], listed, config, Path(out_png or run_dir / "pareto.png")), done


def plot_replay(done, rows: dict, listed, config: ReplayMnasnetConfig, out_png: Path) -> Path:
    """Every trial (latency vs surrogate top-1), its front, the target and the reference networks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mnas.plots import pareto_front, save_figure

    unit = VARIANTS[config.variant]["unit"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    if listed is not None:
        ax.scatter(listed[0], listed[1], s=5, c="#9ecae1", alpha=0.5, lw=0,
                   label=f"Accel-NASBench's {len(listed[0]):,} trained networks (table top-1)")
    ax.scatter(done["latency_ms"], done["accuracy"], s=4, c="0.55", alpha=0.35, lw=0,
               label=f"{len(done):,} searched networks (surrogate top-1)")
    front = pareto_front(done)
    # a staircase: the best accuracy reachable at each latency holds until the next front point
    xs = list(front["latency_ms"]) + [float(done["latency_ms"].max())]
    ax.step(xs, list(front["accuracy"]) + [float(front["accuracy"].iloc[-1])], where="post", c="k", lw=1.2,
            label="front of the searched networks")
    ax.axvline(config.target_ms, c="tab:red", ls="--", lw=1, label=f"target {config.target_ms:g} {unit}")
    marks = {"found": ("o", "tab:red", "found by the search"), "efficientnet_b0": ("*", "tab:green", "EfficientNet-B0"),
             "best_listed": ("D", "tab:blue", "best listed network within the target (table top-1)")}
    for key, (m, color, label) in marks.items():
        if key not in rows:
            continue
        r = rows[key]
        y = r["table_top1"] if key == "best_listed" and r["table_top1"] is not None else r["surrogate_top1"]
        ax.scatter([r["latency"]], [y], marker=m, s=140 if m == "*" else 70, c=color, edgecolors="k", zorder=5,
                   label=f"{label}: {y:.2f} %, {r['latency']:.1f} {unit}")
    ax.set_xlabel(f"{'latency on ' + config.device + ' (ms)' if unit == 'ms' else 'multiply-adds (M)'}")
    ax.set_ylabel("ImageNet top-1 (%): `anb` surrogate\n(listed networks: the benchmark's table)")
    ax.set_title(f"{VARIANTS[config.variant]['title']}: {len(done):,} samples, {config.strategy}", fontsize=10)
    ax.margins(y=0.04)  # every point shown: no axis limit cuts the weak networks off
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return save_figure(fig, out_png)


def _fmt(x, spec: str, none: str = "not listed") -> str:
    return none if x is None else format(x, spec)


def report(s: dict) -> str:
    unit = "ms" if s["unit"] == "ms" else "M"
    nets = s["networks"]
    cols = [("found", "found"), ("efficientnet_b0", "EfficientNet-B0"), ("best_listed", "best listed within target")]
    cols = [(k, name) for k, name in cols if k in nets]
    sur = s["surrogate"]
    out = [f"# replay mnasnet ({s['variant']})", "",
           f"{s['title']}. {s['trials']:,} samples ({s['strategy']}, seed {s['seed']}), soft reward "
           f"ACC x (LAT/T)^{s['w']} with T = {s['target']:g} {s['unit']} on `{s['device']}`; accuracy from the "
           f"Accel-NASBench surrogate `{sur['model']}` (10-fold CV RMSE {_fmt(sur['cv_rmse_pp'], '.3f', 'n/a')} pp, "
           f"Kendall tau {_fmt(sur['cv_kendall_tau'], '.2f', 'n/a')}). Search: {s['search_wall_s']:.0f} s; the best "
           f"reward was first reached at trial {s['best_found_at_trial']:,}.", ""]
    if s.get("benchmark_networks_within_target") is not None:
        out += [f"{s['benchmark_networks_within_target']:,} of the benchmark's trained networks are within the "
                "target on this device; the best of them by the benchmark's own top-1 is listed.", ""]
    out += ["| | " + " | ".join(name for _, name in cols) + " |", "|---|" + "---:|" * len(cols)]
    rows = [("encoding", lambda r: f"`{r['code']}`"),
            ("surrogate top-1 (%)", lambda r: f"{r['surrogate_top1']:.2f}"),
            ("table top-1 (%)", lambda r: _fmt(r["table_top1"], ".2f")),
            ("parameters (M)", lambda r: f"{r['params'] / 1e6:.2f}"),
            ("multiply-adds (M)", lambda r: f"{r['madds'] / 1e6:.1f}"),
            (f"latency on {s['device']} ({unit})", lambda r: f"{r['latency']:.1f}"),
            ("reward", lambda r: f"{r['reward']:.3f}")]
    for label, f in rows:
        out.append(f"| {label} | " + " | ".join(f(nets[k]) for k, _ in cols) + " |")
    out += ["", "Block by block (expansion / kernel / layers / squeeze-excite):", "",
            "| block | " + " | ".join(name for _, name in cols) + " |", "|---|" + "---|" * len(cols)]
    for b in range(7):
        cells = []
        for k, _ in cols:
            blk = nets[k]["blocks"][b]
            cells.append(f"e{blk['expand']} k{blk['kernel']}x{blk['kernel']} x{blk['layers']}{' SE' if blk['se'] else ''}")
        out.append(f"| b{b} | " + " | ".join(cells) + " |")
    out += ["", "Notes: the surrogate top-1 is a model's prediction of the benchmark's 16-epoch proxy training "
            "(not a full ImageNet schedule); the table top-1 is the benchmark's measurement, given where the network "
            "is one of its trained ones. Latency comes from the device model named above.", "",
            "Files: `pareto.png`, `summary.json`, `search/` (config.yaml, trials.csv/.parquet, trials.journal, top/).", ""]
    return "\n".join(out)


def config_dict(config: ReplayMnasnetConfig) -> dict:
    return asdict(config)


def cmd_replay_mnasnet(args) -> int:
    """The CLI handler (registered by ``mnas/cli/replay.py``): run, then print the comparison table."""
    from mnas.cli.common import print_json

    if getattr(args, "delta", None) is not None or getattr(args, "dataset", None) or getattr(args, "data_dir", None):
        raise MnasError("replay mnasnet takes no --delta/--dataset/--data-dir (no NetAdapt, no training: the anb "
                        "surrogate scores every network)")
    config = ReplayMnasnetConfig(variant=args.variant, trials=args.trials if args.trials is not None else 8000,
                                 target_ms=args.target_ms, device=args.device, strategy=args.strategy or "rl",
                                 seed=args.seed, evaluator=args.evaluator or "anb")
    out = args.out or f"runs/replay-mnasnet-{config.variant}"
    summary = run_replay_mnasnet(config, out, progress=not (args.no_progress or args.json))
    if args.json:
        print_json(summary)
        return 0
    unit = "ms" if summary["unit"] == "ms" else "M"
    print(f"replay mnasnet ({summary['variant']}): {summary['trials']} samples, {summary['strategy']}, "
          f"target {summary['target']:g} {summary['unit']} on {summary['device']}, search {summary['search_wall_s']:.0f} s")
    names = {"found": "found", "efficientnet_b0": "EfficientNet-B0", "best_listed": "best listed"}
    print(f"  {'':<16} {'surrogate':>9} {'table':>7} {'params':>8} {'madds':>8} {'latency':>10}  encoding")
    for k, name in names.items():
        r = summary["networks"].get(k)
        if r is None:
            continue
        table = "-" if r["table_top1"] is None else f"{r['table_top1']:.2f}"
        print(f"  {name:<16} {r['surrogate_top1']:>8.2f}% {table:>7} {r['params'] / 1e6:>7.2f}M "
              f"{r['madds'] / 1e6:>7.1f}M {r['latency']:>7.1f} {unit:<2}  {r['code']}")
    print(f"report: {summary['report']}")
    return 0

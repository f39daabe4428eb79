"""Replay how MobileNetV3 was found (Howard et al. 2019), one phase at a time, and compare.

Two replays:

``v3-large``
    seed = MnasNet-A1 (the paper reused it), NetAdapt on the device to the
    published V3-Large's predicted latency, then the manual redesign steps of
    :data:`mnas.redesign.V3_STEPS` one by one.
``v3-small``
    a block-wise search from scratch over the ``v3_small`` space with the
    ``v3-small`` reward (w = −0.15, target 15.8 ms: the paper's V3-Small latency on
    Pixel-1), then NetAdapt to the published V3-Small's predicted latency, then the
    same redesign steps (a step that does not apply is skipped, with the reason).

A run folder holds each phase's result as it finishes, so a killed replay resumes
and skips every finished phase::

    config.yaml        the settings (a resumed run reads them back)
    search/            the search run (v3-small), search.json its best architecture
    netadapt/          the NetAdapt run, netadapt.json its summary
    redesign.csv       one row per redesign step: latency and multiply-adds before/after
    references.csv     the published networks at their latency, under the same evaluator
    path.csv           the replayed path (every phase's network), the data of the plot
    report.md          the report, replay.png the latency–accuracy plot, summary.json

Compute first, draw second: :func:`replay_points` and :func:`reference_points`
return the plot's data; :func:`plot_replay` only draws them.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mnas.arch import Network, load_network, parse_network, save_network
from mnas.configs import DictConfig
from mnas.errors import MnasError
from mnas.plots import save_figure

REPLAYS = ("v3-large", "v3-small")

# replay -> (seed or search space, published result, evaluator space)
PUBLISHED = {"v3-large": "mobilenet_v3_large", "v3-small": "mobilenet_v3_small"}
SPACE = {"v3-large": "v3_large", "v3-small": "v3_small"}
# drawn beside each replay: its published V3, and the networks the paper compares with
REFERENCES = {"v3-large": ("mobilenet_v3_large", "mobilenet_v2", "mnasnet_a1"),
              "v3-small": ("mobilenet_v3_small", "mobilenet_v2", "mnasnet_a1")}
V3_SMALL_TARGET_MS = 15.8  # the paper's V3-Small on Pixel-1 (final version, Table 3)
V3_SMALL_REWARD = "v3-small"  # w = -0.15


@dataclass(frozen=True)
class Budget:
    """How much work each phase does. ``netadapt`` names NetAdapt's own budget (fine-tune steps)."""

    evaluator: str  # default accuracy signal (search, NetAdapt, report)
    netadapt: str
    delta: float  # NetAdapt's δ, a fraction of the seed's latency
    trials: int  # search trials (v3-small)
    strategy: str  # search strategy (MnasNet's controller is "rl")
    backend: str  # "local" or "ray"


BUDGETS: dict[str, Budget] = {
    # seconds to a minute: tests and a first look. δ = 5 % keeps NetAdapt to a few steps.
    "smoke": Budget(evaluator="predictor", netadapt="smoke", delta=0.05, trials=24, strategy="random", backend="local"),
    # about 30 minutes on 2 CPU cores with the predictor evaluator; NetAdapt with the paper's δ = 1 %.
    "default": Budget(evaluator="predictor", netadapt="default", delta=0.01, trials=800, strategy="rl", backend="local"),
    # as the paper: ~8,000 sampled models, NetAdapt fine-tuning T = 10,000 steps per proposal, on Ray.
    "paper": Budget(evaluator="train", netadapt="paper", delta=0.01, trials=8000, strategy="rl", backend="ray"),
}


@dataclass
class ReplayConfig(DictConfig):
    """Everything that changes a replay's result (saved as ``config.yaml``)."""

    replay: str
    budget: str = "default"
    device: str = "pixel1"
    evaluator: str | None = None  # None: the budget's
    evaluator_options: dict = field(default_factory=dict)
    target_ms: float | None = None  # NetAdapt target; None: the published V3's predicted latency
    search_target_ms: float = V3_SMALL_TARGET_MS
    delta: float | None = None
    trials: int | None = None
    strategy: str | None = None
    backend: str | None = None
    dataset: str | None = None  # proxy data for training evaluators (see `mnas eval --help`)
    data_dir: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.replay not in REPLAYS:
            raise MnasError(f"unknown replay {self.replay!r} (choose one of {', '.join(REPLAYS)})")
        if self.budget not in BUDGETS:
            raise MnasError(f"unknown budget {self.budget!r} (choose one of {', '.join(BUDGETS)})")
        b = BUDGETS[self.budget]
        for k in ("evaluator", "delta", "trials", "strategy", "backend"):
            if getattr(self, k) is None:
                setattr(self, k, getattr(b, k))
        if self.budget == "paper" and self.evaluator == "train":
            self.evaluator_options = {"epochs": 5.0, **self.evaluator_options}  # MnasNet: 5 epochs per sampled model
        if self.target_ms is not None and self.target_ms <= 0:
            raise MnasError(f"--target-ms must be positive, got {self.target_ms}")
        if self.trials < 1:
            raise MnasError(f"--trials must be at least 1, got {self.trials}")

    @property
    def published(self) -> str:
        return PUBLISHED[self.replay]

    @property
    def space(self) -> str:
        return SPACE[self.replay]



# ---------------------------------------------------------------------------------------------- helpers
def _log(msg: str, progress: bool) -> None:
    if progress:
        sys.stderr.write(f"replay: {msg}\n")
        sys.stderr.flush()


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_json_default))
    tmp.replace(path)


def _json_default(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def _write_csv(df, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(path)


def measure(net: Network, predictor, evaluator) -> dict:
    """Params, multiply-adds, predicted latency and accuracy of ``net`` (top1 NaN if the evaluator refuses it)."""
    from mnas.counting import count

    c = count(net)
    row = {"params": c.params, "madds": c.madds, "latency_ms": float(predictor.predict(net)),
           "top1": math.nan, "note": ""}
    if evaluator is not None:
        try:
            row["top1"] = float(evaluator.evaluate(net)["top1"])
        except MnasError as e:  # e.g. a network outside the evaluator's search space
            row["note"] = f"no accuracy: {e}"
    return row


def step_applies(step, net: Network) -> tuple[Network | None, str]:
    """``(new network, "")`` if the redesign step changes ``net``, else ``(None, why it is skipped)``."""
    if step.name == "stem16" and net.stem.out <= 16:
        return None, f"stem already has {net.stem.out} filters (≤ 16)"
    try:
        new = step.apply(net)
    except MnasError as e:
        return None, str(e)
    if new == net:
        return None, "already holds (no change)"
    return new, ""


# ---------------------------------------------------------------------------------------------- the replay
class Replay:
    """One replay run folder: :meth:`run` does (or resumes) every phase in order."""

    def __init__(self, run_dir: str | Path, config: ReplayConfig, *, predictor=None, evaluator=None,
                 search: Callable | None = None, progress: bool = True):
        self.dir = Path(run_dir)
        self.config = config
        if predictor is None:
            from mnas.latency import get_predictor

            predictor = get_predictor(config.device)
        self.predictor = predictor
        self._evaluator = evaluator
        self._search_fn = search or default_search
        self.progress = progress

    # -- creation / resume
    @classmethod
    def open_or_create(cls, run_dir: str | Path, config: ReplayConfig | None, **kw) -> "Replay":
        """A new run in ``run_dir``, or the run already there (its saved config wins; a different one is an error)."""
        import yaml

        run_dir = Path(run_dir)
        path = run_dir / "config.yaml"
        if path.is_file():
            saved = ReplayConfig.from_dict(yaml.safe_load(path.read_text()) or {}, where=str(path))
            if config is not None and config.to_dict() != saved.to_dict():
                diff = [k for k, v in config.to_dict().items() if saved.to_dict()[k] != v]
                raise MnasError(f"{run_dir} holds a replay with other settings ({', '.join(diff)}); resume it "
                                f"with the same flags (or only --out {run_dir}) or choose another --out")
            return cls(run_dir, saved, **kw)
        if config is None:
            raise MnasError(f"{run_dir} is not a replay run folder (no config.yaml); start one with a replay name")
        run_dir.mkdir(parents=True, exist_ok=True)
        run = cls(run_dir, config, **kw)
        path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return run

    @property
    def evaluator(self):
        if self._evaluator is None:
            from mnas.accuracy import evaluator_options, get_evaluator

            c = self.config
            opts = dict(c.evaluator_options)
            allowed = evaluator_options(c.evaluator)
            if "cache" in allowed and "cache" not in opts:
                opts["cache"] = str(self.dir / "eval_cache.sqlite")
            for k in ("dataset", "data_dir"):
                if k in allowed and k not in opts and getattr(c, k) is not None:
                    opts[k] = getattr(c, k)
            space = opts.pop("space", c.space if "space" in allowed else None)
            self._evaluator = get_evaluator(c.evaluator, space=space, **opts)
        return self._evaluator

    def published(self) -> Network:
        from mnas import zoo

        return zoo.get(self.config.published)

    def target_ms(self) -> float:
        if self.config.target_ms is not None:
            return float(self.config.target_ms)
        return float(self.predictor.predict(self.published()))

    def _phase(self, name: str) -> Path:
        return self.dir / {"search": "search.json", "netadapt": "netadapt.json", "redesign": "redesign.csv",
                           "references": "references.csv", "report": "summary.json"}[name]

    # -- phases
    def run(self) -> dict:
        phases = (["search"] if self.config.replay == "v3-small" else []) + ["netadapt", "redesign", "references", "report"]
        timings = self._timings()
        for name in phases:
            if self._phase(name).is_file() and name != "report":
                _log(f"{name}: done before, skipped", self.progress)
                continue
            _log(f"{name}: running", self.progress)
            t0 = time.perf_counter()
            getattr(self, f"_{name}")()
            spent = time.perf_counter() - t0  # a resumed phase adds to its earlier time; the report is redone
            timings[name] = spent if name == "report" else timings.get(name, 0.0) + spent
            _write_json(self.dir / "timings.json", timings)
        return json.loads(self._phase("report").read_text())

    def _timings(self) -> dict:
        p = self.dir / "timings.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def _seed(self) -> tuple[Network, str]:
        """The network NetAdapt starts from, and its name."""
        if self.config.replay == "v3-large":
            from mnas import zoo

            return zoo.get("mnasnet_a1"), "MnasNet-A1"
        s = json.loads(self._phase("search").read_text())
        return parse_network(s["arch"]), "search best"

    def _search(self) -> None:
        c = self.config
        out = self.dir / "search"
        result = self._search_fn(space=c.space, reward=V3_SMALL_REWARD, target_ms=c.search_target_ms,
                              trials=c.trials, strategy=c.strategy, seed=c.seed, out=out, device=c.device,
                              evaluator=self.evaluator, predictor=self.predictor, backend=c.backend,
                              progress=self.progress, evaluator_kind=c.evaluator)
        net = parse_network(result["arch"])
        save_network(net, self.dir / "search_best.yaml")
        _write_json(self._phase("search"), {**result, **measure(net, self.predictor, self.evaluator)})

    def _netadapt(self) -> None:
        from mnas.netadapt import NetAdapt, NetAdaptConfig

        c = self.config
        seed, seed_name = self._seed()
        target = self.target_ms()
        out = self.dir / "netadapt"
        seed_latency = float(self.predictor.predict(seed))
        if target >= seed_latency:  # nothing to shrink: the seed is already at or under the target
            save_network(seed, self.dir / "netadapt_result.yaml")
            _write_json(self._phase("netadapt"), {"skipped": True, "arch": str(seed), "seed": seed_name,
                                                   "target_ms": target, "seed_latency_ms": seed_latency,
                                                   "latency_ms": seed_latency,
                                                   "note": f"{seed_name} is already at {seed_latency:.2f} ms ≤ "
                                                           f"target {target:.2f} ms: NetAdapt has nothing to do"})
            return
        evaluator = "finetune" if c.budget == "paper" else c.evaluator  # the paper fine-tuned inherited weights
        shared = None if evaluator == "finetune" else self.evaluator
        kw = dict(predictor=self.predictor, evaluator=shared, progress=self.progress)
        if (out / "config.yaml").is_file():
            run = NetAdapt.open(out, **kw)
        else:
            data = {k: getattr(c, k) for k in ("dataset", "data_dir") if getattr(c, k) is not None}
            opts = {}
            if evaluator != "finetune":  # saved so that `mnas netadapt --resume` alone rebuilds the same evaluator
                from mnas.accuracy import evaluator_options

                opts = dict(c.evaluator_options)
                if "space" in evaluator_options(evaluator):
                    opts.setdefault("space", c.space)
            na = NetAdaptConfig(arch=str(seed), device=c.device, target_ms=target, delta=c.delta, evaluator=evaluator,
                                evaluator_options=opts, budget=BUDGETS[c.budget].netadapt, seed=c.seed, **data)
            run = NetAdapt.create(out, na, **kw)
        summary = run.run(backend=c.backend if evaluator == "finetune" else "local")
        net = parse_network(summary["arch"])
        save_network(net, self.dir / "netadapt_result.yaml")
        _write_json(self._phase("netadapt"), {**summary, "seed": seed_name})

    def _redesign(self) -> None:
        import pandas as pd

        from mnas.redesign import V3_STEPS

        net = load_network(self.dir / "netadapt_result.yaml")
        before = measure(net, self.predictor, self.evaluator)
        rows = []
        for step in V3_STEPS:
            new, why = step_applies(step, net)
            row = {"step": step.name, "description": step.description, "applied": new is not None, "skipped_because": why,
                   "paper_ms": step.paper_ms, "paper_madds_m": step.paper_madds_m}
            if new is None:
                rows.append({**row, "latency_ms": before["latency_ms"], "delta_ms": 0.0, "madds": before["madds"],
                             "delta_madds": 0, "params": before["params"], "delta_params": 0, "top1": before["top1"],
                             "delta_top1": 0.0, "arch": str(net)})
                continue
            after = measure(new, self.predictor, self.evaluator)
            rows.append({**row, "latency_ms": after["latency_ms"], "delta_ms": after["latency_ms"] - before["latency_ms"],
                         "madds": after["madds"], "delta_madds": after["madds"] - before["madds"],
                         "params": after["params"], "delta_params": after["params"] - before["params"],
                         "top1": after["top1"], "delta_top1": after["top1"] - before["top1"], "arch": str(new)})
            net, before = new, after
        save_network(net, self.dir / "final.yaml")
        _write_csv(pd.DataFrame(rows), self._phase("redesign"))

    def _references(self) -> None:
        import pandas as pd

        from mnas import zoo

        rows = []
        for name in REFERENCES[self.config.replay]:
            net = zoo.get(name)
            rows.append({"name": name, "arch": str(net), **measure(net, self.predictor, self.evaluator)})
        _write_csv(pd.DataFrame(rows), self._phase("references"))

    def _report(self) -> None:
        points = replay_points(self.dir)
        _write_csv(points, self.dir / "path.csv")
        refs = reference_points(self.dir)
        plot_replay(points, refs, self.dir / "replay.png", title=f"replay {self.config.replay} on {self.predictor.device}")
        summary = self.summary()
        (self.dir / "report.md").write_text(render_report(self, summary, points, refs))
        _write_json(self._phase("report"), summary)

    # -- results
    def summary(self) -> dict:
        import pandas as pd

        final = load_network(self.dir / "final.yaml")
        refs = pd.read_csv(self._phase("references"))
        pub = refs[refs["name"] == self.config.published].iloc[0]
        red = pd.read_csv(self._phase("redesign"), keep_default_na=False, na_values=[""])
        found = red.iloc[-1]
        netadapt = json.loads(self._phase("netadapt").read_text())
        out = {
            "replay": self.config.replay, "run": str(self.dir), "device": self.predictor.device,
            "budget": self.config.budget, "evaluator": self.config.evaluator,
            "target_ms": netadapt.get("target_ms"),
            "wall_s": {k: v for k, v in self._timings().items() if k != "report"},  # the phases' compute time
            "found": {"arch": str(final), "params": int(found["params"]), "madds": int(found["madds"]),
                      "latency_ms": float(found["latency_ms"]), "top1": _float(found["top1"])},
            "agreement": agreement(final, self.published()),
            "published": {"name": self.config.published, "arch": str(pub["arch"]), "params": int(pub["params"]),
                          "madds": int(pub["madds"]), "latency_ms": float(pub["latency_ms"]), "top1": _float(pub["top1"])},
            "netadapt": {k: netadapt.get(k) for k in ("seed", "seed_latency_ms", "latency_ms", "steps", "skipped", "note")
                         if k in netadapt},
            "redesign": [{k: _plain(r[k]) for k in ("step", "applied", "skipped_because", "delta_ms", "delta_madds",
                                                    "paper_ms", "paper_madds_m", "delta_top1")} for _, r in red.iterrows()],
            "report": str(self.dir / "report.md"), "plot": str(self.dir / "replay.png"),
        }
        if self._phase("search").is_file():
            s = json.loads(self._phase("search").read_text())
            out["search"] = {k: s.get(k) for k in ("arch", "latency_ms", "top1", "reward", "trials", "run") if k in s}
        return out


def _float(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _plain(x):
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


# ---------------------------------------------------------------------------------------------- compute (plot data)
def replay_points(run_dir: str | Path):
    """The replayed path as a table: one row per network along the way (search best, NetAdapt's chosen steps,
    each applied redesign step), with ``phase``, ``label``, ``latency_ms``, ``top1``, ``madds``, ``params``, ``arch``."""
    import pandas as pd

    from mnas.counting import count

    run_dir = Path(run_dir)
    rows = []
    search = run_dir / "search.json"
    if search.is_file():
        s = json.loads(search.read_text())
        rows.append({"phase": "search", "label": "search best", "latency_ms": s["latency_ms"], "top1": s["top1"],
                     "arch": s["arch"]})
    na_dir = run_dir / "netadapt"
    if (na_dir / "path.csv").is_file():
        from mnas.netadapt.report import path_table

        path = path_table(na_dir)
        path = path[path["kind"] != "final"]
        for _, r in path.iterrows():
            if rows and r["kind"] == "seed" and rows[-1]["arch"] == r["arch"]:
                continue  # the search best seeded NetAdapt: one point
            label = "seed" if r["kind"] == "seed" else f"NetAdapt {int(r['step'])}"
            rows.append({"phase": "netadapt", "label": label, "latency_ms": float(r["latency_ms"]),
                         "top1": float(r["top1"]), "arch": str(r["arch"])})
    else:
        na = json.loads((run_dir / "netadapt.json").read_text()) if (run_dir / "netadapt.json").is_file() else None
        if na is not None and not rows:
            rows.append({"phase": "netadapt", "label": "seed", "latency_ms": na["latency_ms"], "top1": math.nan,
                         "arch": na["arch"]})
    red = run_dir / "redesign.csv"
    if red.is_file():
        df = pd.read_csv(red)
        for _, r in df[df["applied"].astype(bool)].iterrows():
            rows.append({"phase": "redesign", "label": str(r["step"]), "latency_ms": float(r["latency_ms"]),
                         "top1": float(r["top1"]), "arch": str(r["arch"])})
    if not rows:
        raise MnasError(f"{run_dir}: no replay phase has finished here (no search.json, netadapt/ or redesign.csv)")
    for row in rows:
        c = count(parse_network(row["arch"]))
        row["madds"], row["params"] = c.madds, c.params
    cols = ["phase", "label", "latency_ms", "top1", "madds", "params", "arch"]
    return pd.DataFrame(rows, columns=cols)


def reference_points(run_dir: str | Path):
    """The published networks at their latency under the same evaluator (``references.csv``)."""
    import pandas as pd

    path = Path(run_dir) / "references.csv"
    if not path.is_file():
        raise MnasError(f"{run_dir}: no references.csv (the replay's references phase has not finished)")
    return pd.read_csv(path)


# ---------------------------------------------------------------------------------------------- draw
_REF_LABEL = {"mobilenet_v3_large": "MobileNetV3-Large", "mobilenet_v3_small": "MobileNetV3-Small",
              "mobilenet_v2": "MobileNetV2", "mnasnet_a1": "MnasNet-A1"}
_REF_MARK = {"mobilenet_v3_large": "*", "mobilenet_v3_small": "*", "mobilenet_v2": "s", "mnasnet_a1": "D"}


def plot_replay(points, refs, out_png: str | Path, title: str = "replay") -> Path:
    """Accuracy against latency: the replayed path (coloured by phase) and the published networks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 4.4), dpi=100)
    ax.plot(points["latency_ms"], points["top1"], "-", c="0.6", lw=1, zorder=1)
    for i, (phase, grp) in enumerate(points.groupby("phase", sort=False)):
        ax.scatter(grp["latency_ms"], grp["top1"], s=22, c=f"C{i}", label=f"replay: {phase}", zorder=2)
    for i, (_, r) in enumerate(points[points["phase"] != "netadapt"].iterrows()):  # labels right, left, right...
        right = i % 2 == 0
        ax.annotate(r["label"], (r["latency_ms"], r["top1"]), textcoords="offset points", xytext=(6 if right else -6, 0),
                    va="center", ha="left" if right else "right", fontsize=7)
    ref_archs = set(refs["arch"]) if "arch" in refs else set()
    for k, lab in ((0, "start"), (len(points) - 1, "replayed")):
        r = points.iloc[k]
        if r["arch"] in ref_archs:  # the seed is a published network: its own label says it
            continue
        ax.annotate(lab, (r["latency_ms"], r["top1"]), textcoords="offset points", xytext=(0, 9), fontsize=8,
                    weight="bold", ha="center")
    for _, r in refs.iterrows():
        ax.scatter([r["latency_ms"]], [r["top1"]], marker=_REF_MARK.get(r["name"], "o"), s=90, c="k", zorder=3)
        ax.annotate(_REF_LABEL.get(r["name"], r["name"]), (r["latency_ms"], r["top1"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.margins(x=0.1, y=0.08)
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel("top-1 (%) under the replay's evaluator")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, out_png)


# ---------------------------------------------------------------------------------------------- report
def side_by_side(found: Network, published: Network) -> list[dict]:
    """The two networks' paper-style rows next to each other (row i beside row i; the shorter one padded)."""
    from mnas.archtable import rows

    a, b = rows(found), rows(published)
    keys = ("operator", "exp", "out", "se", "nl", "stride")
    blank = {k: "" for k in ("input", *keys)}
    out = []
    for i in range(max(len(a), len(b))):
        ra, rb = (a[i] if i < len(a) else blank), (b[i] if i < len(b) else blank)
        same = all(str(ra[k]) == str(rb[k]) for k in keys)
        out.append({"row": i, "found": ra, "published": rb, "same": same})
    return out


def agreement(found: Network, published: Network) -> dict:
    """Per paper-table column (kernel, exp, #out, SE, NL, stride): how many blocks, index-aligned, have the
    published value; plus both block counts. Stem and head are compared separately."""
    from mnas.arch import Bneck

    def cols(b) -> dict:
        bneck = isinstance(b, Bneck)
        return {"kernel": b.kernel, "exp": b.exp if bneck else None, "out": b.out, "se": bool(bneck and b.se),
                "nl": b.act.value, "stride": b.stride}

    pairs = list(zip(found.blocks, published.blocks))
    out = {"blocks_found": len(found.blocks), "blocks_published": len(published.blocks), "compared": len(pairs)}
    for k in ("kernel", "exp", "out", "se", "nl", "stride"):
        out[k] = sum(cols(a)[k] == cols(b)[k] for a, b in pairs)
    out["stem"] = (found.stem.out, found.stem.act.value) == (published.stem.out, published.stem.act.value)
    out["head"] = found.head == published.head
    return out


def _fmt(x, spec: str = ".2f", none: str = "n/a") -> str:
    v = _float(x)
    return none if v is None else format(v, spec)


def _md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_report(run: Replay, summary: dict, points, refs) -> str:
    import pandas as pd

    c = run.config
    dev = run.predictor.device
    ev = c.evaluator
    red = pd.read_csv(run._phase("redesign"), keep_default_na=False, na_values=[""])
    na = json.loads(run._phase("netadapt").read_text())
    final = load_network(run.dir / "final.yaml")
    pub = run.published()
    timings = summary["wall_s"]
    out = [f"# Replay: MobileNetV3-{c.replay.split('-')[1].capitalize()} on `{dev}`", ""]
    out.append(f"Budget `{c.budget}`, accuracy from the `{ev}` evaluator, latency predicted from the `{dev}` table. "
               f"Wall time {sum(timings.values()):.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ").")
    out.append("")
    out.append("## Phases")
    out.append("")
    if "search" in summary:
        s = summary["search"]
        out.append(f"1. **Block-wise search** over `{c.space}`, reward `{V3_SMALL_REWARD}` (w = −0.15, target "
                   f"{c.search_target_ms:g} ms), strategy `{c.strategy}`, {c.trials} trials: best "
                   f"{_fmt(s.get('latency_ms'))} ms, top-1 {_fmt(s.get('top1'))} %.")
    seed = "the search's best" if c.replay == "v3-small" else "MnasNet-A1"
    if na.get("skipped"):
        out.append(f"1. **NetAdapt** skipped: {na['note']}.")
    else:
        out.append(f"1. **NetAdapt** from {seed} ({_fmt(na.get('seed_latency_ms'))} ms) to the published "
                   f"{_REF_LABEL[c.published]}'s {_fmt(na.get('target_ms'))} ms on `{dev}`, δ = {c.delta:g} × seed "
                   f"latency: {na.get('steps')} steps, {_fmt(na.get('latency_ms'))} ms, top-1 "
                   f"{_fmt(na.get('seed_top1'))} → {_fmt(na.get('top1'))} %.")
    out.append("1. **Manual redesign** (MobileNetV3 Sec. 5.3), one step at a time:")
    out.append("")
    rows = []
    for _, r in red.iterrows():
        paper = []
        if _float(r["paper_ms"]) is not None:
            paper.append(f"{float(r['paper_ms']):+g} ms")
        if _float(r["paper_madds_m"]) is not None:
            paper.append(f"{float(r['paper_madds_m']):+g} M")
        if bool(r["applied"]):
            rows.append([r["step"], r["description"], f"{float(r['delta_ms']):+.2f}", f"{int(r['delta_madds']) / 1e6:+.1f}",
                         f"{int(r['delta_params']) / 1e6:+.3f}", _fmt(r["delta_top1"], "+.2f"), ", ".join(paper) or "–",
                         f"{float(r['latency_ms']):.2f}"])
        else:
            rows.append([r["step"], r["description"], "skipped", "", "", "", ", ".join(paper) or "–",
                         f"not applied: {r['skipped_because']}"])
    out.append(_md_table(["step", "what", "Δ latency (ms)", "Δ madds (M)", "Δ params (M)", "Δ top-1", "paper",
                          "latency after (ms)"], rows))
    out.append("")
    out.append("## Replayed vs published")
    out.append("")
    f, p = summary["found"], summary["published"]
    out.append(_md_table(["", "params (M)", "multiply-adds (M)", f"{dev} latency (ms)", f"top-1 ({ev}, %)"], [
        ["replayed", f"{f['params'] / 1e6:.2f}", f"{f['madds'] / 1e6:.1f}", f"{f['latency_ms']:.2f}", _fmt(f["top1"])],
        [_REF_LABEL[c.published] + " (published)", f"{p['params'] / 1e6:.2f}", f"{p['madds'] / 1e6:.1f}",
         f"{p['latency_ms']:.2f}", _fmt(p["top1"])],
    ]))
    gap = f["latency_ms"] - p["latency_ms"]
    if abs(gap) >= 0.05 * p["latency_ms"]:
        out.append("")
        why = ("the search's best was already below NetAdapt's target (with α = β = −0.15 the reward keeps paying "
               "for lower latency below the target, at the accuracy exchange rate the evaluator sets), so NetAdapt "
               "had nothing to do" if na.get("skipped") else
               "NetAdapt stops at the target, and the redesign steps after it change latency again")
        out.append(f"The replayed network is {abs(gap):.1f} ms {'faster' if gap < 0 else 'slower'} than the published "
                   f"one: {why} (choose NetAdapt's target with `--target-ms` to land elsewhere).")
    out.append("")
    out.append("![latency–accuracy](replay.png)")
    out.append("")
    out.append("References under the same evaluator and latency table:")
    out.append("")
    out.append(_md_table(["network", "params (M)", "multiply-adds (M)", f"{dev} latency (ms)", f"top-1 ({ev}, %)"],
                         [[_REF_LABEL.get(r["name"], r["name"]), f"{r['params'] / 1e6:.2f}", f"{r['madds'] / 1e6:.1f}",
                           f"{r['latency_ms']:.2f}", _fmt(r["top1"])] for _, r in refs.iterrows()]))
    notes = [r for _, r in refs.iterrows() if isinstance(r.get("note"), str) and r["note"]]
    for r in notes:
        out.append(f"\n- {r['name']}: {r['note']}")
    out.append("")
    ag = agreement(final, pub)
    out.append("### Block by block (✱ = differs from the published row)")
    out.append("")
    out.append(f"{ag['blocks_found']} blocks replayed, {ag['blocks_published']} published; of the {ag['compared']} "
               "compared by position, the published value is matched in: "
               + ", ".join(f"{k} {ag[k]}/{ag['compared']}" for k in ("kernel", "exp", "out", "se", "nl", "stride"))
               + f"; stem {'matches' if ag['stem'] else 'differs'}, head {'matches' if ag['head'] else 'differs'}.")
    out.append("")
    trows = []
    for r in side_by_side(final, pub):
        a, b = r["found"], r["published"]
        trows.append([r["row"], a["input"], a["operator"], a["exp"], a["out"], a["se"], a["nl"], a["stride"],
                      "" if r["same"] else "✱", b["input"], b["operator"], b["exp"], b["out"], b["se"], b["nl"], b["stride"]])
    out.append(_md_table(["#", "input", "operator", "exp", "#out", "SE", "NL", "s", "",
                          "input", "operator", "exp", "#out", "SE", "NL", "s"], trows))
    out.append("")
    out.append(f"Replayed: `{final}`  ")
    out.append(f"Published: `{pub}`")
    out.append("")
    out.append("Data: `path.csv` (the path), `redesign.csv`, `references.csv`, "
               + ("`search/`, " if c.replay == "v3-small" else "") + "`netadapt/path.csv`.")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------- search phase
def default_search(*, space: str, reward: str, target_ms: float, trials: int, strategy: str, seed: int, out: Path,
                   device: str, evaluator, predictor, backend: str, progress: bool, evaluator_kind: str = "predictor") -> dict:
    """The block-wise search through :func:`mnas.search.runner.run_search` (a killed search resumes);
    returns its best architecture by reward."""
    from mnas.search.config import SearchConfig
    from mnas.search.runner import CONFIG_FILE, run_search

    out = Path(out)
    resume = (out / CONFIG_FILE).is_file()
    if resume:
        config = SearchConfig.load(out / CONFIG_FILE)
    else:
        config = SearchConfig(target_ms=target_ms, space=space, device=device, evaluator=evaluator_kind,
                              strategy=strategy, trials=trials, reward=reward, seed=seed, out=str(out), backend=backend)
    res = run_search(config, resume=resume, progress=progress, predictor=predictor, evaluator=evaluator,
                     log=lambda msg: _log(f"search: {msg}", progress))
    if not res.top:
        raise MnasError(f"the search in {out} finished no trial; see {out / 'trials.csv'}")
    best = res.top[0]
    return {"arch": best["arch"], "reward": best["reward"], "trials": res.completed, "trial": best["trial"],
            "search_latency_ms": best["latency_ms"], "search_top1": best["accuracy"], "run": str(out),
            "fastest_ms": res.fastest_ms, "strategy": config.strategy}


def run_replay(config: ReplayConfig | None, out: str | Path, **kw) -> dict:
    """Start (or resume) the replay in ``out`` and run every unfinished phase; returns the summary."""
    return Replay.open_or_create(out, config, **kw).run()

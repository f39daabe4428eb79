"""The replay's phases in one run folder: search (v3-small), NetAdapt, the redesign steps, the
references and the report; a finished phase is skipped on resume."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Callable

from mnas.arch import Network, load_network, parse_network, save_network
from mnas.errors import MnasError
from mnas.replay.config import REFERENCES, V3_SMALL_REWARD, ReplayConfig
from mnas.replay.diff import agreement
from mnas.replay.report import (_float, _plain, plot_replay, published_top1, reference_points, render_report,
                                replay_points)
from mnas.run import write_json as _write_json
from mnas.run import write_table, write_text


def _write_csv(df, path: Path) -> None:
    write_table(df, path)


def _log(msg: str, progress: bool) -> None:
    if progress:
        sys.stderr.write(f"replay: {msg}\n")
        sys.stderr.flush()


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
    why = step.why_not(net)  # the step's own applicability check
    if why:
        return None, why
    try:
        new = step.apply(net)
    except MnasError as e:
        return None, str(e)
    if new == net:
        return None, "already holds (no change)"
    return new, ""


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
        from mnas.run import RunDir

        rd, config = RunDir.open(run_dir, "replay", ReplayConfig, config,
                                 how_to_resume=f"resume it with the same flags (or only --out {run_dir})",
                                 how_to_start="start one with a replay name")
        return cls(rd.path, config, **kw)

    @property
    def evaluator(self):
        if self._evaluator is None:
            from mnas.run import build_evaluator

            c = self.config
            self._evaluator = build_evaluator(c.evaluator, c.evaluator_options, c.space, dataset=c.dataset,
                                              data_dir=c.data_dir, run_dir=self.dir)
        return self._evaluator

    def published(self) -> Network:
        from mnas import zoo

        return zoo.get(self.config.published)

    def target_ms(self) -> float:
        if self.config.target_ms is not None:
            return float(self.config.target_ms)
        return float(self.predictor.predict(self.published()))

    def phase_path(self, name: str) -> Path:
        """The file that marks phase ``name`` as finished (and holds its result)."""
        return self.dir / {"search": "search.json", "netadapt": "netadapt.json", "redesign": "redesign.csv",
                           "references": "references.csv", "report": "summary.json"}[name]

    # -- phases
    def run(self) -> dict:
        phases = (["search"] if self.config.replay == "v3-small" else []) + ["netadapt", "redesign", "references", "report"]
        timings = self._timings()
        for name in phases:
            if self.phase_path(name).is_file() and name != "report":
                _log(f"{name}: done before, skipped", self.progress)
                continue
            _log(f"{name}: running", self.progress)
            t0 = time.perf_counter()
            getattr(self, f"_{name}")()
            spent = time.perf_counter() - t0  # a resumed phase adds to its earlier time; the report is redone
            timings[name] = spent if name == "report" else timings.get(name, 0.0) + spent
            _write_json(self.dir / "timings.json", timings)
        return json.loads(self.phase_path("report").read_text())

    def _timings(self) -> dict:
        p = self.dir / "timings.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def _seed(self) -> tuple[Network, str]:
        """The network NetAdapt starts from, and its name."""
        if self.config.replay == "v3-large":
            from mnas import zoo

            return zoo.get("mnasnet_a1"), "MnasNet-A1"
        s = json.loads(self.phase_path("search").read_text())
        return parse_network(s["arch"]), "search best"

    def _search(self) -> None:
        c = self.config
        out = self.dir / "search"
        result = self._search_fn(space=c.space, reward=V3_SMALL_REWARD, target_ms=c.search_target_ms,
                              trials=c.trials, strategy=c.strategy, seed=c.seed, out=out, device=c.device,
                              evaluator=self.evaluator, predictor=self.predictor, backend=c.backend,
                              progress=self.progress, evaluator_kind=c.evaluator,
                              evaluator_options=c.evaluator_options, dataset=c.dataset, data_dir=c.data_dir)
        net = parse_network(result["arch"])
        save_network(net, self.dir / "search_best.yaml")
        _write_json(self.phase_path("search"), {**result, **measure(net, self.predictor, self.evaluator)})

    def _netadapt(self) -> None:
        from mnas.netadapt import NetAdapt, NetAdaptConfig

        c = self.config
        seed, seed_name = self._seed()
        target = self.target_ms()
        out = self.dir / "netadapt"
        seed_latency = float(self.predictor.predict(seed))
        if target >= seed_latency:  # nothing to shrink: the seed is already at or under the target
            save_network(seed, self.dir / "netadapt_result.yaml")
            _write_json(self.phase_path("netadapt"), {"skipped": True, "arch": str(seed), "seed": seed_name,
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
                                evaluator_options=opts, budget=c.budget, seed=c.seed, **data)
            run = NetAdapt.create(out, na, **kw)
        summary = run.run(backend=c.backend if evaluator == "finetune" else "local")
        net = parse_network(summary["arch"])
        save_network(net, self.dir / "netadapt_result.yaml")
        _write_json(self.phase_path("netadapt"), {**summary, "seed": seed_name})

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
        _write_csv(pd.DataFrame(rows), self.phase_path("redesign"))

    def _references(self) -> None:
        import pandas as pd

        from mnas import zoo

        rows = []
        published = published_top1()
        for name in REFERENCES[self.config.replay]:
            net = zoo.get(name)
            rows.append({"name": name, "arch": str(net), **measure(net, self.predictor, self.evaluator),
                         "published_top1": published.get(name, math.nan)})
        _write_csv(pd.DataFrame(rows), self.phase_path("references"))

    def _report(self) -> None:
        points = replay_points(self.dir)
        _write_csv(points, self.dir / "path.csv")
        refs = reference_points(self.dir)
        plot_replay(points, refs, self.dir / "replay.png", title=f"replay {self.config.replay} on {self.predictor.device}",
                    evaluator=self.config.evaluator)
        summary = self.summary()
        write_text(self.dir / "report.md", render_report(self, summary, points, refs))
        _write_json(self.phase_path("report"), summary)

    # -- results
    def summary(self) -> dict:
        import pandas as pd

        final = load_network(self.dir / "final.yaml")
        refs = pd.read_csv(self.phase_path("references"))
        pub = refs[refs["name"] == self.config.published].iloc[0]
        red = pd.read_csv(self.phase_path("redesign"), keep_default_na=False, na_values=[""])
        found = red.iloc[-1]
        netadapt = json.loads(self.phase_path("netadapt").read_text())
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
        if self.phase_path("search").is_file():
            s = json.loads(self.phase_path("search").read_text())
            out["search"] = {k: s.get(k) for k in ("arch", "latency_ms", "top1", "reward", "trials", "run") if k in s}
        return out



# ---------------------------------------------------------------------------------------------- search phase
def default_search(*, space: str, reward: str, target_ms: float, trials: int, strategy: str, seed: int, out: Path,
                   device: str, evaluator, predictor, backend: str, progress: bool, evaluator_kind: str = "predictor",
                   evaluator_options: dict | None = None, dataset: str | None = None, data_dir: str | None = None) -> dict:
    """The block-wise search through :func:`mnas.search.runner.run_search` (a killed search resumes);
    returns its best architecture by reward."""
    from mnas.search.config import SearchConfig
    from mnas.search.runner import CONFIG_FILE, run_search

    out = Path(out)
    resume = (out / CONFIG_FILE).is_file()
    if resume:
        config = SearchConfig.load(out / CONFIG_FILE)
    else:
        # everything that builds the evaluator is saved, so that `mnas search --config <out>/config.yaml` redoes this search
        config = SearchConfig(target_ms=target_ms, space=space, device=device, evaluator=evaluator_kind,
                              evaluator_options=dict(evaluator_options or {}), dataset=dataset, data_dir=data_dir,
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

"""The NetAdapt loop (Yang et al. 2018, as used by MobileNetV3): shrink, fine-tune, choose, repeat.

Each step, starting from the current network ``N`` (latency ``L``):

1. :func:`~mnas.netadapt.proposals.propose`: one proposal per shrinkable width
   (an expansion layer, or a residual group's bottleneck), each cut by the
   fewest channels (multiples of 8) that lower predicted latency by ``δ``;
2. every proposal inherits ``N``'s largest-L2-norm filters
   (:mod:`~mnas.netadapt.surgery`) and is fine-tuned for ``finetune_steps``
   (the paper's T, 10,000), in parallel (:mod:`~mnas.netadapt.finetune`);
   or, with another evaluator (``predictor``, ``supernet``...), is scored by it;
3. the winner maximises ``ΔAcc / |ΔLatency|`` (``select="ratio"``, MobileNetV3)
   or accuracy (``select="accuracy"``, the original NetAdapt);

until the predicted latency is at or below the target; then an optional longer
fine-tune (``final_steps``).

A run folder holds everything, as plain files::

    config.yaml       the settings (a resumed run reads them back)
    path.csv          one row per proposal per step (+ the seed and final rows)
    step_000.yaml     the seed; step_NNN.yaml the network after step NNN
    step_NNN.pt       its weights (finetune evaluator)
    pending/          proposals finished within an unfinished step (reused on resume)
    final.yaml/.pt    after the final fine-tune

A killed run resumes from its last finished step, and reuses every proposal of
the interrupted step that had already finished.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mnas.accuracy.base import EVALUATORS as ACCURACY_EVALUATORS
from mnas.arch import Network, load_network, parse_network, save_network
from mnas.configs import DictConfig
from mnas.errors import MnasError
from mnas.run import BUDGETS as RUN_BUDGETS
from mnas.netadapt.proposals import (
    MIN_WIDTH,
    Proposal,
    check_latency_table,
    minimal_network,
    propose,
    residual_groups,
)

SELECT = ("ratio", "accuracy")
EVALUATORS = ("finetune", *ACCURACY_EVALUATORS)  # fine-tuning, or any registered accuracy evaluator
COLUMNS = ("step", "proposal", "kind", "layers", "channels_before", "channels_after", "latency_ms",
           "latency_drop_ms", "top1", "loss", "delta_top1", "score", "chosen", "cost_s", "arch")

# Fine-tuning budgets: a view of the one budget table (mnas/run.py). "paper" is the MobileNetV3 setting
# (T = 10,000 steps per proposal).
BUDGETS: dict[str, dict] = {name: b.netadapt for name, b in RUN_BUDGETS.items()}


@dataclass
class NetAdaptConfig(DictConfig):
    """Everything that changes a run's result (saved as ``config.yaml``)."""

    arch: str  # the seed, as a text form
    device: str
    target_ms: float
    delta: float = 0.01  # δ as a fraction of the seed's latency
    select: str = "ratio"
    evaluator: str = "finetune"
    evaluator_options: dict = field(default_factory=dict)
    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int = 32
    budget: str = "default"
    pretrain_steps: int | None = None
    finetune_steps: int | None = None
    final_steps: int | None = None
    batch_size: int | None = None
    train_size: int | None = None
    val_size: int | None = None
    lr: float = 0.05  # pretraining / final fine-tune (cosine)
    finetune_lr: float = 0.01  # per-proposal fine-tune (constant)
    min_width: int = MIN_WIDTH
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget not in BUDGETS:
            raise MnasError(f"unknown budget {self.budget!r} (choose one of {', '.join(BUDGETS)})")
        for k, v in BUDGETS[self.budget].items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        if self.select not in SELECT:
            raise MnasError(f"unknown selection {self.select!r} (choose ratio or accuracy)")
        if self.evaluator != "finetune" and self.evaluator not in ACCURACY_EVALUATORS:  # read now: registrations count
            raise MnasError(f"unknown evaluator {self.evaluator!r} (choose one of finetune, {', '.join(ACCURACY_EVALUATORS)})")
        if not 0 < self.delta < 1:
            raise MnasError(f"--delta is a fraction of the seed's latency, in (0, 1); got {self.delta}")
        if self.target_ms <= 0:
            raise MnasError(f"--target-ms must be positive, got {self.target_ms}")
        if self.min_width < 1:
            raise MnasError(f"min_width must be >= 1, got {self.min_width}")
        for k in ("pretrain_steps", "finetune_steps", "final_steps"):
            if getattr(self, k) < 0:
                raise MnasError(f"{k} must be >= 0")

    @property
    def seed_net(self) -> Network:
        return parse_network(self.arch)

    def data_spec(self):
        from mnas.netadapt.finetune import DataSpec

        return DataSpec(self.dataset, self.data_dir, self.image_size, self.val_size, self.train_size, self.seed)



def minimum_latency(net: Network, predictor, min_width: int = MIN_WIDTH) -> tuple[float, Network]:
    """The lowest predicted latency NetAdapt can reach: every width at its minimum (topology kept).

    Shrinks expansions first, then groups, and the other way round; returns the lower of the two.
    """
    cands = [minimal_network(net, min_width, first) for first in ("exp", "group")]
    lats = [float(predictor.predict(n)) for n in cands]
    i = min(range(len(cands)), key=lats.__getitem__)
    return lats[i], cands[i]


def _bar(total: int | None, desc: str, progress: bool, unit: str = "it"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not progress, leave=False)


class NetAdapt:
    """One run folder: :meth:`create` a new run or :meth:`open` an existing one, then :meth:`run`."""

    def __init__(self, run_dir: Path, config: NetAdaptConfig, predictor=None, evaluator=None, progress: bool = True):
        self.dir = Path(run_dir)
        self.config = config
        if predictor is None:
            from mnas.latency import get_predictor

            predictor = get_predictor(config.device)
        self.predictor = predictor
        self._evaluator = evaluator
        self.progress = progress
        self.seed = config.seed_net
        check_latency_table(predictor, self.seed)
        self.seed_latency = float(predictor.predict(self.seed))
        self.delta_ms = config.delta * self.seed_latency

    # ------------------------------------------------------------------ creation / resume
    @classmethod
    def create(cls, run_dir: str | Path, config: NetAdaptConfig, **kw) -> "NetAdapt":
        from mnas.io import claim_run_dir
        from mnas.run import RunDir

        run_dir = Path(run_dir)
        claim_run_dir(run_dir, "NetAdapt")  # one process per run folder, before any write (mnas/io.py)
        if (run_dir / "config.yaml").exists():
            raise MnasError(f"{run_dir} already holds a NetAdapt run: resume it with --resume {run_dir} or choose another --out")
        run = cls(run_dir, config, **kw)
        run.check_target()
        run.dir.mkdir(parents=True, exist_ok=True)
        RunDir(run.dir).save_config(config)  # atomically (mnas/run.py: the run folder of search, NetAdapt, replay)
        return run

    @classmethod
    def open(cls, run_dir: str | Path, **kw) -> "NetAdapt":
        from mnas.io import claim_run_dir
        from mnas.run import RunDir

        run_dir = Path(run_dir)
        path = run_dir / "config.yaml"
        if not path.is_file():
            raise MnasError(f"{run_dir} is not a NetAdapt run folder (no config.yaml); start one with --out {run_dir}")
        claim_run_dir(run_dir, "NetAdapt", create=False)  # one process per run folder (mnas/io.py)

        return cls(run_dir, RunDir(run_dir).load_config(NetAdaptConfig, "NetAdapt"), **kw)

    def check_target(self) -> None:
        c, dev = self.config, self.predictor.device
        if c.target_ms >= self.seed_latency:
            raise MnasError(f"target {c.target_ms:g} ms is not below the seed's predicted {self.seed_latency:.2f} ms on "
                            f"{dev}: nothing to do (choose --target-ms below {self.seed_latency:.2f})")
        floor, _ = minimum_latency(self.seed, self.predictor, c.min_width)
        if c.target_ms < floor:
            raise MnasError(f"target {c.target_ms:g} ms is below {floor:.2f} ms, the predicted latency on {dev} with "
                            f"every width at its minimum ({c.min_width} channels); choose --target-ms >= {math.ceil(floor * 100) / 100:.2f}")

    # ------------------------------------------------------------------ files
    def step_path(self, step: int, suffix: str) -> Path:
        return self.dir / f"step_{step:03d}{suffix}"

    @property
    def table_path(self) -> Path:
        return self.dir / "path.csv"

    def read_table(self):
        import pandas as pd

        if not self.table_path.is_file():
            return pd.DataFrame(columns=list(COLUMNS))
        return pd.read_csv(self.table_path, keep_default_na=True)

    def _append_rows(self, rows: list[dict]) -> None:
        import pandas as pd

        from mnas.io import atomic_output

        df = pd.DataFrame(rows, columns=list(COLUMNS))
        # the whole table rewritten through a temporary name (it is small): an append cut short by a
        # kill or a full disk would leave a half row that the next resume could not read
        old = self.table_path.read_text() if self.table_path.is_file() else ""
        with atomic_output(self.table_path) as tmp:
            with open(tmp, "w", newline="") as f:
                f.write(old)
                df.to_csv(f, header=not old, index=False)

    def _save_state(self, state: dict | None, path: Path) -> None:
        if state is None:
            return
        import torch

        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def _save_net(self, net: Network, path: Path) -> None:
        tmp = path.with_name(path.stem + ".tmp" + path.suffix)
        save_network(net, tmp)
        tmp.replace(path)

    @property
    def uses_weights(self) -> bool:
        return self.config.evaluator == "finetune"

    def last_step(self) -> int | None:
        """The last finished step (its row in the table and its files on disk); later rows are dropped."""
        df = self.read_table()
        if df.empty:
            return None
        done = [int(s) for s in df.loc[df["chosen"].astype(bool) & (df["kind"] != "final"), "step"]]
        done = [s for s in sorted(done) if self.step_path(s, ".yaml").is_file()
                and (not self.uses_weights or self.step_path(s, ".pt").is_file())]
        last = done[-1] if done else None
        if last is None:
            keep = df.iloc[0:0]
        else:
            final = (df["kind"] == "final") & (self.dir / "final.yaml").is_file()
            keep = df[((df["step"] <= last) & (df["kind"] != "final")) | final]
        if len(keep) != len(df):
            from mnas.io import atomic_output

            with atomic_output(self.table_path) as tmp:
                keep.to_csv(tmp, index=False)
        for folder in (self.dir / "pending").glob("step_*"):  # leftovers of steps that did finish
            if last is not None and int(folder.name.split("_")[1]) <= last:
                shutil.rmtree(folder, ignore_errors=True)
        return last

    # ------------------------------------------------------------------ evaluation
    def _backend(self, backend, workers):
        from mnas.netadapt.finetune import make_backend

        return make_backend(backend, workers) if isinstance(backend, str) else backend

    @property
    def evaluator(self):
        """The accuracy evaluator scoring proposals (built on first use by :func:`mnas.run.build_evaluator`)."""
        return self._evaluator_obj()

    def _evaluator_obj(self):
        if self._evaluator is None:
            from mnas.accuracy import evaluator_options
            from mnas.run import build_evaluator

            c = self.config
            # dataset / data_dir are NetAdapt's own settings (its fine-tuning data, with a default): they feed an
            # evaluator that trains, and are not evaluator options for one that does not
            allowed = evaluator_options(c.evaluator)
            data = {k: getattr(c, k) for k in ("dataset", "data_dir")
                    if k in allowed and k not in c.evaluator_options and getattr(c, k) is not None}
            self._evaluator = build_evaluator(c.evaluator, c.evaluator_options, None, run_dir=self.dir, **data)
        return self._evaluator

    def _train_spec(self, steps: int, lr: float, schedule: str, seed: int):
        from mnas.netadapt.finetune import TrainSpec

        return TrainSpec(steps=steps, batch_size=self.config.batch_size, lr=lr, schedule=schedule, seed=seed)

    # ------------------------------------------------------------------ the loop
    def run(self, backend="local", workers: int = 1, stop_after: int | None = None) -> dict:
        """Run (or continue) until the target is met; ``stop_after`` ends after that step (tests, budgets)."""
        t0 = time.perf_counter()
        be = self._backend(backend, workers) if self.uses_weights else None
        try:
            last = self.last_step()
            if last is None:
                net, state, top1 = self._seed_step(be)
                last = 0
            else:
                net = load_network(self.step_path(last, ".yaml"))
                state = self._load_state(self.step_path(last, ".pt"))
                df = self.read_table()
                top1 = float(df.loc[(df["step"] == last) & df["chosen"].astype(bool), "top1"].iloc[0])
            latency = float(self.predictor.predict(net))
            bar = _bar(None, "netadapt", self.progress, unit="step")
            bar.set_postfix(latency_ms=f"{latency:.2f}", target=self.config.target_ms)
            step = last
            while latency > self.config.target_ms:
                if stop_after is not None and step >= stop_after:
                    bar.close()
                    return self.summary(time.perf_counter() - t0, finished=False)
                step += 1
                net, state, latency, top1 = self._step(step, net, state, latency, top1, be)
                bar.update()
                bar.set_postfix(latency_ms=f"{latency:.2f}", top1=f"{top1:.1f}", target=self.config.target_ms)
            bar.close()
            self._final(step, net, state, latency, be)
        finally:
            if be is not None:
                be.close()
        return self.summary(time.perf_counter() - t0, finished=True)

    def _load_state(self, path: Path):
        if not self.uses_weights:
            return None
        import torch

        return torch.load(path, weights_only=True)

    def _seed_step(self, be):
        c = self.config
        if self.uses_weights:
            from mnas.netadapt.finetune import make_job

            job = make_job(str(self.seed), c.data_spec(), self._train_spec(c.pretrain_steps, c.lr, "cosine", c.seed),
                           None, key="seed")
            res = next(iter(be.map([job])))
            state, top1, loss, cost = res["state"], res["top1"], res["loss"], res["cost_s"]
        else:
            r = self._evaluator_obj().evaluate(self.seed)
            state, top1, loss, cost = None, r["top1"], r["loss"], r["cost_s"]
        self._save_net(self.seed, self.step_path(0, ".yaml"))
        self._save_state(state, self.step_path(0, ".pt"))
        self._append_rows([{"step": 0, "proposal": "seed", "kind": "seed", "layers": "", "channels_before": math.nan,
                            "channels_after": math.nan, "latency_ms": self.seed_latency, "latency_drop_ms": 0.0,
                            "top1": top1, "loss": loss, "delta_top1": 0.0, "score": math.nan, "chosen": True,
                            "cost_s": cost, "arch": str(self.seed)}])
        return self.seed, state, top1

    def _step(self, step: int, net: Network, state, latency: float, top1: float, be):
        c = self.config
        props = propose(net, self.predictor, self.delta_ms, c.min_width, latency)
        if not props:
            raise MnasError(f"step {step}: no proposal lowers the predicted latency by δ = {self.delta_ms:.3f} ms "
                            f"(stuck at {latency:.2f} ms > target {c.target_ms:g} ms); the path so far is in "
                            f"{self.table_path}: lower --delta or raise --target-ms")
        results = self._evaluate_proposals(step, net, state, props, be)
        # An evaluator that flags a proposal as outside what it knows (the imagenet estimate on an
        # expansion narrower than its input, say) cannot vouch for its score: such proposals win
        # only when every proposal is flagged.
        trusted = any(not results[p.name].get("extrapolated", False) for p in props)
        rows, best, best_key = [], None, None
        for p in props:
            r = results[p.name]
            drop = latency - p.latency_ms
            d_acc = r["top1"] - top1
            score = d_acc / drop if c.select == "ratio" else r["top1"]
            key = (not (trusted and r.get("extrapolated", False)), score, -p.latency_ms)
            if best_key is None or key > best_key:
                best, best_key = p, key
            rows.append({"step": step, "proposal": p.name, "kind": p.kind, "layers": p.slot.layers,
                         "channels_before": p.slot.width, "channels_after": p.after, "latency_ms": p.latency_ms,
                         "latency_drop_ms": drop, "top1": r["top1"], "loss": r["loss"], "delta_top1": d_acc,
                         "score": score, "chosen": False, "cost_s": r["cost_s"], "arch": str(p.net)})
        for row in rows:
            row["chosen"] = row["proposal"] == best.name
        win = results[best.name]
        self._save_net(best.net, self.step_path(step, ".yaml"))
        self._save_state(win.get("state"), self.step_path(step, ".pt"))
        self._append_rows(rows)
        shutil.rmtree(self._pending_dir(step), ignore_errors=True)
        if (self.dir / "pending").is_dir() and not any((self.dir / "pending").iterdir()):
            (self.dir / "pending").rmdir()
        return best.net, win.get("state"), best.latency_ms, win["top1"]

    def _pending_dir(self, step: int) -> Path:
        return self.dir / "pending" / f"step_{step:03d}"

    def _evaluate_proposals(self, step: int, net: Network, state, props: list[Proposal], be) -> dict[str, dict]:
        """Results per proposal name; finished ones are saved under ``pending/`` at once and reused on resume."""
        import json

        pend = self._pending_dir(step)
        results: dict[str, dict] = {}
        todo = []
        for i, p in enumerate(props):
            meta = pend / f"{_fname(p.name)}.json"
            if meta.is_file():
                r = json.loads(meta.read_text())
                if r.get("arch") == str(p.net) and (not self.uses_weights or (pend / f"{_fname(p.name)}.pt").is_file()):
                    if self.uses_weights:
                        r["state"] = self._load_state(pend / f"{_fname(p.name)}.pt")
                    results[p.name] = r
                    continue
            todo.append((i, p))
        bar = _bar(len(props), f"step {step}", self.progress, unit="proposal")
        bar.update(len(results))
        c = self.config

        def keep(p: Proposal, r: dict) -> None:
            pend.mkdir(parents=True, exist_ok=True)
            self._save_state(r.get("state"), pend / f"{_fname(p.name)}.pt")
            info = {k: v for k, v in r.items() if k != "state"}
            info["arch"] = str(p.net)
            tmp = pend / f"{_fname(p.name)}.json.tmp"
            tmp.write_text(json.dumps(info, default=float))
            tmp.replace(pend / f"{_fname(p.name)}.json")
            results[p.name] = r
            bar.update()

        if self.uses_weights:
            from mnas.model import build
            from mnas.netadapt.finetune import make_job, num_classes
            from mnas.netadapt.surgery import inherited_state

            model = build(net, num_classes(c.data_spec()))
            model.load_state_dict(state)
            jobs, by_key = [], {}
            for i, p in todo:
                spec = self._train_spec(c.finetune_steps, c.finetune_lr, "constant", c.seed + 1000 * step + i)
                jobs.append(make_job(str(p.net), c.data_spec(), spec, inherited_state(model, net, p.net), key=p.name))
                by_key[p.name] = p
            for r in be.map(jobs):
                keep(by_key[r["key"]], r)
        else:
            ev = self._evaluator_obj()
            nets = [p.net for _, p in todo]
            many = getattr(ev, "evaluate_many", None)  # one matrix product for the imagenet estimate
            rs = (many(nets) if many else [ev.evaluate(n) for n in nets]) if nets else []
            for (_, p), r in zip(todo, rs):
                keep(p, {"top1": r["top1"], "loss": r["loss"], "cost_s": r["cost_s"],
                         "extrapolated": bool(r.get("extrapolated", False))})
        bar.close()
        return results

    def _final(self, step: int, net: Network, state, latency: float, be) -> None:
        c = self.config
        if not self.uses_weights or not c.final_steps or (self.dir / "final.yaml").is_file():
            return
        from mnas.netadapt.finetune import make_job

        job = make_job(str(net), c.data_spec(), self._train_spec(c.final_steps, c.finetune_lr, "cosine", c.seed + 7),
                       state, key="final")
        r = next(iter(be.map([job])))
        self._save_state(r["state"], self.dir / "final.pt")
        self._save_net(net, self.dir / "final.yaml")
        self._append_rows([{"step": step + 1, "proposal": "final", "kind": "final", "layers": "",
                            "channels_before": math.nan, "channels_after": math.nan, "latency_ms": latency,
                            "latency_drop_ms": 0.0, "top1": r["top1"], "loss": r["loss"], "delta_top1": math.nan,
                            "score": math.nan, "chosen": True, "cost_s": r["cost_s"], "arch": str(net)}])

    # ------------------------------------------------------------------ results
    def summary(self, wall_s: float, finished: bool) -> dict:
        df = self.read_table()
        path = df[df["chosen"].astype(bool)]
        last = path.iloc[-1]
        return {
            "run": str(self.dir),
            "device": self.predictor.device,
            "finished": finished and float(last["latency_ms"]) <= self.config.target_ms,
            "steps": int(path.loc[path["kind"] != "final", "step"].max()),
            "target_ms": self.config.target_ms,
            "delta_ms": self.delta_ms,
            "seed_latency_ms": self.seed_latency,
            "latency_ms": float(last["latency_ms"]),
            "seed_top1": float(path.iloc[0]["top1"]),
            "top1": float(last["top1"]),
            "arch": str(last["arch"]),
            "groups": [g.name for g in residual_groups(self.seed)],
            "wall_s": wall_s,
        }


def _fname(name: str) -> str:
    return name.replace(":", "_").replace("+", "-")


def run_netadapt(config: NetAdaptConfig, out: str | Path, *, backend="local", workers: int = 1,
                 stop_after: int | None = None, predictor=None, evaluator=None, progress: bool = True) -> dict:
    """Start a new run in ``out`` and run it to the target."""
    run = NetAdapt.create(out, config, predictor=predictor, evaluator=evaluator, progress=progress)
    return run.run(backend, workers, stop_after)


def resume_netadapt(run_dir: str | Path, *, backend="local", workers: int = 1, stop_after: int | None = None,
                    predictor=None, evaluator=None, progress: bool = True) -> dict:
    """Continue the run in ``run_dir`` from its last finished step."""
    run = NetAdapt.open(run_dir, predictor=predictor, evaluator=evaluator, progress=progress)
    return run.run(backend, workers, stop_after)

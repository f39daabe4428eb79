"""One run lifecycle for search, NetAdapt and the replays.

Every orchestrator (``mnas search``, ``mnas netadapt``, ``mnas replay``) goes through the
same four steps, defined here once:

* :func:`parse_options` — ``KEY=VALUE`` flags (``--evaluator-option``, ``--eval-option``,
  ``--strategy-option``, ``mnas eval --option``) into a dict, values read as YAML;
* :func:`build_evaluator` — the accuracy evaluator from its kind, options, space and
  dataset: a dataset or data dir given to an evaluator that takes none is an error
  (the same one-line error everywhere), and a cached evaluator caches in the run folder's
  :data:`EVAL_CACHE`;
* :class:`RunDir` — the run folder: claimed by one process (:func:`mnas.io.claim_run_dir`),
  its ``config.yaml`` written atomically once and read back on resume (other settings on
  resume are an error naming them), tables / JSON / text written atomically;
* :data:`BUDGETS` — the one budget table: per budget name, the replay's phase settings and
  NetAdapt's fine-tuning steps.

Nothing is read at import time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from mnas.errors import MnasError

EVAL_CACHE = "eval_cache.db"  # an evaluator's cache inside a run folder (search, NetAdapt and replay alike)
CONFIG_FILE = "config.yaml"
# evaluators that answer from a table or a fitted model in microseconds: not worth a cache file
INSTANT_EVALUATORS = frozenset({"predictor", "table", "anb", "imagenet", "ofa", "madds"})


# ---------------------------------------------------------------------------------------------- budgets
@dataclass(frozen=True)
class Budget:
    """How much work each phase does under one budget name (``--budget``)."""

    evaluator: str  # default accuracy signal of a replay (search, NetAdapt, report)
    delta: float  # NetAdapt's δ in a replay, a fraction of the seed's latency
    trials: int  # search trials (v3-small replay)
    strategy: str  # search strategy (MnasNet's controller is "rl")
    backend: str  # "local" or "ray"
    netadapt: dict = field(default_factory=dict)  # NetAdapt's fine-tuning steps (NetAdaptConfig fields)


BUDGETS: dict[str, Budget] = {
    # seconds: tests and a first look. δ = 5 % keeps NetAdapt to a few steps.
    "smoke": Budget(evaluator="imagenet", delta=0.05, trials=24, strategy="random", backend="local",
                    netadapt=dict(pretrain_steps=200, finetune_steps=10, final_steps=0, batch_size=32, train_size=512,
                                  val_size=200)),
    # minutes on 2 CPU cores: the estimated ImageNet top-1 (instant) scores the search, NetAdapt's
    # proposals and the report; NetAdapt with the paper's δ = 1 %.
    "default": Budget(evaluator="imagenet", delta=0.01, trials=800, strategy="rl", backend="local",
                      netadapt=dict(pretrain_steps=1500, finetune_steps=300, final_steps=1000, batch_size=64,
                                    train_size=None, val_size=1000)),
    # as the papers: ~8,000 sampled models; NetAdapt fine-tuning T = 10,000 steps per proposal (MobileNetV3), on Ray.
    "paper": Budget(evaluator="train", delta=0.01, trials=8000, strategy="rl", backend="ray",
                    netadapt=dict(pretrain_steps=10000, finetune_steps=10000, final_steps=20000, batch_size=128,
                                  train_size=None, val_size=5000)),
}


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise MnasError(f"unknown budget {name!r} (choose one of {', '.join(BUDGETS)})")
    return BUDGETS[name]


# ---------------------------------------------------------------------------------------------- options
def parse_options(items: Iterable[str] | None, flag: str = "--option") -> dict:
    """``["epochs=3", "lr=0.1"]`` → ``{"epochs": 3, "lr": 0.1}`` (values read as YAML; ``-`` in keys → ``_``)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise MnasError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            from mnas.io import safe_yaml

            out[key.replace("-", "_")] = safe_yaml(value, f"{flag} {key}")
        except yaml.YAMLError as e:
            raise MnasError(f"{flag} {item!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
    return out


# ---------------------------------------------------------------------------------------------- evaluator
def build_evaluator(kind: str, options: dict | None = None, space: Any = None, *, dataset: str | None = None,
                    data_dir: str | None = None, run_dir: str | Path | None = None):
    """The accuracy evaluator ``kind`` with ``options``, for ``space``, on ``dataset``.

    ``space`` (a space object or name) is the evaluator's space; an explicit ``space`` option wins.
    ``dataset``/``data_dir`` given to an evaluator without such an option is an error.
    Given ``run_dir``, an evaluator that caches (and is not one of the :data:`INSTANT_EVALUATORS`)
    caches in ``run_dir/``:data:`EVAL_CACHE` unless ``options`` names a cache, so a killed run finds
    its evaluations again.
    """
    import mnas.accuracy as accuracy

    opts = dict(options or {})
    allowed = accuracy.evaluator_options(kind)
    for key, value in (("dataset", dataset), ("data_dir", data_dir)):
        if value is None:
            continue
        if key not in allowed:
            raise MnasError(f"--{key.replace('_', '-')} does not apply to the {kind} evaluator "
                            f"(it takes: {', '.join(sorted(allowed)) or 'no options'}); drop it or choose another --evaluator")
        opts.setdefault(key, value)
    if run_dir is not None and kind not in INSTANT_EVALUATORS and "cache" in allowed and "cache" not in opts:
        opts["cache"] = str(Path(run_dir) / EVAL_CACHE)
    if "space" in opts:
        space = opts.pop("space")
    return accuracy.get_evaluator(kind, space=space, **opts)


# ---------------------------------------------------------------------------------------------- reference points
ZOO_REFERENCES = ("mobilenet_v3_small", "mobilenet_v3_large", "mobilenet_v2", "mnasnet_a1")


def zoo_references(predictor, names: Iterable[str] | None = None, *, evaluator=None, published: bool = False):
    """Zoo networks at their predicted latency, the reference points a plot draws beside a run.

    Columns ``name``, ``latency_ms``, ``accuracy`` (``evaluator``'s score when it is given and can score
    the network, else NaN) and ``published`` (with ``published``, the published ImageNet top-1 at width
    1.0 and 224 px, else NaN). Networks the latency model cannot price are left out.
    """
    import math

    import pandas as pd

    from mnas import zoo
    from mnas.plots import published_top1

    top1 = published_top1() if published else {}
    rows = []
    for name in (ZOO_REFERENCES if names is None else names):
        try:
            net = zoo.get(name)
            rows.append({"name": name, "latency_ms": float(predictor.predict(net)), "accuracy": math.nan,
                         "published": top1.get(name, math.nan), "net": net})
        except MnasError:
            continue
    if evaluator is not None and rows:
        for r in rows:
            try:
                r["accuracy"] = float(evaluator.evaluate(r["net"])["top1"])
            except MnasError:  # a network the evaluator cannot score (another space, another dataset)
                pass
    return pd.DataFrame([{k: v for k, v in r.items() if k != "net"} for r in rows],
                        columns=["name", "latency_ms", "accuracy", "published"])


# ---------------------------------------------------------------------------------------------- files
def json_default(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def write_json(path: str | Path, obj: Any) -> Path:
    from mnas.io import atomic_write_text

    atomic_write_text(Path(path), json.dumps(obj, indent=2, default=json_default))
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    from mnas.io import atomic_write_text

    atomic_write_text(Path(path), text)
    return Path(path)


def write_table(df, path: str | Path) -> Path:
    """A DataFrame as CSV, atomically (readers never see half a table)."""
    from mnas.io import atomic_output

    with atomic_output(Path(path)) as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def plain(x: Any) -> Any:
    """A numpy/pandas scalar as a plain Python value; NaN as None."""
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


class RunDir:
    """A run folder: one process at a time, its settings in ``config.yaml``, results written atomically.

    :meth:`open` creates the folder and saves ``config`` (a :class:`~mnas.configs.DictConfig`), or
    reopens the run already there: its saved config wins, a different one given is an error
    naming the settings that differ.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @classmethod
    def open(cls, path: str | Path, kind: str, config_cls: Any, config=None, *, how_to_resume: str = "",
             how_to_start: str = "start a new one first"):
        """``(RunDir, config)`` for a new run (``config`` given) or the run in ``path`` (its saved config)."""
        from mnas.io import claim_run_dir

        run = cls(path)
        claim_run_dir(run.path, kind, create=config is not None)  # one process per run folder (mnas/io.py)
        if run.config_path.is_file():
            saved = run.load_config(config_cls, kind)
            if config is not None and config.to_dict() != saved.to_dict():
                diff = [k for k, v in config.to_dict().items() if saved.to_dict().get(k) != v]
                raise MnasError(f"{run.path} holds a {kind} with other settings ({', '.join(diff)}); "
                                + (how_to_resume or "resume it with the same settings") + " or choose another --out")
            return run, saved
        if config is None:
            raise MnasError(f"{run.path} is not a {kind} run folder (no {CONFIG_FILE}); {how_to_start}")
        run.path.mkdir(parents=True, exist_ok=True)
        run.save_config(config)
        return run, config

    def load_config(self, config_cls: Any, kind: str = "run"):
        """The saved ``config.yaml`` as ``config_cls`` (a damaged or wrong file: one line naming it)."""
        from mnas.io import load_yaml_file

        return config_cls.from_dict(load_yaml_file(self.config_path, f"{kind} config YAML") or {},
                                    where=str(self.config_path))

    def save_config(self, config, name: str = CONFIG_FILE) -> Path:
        """``config`` as YAML (atomically), under the comment line of its ``yaml_header(path)`` if it has one."""
        import yaml

        path = self.path / name
        header = config.yaml_header(path) if hasattr(config, "yaml_header") else ""
        return write_text(path, header + yaml.safe_dump(config.to_dict(), sort_keys=False))

    def write_json(self, name: str, obj: Any) -> Path:
        return write_json(self.path / name, obj)

    def write_table(self, name: str, df) -> Path:
        return write_table(df, self.path / name)

    def write_text(self, name: str, text: str) -> Path:
        return write_text(self.path / name, text)

    def read_json(self, name: str) -> Any:
        return read_json(self.path / name)

"""The evaluator interface: an architecture in, metrics out, cached by architecture.

Every accuracy signal (proxy training, a weight-sharing supernet, a fitted
predictor, a benchmark table) is an :class:`Evaluator`::

    ev = get_evaluator("train", space="v3_small", dataset="digits", epochs=1)
    r = ev.evaluate(net)            # {"top1": 71.3, "loss": 0.93, "cost_s": 4.1, ...}
    ev.evaluate(net)["cached"]      # True: nothing is computed twice
    ev.cache_hits                   # 1

A subclass sets :attr:`Evaluator.name`, implements :meth:`Evaluator._evaluate`
and returns its configuration from :meth:`Evaluator.config` (everything that
changes the result: the cache key is the evaluator's name, a digest of that
configuration and ``str(net)``). With ``cache=PATH`` results persist in an
SQLite file (one row per architecture and configuration, value as JSON), so a
killed search or a second run finds them again.

Evaluators are created by name through :func:`get_evaluator`, which imports the
implementing module only when asked (a name -> ``"module:Class"`` table, as Ray
Tune does for its search backends); unknown kinds and unknown options raise
:class:`~mnas.errors.MnasError` naming them. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Sequence, cast

from mnas.arch import Network
from mnas.errors import MnasError
from mnas.protocols import EvalResult, Space

# kind -> "module:Class". Add a line to add an evaluator.
EVALUATORS: dict[str, str] = {
    "train": "mnas.accuracy.train:TrainEvaluator",
    "supernet": "mnas.accuracy.supernet:SupernetEvaluator",
    "predictor": "mnas.accuracy.predictor:PredictorEvaluator",
    "table": "mnas.accuracy.table:TableEvaluator",
    "imagenet": "mnas.accuracy.imagenet:ImagenetEvaluator",
    "anb": "mnas.accuracy.anb:AnbEvaluator",
    "ofa": "mnas.accuracy.ofa:OfaEvaluator",
}

# search space name -> the evaluator used when none is given (`mnas eval`, `mnas search`);
# spaces not listed get "predictor", and `mnas eval` without --space gets DEFAULT_EVALUATOR.
SPACE_EVALUATORS: dict[str, str] = {"v3_small": "imagenet", "v3_large": "imagenet", "mnasnet": "imagenet", "anb": "anb",
                                     "ofa": "ofa"}
DEFAULT_EVALUATOR = "imagenet"
FALLBACK_EVALUATOR = "predictor"  # a space not in SPACE_EVALUATORS


def default_evaluator(space: Any = None) -> str:
    """The evaluator a space (name, path or object; None: no space) is scored with by default."""
    if space is None:
        return DEFAULT_EVALUATOR
    name = getattr(space, "name", None) or Path(str(space)).stem
    return SPACE_EVALUATORS.get(str(name), FALLBACK_EVALUATOR)

REQUIRED_KEYS = ("top1", "loss", "cost_s")


def config_digest(config: dict) -> str:
    """Short stable digest of an evaluator configuration (part of every cache key)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


class ResultCache:
    """``key -> result dict``, in memory, and in an SQLite file when ``path`` is given.

    The file has one table ``results(key TEXT PRIMARY KEY, evaluator, config,
    arch, result JSON, created)`` that any SQLite tool opens. Several processes
    may share one file (writes are single-row upserts).
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path).expanduser() if path else None
        self._mem: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            if self.path.is_dir():
                raise MnasError(f"cache {self.path} is a directory: give a file path such as {self.path / 'results.sqlite'}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, evaluator TEXT, config TEXT, "
                    "arch TEXT, result TEXT, created REAL)"
                )
                self._db.commit()
            except sqlite3.DatabaseError as e:
                raise MnasError(f"cache {self.path} is not a readable SQLite file ({e}); delete it or pick another path") from None

    def __getstate__(self) -> dict:  # picklable (e.g. sent to Ray workers): reconnect on arrival
        return {"path": self.path, "mem": dict(self._mem)}

    def __setstate__(self, state: dict) -> None:
        ResultCache.__init__(self, state["path"])
        self._mem.update(state["mem"])

    def get(self, key: str) -> dict | None:
        with self._lock:
            if key in self._mem:
                return dict(self._mem[key])
            if self._db is None:
                return None
            row = self._db.execute("SELECT result FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value = json.loads(row[0])
        with self._lock:
            self._mem[key] = value
        return dict(value)

    def put(self, key: str, value: dict, *, evaluator: str = "", config: str = "", arch: str = "") -> None:
        value = dict(value)
        with self._lock:
            self._mem[key] = value
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                    (key, evaluator, config, arch, json.dumps(value, default=_json_default), time.time()),
                )
                self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            if self._db is None:
                return len(self._mem)
            return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _json_default(x: Any) -> Any:
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


class Evaluator:
    """Architecture in, metrics out (``top1`` in percent, ``loss``, ``cost_s``), cached.

    Subclasses set ``name``, implement :meth:`_evaluate` and extend
    :meth:`config`. ``space`` is a search space (object or name) or None;
    ``cache`` is a path to an SQLite file (None: in memory only).
    """

    name: str = "base"
    Config: Any = None  # optional typed config dataclass whose fields are accepted as options

    def __init__(self, space: Space | str | Path | None = None, cache: str | Path | None = None):
        self.space = _resolve_space(space)
        self.cache = ResultCache(cache)
        self.cache_hits = 0
        self.evaluations = 0

    # -- what subclasses provide
    def config(self) -> dict:
        """Everything that changes a result (part of the cache key). Extend in subclasses."""
        return {"evaluator": self.name}

    def _evaluate(self, net: Network, sample: dict | None) -> dict:
        raise NotImplementedError

    def _prepare(self, net: Network | None, sample: dict | None) -> Network:
        """The network to evaluate: ``net``, or ``sample`` decoded by the space."""
        if net is None:
            if sample is None or self.space is None:
                raise MnasError(f"{self.name} evaluator: give a network, or a sample together with a search space")
            net = self.space.decode(sample)
        if not isinstance(net, Network):
            raise MnasError(f"{self.name} evaluator: expected a Network, got {type(net).__name__}")
        return net

    # -- the interface
    def cache_key(self, net: Network, sample: dict | None = None) -> str:
        return f"{self.name}:{config_digest(self.config())}:{net}"

    def evaluate(self, net: Network | None, sample: dict | None = None) -> EvalResult:
        """Metrics of ``net`` (or of ``sample`` decoded by the space when ``net`` is None)."""
        net = self._prepare(net, sample)
        key = self.cache_key(net, sample)
        hit = self.cache.get(key)
        if hit is not None:
            self.cache_hits += 1
            hit["cached"] = True
            return cast(EvalResult, hit)
        t0 = time.perf_counter()
        result = dict(self._evaluate(net, sample))
        result.setdefault("cost_s", time.perf_counter() - t0)
        missing = [k for k in REQUIRED_KEYS if k not in result]
        if missing:  # a bug in the subclass, not a user mistake
            raise RuntimeError(f"{type(self).__name__}._evaluate returned no {missing}")
        result["top1"] = float(result["top1"])
        result["loss"] = float(result["loss"]) if result["loss"] is not None else math.nan
        result["cost_s"] = float(result["cost_s"])
        result["evaluator"] = self.name
        self.evaluations += 1
        if self.cache.path is not None:
            self.cache.put(key, result, evaluator=self.name, config=json.dumps(self.config(), sort_keys=True, default=str), arch=str(net))
        else:
            self.cache.put(key, result)
        result["cached"] = False
        return cast(EvalResult, result)

    def evaluate_many(self, nets: Sequence[Network | None], samples: Sequence[dict | None] | None = None) -> list[Any]:
        """``[evaluate(n, s) ...]``: one :class:`EvalResult` each (typed ``list[Any]`` so a subclass's batch
        path may be annotated ``list[dict]``); subclasses may share work between the networks."""
        samples = samples if samples is not None else [None] * len(nets)
        return [self.evaluate(n, s) for n, s in zip(nets, samples)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


def _resolve_space(space: Any) -> Any:
    if space is None or not isinstance(space, (str, Path)):
        return space
    try:
        from mnas.space import load_space
    except ImportError:  # pragma: no cover - the space module is part of the package
        raise MnasError("search spaces are not available in this installation (mnas.space.load_space missing)") from None
    return load_space(space)


def _load_class(kind: str):
    if kind not in EVALUATORS:
        raise MnasError(f"unknown evaluator {kind!r} (choose one of {', '.join(EVALUATORS)})")
    module, _, cls = EVALUATORS[kind].partition(":")
    return getattr(importlib.import_module(module), cls)


def evaluator_options(kind: str) -> dict[str, Any]:
    """The options ``kind`` accepts, with their defaults (``inspect.Parameter.empty`` if required)."""
    cls = _load_class(kind)
    sig = inspect.signature(cls.__init__)
    out = {n: p.default for n, p in sig.parameters.items() if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    config_type = getattr(cls, "Config", None)  # a typed config dataclass taken as **options
    if config_type is not None and dataclasses.is_dataclass(config_type):
        for f in dataclasses.fields(config_type):
            out[f.name] = f.default if f.default is not dataclasses.MISSING else inspect.Parameter.empty
    return out


def get_evaluator(kind: str, space: Any = None, **options: Any) -> Evaluator:
    """Create the evaluator registered as ``kind`` (train, supernet, predictor, table).

    ``space`` is a search space object or name; ``options`` go to the
    evaluator's constructor and an option it does not take is an error.
    """
    cls = _load_class(kind)
    allowed = evaluator_options(kind)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        names = sorted(a for a in allowed if a != "space")
        raise MnasError(f"{kind} evaluator: unknown option(s) {', '.join(unknown)} (allowed: {', '.join(names)})")
    if "space" in allowed:
        options["space"] = space
    elif space is not None:
        raise MnasError(f"{kind} evaluator takes no search space")
    return cls(**options)

"""Run a search: every trial in an Optuna RDB storage, resumable, exported as tables.

One trial = one architecture: the strategy (an Optuna sampler) picks every
choice of the space (parameter names = the space's choice names), the space
decodes the sample into a :class:`~mnas.arch.Network`, the latency predictor
and the accuracy evaluator measure it, and the reward scores it. Each trial
records every choice plus ``accuracy``, ``latency_ms``, ``madds``, ``params``,
``reward`` and the text form ``arch``.

Storage is an SQLite file ``trials.db`` in the run folder (or any RDB URL:
``postgresql://…``, ``mysql://…`` for many workers) with a heartbeat: a trial
whose process dies stops beating, is marked failed after ``grace_period``
seconds and re-queued with the same choices (``RetryFailedTrialCallback``).
``resume`` reopens the study and runs until ``trials`` trials are complete, so
no completed trial is lost or repeated.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
import random
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mnas.errors import MnasError
from mnas.io import (GracefulStop, atomic_output, check_journal, check_trials_db, claim_run_dir, interruptible,
                     optimize_interruptibly)
from mnas.protocols import AccuracyEvaluator, LatencyModel, Space
from mnas.run import RunDir
from mnas.search.config import SearchConfig
from mnas.search.reward import Reward, get_reward
from mnas.search.storage import JOURNAL_FILE, MEMORY, NoFlush, is_journal, journal_path, open_journal
from mnas.search.strategies import get_strategy
from mnas.search.strategies.base import distributions, sample_from_params

CONFIG_FILE = "config.yaml"
DB_FILE = "trials.db"
METRICS = "metrics"  # the user attribute holding a trial's measured row
ENUMERATE_LIMIT = 1_000
# what a trial records besides its choices, in table order (``code``: spaces with a compact encoding)
ROW_KEYS = ("accuracy", "latency_ms", "madds", "params", "reward", "loss", "eval_cost_s", "code", "arch")

if TYPE_CHECKING:  # annotations only: pandas is imported where tables are built
    import pandas


# ---------------------------------------------------------------------- backends

# Remote backends by name: "module:function", imported when chosen. A backend module builds on this
# one (storage, rounds, measuring); this module names it only here, so the two never import each other.
# "local" (this process) is run_search's own loop.
BACKENDS = {"ray": "mnas.search.ray_backend:run_ray"}


def get_backend(name: str):
    """The function that runs a search on backend ``name`` (see :data:`BACKENDS`)."""
    import importlib

    if name not in BACKENDS:
        raise MnasError(f"unknown backend {name!r} (choose local or {', '.join(BACKENDS)})")
    module, _, func = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), func)


# ---------------------------------------------------------------------- components


@dataclass
class Components:
    """What a search measures with: space, latency predictor, accuracy evaluator, reward."""

    space: Space
    predictor: LatencyModel
    evaluator: AccuracyEvaluator
    reward: Reward


def build_components(config: SearchConfig, run_dir: Path | None = None, *, space: Space | None = None,
                     predictor: LatencyModel | None = None, evaluator: AccuracyEvaluator | None = None,
                     before_evaluator=None) -> Components:
    """The space, predictor and evaluator named by ``config`` (any given object is used as is).

    ``before_evaluator(space, predictor, reward)`` runs before the evaluator is created
    (which may load models or write a cache file): the place for up-front checks.
    """
    if space is None:
        from mnas.space import load_space

        space = load_space(config.space, mode="layer" if config.layerwise else None)
    if predictor is None:
        from mnas.latency import get_predictor

        predictor = get_predictor(config.device)
    reward = get_reward(config.reward, config.target_ms, config.alpha, config.beta)
    if before_evaluator is not None:
        before_evaluator(space, predictor, reward)
    if evaluator is None:
        from mnas.run import build_evaluator

        evaluator = build_evaluator(config.evaluator, config.evaluator_options, space, dataset=config.dataset,
                                    data_dir=config.data_dir, run_dir=run_dir)  # a killed run finds its evaluations again
    return Components(space, predictor, evaluator, reward)


def measure(comp: Components, sample: dict) -> dict[str, Any]:
    """Decode ``sample`` and measure it: the row a trial records (without its choices)."""
    net = comp.space.decode(sample)
    latency = float(comp.predictor.predict(net))
    result = comp.evaluator.evaluate(net, sample)
    return _row(comp, net, sample, latency, result)


def measure_many(comp: Components, samples: list[dict]) -> list[dict[str, Any]]:
    """:func:`measure` for many samples at once, through the predictor's and the evaluator's batch paths.

    The rows equal :func:`measure`'s one by one (``tests/test_search_scale.py`` checks).
    """
    if len(samples) == 1:
        return [measure(comp, samples[0])]
    nets = [comp.space.decode(s) for s in samples]
    many = getattr(comp.predictor, "predict_many", None)
    lat = many(nets) if many is not None else [comp.predictor.predict(n) for n in nets]
    emany = getattr(comp.evaluator, "evaluate_many", None)
    results = emany(nets, samples) if emany is not None else [comp.evaluator.evaluate(n, s) for n, s in zip(nets, samples)]
    return [_row(comp, n, s, float(ms), r) for n, s, ms, r in zip(nets, samples, lat, results)]


def _row(comp: Components, net, sample: dict, latency: float, result) -> dict[str, Any]:
    from mnas.counting import count

    acc = float(result.get("score", result["top1"]))  # an evaluator's ranking signal where it has one (supernet: by loss)
    c = count(net)
    row = {
        "accuracy": acc,
        "latency_ms": latency,
        "madds": int(c.madds),
        "params": int(c.params),
        "reward": comp.reward(acc, latency),
        "loss": float(result.get("loss", math.nan)),
        "eval_cost_s": float(result.get("cost_s", 0.0)),
        "arch": str(net),
    }
    encode = getattr(comp.space, "encode_string", None)
    if encode is not None:
        row["code"] = encode(sample)
    return row


# ---------------------------------------------------------------------- the fastest network


def min_latency(space: Space, predictor: LatencyModel, *, sweeps: int = 4, starts: int = 4, seed: int = 0) -> tuple[float, dict]:
    """The lowest predicted latency in ``space`` and a sample reaching it.

    Spaces up to 1,000 networks are enumerated (exact). Larger ones: coordinate
    descent (each choice in walk order set to its fastest option given the
    others, repeated until nothing changes) from the first-option sample, the
    last-option sample and random samples; exact when each choice's effect on
    latency does not depend on the others' direction, as for kernel, expansion,
    SE, activation, depth and width.
    """
    choices = space.choices()
    size = math.prod(len(c.options) for c in choices)
    if size <= ENUMERATE_LIMIT:
        samples = [dict(zip([c.name for c in choices], combo)) for combo in itertools.product(*(c.options for c in choices))]
        lat = predictor.predict_many([space.decode(s) for s in samples])
        i = int(min(range(len(samples)), key=lambda j: lat[j]))
        return float(lat[i]), samples[i]
    rng = random.Random(seed)
    inits = [{c.name: c.options[0] for c in choices}, {c.name: c.options[-1] for c in choices}]
    inits += [{c.name: rng.choice(c.options) for c in choices} for _ in range(max(0, starts - 2))]
    best: tuple[float, dict] | None = None
    for s in inits:
        cur = predictor.predict(space.decode(s))
        for _ in range(sweeps):
            changed = False
            for c in choices:
                for o in c.options:
                    if o == s[c.name]:
                        continue
                    cand = {**s, c.name: o}
                    ms = predictor.predict(space.decode(cand))
                    if ms < cur - 1e-12:
                        s, cur, changed = cand, ms, True
            if not changed:
                break
        if best is None or cur < best[0]:
            best = (float(cur), s)
    assert best is not None
    return best


def check_target(space: Space, predictor: LatencyModel, config: SearchConfig) -> float | None:
    """Raise :class:`MnasError` up front when the target is below the fastest network of the space."""
    if config.target_ms is None:
        return None
    fastest, sample = min_latency(space, predictor)
    if config.target_ms < fastest:
        name = getattr(space, "name", config.space)
        raise MnasError(
            f"target {config.target_ms:g} ms is impossible: the fastest network of space {name!r} takes "
            f"{fastest:.2f} ms on {config.device} (choose --target-ms >= {math.ceil(fastest * 100) / 100:g} "
            f"or a smaller space)"
        )
    return fastest


# ---------------------------------------------------------------------- storage and study


def storage_url(config: SearchConfig, run_dir: Path) -> str:
    return config.storage or f"sqlite:///{(run_dir / DB_FILE).resolve()}"


def open_storage(config: SearchConfig, run_dir: Path, heartbeat: bool = True):
    import optuna

    url = storage_url(config, run_dir)
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = dict(heartbeat_interval=config.heartbeat_interval, grace_period=config.grace_period)
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if retry is not None:  # optuna >= 4.9 renamed RetryFailedTrialCallback
                kwargs["heartbeat_stale_trial_callback"] = retry(max_retry=config.max_retry)
            else:  # pragma: no cover - older optuna
                kwargs["failed_trial_callback"] = optuna.storages.RetryFailedTrialCallback(max_retry=config.max_retry)
    sqlite = url.startswith("sqlite")
    if sqlite:
        _sqlite_wal(url)
    engine = {"connect_args": {"timeout": 60}} if sqlite else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine, **kwargs)
    except Exception as e:  # bad URL, missing driver, unreachable server
        raise MnasError(f"cannot open trial storage {url!r}: {str(e).splitlines()[0]}") from None
    if sqlite:
        from sqlalchemy import event

        # WAL + synchronous=NORMAL: a commit survives the process being killed (only a power
        # cut can lose the last commits) and costs no fsync per write.
        event.listen(storage.engine, "connect", lambda conn, _: conn.execute("PRAGMA synchronous=NORMAL"))
        storage.engine.dispose()
    return storage


def _sqlite_wal(url: str) -> None:
    """Switch the SQLite file to write-ahead logging (persistent in the file)."""
    import sqlite3

    path = url.split("sqlite:///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=60)
        con.execute("PRAGMA journal_mode=WAL")
        con.close()


def make_sampler(config: SearchConfig, comp: Components, existing: int = 0):
    """The strategy's sampler; a resumed study (``existing`` trials) gets a seed derived from both.

    Without the offset, a resumed random or evolution sampler would replay the
    first process's random draws and evaluate the same architectures again.
    """
    dists = distributions(comp.space.choices())
    seed = config.seed if not existing else (config.seed * 1_000_003 + existing) % 2**31
    sampler = get_strategy(config.strategy, dists, seed=seed, multi_objective=comp.reward.multi_objective,
                           options=config.strategy_options)
    from mnas.search.screen import Screen, ScreenedSampler, screen_enabled

    if screen_enabled(config.screen, comp.reward):  # latency first, accuracy only for feasible proposals
        sampler = ScreenedSampler(sampler, Screen(comp.space, comp.predictor, comp.reward.target_ms, config.screen_tries))
    return sampler


def screened_of(sampler, number: int) -> int | None:
    """How many proposals the latency screen rejected before trial ``number`` (None: no screen)."""
    counts = getattr(sampler, "screened", None)
    return counts.pop(number, 0) if isinstance(counts, dict) else None


def _code_of(space, params: dict) -> str | None:
    """A trial's compact encoding in its space (``1311-6321-…`` on anb, one character per choice elsewhere)."""
    from mnas.search.strategies.base import sample_from_params

    try:
        return space.encode_string(sample_from_params(space.choices(), params))
    except (MnasError, AttributeError):  # a trial without every choice, or a space without an encoding
        return None


def spread_front(front, k: int):
    """``k`` members of a Pareto front (sorted by latency) spread evenly along it, fastest to most accurate:
    the five most accurate would all sit at its slow end."""
    import numpy as np

    if len(front) <= k:
        return front
    idx = sorted({int(round(i)) for i in np.linspace(0, len(front) - 1, k)})
    return front.iloc[idx]


def trials_table(study, space) -> "pandas.DataFrame":  # noqa: F821
    """One row per trial: number, state, every choice (by its stable name), the measured columns."""
    import pandas as pd

    names = [c.name for c in space.choices()]
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        row.update({n: t.params.get(n) for n in names})
        row["code"] = _code_of(space, t.params)
        metrics = t.user_attrs.get(METRICS, {})
        for k in ROW_KEYS:
            row[k] = metrics.get(k)
        row["screened"] = metrics.get("screened")  # proposals the latency screen rejected before this trial
        row["retry_of"] = t.system_attrs.get("failed_trial")
        row["datetime_start"] = t.datetime_start
        row["duration_s"] = t.duration.total_seconds() if t.duration is not None else None
        rows.append(row)
    return pd.DataFrame(rows)


def _wait_for_stale(study, storage, config: SearchConfig, log) -> None:
    """Fail (and re-queue) trials left RUNNING by a dead process once their heartbeat is stale."""
    import optuna
    from optuna.trial import TrialState

    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.storages.fail_stale_trials(study)
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return
    deadline = time.time() + config.grace_period + config.heartbeat_interval
    log(f"{len(running)} trial(s) were running when the last process stopped; waiting up to "
        f"{config.grace_period + config.heartbeat_interval} s for their heartbeat to go stale to retry them")
    while running and time.time() < deadline:
        time.sleep(1.0)
        optuna.storages.fail_stale_trials(study)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


# ---------------------------------------------------------------------- the search


@dataclass
class SearchResult:
    run_dir: Path
    table: Any  # pandas.DataFrame of all trials
    top: list[dict]
    fastest_ms: float | None
    completed: int
    wall_s: float


def new_run_dir(config: SearchConfig) -> Path:
    if config.out:
        return Path(config.out)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / stamp


def run_search(config: SearchConfig, *, resume: bool = False, progress: bool = True, space: Space | None = None,
               predictor: LatencyModel | None = None, evaluator: AccuracyEvaluator | None = None, plot: bool = True,
               log=None) -> SearchResult:
    """Run (or, with ``resume``, continue) the search ``config`` describes; see the module docstring.

    ``space``, ``predictor`` and ``evaluator`` override the ones the config names
    (tests pass fast stand-ins).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    t0 = time.time()
    run_dir = new_run_dir(config)
    claim_run_dir(run_dir, "search", create=not resume)  # one process per run folder, before any write (mnas/io.py)
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise MnasError(f"{run_dir}: not a search run folder (no {CONFIG_FILE}); give the folder `mnas search` wrote")
    else:
        if (run_dir / DB_FILE).exists() or (run_dir / JOURNAL_FILE).exists() or (run_dir / CONFIG_FILE).exists():
            raise MnasError(f"{run_dir} already holds a search: continue it with `mnas search --resume {run_dir}` "
                            "or choose another --out")
    fastest: list[float | None] = [None]

    def check(sp, pred, reward) -> None:
        if not resume:
            fastest[0] = check_target(sp, pred, config)

    comp = build_components(config, run_dir, space=space, predictor=predictor, evaluator=evaluator,
                            before_evaluator=check)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.out = str(run_dir)
    RunDir(run_dir).save_config(config)  # the one run-folder abstraction (mnas/run.py), as NetAdapt and replays

    if config.backend in BACKENDS:
        study = get_backend(config.backend)(config, comp, run_dir, space=space, predictor=predictor, evaluator=evaluator,
                        progress=progress, log=log, resume=resume)
    else:
        kind, where = resolve_storage(config, run_dir, comp, resume)
        if kind == "rdb":
            if config.batch not in (None, 1):
                raise MnasError(f"--batch {config.batch} needs a journal storage (the default for instant evaluators, "
                                f"or --storage journal:FILE): the RDB storage {where} stores trial by trial")
            study = _run_local(config, comp, run_dir, resume, progress, log)
        else:
            study = run_rounds(config, comp, kind, where, resume, progress, log)
    return finish(config, comp, study, run_dir, fastest[0], t0, plot=plot)


# ---------------------------------------------------------------------- fast path: rounds on a journal

# evaluators that score a network in well under a millisecond to a few: their trials are run in rounds on
# the journal storage; the others (training, supernet scoring) trial by trial on SQLite with heartbeats
from mnas.run import INSTANT_EVALUATORS  # noqa: E402  (one definition, shared with NetAdapt and the replays)


def is_instant(config: SearchConfig, evaluator=None) -> bool:
    """Whether the evaluator is cheap enough for rounds on the journal (its ``instant`` attribute, else its kind)."""
    flag = getattr(evaluator, "instant", None)
    if isinstance(flag, bool):
        return flag
    return config.evaluator in INSTANT_EVALUATORS


def resolve_storage(config: SearchConfig, run_dir: Path, comp: Components | None = None,
                    resume: bool = False) -> tuple[str, Any]:
    """Where the run's trials live: ``("journal", path)``, ``("rdb", url)`` or ``("memory", None)``.

    ``config.storage`` decides when set; otherwise a resumed run keeps the file it has and a new
    run gets ``trials.journal`` for an instant evaluator and ``trials.db`` for an expensive one.
    """
    if config.storage:
        if config.storage == MEMORY:
            if resume:
                raise MnasError("storage 'memory' keeps nothing to resume: use the default storage or journal:FILE")
            return "memory", None
        if is_journal(config.storage):
            return "journal", journal_path(config.storage)
        return "rdb", storage_url(config, run_dir)
    if resume:
        if (run_dir / JOURNAL_FILE).is_file():
            check_journal(run_dir / JOURNAL_FILE, config.study_name)  # empty or foreign: say so, never restart
            return "journal", run_dir / JOURNAL_FILE
        if (run_dir / DB_FILE).is_file():
            check_trials_db(run_dir / DB_FILE, config.study_name)  # empty or damaged: say so, never restart
            return "rdb", storage_url(config, run_dir)
        raise MnasError(f"{run_dir}: no trial storage ({JOURNAL_FILE} or {DB_FILE}) to resume: the search never "
                        f"stored a trial there; start it again with --out {run_dir} after removing {CONFIG_FILE}")
    instant = is_instant(config, comp.evaluator if comp is not None else None)
    if instant or (config.batch or 1) > 1:
        return "journal", run_dir / JOURNAL_FILE
    return "rdb", storage_url(config, run_dir)


def round_size(config: SearchConfig) -> int:
    """Trials asked before any is told: ``config.batch``, else the largest that leaves the strategy unchanged.

    random: its draws ignore the told values, so any round gives the same trials (64);
    rl: the controller learns once per ``batch_size`` finished trials, so rounds of
    ``batch_size`` give exactly the sequential trials; evolution, TPE and NSGA-II use every
    told trial for the next, so 1 (rounds still save the per-trial storage cost).
    """
    if config.batch is not None:
        return config.batch
    if config.strategy == "random":
        return 64
    if config.strategy == "rl":
        from mnas.search.strategies import options_of

        return int(config.strategy_options.get("batch_size", options_of("rl").get("batch_size", 20)))
    return 1


# strategies whose sampler keeps no state of its own, so they can be shown only the newest trials
WINDOWED = {"tpe": 500}


def strategy_window(config: SearchConfig) -> int | None:
    """How many of the newest trials the strategy sees (None: all); ``config.window``, else :data:`WINDOWED`.

    TPE refits its Parzen estimators on every finished trial for every new one (O(n) per
    trial, ~0.04 ms per stored trial here: 8,000 trials would take most of an hour), so by
    default it models the newest 500. Evolution looks at its population only, the RL
    controller learns from each trial once, random ignores the history: all see everything.
    NSGA-II's generations are numbered through the study, so it cannot be windowed.
    """
    w = config.window if config.window is not None else WINDOWED.get(config.strategy or "")
    if w is not None and config.strategy in ("rl", "nsga2"):
        raise MnasError(f"window does not apply to strategy {config.strategy!r} (its state spans every trial); "
                        "use it with tpe, evolution or random")
    return w


def open_study(config: SearchConfig, comp: Components, kind: str, where, resume: bool):
    """The run's stored study and its journal backend (``(None, NoFlush())`` for ``memory``)."""
    import optuna

    if kind == "memory":
        return None, NoFlush()
    storage, backend = open_journal(where)
    directions = comp.reward.directions
    try:
        study = optuna.create_study(storage=storage, study_name=config.study_name, directions=directions,
                                    load_if_exists=resume)
    except optuna.exceptions.DuplicatedStudyError:
        raise MnasError(f"{where} already has a study {config.study_name!r}: use --resume or another --out") from None
    backend.flush()
    if [d.name.lower() for d in study.directions] != directions:
        raise MnasError(f"the stored study optimises {[d.name.lower() for d in study.directions]}, this config "
                        f"{directions}: resume with the run's own config.yaml")
    return study, backend


def run_rounds(config, comp, kind, where, resume, progress, log, *, measure=None, k: int | None = None):
    """The fast path: rounds of trials on an in-memory study, each round stored in one journal write.

    The strategy samples from an in-memory Optuna study (the fastest Optuna storage:
    ``benchmarks/bench_search_throughput.py``); each finished trial is then added, whole,
    to the stored study (``study.add_trials``: one journal line per trial), and the round
    is written at once. A resumed run first copies the stored trials into the in-memory
    study, so trial numbers, and what the strategy sees, are the stored ones.
    """
    import optuna
    from optuna.trial import TrialState

    from tqdm import tqdm

    stored, backend = open_study(config, comp, kind, where, resume)
    mem = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=make_sampler(config, comp),
                              study_name=config.study_name, directions=comp.reward.directions)
    window = strategy_window(config)
    if resume and stored is not None:
        # trials a cut-short write left unfinished (the stored study only ever receives finished trials)
        orphans = stored.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        for t in orphans:
            stored.tell(t.number, state=TrialState.FAIL)
        backend.flush(sync=True)
        if orphans:
            log(f"{len(orphans)} trial(s) left unfinished by the last process were marked failed")
        old = stored.get_trials(deepcopy=False)
        mem.add_trials(old[-window:] if window else old)
        mem.sampler = make_sampler(config, comp, existing=len(old))
    archive: list = []  # trials dropped from a windowed in-memory study when nothing else stores them

    def slide() -> None:
        """Keep the newest ``window`` trials only: a new in-memory study with the same sampler."""
        nonlocal mem
        every = mem.get_trials(deepcopy=False)
        if not window or len(every) < 2 * window:
            return
        if stored is None:
            archive.extend(every[:-window])
        new = optuna.create_study(storage=optuna.storages.InMemoryStorage(), sampler=mem.sampler,
                                  study_name=config.study_name, directions=comp.reward.directions)
        new.add_trials(every[-window:])
        mem = new

    choices = comp.space.choices()
    dists = distributions(choices)
    multi = comp.reward.multi_objective
    key = (lambda m: m["accuracy"]) if multi else (lambda m: m["reward"])
    n_done = len((stored or mem).get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    k = k or round_size(config)
    bar = tqdm(total=config.trials, initial=min(n_done, config.trials), desc="search", unit="trial",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    best = best_so_far(mem, multi)

    def show(m) -> None:
        bar.set_postfix(reward=f"{m['reward']:.3f}", acc=f"{m['accuracy']:.2f}", lat=f"{m['latency_ms']:.2f}ms")

    def store(m: int) -> None:
        if stored is not None:
            stored.add_trials(mem.get_trials(deepcopy=False)[-m:])
            backend.flush()

    if best:
        show(best)
    stop = GracefulStop().start()  # Ctrl-C / SIGTERM: only while measuring or between rounds (mnas/io.py; keep)
    try:
        while n_done < config.trials:
            stop.check(f": {n_done} completed trials are saved; continue with `mnas search --resume {config.out}`")
            asked = [mem.ask(dists) for _ in range(min(k, config.trials - n_done))]
            try:
                with stop.interruptible():
                    rows = (measure or measure_many)(comp, [sample_from_params(choices, t.params) for t in asked])
            except BaseException:
                for t in asked:
                    mem.tell(t, state=TrialState.FAIL)
                store(len(asked))
                raise
            for t, row in zip(asked, rows):
                row = {**row, "screened": screened_of(mem.sampler, t.number)}
                t.set_user_attr(METRICS, row)
                mem.tell(t, comp.reward.objectives(row["accuracy"], row["latency_ms"]))
            store(len(asked))
            slide()
            n_done += len(asked)
            bar.update(len(asked))
            top = max(rows, key=key)
            if best is None or key(top) > key(best):
                best = top
                show(best)
    finally:
        stop.restore()
        backend.flush(sync=True)
        bar.close()
    if stored is None and archive:
        full = optuna.create_study(storage=optuna.storages.InMemoryStorage(), study_name=config.study_name,
                                   directions=comp.reward.directions)
        full.add_trials(archive + mem.get_trials(deepcopy=False))
        return full
    return stored if stored is not None else mem


def _objective(comp: Components, choices: list, dists: dict):
    def objective(trial):
        for name, d in dists.items():
            trial.suggest_categorical(name, d.choices)
        sample = sample_from_params(choices, trial.params)
        with interruptible():  # Ctrl-C here fails this trial at once (mnas/io.py; issue 15: keep)
            row = measure(comp, sample)
        row["screened"] = screened_of(trial.study.sampler, trial.number)
        trial.set_user_attr(METRICS, row)  # one write: every set_user_attr is a database commit
        return comp.reward.objectives(row["accuracy"], row["latency_ms"])

    return objective


def best_so_far(study, multi: bool) -> dict | None:
    from optuna.trial import TrialState

    done = [t.user_attrs[METRICS] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if METRICS in t.user_attrs]
    if not done:
        return None
    return max(done, key=lambda m: m["accuracy"] if multi else m["reward"])


def _run_local(config, comp, run_dir, resume, progress, log):
    import optuna
    from optuna.trial import TrialState
    from tqdm import tqdm

    storage = open_storage(config, run_dir)
    directions = comp.reward.directions
    try:
        study = optuna.create_study(storage=storage, sampler=make_sampler(config, comp), study_name=config.study_name,
                                    directions=directions, load_if_exists=resume)
    except optuna.exceptions.DuplicatedStudyError:
        raise MnasError(f"storage {storage_url(config, run_dir)} already has a study {config.study_name!r}: "
                        f"use --resume {run_dir} or another --out") from None
    if [d.name.lower() for d in study.directions] != directions:
        raise MnasError(f"the stored study optimises {[d.name.lower() for d in study.directions]}, this config "
                        f"{directions}: resume with the run's own config.yaml")
    if resume:
        _wait_for_stale(study, storage, config, log)
        study.sampler = make_sampler(config, comp, existing=len(study.get_trials(deepcopy=False)))
    choices = comp.space.choices()
    dists = distributions(choices)
    objective = _objective(comp, choices, dists)
    n_done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    bar = tqdm(total=config.trials, initial=min(n_done, config.trials), desc="search", unit="trial",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)

    multi = comp.reward.multi_objective
    best = [best_so_far(study, multi)]
    if best[0]:
        m = best[0]
        bar.set_postfix(reward=f"{m['reward']:.3f}", acc=f"{m['accuracy']:.2f}", lat=f"{m['latency_ms']:.2f}ms")

    counted = [n_done]

    def on_trial(study, trial) -> None:
        if trial.state != TrialState.COMPLETE:
            return
        bar.update(1)
        m = trial.user_attrs.get(METRICS)
        if m and (best[0] is None or (m["accuracy"] if multi else m["reward"]) > (best[0]["accuracy"] if multi else best[0]["reward"])):
            best[0] = m
            bar.set_postfix(reward=f"{m['reward']:.3f}", acc=f"{m['accuracy']:.2f}", lat=f"{m['latency_ms']:.2f}ms")
        counted[0] += 1
        if counted[0] >= config.trials:  # recount in storage only then: other workers may share the study
            counted[0] = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            if counted[0] >= config.trials:
                study.stop()

    try:
        if n_done < config.trials:
            optimize_interruptibly(study, objective, n_trials=None, callbacks=[on_trial],  # issue 15: keep
                                   resume_hint=f"; continue with `mnas search --resume {run_dir}`")
    finally:
        bar.close()
    return study


def plot_search_pareto(config: SearchConfig, runs: list, out: Path, *, predictor: LatencyModel, evaluator=None,
                       space_name: str | None = None, multi_objective: bool = False, data_out: dict | None = None) -> Path:
    """The Pareto plot of search ``runs`` made with ``config``: the trials, each run's front, the zoo's
    networks (scored by ``evaluator`` where that is free, with their published ImageNet top-1 beside
    evaluators of ImageNet top-1), the latency target and, for one single-objective run, the chosen network."""
    from mnas.plots import IMAGENET_EVALUATORS, load_trials, plot_pareto
    from mnas.run import zoo_references

    instant = config.evaluator in INSTANT_EVALUATORS  # references are scored only where that is free
    refs = zoo_references(predictor, evaluator=evaluator if instant else None,
                          published=config.evaluator in IMAGENET_EVALUATORS)
    chosen = None
    n = sum(len(load_trials(r)) for r in runs)
    if len(runs) == 1 and not multi_objective:
        done = load_trials(runs[0]).dropna(subset=["reward"])
        if len(done):
            best = done.sort_values(["reward", "number"], ascending=[False, True]).iloc[0]
            chosen = {"latency_ms": float(best["latency_ms"]), "accuracy": float(best["accuracy"]), "arch": best.get("arch")}
    title = (f"{space_name or config.space} on {config.device}"
             + (f", target {config.target_ms:g} ms" if config.target_ms else "")
             + f": {n} trials" + (f", {config.strategy}" if len(runs) == 1 else f" in {len(runs)} runs"))
    return plot_pareto(runs, out, device=config.device, references=refs, target_ms=config.target_ms, chosen=chosen,
                       evaluator=config.evaluator, title=title, data_out=data_out)


def finish(config: SearchConfig, comp: Components, study, run_dir: Path, fastest, t0: float, *,
           plot: bool = True) -> SearchResult:
    """Export the trials table, the top architectures and the Pareto plot; return the summary."""
    from mnas.arch import parse_network, save_network
    from mnas.plots import pareto_front

    df = trials_table(study, comp.space)
    with atomic_output(run_dir / "trials.csv") as tmp:  # a kill leaves the old table or the new, never half
        df.to_csv(tmp, index=False)
    with atomic_output(run_dir / "trials.parquet") as tmp:
        df.to_parquet(tmp, index=False)
    done = df[df["state"] == "COMPLETE"].dropna(subset=["reward"])
    if comp.reward.multi_objective:  # a front has no best: its members spread from fastest to most accurate
        ranked = spread_front(pareto_front(done).drop_duplicates("arch"), config.top)
    else:
        ranked = done.sort_values(["reward", "number"], ascending=[False, True])
    ranked = ranked.drop_duplicates("arch").head(config.top)
    top_dir = run_dir / "top"
    top_dir.mkdir(exist_ok=True)
    top = []
    for rank, (_, r) in enumerate(ranked.iterrows(), 1):
        path = save_network(parse_network(r["arch"]), top_dir / f"{rank:02d}.yaml")
        top.append({
            "rank": rank, "trial": int(r["number"]), "arch": r["arch"], "code": r.get("code"),
            "latency_ms": float(r["latency_ms"]),
            "accuracy": float(r["accuracy"]), "madds": int(r["madds"]), "params": int(r["params"]),
            "reward": float(r["reward"]), "file": str(path),
        })
    if plot and len(done):
        plot_search_pareto(config, [run_dir], run_dir / "pareto.png", predictor=comp.predictor,
                           evaluator=comp.evaluator, space_name=comp.space.name, multi_objective=comp.reward.multi_objective)
    return SearchResult(run_dir=run_dir, table=df, top=top, fastest_ms=fastest, completed=len(done),
                        wall_s=time.time() - t0)

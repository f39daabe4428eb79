"""The latency screen: proposals over the target are rejected (or repaired) before their accuracy is measured.

Facts checked against an enumeration of a small toy space (1,296 networks, every latency known):
which networks are feasible, what fraction a uniform sampler proposes over the target, the fastest
network. The stand-ins are those of ``tests/test_search_runner.py``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import optuna
import pandas as pd
import pytest

from mnas.errors import MnasError
from mnas.search.config import SearchConfig
from mnas.search.reward import get_reward
from mnas.search.screen import Screen, ScreenedSampler, screen_default, screen_enabled
from mnas.search.strategies import get_strategy
from mnas.search.strategies.base import distributions
from test_search_runner import MaddsLatency, ToySpace, toy_run

optuna.logging.set_verbosity(optuna.logging.ERROR)


def enumerate_latencies(space):
    choices = space.choices()
    lat = MaddsLatency()
    out = []
    for combo in itertools.product(*(c.options for c in choices)):
        sample = dict(zip([c.name for c in choices], combo))
        out.append(lat.predict(space.decode(sample)))
    return np.array(out)


SMALL = ToySpace(blocks=2)
LAT = enumerate_latencies(SMALL)
MEDIAN = float(np.median(LAT))  # about half the space is over this target


def test_default_is_on_only_for_a_hard_constraint():
    assert screen_default(get_reward("hard", 5.0))
    assert not screen_default(get_reward("soft", 5.0))  # soft rewards rank networks over the target
    assert not screen_default(get_reward("v3-small", 5.0))
    assert not screen_default(get_reward("pareto", None))
    assert screen_default(get_reward("custom", 5.0, alpha=0.0, beta=-2.0))
    assert not screen_default(get_reward("custom", 5.0, alpha=0.0, beta=-0.5))
    with pytest.raises(MnasError, match="screen: needs a latency target and a scalar reward"):
        screen_enabled(True, get_reward("pareto", None))


def test_hard_reward_measures_only_feasible_networks_and_counts_evaluations(tmp_path):
    res = toy_run(tmp_path, space=SMALL, target_ms=MEDIAN, reward="hard", strategy="random", trials=60,
                  storage="memory")
    df = res.table
    done = df[df["state"] == "COMPLETE"]
    assert len(done) == 60 == len(df)  # the budget is accuracy evaluations; screened proposals are no trials
    assert (done["latency_ms"] <= MEDIAN + 1e-9).all()
    # uniform proposals: each is over the target with probability p (from the enumeration), so the
    # number screened out before 60 feasible ones is negative-binomial with mean 60 p / (1 - p)
    p = float(np.mean(LAT > MEDIAN))
    mean, sd = 60 * p / (1 - p), math.sqrt(60 * p) / (1 - p)
    assert abs(done["screened"].sum() - mean) < 4 * sd
    # off: the same run measures networks over the target
    off = toy_run(tmp_path / "off", space=SMALL, target_ms=MEDIAN, reward="hard", strategy="random", trials=60,
                  screen=False, storage="memory")
    assert (off.table["latency_ms"] > MEDIAN).any()
    assert off.table["screened"].isna().all()


def test_soft_reward_is_unchanged_by_default(tmp_path):
    res = toy_run(tmp_path, space=SMALL, target_ms=MEDIAN, reward="soft", strategy="random", trials=30,
                  storage="memory")
    assert (res.table["latency_ms"] > MEDIAN).any()
    assert res.table["screened"].isna().all()


# rounds in memory; and trial by trial on SQLite (rl: the same wrapper, and torch is slow to import)
@pytest.mark.parametrize("strategy, storage", [(s, "memory") for s in ("random", "tpe", "evolution", "nsga2", "bo")]
                         + [("evolution", None)])
def test_every_strategy_is_screened_and_seeded(tmp_path, strategy, storage):
    opts = {"evolution": {"population_size": 6, "sample_size": 3}, "nsga2": {"population_size": 6}}.get(strategy, {})
    n = 6 if storage is None else 14
    kw = dict(space=SMALL, target_ms=MEDIAN, reward="hard", strategy=strategy, trials=n, strategy_options=opts,
              storage=storage)
    a = toy_run(tmp_path / "a", **kw).table
    b = toy_run(tmp_path / "b", **kw).table
    assert (a["latency_ms"] <= MEDIAN + 1e-9).all() and (a["state"] == "COMPLETE").sum() == n
    assert list(a["arch"]) == list(b["arch"])  # same seed, same trials, screen included
    assert list(a["screened"]) == list(b["screened"])


def test_resume_with_the_screen_keeps_trials_and_stays_feasible(tmp_path):
    kw = dict(space=SMALL, target_ms=MEDIAN, reward="hard", strategy="bo", storage=f"journal:{tmp_path / 't.journal'}")
    first = toy_run(tmp_path, trials=12, **kw).table
    again = toy_run(tmp_path, trials=20, _resume=True, **kw).table
    assert (again["state"] == "COMPLETE").sum() == 20 and again["number"].is_unique
    assert list(first["arch"]) == list(again["arch"].iloc[:12])
    assert (again["latency_ms"] <= MEDIAN + 1e-9).all()


class Slowest(optuna.samplers.BaseSampler):
    """Always proposes the slowest network of SMALL (last option of every choice)."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return param_distribution.choices[-1]


def test_a_strategy_stuck_over_the_target_is_repaired_within_the_tries():
    screen = Screen(SMALL, MaddsLatency(), MEDIAN, tries=5)
    sampler = ScreenedSampler(Slowest(), screen)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dists = distributions(SMALL.choices())
    t = study.ask(dists)
    lat = MaddsLatency().predict(SMALL.decode({c.name: t.params[c.name] for c in SMALL.choices()}))
    assert lat <= MEDIAN  # repaired, checked with the latency model directly
    assert sampler.screened[t.number] == 5 and t.number in sampler.repaired
    assert screen.proposals == 5


def test_repair_reaches_the_fastest_network_and_refuses_below_it():
    fastest = float(LAT.min())
    screen = Screen(SMALL, MaddsLatency(), fastest * 1.0001, tries=3)
    slow = {c.name: distributions(SMALL.choices())[c.name].choices[-1] for c in SMALL.choices()}
    fixed = screen.repair(slow)
    assert screen.latency(fixed) == pytest.approx(fastest)  # the enumeration's minimum
    impossible = Screen(SMALL, MaddsLatency(), fastest * 0.99, tries=3)
    study = optuna.create_study(direction="maximize", sampler=ScreenedSampler(Slowest(), impossible))
    with pytest.raises(MnasError, match=r"screen: no network within .* ms found after 3 proposals"):
        study.ask(distributions(SMALL.choices()))


def test_bo_proposes_only_feasible_networks_it_has_not_tried():
    # bo takes the screen's latency model: after its warm-up, its candidates are feasible, so the screen
    # has nothing to reject; the toy space has 1,296 networks, half feasible
    dists = distributions(SMALL.choices())
    screen = Screen(SMALL, MaddsLatency(), MEDIAN)
    sampler = ScreenedSampler(get_strategy("bo", dists, seed=0, options={"n_startup": 5}), screen)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(40):
        t = study.ask(dists)
        study.tell(t, sum(repr(v) == repr(dists[k].choices[-1]) for k, v in t.params.items()))
    after_warmup = [sampler.screened.get(n, 0) for n in range(5, 40)]
    assert sum(after_warmup) == 0
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(keys)) == len(keys)
    assert all(screen.latency(t.params) <= MEDIAN for t in study.trials)


def test_trials_table_has_the_screened_column_for_every_row(tmp_path):
    res = toy_run(tmp_path, space=SMALL, target_ms=MEDIAN, reward="hard", trials=10, storage="memory")
    df = pd.read_csv(res.run_dir / "trials.csv")
    assert "screened" in df.columns and df["screened"].notna().all() and (df["screened"] >= 0).all()


def test_cli_flags_reach_the_config_and_resume_keeps_them(tmp_path):
    from mnas.cli.search import config_from_args
    from test_search_runner import _args

    cfg = config_from_args(_args(["--target-ms", "15", "--reward", "hard", "--no-screen", "--screen-tries", "7"]))
    assert cfg.screen is False and cfg.screen_tries == 7
    assert config_from_args(_args(["--target-ms", "15"])).screen is None  # the reward decides
    SearchConfig(target_ms=20, reward="hard").save(tmp_path / "config.yaml")
    with pytest.raises(MnasError, match="cannot change screen"):
        config_from_args(_args(["--resume", str(tmp_path), "--no-screen"]))
    with pytest.raises(MnasError, match="screen_tries must be a whole number >= 1"):
        SearchConfig(target_ms=20, screen_tries=0)

"""Contracts over whatever is registered, and CONTRIBUTING.md's one-module recipes, done for real.

Every registered evaluator, shipped space and latency device is checked against the typed seams in
:mod:`mnas.protocols`; a new one is checked by registering it, nothing else. (Every strategy: see
``tests/test_strategies.py``.) The last tests follow CONTRIBUTING.md step by step: a new strategy,
evaluator, space and device, each one module or file plus one registry line, then a 5-trial search
through the ``mnas`` command that uses all four.
"""

from __future__ import annotations

import importlib
import json
import math
import random
import textwrap

import numpy as np
import pytest
from evaluator_contract import check_evaluator_contract

from mnas import zoo
from mnas.accuracy.base import EVALUATORS, Evaluator, evaluator_options, get_evaluator
from mnas.arch import Network
from mnas.errors import MnasError
from mnas.protocols import AccuracyEvaluator, LatencyModel, Space

# ---------------------------------------------------------------------- evaluators


def _evaluator_class(kind: str) -> type:
    module, _, cls = EVALUATORS[kind].partition(":")
    return getattr(importlib.import_module(module), cls)


@pytest.mark.parametrize("kind", list(EVALUATORS))
def test_every_registered_evaluator_class_keeps_the_interface(kind):
    cls = _evaluator_class(kind)
    assert issubclass(cls, Evaluator), f"{EVALUATORS[kind]} must subclass mnas.accuracy.Evaluator"
    assert cls.name == kind, f"{cls.__name__}.name is {cls.name!r}, registered as {kind!r}"
    assert cls._evaluate is not Evaluator._evaluate, f"{cls.__name__} does not implement _evaluate"
    assert "cache" in evaluator_options(kind), f"{kind}: results must be cacheable (a cache= option)"
    with pytest.raises(MnasError, match=rf"{kind} evaluator: unknown option\(s\) no_such_option"):
        get_evaluator(kind, no_such_option=1)


def _pair(space: str):
    from mnas.space import load_space

    sp = load_space(space)
    samples = [sp.sample(random.Random(i)) for i in (1, 2)]
    return sp, [sp.decode(s) for s in samples], samples


# how to build an evaluator cheaply for the shared contract: kind -> (space, make(space, cache)); the
# others have theirs in their own test files (they need data or a trained supernet)
CHEAP = {
    "predictor": ("v3_small", lambda sp, cache: get_evaluator("predictor", space=sp, cache=cache)),
    "imagenet": ("v3_small", lambda sp, cache: get_evaluator("imagenet", space=sp, cache=cache, warn=False)),
    "anb": ("anb", lambda sp, cache: get_evaluator("anb", space=sp, cache=cache)),
    "ofa": ("ofa", lambda sp, cache: get_evaluator("ofa", space=sp, cache=cache)),
}
ELSEWHERE = {"train": "tests/test_accuracy_train.py", "supernet": "tests/test_accuracy_supernet.py",
             "table": "tests/test_accuracy_table.py"}


@pytest.mark.parametrize("kind", list(EVALUATORS))
def test_every_registered_evaluator_passes_the_contract(kind, tmp_path):
    if kind not in CHEAP:
        pytest.skip(f"{kind}: contract checked in {ELSEWHERE.get(kind, 'its own test file')} "
                    "(add a cheap construction to CHEAP in tests/test_contracts.py to check it here)")
    space, make = CHEAP[kind]
    sp, nets, samples = _pair(space)
    results = check_evaluator_contract(lambda c: make(sp, c), nets, tmp_path, samples)
    ev = make(sp, None)
    assert isinstance(ev, AccuracyEvaluator)
    # a sample decoded by the space gives the same result as its network
    assert ev.evaluate(None, samples[0])["top1"] == results[0]["top1"]
    batch = ev.evaluate_many(nets, samples)  # a batch path may round differently, not more
    assert [r["top1"] for r in batch] == pytest.approx([r["top1"] for r in results], rel=1e-9)


# ---------------------------------------------------------------------- spaces


def _shipped_spaces() -> list[str]:
    from mnas.space import list_spaces

    return list_spaces()


@pytest.mark.parametrize("name", _shipped_spaces())
def test_every_shipped_space_keeps_the_space_protocol(name):
    from mnas.search.strategies.base import distributions, sample_from_params, to_param
    from mnas.space import load_space

    sp = load_space(name)
    assert isinstance(sp, Space) and sp.name == name
    choices = sp.choices()
    names = [c.name for c in choices]
    assert len(set(names)) == len(names) and all(len(c.options) >= 2 for c in choices)
    dists = distributions(choices)  # the Optuna parameters a strategy samples: one per choice, same order
    assert list(dists) == names
    for seed in range(5):
        s = sp.sample(random.Random(seed))
        assert list(s) == names and all(s[c.name] in c.options for c in choices)
        net = sp.decode(s)
        assert isinstance(net, Network)
        code = sp.encode_string(s)
        assert sp.decode_string(code) == s
        assert str(sp.decode(sp.decode_string(code))) == str(net)
        # a strategy's trial parameters map back to the same sample
        assert sample_from_params(choices, {k: to_param(v) for k, v in s.items()}) == s


# ---------------------------------------------------------------------- devices


def _devices() -> list[str]:
    from mnas.registries import devices

    return devices()


def _candidate_nets() -> list[Network]:
    """Reference networks, and one sample of each shipped space (a device may price one space only)."""
    from mnas.space import load_space

    nets = [zoo.get(n) for n in ("mobilenet_v3_small", "mobilenet_v3_large", "mnasnet_a1")]
    return nets + [load_space(n).decode(load_space(n).sample(random.Random(0))) for n in _shipped_spaces()]


@pytest.mark.parametrize("device", _devices())
def test_every_device_keeps_the_latency_protocol(device):
    from mnas.latency import get_predictor

    try:
        p = get_predictor(device)
    except MnasError as e:  # a model device whose data is absent says so in one line
        pytest.skip(f"{device}: {e}")
    assert isinstance(p, LatencyModel) and p.device == device
    priced = []
    for net in _candidate_nets():
        try:
            missing = p.missing(net)
        except MnasError as e:  # outside what the device models at all (e.g. another space): one clear line
            assert "\n" not in str(e) and str(e)
            continue
        assert isinstance(missing, list)
        if missing:  # it lacks ops of this network: predict names the first, and says how to measure it
            with pytest.raises(MnasError, match=re_escape(missing[0])):
                p.predict(net)
            continue
        try:
            ms = p.predict(net)
        except MnasError as e:  # outside what the device models (e.g. another space): one clear line
            assert "\n" not in str(e) and str(e)
            continue
        assert math.isfinite(ms) and ms > 0
        priced.append((net, ms))
    assert priced, f"{device} prices none of the reference networks or shipped spaces' samples"
    many = p.predict_many([n for n, _ in priced])  # the batch path agrees with one-by-one
    assert isinstance(many, np.ndarray)
    np.testing.assert_allclose(many, [ms for _, ms in priced], rtol=1e-9)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_shipped_implementations_fit_the_protocols():
    from mnas.latency import get_predictor
    from mnas.space import load_space

    assert isinstance(get_predictor("pixel1"), LatencyModel)
    assert isinstance(load_space("v3_small"), Space)
    assert isinstance(get_evaluator("predictor", space="v3_small"), AccuracyEvaluator)
    assert not isinstance(object(), LatencyModel) and not isinstance(zoo.get("mobilenet_v2"), Space)


# ---------------------------------------------------------------------- CONTRIBUTING.md, step by step

STRATEGY_MODULE = '''
"""Cyclic sampling: trial n takes option (n + offset) mod k of every choice."""

from optuna.samplers import BaseSampler, RandomSampler

from mnas.errors import MnasError


class CyclicSampler(BaseSampler):
    def __init__(self, space, offset, seed):
        self._space = dict(space)
        self.offset = offset
        self._fallback = RandomSampler(seed=seed)   # own seeded state: same seed, same trials

    def infer_relative_search_space(self, study, trial):
        return dict(self._space)

    def sample_relative(self, study, trial, search_space):
        return {k: d.choices[(trial.number + self.offset) % len(d.choices)] for k, d in search_space.items()}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)


def make(space, *, seed=None, multi_objective=False, offset: int = 0):
    """Trial n takes option (n + offset) mod k of every choice."""
    if offset < 0:
        raise MnasError(f"strategy 'cyclic': offset must be >= 0, got {offset}")
    return CyclicSampler(space, offset, seed)
'''

EVALUATOR_MODULE = '''
"""A toy accuracy signal: top-1 saturating in multiply-adds."""

import math

from mnas.accuracy.base import Evaluator
from mnas.counting import count


class MaddsEvaluator(Evaluator):
    name = "madds"

    def __init__(self, space=None, cache=None, scale_m: float = 50.0):
        super().__init__(space, cache)
        self.scale_m = scale_m

    def config(self):
        return {**super().config(), "scale_m": self.scale_m}

    def _evaluate(self, net, sample):
        return {"top1": 100 * (1 - math.exp(-count(net).madds / 1e6 / self.scale_m)), "loss": math.nan}
'''

SPACE_YAML = """\
name: tiny
description: a 2-stage bneck space (kernel and SE per stage)
resolution: 64
stem: {out: 16, kernel: 3, stride: 2, act: hs}
stages:
  - {name: s1, out: 24, stride: 2, depth: 1, choices: {kernel: [3, 5], expand: 4, se: [false, true], act: re}}
  - {name: s2, out: 40, stride: 2, depth: 2, choices: {kernel: [3, 5], expand: 6, se: false, act: hs}}
head: {conv: 128, conv_act: hs, dropout: 0.0}
"""


MODEL_DEVICE_MODULE = '''
"""A device that is a formula, not a table: 2 ms per 100 M multiply-adds, plus 1 ms."""

import numpy as np

from mnas.counting import count


class MaddsModel:
    def __init__(self, device, num_classes):
        self.device, self.num_classes = device, num_classes

    def predict(self, net):
        return 1.0 + 0.02 * count(net, self.num_classes).madds / 1e6

    def predict_many(self, nets):
        return np.array([self.predict(n) for n in nets])

    def missing(self, net):
        return []


def load(name, num_classes=1000):
    return MaddsModel(name, num_classes)
'''


def test_recipe_for_a_model_device(tmp_path, monkeypatch, capsys):
    from mnas.cli import main
    from mnas.counting import count
    from mnas.latency import get_predictor, predictor
    from mnas.registries import devices

    (tmp_path / "mychip.py").write_text(textwrap.dedent(MODEL_DEVICE_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(predictor.MODEL_DEVICES, "mychip", ("mychip:load", "2 ms per 100 M multiply-adds + 1 ms"))
    monkeypatch.setattr(predictor, "_CACHE", {})  # (so the toy does not outlive the test)
    assert "mychip" in devices() and isinstance(get_predictor("mychip"), LatencyModel)
    assert main(["arch", "show", "mobilenet_v3_small", "--device", "mychip", "--json"]) == 0
    net = zoo.get("mobilenet_v3_small")
    assert json.loads(capsys.readouterr().out)["latency_ms"] == pytest.approx(1.0 + 0.02 * count(net).madds / 1e6)
    test_every_device_keeps_the_latency_protocol("mychip")  # and it keeps the contract every device keeps


@pytest.fixture
def recipes(tmp_path, monkeypatch):
    """The four recipes of CONTRIBUTING.md, applied in a scratch folder (the registries are restored after)."""
    import mnas.space
    from mnas.search.strategies import STRATEGIES

    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "cyclic.py").write_text(textwrap.dedent(STRATEGY_MODULE))
    (mods / "madds_eval.py").write_text(textwrap.dedent(EVALUATOR_MODULE))
    monkeypatch.syspath_prepend(str(mods))
    # 1. strategy: one module + one line in STRATEGIES
    monkeypatch.setitem(STRATEGIES, "cyclic", "cyclic:make")
    # 2. evaluator: one module + one line in EVALUATORS
    monkeypatch.setitem(EVALUATORS, "madds", "madds_eval:MaddsEvaluator")
    # 3. space: one YAML file in search_spaces/ (here a scratch copy of that folder)
    spaces = tmp_path / "search_spaces"
    spaces.mkdir()
    for f in mnas.space.SPACES_DIR.glob("*.yaml"):
        (spaces / f.name).write_text(f.read_text())
    (spaces / "tiny.yaml").write_text(SPACE_YAML)
    monkeypatch.setattr(mnas.space, "SPACES_DIR", spaces)
    #    and, optionally, one line naming its default evaluator (else "predictor", which needs a fitted model)
    from mnas.accuracy import base

    monkeypatch.setitem(base.SPACE_EVALUATORS, "tiny", "madds")
    # 4. device: one table file on $MNAS_LATENCY_TABLES (what `mnas latency profile --device toybox` writes;
    #    here a made-up cost per op in place of a measurement: see toy_ms)
    from mnas.latency.keys import head_ops, layer_key
    from mnas.latency.table import Entry, LatencyTable

    sp = mnas.space.load_space("tiny")
    table = LatencyTable(meta={"device": "toybox", "engine": "hand", "threads": 1, "unit": "ms",
                               "method": "0.1 ms + 1 us per output channel, per op (a test)"})
    every = [dict(zip([c.name for c in sp.choices()], combo)) for combo in _product(sp)]
    for s in every:
        net = sp.decode(s)
        for layer in net.layers():
            table.entries[layer_key(layer)] = Entry(toy_ms(layer.cout), 0.0, 1)
        for hop in head_ops(net, 1000):
            table.entries[hop.key] = Entry(toy_ms(hop.cout), 0.0, 1)
    tables = tmp_path / "tables"
    table.save(tables / "toybox.csv")
    monkeypatch.setenv("MNAS_LATENCY_TABLES", str(tables))
    return sp, every


def toy_ms(cout: int) -> float:
    return 0.1 + 0.001 * cout


def _product(sp):
    import itertools

    return itertools.product(*(c.options for c in sp.choices()))


def test_contributing_md_shows_exactly_these_recipes():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "CONTRIBUTING.md").read_text()
    blocks = [textwrap.dedent(b.split("\n", 1)[1]) for b in page.split("```")[1::2]]  # fenced code, language dropped
    for text in (STRATEGY_MODULE, EVALUATOR_MODULE, SPACE_YAML):
        assert textwrap.dedent(text).strip() in [b.strip() for b in blocks], text.strip().splitlines()[0]
    for line in ('"cyclic": "mnas.search.strategies.cyclic:make",', '"madds": "mnas.accuracy.madds:MaddsEvaluator",'):
        assert line in page


def test_recipes_register_everywhere(recipes):
    from mnas import registries
    from mnas.cli import make_parser

    assert "cyclic" in registries.strategies() and "madds" in registries.evaluators()
    assert "tiny" in registries.spaces() and "toybox" in registries.devices()
    parser = make_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for cmd, flag in (("search", "--strategy"), ("replay", "--strategy"), ("search", "--evaluator"),
                      ("eval", "--evaluator"), ("netadapt", "--evaluator"), ("replay", "--evaluator")):
        action = next(a for a in sub[cmd]._actions if flag in a.option_strings)
        assert ("cyclic" if flag == "--strategy" else "madds") in action.choices, (cmd, flag)
    for cmd in ("search", "eval"):
        assert "tiny" in sub[cmd].format_help(), cmd
    from mnas.netadapt import NetAdaptConfig
    from mnas.search.config import SearchConfig

    assert NetAdaptConfig(arch="mobilenet_v3_small", device="toybox", target_ms=1.0, evaluator="madds").evaluator == "madds"
    assert SearchConfig(target_ms=3.0, space="tiny", strategy="cyclic").evaluator == "madds"  # the space's default
    for cmd in ("search", "netadapt", "replay"):
        assert "toybox" in sub[cmd].format_help(), cmd


def test_recipes_run_a_five_trial_search_from_the_command_line(recipes, tmp_path, capsys):
    import pandas as pd

    from mnas.cli import main
    from mnas.counting import count

    sp, every = recipes
    out = tmp_path / "run"
    code = main(["search", "--space", "tiny", "--device", "toybox", "--strategy", "cyclic",  # the space's evaluator
                 "--strategy-option", "offset=1", "--trials", "5", "--target-ms", "2.5", "--out", str(out),
                 "--no-progress", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    df = pd.read_csv(out / "trials.csv")
    df = df[df["state"] == "COMPLETE"].sort_values("number")
    assert len(df) == 5
    names = [c.name for c in sp.choices()]
    for _, row in df.iterrows():
        # the cyclic strategy: trial n took option (n + 1) mod 2 of every choice
        want = {c.name: c.options[(int(row["number"]) + 1) % len(c.options)] for c in sp.choices()}
        got = {n: row[n] for n in names}
        assert {k: str(v) for k, v in got.items()} == {k: str(v) for k, v in want.items()}
        net = sp.decode(want)
        assert row["arch"] == str(net)
        # the madds evaluator's formula, and the toybox table's ops summed by hand
        assert row["madds"] == count(net).madds
        assert row["accuracy"] == pytest.approx(100 * (1 - math.exp(-count(net).madds / 1e6 / 50.0)))
        stem_and_blocks = [16, 24, 40, 40]  # the YAML's channel widths: stem, s1 (1 layer), s2 (2 layers)
        head = [128, 128, 1000]  # 1x1 conv, pooling, classifier (no hidden layer)
        assert row["latency_ms"] == pytest.approx(sum(toy_ms(c) for c in stem_and_blocks + head), rel=1e-6)
    config = (out / "config.yaml").read_text()
    for text in ("space: tiny", "device: toybox", "evaluator: madds", "strategy: cyclic"):
        assert text in config
    assert json.loads(captured.out)  # --json printed the result
    # the same evaluator by name from `mnas eval`, on the space's compact encoding of trial 0's network
    code = main(["eval", sp.encode_string(sp.decode_string("111")), "--space", "tiny", "-e", "madds", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    net = sp.decode(sp.decode_string("111"))
    assert json.loads(captured.out)["top1"] == pytest.approx(100 * (1 - math.exp(-count(net).madds / 1e6 / 50.0)))

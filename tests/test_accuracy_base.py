"""The evaluator interface: the name table, option checking, the persistent cache."""

from __future__ import annotations

import subprocess
import sys

import pytest
from evaluator_contract import check_evaluator_contract

from mnas import zoo
from mnas.accuracy import EVALUATORS, Evaluator, ResultCache, evaluator_options, get_evaluator
from mnas.errors import MnasError


class Params(Evaluator):
    """A toy evaluator: top-1 from the parameter count (cheap, deterministic, counts its calls)."""

    name = "params"

    def __init__(self, space=None, cache=None, scale: float = 1e-5):
        super().__init__(space, cache)
        self.scale = scale
        self.calls = 0

    def config(self) -> dict:
        return {"evaluator": self.name, "scale": self.scale}

    def _evaluate(self, net, sample):
        from mnas.counting import count

        self.calls += 1
        return {"top1": min(100.0, count(net).params * self.scale), "loss": 0.5}


NETS = [zoo.get("mobilenet_v3_small"), zoo.get("mobilenet_v2")]


def test_import_does_not_load_torch():
    code = "import sys, mnas.accuracy, mnas.accuracy.base; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_shipped_kinds_are_registered():
    # every registered kind is checked by tests/test_contracts.py; others may be added freely
    assert {"train", "supernet", "predictor", "table"} <= set(EVALUATORS)
    assert EVALUATORS["supernet"] == "mnas.accuracy.supernet:SupernetEvaluator"


def test_unknown_kind_and_unknown_option_are_named(monkeypatch):
    with pytest.raises(MnasError, match=rf"unknown evaluator 'trian' \(choose one of {', '.join(EVALUATORS)}\)"):
        get_evaluator("trian")
    monkeypatch.setitem(EVALUATORS, "params", f"{__name__}:Params")  # a registered kind is offered at once
    with pytest.raises(MnasError, match=r"unknown evaluator 'param' \(choose one of .*, params\)"):
        get_evaluator("param")
    assert get_evaluator("params", scale=2e-5).scale == 2e-5
    allowed = ", ".join(sorted(k for k in evaluator_options("table") if k != "space"))
    assert {"cache", "path", "seed"} <= set(allowed.split(", "))
    with pytest.raises(MnasError, match=rf"table evaluator: unknown option\(s\) epochs, lr \(allowed: {allowed}\)"):
        get_evaluator("table", epochs=3, lr=0.1)


def test_options_listed_with_defaults():
    opts = evaluator_options("train")
    assert opts["epochs"] == 1.0 and opts["optimizer"] == "sgd" and "cache" in opts


def test_contract_of_a_toy_evaluator(tmp_path):
    check_evaluator_contract(lambda c: Params(cache=c), NETS, tmp_path)


def test_cache_key_includes_the_configuration(tmp_path):
    a = Params(cache=tmp_path / "c.sqlite", scale=1e-5)
    b = Params(cache=tmp_path / "c.sqlite", scale=2e-5)
    ra, rb = a.evaluate(NETS[0]), b.evaluate(NETS[0])
    assert b.calls == 1 and rb["top1"] == pytest.approx(2 * ra["top1"])
    assert len(ResultCache(tmp_path / "c.sqlite")) == 2


def test_sqlite_file_is_readable_by_other_tools(tmp_path):
    import sqlite3

    Params(cache=tmp_path / "c.sqlite").evaluate(NETS[0])
    rows = sqlite3.connect(tmp_path / "c.sqlite").execute("SELECT evaluator, arch FROM results").fetchall()
    assert rows == [("params", str(NETS[0]))]


def test_bad_cache_and_bad_input(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(MnasError, match="not a readable SQLite file"):
        Params(cache=bad).evaluate(NETS[0])
    with pytest.raises(MnasError, match="is a directory"):
        Params(cache=tmp_path)
    with pytest.raises(MnasError, match="give a network, or a sample together with a search space"):
        Params().evaluate(None, {"s1.kernel": 3})


def test_sample_is_decoded_by_the_space():
    import random

    from mnas.space import load_space

    sp = load_space("v3_small")
    s = sp.sample(random.Random(0))
    ev = Params(space=sp)
    assert ev.evaluate(None, s)["top1"] == ev.evaluate(sp.decode(s))["top1"]
    assert ev.cache_hits == 1


def test_evaluator_pickles_with_its_cache(tmp_path):
    import pickle

    ev = Params(cache=tmp_path / "c.sqlite")
    first = ev.evaluate(NETS[0])
    clone = pickle.loads(pickle.dumps(ev))  # e.g. shipped to a Ray worker
    assert clone.evaluate(NETS[0])["top1"] == first["top1"] and clone.calls == 1  # served from the cache
    clone.evaluate(NETS[1])
    assert Params(cache=tmp_path / "c.sqlite").evaluate(NETS[1])["cached"] is True

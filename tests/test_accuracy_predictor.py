"""The predictor: encoding, the JSON tree model against scikit-learn, fitting quality, shipped models."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from evaluator_contract import check_evaluator_contract

from mnas import zoo
from mnas.accuracy import get_evaluator
from mnas.accuracy import predictor as P
from mnas.errors import MnasError
from mnas.space import load_space


def test_encoding_of_v3_small_by_hand():
    x = dict(zip(P.FEATURE_NAMES, P.encode(zoo.get("mobilenet_v3_small"))))
    assert len(P.encode(zoo.get("mobilenet_v3_large"))) == len(P.FEATURE_NAMES)
    # V3-Small (paper Table 2): 11 bnecks; the first at 56×56 (1/4 of 224), then two at 1/8 ...
    assert x["depth"] == 11
    assert x["l2.blocks"] == 1 and x["l2.se_frac"] == 1.0 and x["l2.width_log2"] == 4  # 16 channels
    assert x["l3.blocks"] == 2 and x["l3.kernel_max"] == 3 and x["l3.hswish_frac"] == 0
    assert x["l4.blocks"] == 5 and x["l4.kernel_max"] == 5 and x["l4.width_log2"] == pytest.approx(np.log2(48))
    assert x["l5.blocks"] == 3 and x["l5.width_log2"] == pytest.approx(np.log2(96))
    assert x["l3.expand_mean"] == pytest.approx((72 / 16 + 88 / 24) / 2)
    assert x["head_log2"] == 10  # the 1024-wide hidden layer


@pytest.fixture(scope="module")
def macro_pairs(shared_data):
    path = shared_data / "nas_bench_macro" / "nas-bench-macro_cifar10.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    raw = json.loads(path.read_text())
    sp = load_space("nasbench_macro")
    keys = random.Random(1).sample(sorted(raw), 260)
    return [sp.decode(sp.decode_string(k)) for k in keys], np.array([raw[k]["mean_acc"] for k in keys])


def test_json_trees_predict_exactly_what_sklearn_predicts(macro_pairs):
    from sklearn.ensemble import GradientBoostingRegressor

    nets, y = macro_pairs
    X = P.encode_many(nets)
    m = GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0).fit(X[:200], y[:200])
    ours = P.TreeEnsemble.from_sklearn(m)
    assert np.allclose(ours.predict(X[200:]), m.predict(X[200:]), atol=1e-9)


def test_fit_ranks_held_out_benchmark_architectures(macro_pairs, tmp_path):
    from scipy.stats import kendalltau

    nets, y = macro_pairs
    model, report = P.fit(nets[:200], y[:200], n_estimators=100)
    assert report["n"] == 200 and report["n_holdout"] == 50
    tau = kendalltau(model.predict(P.encode_many(nets[200:])), y[200:]).statistic
    assert tau > 0.5 and report["kendall_tau"] > 0.5  # a weak predictor would rank near 0
    path = model.save(tmp_path / "m.json")
    again = P.TreeEnsemble.load(path)
    assert np.array_equal(again.predict(P.encode_many(nets[200:])), model.predict(P.encode_many(nets[200:])))
    assert json.loads(path.read_text())["meta"]["holdout"]["kendall_tau"] == report["kendall_tau"]


def test_contract_and_any_network(macro_pairs, tmp_path):
    nets, y = macro_pairs
    model, _ = P.fit(nets[:60], y[:60], n_estimators=20)
    path = model.save(tmp_path / "m.json")
    check_evaluator_contract(lambda c: get_evaluator("predictor", model=path, cache=c), nets[60:63], tmp_path)
    # a network from outside the space (e.g. NetAdapt's) is still encoded and predicted
    r = get_evaluator("predictor", model=path).evaluate(zoo.get("mobilenet_v2"))
    assert 0 <= r["top1"] <= 100


def _walk_json_trees(path, x: np.ndarray) -> float:
    """A second implementation: the model file's trees walked node by node, in plain Python."""
    d = json.loads(path.read_text())
    total = d["init"]
    for t in d["trees"]:
        node = 0
        while t["left"][node] != -1:
            node = t["left"][node] if x[t["feature"][node]] <= t["threshold"][node] else t["right"][node]
        total += d["rate"] * t["value"][node]
    return total


@pytest.mark.parametrize("space", ["v3_small", "v3_large"])
def test_shipped_model_is_the_offline_default(space):
    sp = load_space(space)
    ev = get_evaluator("predictor", space=sp)  # no model given: the one shipped for this space
    path = P.shipped_model(space)
    assert ev.model_path == path and path.is_file()
    meta = json.loads(path.read_text())["meta"]
    assert meta["space"] == space
    holdout = meta["holdout"]
    assert holdout["n"] >= 8 and -1.0 <= holdout["kendall_tau"] <= 1.0 and holdout["mae"] >= 0.0  # its honest figures
    nets = [sp.decode(sp.sample(random.Random(i))) for i in range(20)]
    top1 = [ev.evaluate(n)["top1"] for n in nets]
    want = [min(100.0, max(0.0, _walk_json_trees(path, P.encode(n)))) for n in nets]
    assert top1 == pytest.approx(want, abs=1e-9)  # the evaluator answers with that file's trees, on these features
    assert np.array_equal(ev.predict_many(nets), np.array(top1))
    assert len(set(np.round(top1, 6))) >= 5  # the model distinguishes architectures


def test_model_errors(tmp_path):
    with pytest.raises(MnasError, match="not found"):
        get_evaluator("predictor", model=tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "pickle"}')
    with pytest.raises(MnasError, match="not a usable mnas model"):
        get_evaluator("predictor", model=bad)
    with pytest.raises(MnasError, match="give a search space"):
        get_evaluator("predictor")

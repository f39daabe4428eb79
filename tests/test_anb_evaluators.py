"""The ``table`` evaluator on Accel-NASBench and the ``anb`` surrogate, against the CSV read independently."""

from __future__ import annotations

import csv
import json
import math
import random
from collections import defaultdict

import numpy as np
import pytest
from evaluator_contract import check_evaluator_contract

from mnas import anb
from mnas.accuracy import get_evaluator
from conftest import anb_code
from mnas.errors import MnasError


@pytest.fixture(scope="session")
def csv_path(anb_csv_path):
    return anb_csv_path


code_of = anb_code


@pytest.fixture(scope="module")
def truth(csv_path):
    """code -> list of val_top1 of its rows, read with the csv module."""
    out = defaultdict(list)
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            out[code_of(r)].append(float(r["val_top1"]))
    return dict(out)


@pytest.fixture(scope="module")
def space():
    from mnas.space import load_space

    return load_space("anb")


def test_table_is_exact_for_listed_networks(truth, space, csv_path):
    ev = get_evaluator("table", space=space, path=csv_path)
    auto = get_evaluator("table")  # no space, no path: the network's shape picks the benchmark
    codes = random.Random(0).sample(sorted(truth), 300) + [c for c, v in truth.items() if len(v) == 2]
    for code in codes:
        want = sum(truth[code]) / len(truth[code])  # the ten networks trained twice: the mean of both runs
        sample = space.decode_string(code)
        r = ev.evaluate(None, sample)
        assert r["top1"] == pytest.approx(want, abs=1e-9) and r["runs"] == len(truth[code])
        assert ev.evaluate(space.decode(sample))["top1"] == r["top1"]
        assert auto.evaluate(space.decode(sample))["top1"] == r["top1"]
    batch = ev.evaluate_many([None] * len(codes), [space.decode_string(c) for c in codes])
    assert [b["top1"] for b in batch] == [ev.evaluate(None, space.decode_string(c))["top1"] for c in codes]


def test_unlisted_network_names_the_surrogate(truth, space, csv_path):
    assert anb.EFFICIENTNET_B0 not in truth
    ev = get_evaluator("table", space=space, path=csv_path)
    with pytest.raises(MnasError, match=r"1311-6321-6521-6331-6531-6541-6311 is not among the 4616 networks.*--evaluator anb"):
        ev.evaluate(None, space.decode_string(anb.EFFICIENTNET_B0))


def test_nasbench_macro_still_answers_without_a_space(shared_data):
    path = shared_data / "nas_bench_macro" / "nas-bench-macro_cifar10.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    from mnas.space import load_space

    macro = load_space("nasbench_macro")
    raw = json.loads(path.read_text())
    r = get_evaluator("table").evaluate(macro.decode(macro.decode_string("22212220")))
    assert r["top1"] == raw["22212220"]["mean_acc"]


def test_surrogate_is_close_to_the_table_on_listed_networks(truth, space):
    ev = get_evaluator("anb", space=space)
    codes = sorted(truth)
    rs = ev.evaluate_many([None] * len(codes), [space.decode_string(c) for c in codes])
    pred = np.array([r["top1"] for r in rs])
    want = np.array([np.mean(truth[c]) for c in codes])
    assert np.sqrt(np.mean((pred - want) ** 2)) < 0.5  # fitted on these: close, not equal
    assert rs[0]["model"] == ev.model.name and rs[0]["cv_rmse_pp"] == ev.model.report["cv_shipped"]["rmse"]
    one = ev.evaluate(space.decode(space.decode_string(codes[0])))
    assert one["top1"] == pytest.approx(pred[0], abs=1e-9)


def test_surrogate_report_carries_cv_figures_and_baselines():
    from mnas.accuracy.anb import load_model

    rep = load_model().report
    models = rep["models"]
    assert {"multiply-adds alone (cubic in log)", "parameters alone (cubic in log)",
            "linear on one-hot choices (ridge)"} <= set(models)
    shipped = rep["cv_shipped"]
    assert shipped == models[rep["shipped"]]
    for name, m in models.items():  # the shipped model beats every baseline fitted the same way
        if name != rep["shipped"]:
            assert shipped["kendall_tau"] >= m["kendall_tau"] - 0.002 and shipped["rmse"] <= m["rmse"] + 0.005, name
    assert shipped["kendall_tau"] > models["multiply-adds alone (cubic in log)"]["kendall_tau"] + 0.3


def _fit_anb():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
    import fit_anb

    return fit_anb


def test_kernel_component_equals_scikit_learn(truth):
    """The numpy evaluation of a stored RBF kernel model == sklearn's KernelRidge.predict on the same fit."""
    from sklearn.kernel_ridge import KernelRidge

    codes = random.Random(3).sample(sorted(truth), 400)
    C = np.stack([anb.parse_code(c) for c in codes])
    y = np.array([np.mean(truth[c]) for c in codes])
    comp = _fit_anb().kernel_fit(C[:300], y[:300])
    ours = anb.Surrogate({"components": [comp]}).predict(C[300:])
    oh, cont = anb.kernel_inputs(C)
    z = np.concatenate([oh, (cont - cont[:300].mean(0)) / cont[:300].std(0)], axis=1)
    z = z * np.array(comp["feature_scale"])
    assert len(set(comp["feature_scale"])) > 1  # a relevance was learned
    ref = KernelRidge(alpha=comp["alpha"], kernel="rbf", gamma=comp["gamma"]).fit(z[:300], y[:300] - y[:300].mean())
    np.testing.assert_allclose(ours, ref.predict(z[300:]) + y[:300].mean(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("cfg", [{}, {"kernel": "rbf", "lengthscale": 15.81, "link": "identity", "slots": "none", "steps": 20}],
                         ids=["shipped", "ablation-rbf-identity-noslots"])
def test_matern_component_equals_scikit_learn(truth, cfg):
    """The shipped kind of model (Matern 5/2 on log error with per-network ridge strengths), evaluated by
    mnas from its JSON == scikit-learn's Matern kernel and KernelRidge with sample weights on the same inputs
    (and an ablation's RBF kernel on top-1 itself without slot inputs, as experiments/ablate_anb.py fits it)."""
    from sklearn.gaussian_process.kernels import RBF, Matern
    from sklearn.kernel_ridge import KernelRidge

    codes = random.Random(5).sample(sorted(truth), 400)
    C = np.stack([anb.parse_code(c) for c in codes])
    y = np.array([np.mean(truth[c]) for c in codes])
    fit_anb = _fit_anb()
    comp = json.loads(json.dumps(fit_anb.matern_fit(C[:300], y[:300], cfg)))  # as stored
    ours = anb.Surrogate({"components": [comp]}).predict(C[300:])
    oh, cont = anb.kernel_inputs(C, slots=True)
    std = cont[:300].std(0)
    std[std == 0] = 1
    z = np.concatenate([oh, (cont - cont[:300].mean(0)) / std], axis=1) * np.array(comp["feature_scale"])
    noise = np.array(comp["noise_alpha"])
    assert noise.min() < noise.max() and comp["noise"]["downweighted"] > 0  # noise model and Huber rounds acted
    link = comp["link"]
    if cfg:  # top-1 itself, no per-slot inputs, RBF
        assert link["kind"] == "identity" and not any(comp["feature_scale"][len(oh[0]) + 16:])
        t = y[:300] - comp["intercept"]
        k = RBF(length_scale=comp["lengthscale"])
    else:
        t = (np.log(100 - y[:300]) - link["shift"]) / link["scale"]
        k = Matern(length_scale=comp["lengthscale"], nu=2.5)
    # KernelRidge with sample weights w solves (K + alpha diag(1/w)) dual = t
    ref = KernelRidge(alpha=1.0, kernel="precomputed").fit(k(z[:300]), t, sample_weight=1.0 / noise)
    f = ref.predict(k(z[300:], z[:300]))
    expect = f + comp["intercept"] if cfg else 100 - np.exp(link["shift"] + link["scale"] * f)
    np.testing.assert_allclose(ours, expect, rtol=0, atol=1e-6)
    assert np.sqrt(np.mean((ours - y[300:]) ** 2)) < 1.0  # and it predicts (300 networks: about 0.5 pp)


def test_slot_inputs_price_each_layer(truth):
    """Per-slot multiply-adds/parameters add up to the per-block counts, and slots follow the layer count."""
    C = np.stack([anb.parse_code(c) for c in random.Random(6).sample(sorted(truth), 50)])
    s = anb.slot_inputs(C).reshape(len(C), anb.SLOTS, 6)
    macs, params = anb.block_costs(C)
    for b in range(anb.BLOCKS):
        on = anb.SLOT_BLOCK == b
        np.testing.assert_allclose(np.expm1(s[:, on, 4]).sum(1) / 10, macs[:, b], rtol=1e-9)
        np.testing.assert_allclose(np.expm1(s[:, on, 5]).sum(1) / 1e3, params[:, b], rtol=1e-9)
        np.testing.assert_array_equal(s[:, on, 0].sum(1), C[:, b, 2])  # present slots == layers
    assert (s[:, :, 1][s[:, :, 0] == 0] == 0).all()  # an absent slot carries no choices


def test_lightgbm_component_equals_its_booster(truth):
    """A stored LightGBM component (the tpuv3 device model's residual part) == its booster's own predict."""
    from mnas.latency.surrogate import MODELS

    doc = json.loads((MODELS / "anb_tpuv3.json").read_text())
    parts = [c for c in doc["components"] if c["kind"] == "lightgbm"]
    assert parts, "the tpuv3 model ships a LightGBM component (experiments/fit_anb.py's residual rule)"
    import lightgbm

    booster = lightgbm.Booster(model_str=parts[0]["model"])
    C = np.stack([anb.parse_code(c) for c in random.Random(4).sample(sorted(truth), 50)])
    alone = anb.Surrogate({"components": [{**parts[0], "weight": 1.0}]}).predict(C)
    np.testing.assert_allclose(alone, booster.predict(anb.features(C)), rtol=0, atol=1e-12)


def test_surrogate_works_without_the_csv(monkeypatch, tmp_path, space):
    monkeypatch.setenv("MNAS_ANB_CSV", str(tmp_path / "absent.csv"))
    r = get_evaluator("anb", space=space).evaluate(None, space.decode_string(anb.EFFICIENTNET_B0))
    assert 40 < r["top1"] < 70 and math.isnan(r["loss"])
    with pytest.raises(MnasError, match="absent.csv not found"):
        get_evaluator("table", space=space)
    with pytest.raises(MnasError, match="predicts networks of the anb space"):
        get_evaluator("anb", space="v3_small")
    from mnas import zoo

    with pytest.raises(MnasError, match="not an Accel-NASBench"):
        get_evaluator("anb").evaluate(zoo.get("mobilenet_v3_small"))


def test_contracts(space, csv_path, tmp_path, truth):
    codes = sorted(truth)[:2]
    nets = [space.decode(space.decode_string(c)) for c in codes]
    check_evaluator_contract(lambda c: get_evaluator("anb", space=space, cache=c), nets, tmp_path)
    check_evaluator_contract(lambda c: get_evaluator("table", space=space, path=csv_path, cache=c), nets, tmp_path / "t")


# --------------------------------------------------------------------------- mnas eval --batch

def run_cli(argv, capsys):
    from mnas.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_batch_cli_answers_every_line(truth, space, tmp_path, capsys, csv_path):
    codes = sorted(truth)[:5]
    net = space.decode(space.decode_string(codes[1]))
    f = tmp_path / "nets.txt"
    f.write_text(f"# five listed networks\n{codes[0]}\n\n{str(net)}   # the text form\n" + "\n".join(codes[2:]) + "\n")
    rc, out, err = run_cli(["eval", "--space", "anb", "--batch", str(f), "-e", "table", "--table-path", str(csv_path)], capsys)
    assert rc == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["line"] for x in lines] == [2, 4, 5, 6, 7]
    assert [x["code"] for x in lines] == codes
    assert [x["top1"] for x in lines] == [pytest.approx(np.mean(truth[c]), abs=1e-9) for c in codes]
    assert all(x["evaluator"] == "table" and x["arch"].startswith("r224 stem_k3_c32_s2") for x in lines)
    rc, out, _ = run_cli(["eval", "--space", "anb", "--batch", str(f), "-e", "anb"], capsys)
    assert rc == 0 and len(out.splitlines()) == 5 and json.loads(out.splitlines()[0])["model"]


def test_batch_cli_bad_line_is_named(tmp_path, capsys, truth):
    f = tmp_path / "bad.txt"
    f.write_text(f"{sorted(truth)[0]}\n1311-6321-6541-6331-6531-6541-6311\n")
    rc, out, err = run_cli(["eval", "--space", "anb", "--batch", str(f), "-e", "anb"], capsys)
    assert rc == 2 and out == ""
    assert "bad.txt:2:" in err and "4 layers is outside 1..3" in err and len(err.strip().splitlines()) == 1
    f.write_text(f"{sorted(truth)[0]}\n{anb.EFFICIENTNET_B0}\n")
    rc, out, err = run_cli(["eval", "--space", "anb", "--batch", str(f), "-e", "table"], capsys)
    assert rc == 2 and "line 2" in err and "--evaluator anb" in err
    rc, out, err = run_cli(["eval", "--space", "anb", "--batch", str(tmp_path / "none.txt")], capsys)
    assert rc == 2 and "none.txt: no such file" in err


def test_batch_cli_reads_stdin_without_a_space(truth, space, capsys, monkeypatch):
    import io

    code = sorted(truth)[0]
    text = str(space.decode(space.decode_string(code)))  # the text form needs no --space
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{text}\n# done\n"))
    rc, out, err = run_cli(["eval", "--batch", "-", "-e", "anb"], capsys)
    assert rc == 0, err
    row = json.loads(out)
    assert row["line"] == 1 and row["key"] == code and "code" not in row

"""The Pixel-1 cost model: regenerated exactly by its script, and close to the published figures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import load_experiment

from mnas import zoo
from mnas.latency import get_predictor

REPO = Path(__file__).resolve().parents[1]


def _fit_module():
    return load_experiment("fit_pixel1")


def test_fit_script_is_deterministic_and_matches_shipped_tables(tmp_path, shared_data):
    # the fit reads Single-Path NAS's measured table from the data folder: without it the test skips
    singlepath = shared_data / "latency" / "pixel1_singlepath" / "pixel1_runtime_model.json"
    if not singlepath.is_file():
        pytest.skip(f"{singlepath} is absent")
    fit = _fit_module()
    fit.run(tmp_path / "a", verbose=False, singlepath=singlepath)
    fit.run(tmp_path / "b", verbose=False, singlepath=singlepath)
    for name in ("pixel1.csv", "pixel1-2018.csv"):
        a, b = (tmp_path / "a" / name).read_bytes(), (tmp_path / "b" / name).read_bytes()
        assert a == b, f"{name}: two runs differ"
        # the shipped table is exactly what the script writes (re-run the script after changing the zoo/spaces)
        assert a == (REPO / "latency_tables" / name).read_bytes(), f"latency_tables/{name} is stale"


@pytest.mark.parametrize("name, published_ms", [("mobilenet_v3_large", 51.2), ("mobilenet_v3_small", 15.8)])
def test_pixel1_close_to_published_v3(name, published_ms):
    # MobileNetV3 paper, Table 3 / Table 9: Pixel-1 latency of the 1.0 models at 224
    assert get_predictor("pixel1").predict(zoo.get(name)) == pytest.approx(published_ms, rel=0.10)


def _published(epoch):
    """(network, published ms) for every published row of ``epoch`` whose network the zoo defines alike."""
    from mnas.counting import count

    df = pd.read_csv(REPO / "latency_tables" / "published" / "pixel1.csv", comment="#")
    df = df[df["epoch"] == epoch]
    out = []
    for r in df.itertuples():
        name = r.model if r.width == 1.0 else f"{r.model}_{r.width:g}"
        if name not in zoo.names():
            continue
        ref = df[(df["model"] == r.model) & (df["width"] == r.width) & (df["resolution"] == 224)]
        if abs(count(zoo.get(name)).madds / 1e6 / float(ref["madds_m"].iloc[0]) - 1) > 0.02:
            continue  # the zoo's network differs from the published one
        out.append((zoo.get(name).with_resolution(int(r.resolution)), float(r.pixel1_ms)))
    return out


@pytest.mark.parametrize("device, epoch, min_rows", [("pixel1", "F", 20), ("pixel1-2018", "M", 25)])
def test_pixel1_tables_against_the_published_figures(device, epoch, min_rows):
    """The shipped table's predictions vs the published CSV itself (not a figure the fit wrote)."""
    import numpy as np

    rows = _published(epoch)
    assert len(rows) >= min_rows
    p = get_predictor(device)
    pred = np.array([p.predict(n) for n, _ in rows])
    pub = np.array([ms for _, ms in rows])
    rel = np.abs(pred / pub - 1)
    assert rel.mean() <= 0.04, f"{device}: in-sample MAPE {rel.mean():.1%}"
    assert rel.max() <= 0.15, f"{device}: worst network off by {rel.max():.1%}"
    # and it beats the multiply-adds line (latency proportional to madds, best scale) on the same rows
    from mnas.counting import count

    madds = np.array([count(n).madds for n, _ in rows], dtype=float)
    k = np.median(pub / madds)
    assert rel.mean() < np.abs(k * madds / pub - 1).mean()


SP_STAGES = ((16, 24, 2, 112), (24, 40, 2, 56), (40, 80, 2, 28), (80, 96, 1, 14), (96, 192, 2, 14))
SP_CHOICES = {"0": (3, 3), "1": (3, 6), "2": (5, 3), "3": (5, 6)}


def _singlepath_layers(shared_data):
    """(stage layer, kernel, ratio, one-layer Network's layer, measured ms) for Single-Path NAS's searched layers 1-20,
    built from the shapes in ../shared/data/README.md."""
    import json

    from mnas.arch import Act, Bneck, Layer

    path = shared_data / "latency" / "pixel1_singlepath" / "pixel1_runtime_model.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    data = json.loads(path.read_text())
    out, idx = [], 1
    for cin, cout, stride, h in SP_STAGES:
        for j in range(4):
            ci, st, hh = (cin, stride, h) if j == 0 else (cout, 1, (h - 1) // stride + 1)
            for choice, (k, e) in SP_CHOICES.items():
                b = Bneck(out=cout, exp=ci * e, kernel=k, stride=st, act=Act.RELU)
                out.append((idx, k, e, Layer(idx, b, ci, hh, cout, (hh - 1) // st + 1), data[str(idx)][choice]))
            idx += 1
    return out


@pytest.mark.parametrize("device", ["pixel1", "pixel1-2018"])
def test_pixel1_per_layer_against_single_path_measurements(device, shared_data):
    """Rank and (after one best scale) size of the 80 measured Single-Path layers; k5/k3 cost ratios."""
    import numpy as np
    from scipy.stats import kendalltau

    from mnas.latency.keys import layer_key
    from mnas.latency.opmodel import layer_features, op_cost_ms

    p = get_predictor(device)
    rows = _singlepath_layers(shared_data)
    model = np.array([p._ms.get(layer_key(la), op_cost_ms(layer_features(la), p._weights)) for *_, la, _ in rows])
    meas = np.array([ms for *_, ms in rows])
    assert kendalltau(model, meas).statistic >= 0.9
    scale = np.exp(np.median(np.log(meas / model)))  # the test's own scale, not the fit's
    assert np.mean(np.abs(model * scale / meas - 1)) <= 0.08
    # kernel 5 vs 3 at the same shape and expansion: the layer-cost ratio, on average within 3 % of the
    # measured one and within 12 % for every layer (stride-2 layers are the hardest)
    by = {(i, k, e): (m, ms) for (i, k, e, _, ms), m in zip(rows, model)}
    for e in (3, 6):
        ratios = [(by[i, 5, e][0] / by[i, 3, e][0], by[i, 5, e][1] / by[i, 3, e][1]) for i in range(1, 21)]
        mod, mea = np.array(ratios).T
        assert mod.mean() == pytest.approx(mea.mean(), rel=0.03), f"e{e}: k5/k3 {mod.mean():.3f} vs {mea.mean():.3f}"
        assert np.all(np.abs(mod / mea - 1) <= 0.12), f"e{e}: {np.round(mod / mea, 3)}"


def test_swish_is_priced_like_hswish():
    """No Pixel-1 swish measurement exists: a swish element costs what an h-swish element does."""
    from mnas.arch import Act, Bneck, Layer
    from mnas.latency.opmodel import layer_features, op_cost_ms

    if not hasattr(Act, "SWISH"):
        pytest.skip("this mnas has no swish activation")
    w = get_predictor("pixel1")._weights

    def cost(act):
        return op_cost_ms(layer_features(Layer(0, Bneck(out=40, exp=120, kernel=5, act=act), 40, 28, 40, 28)), w)

    assert cost(Act.SWISH) == pytest.approx(cost(Act.HSWISH))
    assert cost(Act.SWISH) > cost(Act.RELU)


def test_pixel1_vectorised_path_on_the_anb_space():
    """The anb space's ops are not listed in pixel1: the compiled space prices them by the model, as predict() does."""
    import random

    import numpy as np

    from mnas.space import load_space

    if not (REPO / "search_spaces" / "anb.yaml").is_file():
        pytest.skip("search_spaces/anb.yaml is absent")
    sp = load_space("anb")
    p = get_predictor("pixel1")
    fast = p.compile_space(sp, check=20)
    rng = random.Random(3)
    samples = [sp.sample(rng) for _ in range(30)]
    slow = np.array([p.predict(sp.decode(s)) for s in samples])
    np.testing.assert_allclose(fast.predict_indices(fast.encode(samples)), slow, rtol=1e-9)
    assert 10 < slow.min() and slow.max() < 300  # MnasNet-sized networks on a 2016 phone core


def test_published_transcription_matches_shared_data(shared_data):
    shared = shared_data / "published" / "pixel1_latency.csv"
    if not shared.is_file():
        pytest.skip(f"{shared} is absent")
    ours = pd.read_csv(REPO / "latency_tables" / "published" / "pixel1.csv", comment="#")
    theirs = pd.read_csv(shared)
    cols = ["model", "width", "resolution", "madds_m", "params_m", "top1", "pixel1_ms", "epoch"]
    pd.testing.assert_frame_equal(ours[cols], theirs[cols], check_dtype=False)


def test_modelled_table_prices_unlisted_ops_with_its_own_model():
    """pixel1 lists ops of the zoo and spaces; a NetAdapt-style width it does not list is priced by the
    header's model, and for a listed op the model and the table agree (the table *is* the model)."""
    import dataclasses

    from mnas import zoo
    from mnas.latency import get_predictor
    from mnas.latency.keys import layer_key
    from mnas.latency.opmodel import layer_features, op_cost_ms

    p = get_predictor("pixel1")
    net = zoo.get("mobilenet_v3_large")
    for layer in list(net.layers())[:6]:
        listed = p._ms[layer_key(layer)]
        assert op_cost_ms(layer_features(layer), p._weights) == pytest.approx(listed, rel=1e-5)
    odd = dataclasses.replace(net, blocks=(dataclasses.replace(net.blocks[0], exp=16),)
                              + (dataclasses.replace(net.blocks[1], exp=40),) + net.blocks[2:])
    assert p.missing(odd) == []
    # shrinking an expansion layer from 64 to 40 channels must lower the prediction
    assert p.predict(odd) < p.predict(net)


# --------------------------------------------------------------------------- eras: DEVICE@ERA (latency/pixel1_era.py)

def test_era_factor_is_the_least_relative_squares_scale():
    """Hand computation: r = predicted/published; s = sum(r) / sum(r^2) minimises sum((s r - 1)^2)."""
    from mnas.errors import MnasError
    from mnas.latency.pixel1_era import era_factor

    assert era_factor([10.0, 20.0], [11.0, 22.0]) == pytest.approx(1.1)  # uniformly 10 % low
    assert era_factor([10.0, 10.0], [10.0, 20.0]) == pytest.approx(1.5 / 1.25)  # r = 1, 0.5 -> 1.2
    with pytest.raises(MnasError, match="equally many"):
        era_factor([1.0, 2.0], [1.0])
    with pytest.raises(MnasError, match="> 0"):
        era_factor([1.0], [0.0])


def _published_by_source(*needles):
    """(Network, published ms) for the published rows whose `source` contains every needle, read with csv."""
    import csv

    from mnas.counting import count

    with open(REPO / "latency_tables" / "published" / "pixel1.csv", newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    out = []
    for r in rows:
        if not all(n in r["source"] for n in needles):
            continue
        width = float(r["width"])
        name = r["model"] if width == 1.0 else f"{r['model']}_{width:g}"
        if name not in zoo.names():
            continue
        ref = [q for q in rows if q["model"] == r["model"] and float(q["width"]) == width and q["resolution"] == "224"
               and q["epoch"] == r["epoch"]]
        if abs(count(zoo.get(name)).madds / 1e6 / float(ref[0]["madds_m"]) - 1) > 0.02:
            continue
        out.append((zoo.get(name).with_resolution(int(r["resolution"])), float(r["pixel1_ms"])))
    return out


@pytest.mark.parametrize("device, era, needles, min_rows, max_mape", [
    ("pixel1", "slim-v2", ("slim", "MobileNetV2 table"), 20, 0.04),
    ("pixel1", "mnasnet-readme", ("tensorflow/tpu",), 5, 0.04),
    ("pixel1", "table3", ("Table 3",), 3, 0.06),
    ("pixel1-2018", "table9", ("Table 9",), 18, 0.05),
    ("pixel1-2018", "table3", ("Table 3",), 3, 0.06),
])
def test_era_device_is_on_its_sources_scale(device, era, needles, min_rows, max_mape):
    """DEVICE@ERA = DEVICE x the best single scale to that source's published figures (computed here from the CSV)."""
    import numpy as np

    rows = _published_by_source(*needles)
    assert len(rows) >= min_rows
    pub = np.array([ms for _, ms in rows])
    plain = np.array([get_predictor(device).predict(n) for n, _ in rows])
    r = plain / pub
    scale = r.sum() / (r * r).sum()  # this test's own least-relative-squares scale
    scaled = np.array([get_predictor(f"{device}@{era}").predict(n) for n, _ in rows])
    np.testing.assert_allclose(scaled, scale * plain, rtol=1e-5)
    mape = np.mean(np.abs(scaled / pub - 1))
    assert mape <= max_mape, f"{device}@{era}: MAPE {mape:.1%}"
    # least squares: the squared relative error is never worse than the plain device's (s = 1 is a candidate)
    assert np.mean((scaled / pub - 1) ** 2) <= np.mean((r - 1) ** 2) + 1e-12


def test_era_same_network_timed_by_two_sources():
    """MobileNetV2 1.0 @224 was published at 64.0 ms (MobileNetV3 paper, Table 3) and 73.8 ms (slim README)."""
    v2 = zoo.get("mobilenet_v2")
    old, new = get_predictor("pixel1@slim-v2").predict(v2), get_predictor("pixel1@table3").predict(v2)
    assert old == pytest.approx(73.8, rel=0.03)
    assert new == pytest.approx(64.0, rel=0.03)
    assert old / new == pytest.approx(73.8 / 64.0, rel=0.03)
    # the MnasNet-era sources are slower than the MobileNetV3 paper's build: plain pixel1 is ~13 % low on slim-v2
    assert get_predictor("pixel1").predict(v2) < 0.9 * 73.8


def _singlepath_network(layers, choice_of):
    """A network of Single-Path NAS's space (README shapes) and its price as its search code sums it."""
    from mnas.arch import Act, Bneck, Conv, Head, Network

    picked = [(la, ms) for idx, k, e, la, ms in layers if (k, e) == choice_of(idx)]
    blocks = [Bneck(out=16, exp=32, kernel=3, act=Act.RELU)] + [la.block for la, _ in picked]
    blocks.append(Bneck(out=320, exp=192 * 6, kernel=3, act=Act.RELU))
    net = Network(stem=Conv(out=32, kernel=3, stride=2, act=Act.RELU), blocks=tuple(blocks),
                  head=Head(conv=1280, conv_act=Act.RELU))
    return net, 19.6 + sum(ms for _, ms in picked)


def test_era_singlepath_prices_its_networks(shared_data):
    """pixel1@singlepath on networks of Single-Path NAS's space, priced from its measured per-layer table."""
    import random

    import numpy as np

    layers = _singlepath_layers(shared_data)
    rng = random.Random(7)
    picks = [lambda i: (3, 3), lambda i: (5, 6), lambda i: (3, 6) if i % 2 else (5, 3)]
    for _ in range(12):
        c = [rng.choice([(3, 3), (3, 6), (5, 3), (5, 6)]) for _ in range(21)]
        picks.append(lambda i, c=c: c[i])
    nets = [_singlepath_network(layers, f) for f in picks]
    meas = np.array([ms for _, ms in nets])
    era = np.array([get_predictor("pixel1@singlepath").predict(n) for n, _ in nets])
    plain = np.array([get_predictor("pixel1").predict(n) for n, _ in nets])
    assert np.max(np.abs(era / meas - 1)) <= 0.03
    assert np.mean(np.abs(era / meas - 1)) < 0.5 * np.mean(np.abs(plain / meas - 1))


def test_era_vectorised_path_applies_the_factor():
    import random

    import numpy as np

    from mnas.space import load_space

    sp = load_space("v3_small")
    samples = [sp.sample(random.Random(5)) for _ in range(1)] + [sp.sample(random.Random(i)) for i in range(10)]
    base, era = get_predictor("pixel1"), get_predictor("pixel1@slim-v2")
    fast = era.compile_space(sp, check=10)
    got = fast.predict_indices(fast.encode(samples))
    np.testing.assert_allclose(got, [era.predict(sp.decode(s)) for s in samples], rtol=1e-9)
    ratio = got / np.array([base.predict(sp.decode(s)) for s in samples])
    assert np.ptp(ratio) < 1e-9 and 1.05 < ratio[0] < 1.25  # one factor for all, the MnasNet era's slower build


def test_era_errors_are_one_line(capsys):
    from mnas.cli import main
    from mnas.errors import MnasError

    with pytest.raises(MnasError, match=r"pixel1 has no era 'nope'; its eras: table9, table3, .*singlepath"):
        get_predictor("pixel1@nope")
    with pytest.raises(MnasError, match="madds has no eras"):
        get_predictor("madds@table3")
    with pytest.raises(MnasError, match="write DEVICE@ERA"):
        get_predictor("pixel1@")
    assert main(["latency", "predict", "mobilenet_v2", "--device", "pixel1@nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no era 'nope'" in err[0]


@pytest.mark.slow
def test_eras_report_is_regenerated_exactly(shared_data):
    """experiments/results/pixel1_eras.md is what experiments/pixel1_eras.py writes now (re-run it after a refit)."""
    singlepath = shared_data / "latency" / "pixel1_singlepath" / "pixel1_runtime_model.json"
    if not singlepath.is_file():
        pytest.skip(f"{singlepath} is absent")
    eras = load_experiment("pixel1_eras")
    text = eras.render(eras.evaluate(singlepath))
    assert text == (REPO / "experiments" / "results" / "pixel1_eras.md").read_text(), "pixel1_eras.md is stale"

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


def test_fit_script_is_deterministic_and_matches_shipped_tables(tmp_path):
    fit = _fit_module()
    fit.run(tmp_path / "a", verbose=False)
    fit.run(tmp_path / "b", verbose=False)
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

"""The `imagenet` estimate: checked against published ImageNet top-1 figures, not against its own report."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from evaluator_contract import check_evaluator_contract

from mnas import zoo
from mnas.accuracy import get_evaluator
from mnas.accuracy import imagenet as im
from mnas.arch import Act, Bneck, Conv, Head, Network
from mnas.errors import MnasError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

# Published top-1 (MobileNetV3 paper Table 3 / Appendix Table 9, MnasNet and MobileNetV2 READMEs).
PUBLISHED = {"mobilenet_v3_large": 75.2, "mobilenet_v3_small": 67.4, "mobilenet_v2": 71.8, "mnasnet_a1": 75.2}


@pytest.fixture(scope="module")
def ev():
    return get_evaluator("imagenet", warn=False)


def top1(ev, name: str, resolution: int | None = None) -> float:
    net = zoo.get(name)
    return ev.evaluate(net.with_resolution(resolution) if resolution else net)["top1"]


def test_orders_the_published_networks_as_published(ev):
    order = ["mobilenet_v3_large", "mnasnet_a1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_small_0.75",
             "mobilenet_v2_0.35"]
    est = [top1(ev, n) for n in order]
    assert est == sorted(est, reverse=True), dict(zip(order, est))


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_reference_networks_within_the_target_error_of_their_published_top1(ev, name):
    assert abs(top1(ev, name) - PUBLISHED[name]) <= 1.5


def test_resolution_raises_the_estimate_monotonically_as_published(ev):
    # V3-Large 1.0 at 96..256 px: 63.3, 68.4, 71.7, 73.7, 75.2, 76.0 (MobileNetV3 Table 9)
    est = [top1(ev, "mobilenet_v3_large", r) for r in (96, 128, 160, 192, 224, 256)]
    assert all(a < b for a, b in zip(est, est[1:]))


def test_features_of_v3_small_by_hand():
    x = dict(zip(im.FEATURES, im.features(zoo.get("mobilenet_v3_small"))))
    # 11 bnecks: 9 with SE, 8 with 5x5 kernels, 8 with h-swish; stem and both head layers h-swish
    assert x["depth"] == pytest.approx(1.1)
    assert x["se"] == pytest.approx(9 / 11)
    assert x["kernel"] == pytest.approx(8 / 11)
    assert x["smooth_act"] == pytest.approx((1 + 8 + 2) / 14)
    assert x["log2_res"] == 0.0
    assert 2 ** x["log2_madds"] == pytest.approx(56.5, abs=0.1)  # 56.5 M multiply-adds
    assert 2 ** x["log2_params"] == pytest.approx(2.542856)
    # where the blocks sit (V3-Small, Table 2), stage by stage: 16 ch at 56x56 (output stride 4, no
    # expansion); 24 ch x 2 at 28x28 (16 -> 72, 24 -> 88); at 14x14 40 ch x 3 (24 -> 96, 40 -> 240 twice)
    # then 48 ch x 2 (40 -> 120, 48 -> 144); 96 ch x 3 at 7x7 (48 -> 288, 96 -> 576 twice); 5x5 from 14x14 on
    on = sorted(n[:-3] for n, v in x.items() if n.endswith("_on") and v)
    assert on == ["slot16_11", "slot16_12", "slot16_13", "slot16_21", "slot16_22", "slot32_11", "slot32_12",
                  "slot32_13", "slot4_11", "slot8_11", "slot8_12"]
    assert x["slot4_11_expand"] == 0.0 and x["slot4_11_kernel"] == 0.0
    assert x["slot8_11_expand"] == pytest.approx(np.log2(72 / 16)) and x["slot8_12_expand"] == pytest.approx(np.log2(88 / 24))
    assert x["slot16_11_expand"] == pytest.approx(2.0) and x["slot16_21_expand"] == pytest.approx(np.log2(3))
    assert x["slot32_11_expand"] == pytest.approx(np.log2(6)) and x["slot32_13_kernel"] == 1.0
    assert x["slot16_14_on"] == 0.0  # the 40-channel stage has three blocks


def test_a_7x7_kernel_is_credited_as_a_5x5_never_more():
    v3 = zoo.get("mobilenet_v3_small")
    k7 = v3.replace(blocks=tuple(b if b.kernel == 3 else Bneck(**{**b.__dict__, "kernel": 7}) for b in v3.blocks))
    assert im.features(k7)[im.FEATURES.index("kernel")] == im.features(v3)[im.FEATURES.index("kernel")]


def test_evaluate_many_equals_one_by_one(ev):
    nets = [zoo.get(n).with_resolution(r) for n in ("mobilenet_v3_small", "mnasnet_b1", "mobilenet_v1") for r in (128, 224)]
    many = ev.evaluate_many(nets)
    fresh = get_evaluator("imagenet", warn=False)
    for net, r in zip(nets, many):
        assert r["top1"] == pytest.approx(fresh.evaluate(net)["top1"], abs=1e-9)
        assert r["model"] == ev.model.name and r["extrapolated"] is False


def test_evaluate_many_shares_the_cache(tmp_path):
    nets = [zoo.get("mobilenet_v3_small"), zoo.get("mobilenet_v2")]
    ev = get_evaluator("imagenet", cache=tmp_path / "c.sqlite", warn=False)
    first = ev.evaluate_many(nets)
    assert [r["cached"] for r in first] == [False, False] and ev.evaluations == 2
    assert ev.evaluate(nets[1])["cached"] is True
    again = get_evaluator("imagenet", cache=tmp_path / "c.sqlite", warn=False).evaluate_many(nets[::-1])
    assert [r["cached"] for r in again] == [True, True]
    assert [r["top1"] for r in again] == [r["top1"] for r in first[::-1]]


def test_evaluator_contract(tmp_path):
    check_evaluator_contract(lambda cache: get_evaluator("imagenet", cache=cache),
                             [zoo.get("mobilenet_v3_small"), zoo.get("mobilenet_v2")], tmp_path)


def test_results_carry_the_model_name_and_its_measured_error(ev):
    r = ev.evaluate(zoo.get("mobilenet_v3_large"))
    assert r["model"] == "imagenet-linear-2"
    assert 0 < r["mae_pp"] <= 1.5 and 0.85 <= r["kendall_tau"] <= 1
    assert math.isnan(r["loss"])


# --------------------------------------------------------------------------- extrapolation and bad input


def test_a_64px_network_is_scored_and_flagged(capsys):
    ev = get_evaluator("imagenet")
    r = ev.evaluate(zoo.get("mobilenet_v3_small").with_resolution(64))
    assert r["extrapolated"] is True and "resolution 64" in r["extrapolated_why"]
    assert 0 < r["top1"] < top1(ev, "mobilenet_v3_small", 96)
    assert "extrapolated" in capsys.readouterr().err


def test_a_3000_channel_network_is_flagged():
    wide = Network(stem=Conv(out=32, kernel=3, stride=2), blocks=(Bneck(out=3000, exp=3000, kernel=3, stride=2),
                                                               Bneck(out=3000, exp=9000, kernel=3, stride=1)),
                   head=Head(conv=1280))
    r = get_evaluator("imagenet", warn=False).evaluate(wide)
    assert r["extrapolated"] is True and "multiply-adds" in r["extrapolated_why"]


def test_an_expansion_narrower_than_its_input_is_flagged(ev):
    v3 = zoo.get("mobilenet_v3_large")
    blocks = list(v3.blocks)
    blocks[3] = Bneck(**{**blocks[3].__dict__, "exp": 8, "se": 0})  # 24 channels in, 8 expanded
    r = ev.evaluate(v3.replace(blocks=tuple(blocks)))
    assert r["extrapolated"] is True and "b3 expands 24 to 8" in r["extrapolated_why"]
    assert ev.evaluate(v3)["extrapolated"] is False


def test_regular_convolution_blocks_are_flagged(ev):
    a1 = zoo.get("mnasnet_a1")
    blocks = list(a1.blocks)
    blocks[2] = Conv(out=blocks[2].out, kernel=3, stride=1)
    r = ev.evaluate(a1.replace(blocks=tuple(blocks)))
    assert r["extrapolated"] is True and "regular-convolution" in r["extrapolated_why"]


def test_a_network_without_depthwise_blocks_is_one_error(ev):
    plain = Network(stem=Conv(out=32, kernel=3, stride=2), blocks=(Conv(out=64, kernel=3, stride=2),))
    with pytest.raises(MnasError, match="no depthwise"):
        ev.evaluate(plain)


def test_missing_and_corrupt_model_files_are_one_error(tmp_path):
    with pytest.raises(MnasError, match="missing"):
        get_evaluator("imagenet", model=tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "mnas-imagenet-linear-1", "coef": ')
    with pytest.raises(MnasError, match="corrupt"):
        get_evaluator("imagenet", model=bad)
    data = json.loads(im.MODEL_PATH.read_text())
    del data["intercept"]
    bad.write_text(json.dumps(data))
    with pytest.raises(MnasError, match="intercept"):
        get_evaluator("imagenet", model=bad)


def test_cli_bad_model_file_is_one_line_exit_2(tmp_path, capsys):
    from mnas.cli import main

    bad = tmp_path / "m.json"
    bad.write_text("[1, 2")
    assert main(["eval", "mobilenet_v3_small", "-o", f"model={bad}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corrupt" in err[0]


# --------------------------------------------------------------------------- the default evaluator


@pytest.mark.parametrize("space", [None, "v3_small", "v3_large", "mnasnet"])
def test_mnas_eval_defaults_to_the_estimate(space, capsys):
    from mnas.cli import main

    argv = ["eval", "mobilenet_v3_small", "--json"] + (["--space", space] if space else [])
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluator"] == "imagenet" and abs(out["top1"] - 67.4) <= 1.5
    assert out["model"] == "imagenet-linear-2" and out["extrapolated"] is False


def test_other_spaces_keep_their_default():
    from mnas.accuracy.base import default_evaluator
    from mnas.search.config import SearchConfig

    assert default_evaluator("nasbench_macro") == "predictor"
    for space in ("v3_small", "v3_large", "mnasnet"):
        assert SearchConfig(target_ms=15, space=space).evaluator == "imagenet"
    assert SearchConfig(target_ms=15, space="nasbench_macro").evaluator == "predictor"


def test_search_prints_the_estimate_column(tmp_path, capsys):
    from mnas.cli import main

    assert main(["search", "--target-ms", "15", "--trials", "12", "--strategy", "random", "--out",
                 str(tmp_path / "run"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "imagenet accuracy" in out and "est. ImageNet top-1" in out


def test_netadapt_selecting_by_the_estimate_avoids_flagged_proposals(tmp_path):
    from mnas.latency import get_predictor
    from mnas.netadapt import NetAdaptConfig, run_netadapt

    seed = zoo.get("mobilenet_v3_large")
    pred = get_predictor("pixel1")
    target = 0.9 * pred.predict(seed)
    cfg = NetAdaptConfig(arch=str(seed), device="pixel1", target_ms=target, evaluator="imagenet", budget="smoke")
    s = run_netadapt(cfg, tmp_path / "na", progress=False)
    from mnas.arch import parse_network
    from mnas.netadapt.report import path_table

    path = path_table(tmp_path / "na")  # the seed and the chosen proposal of each step
    chosen = path[path["kind"] != "seed"]
    assert len(chosen) >= 1 and s["latency_ms"] <= target
    assert all(im.shape_flags(parse_network(a)) == "" for a in chosen["arch"])
    # the estimate fell from the seed's by less than the paper's V3-Large 1.0 -> 0.75 step (75.2 -> 73.3)
    assert 0 <= path[path["kind"] == "seed"]["top1"].iloc[0] - chosen["top1"].iloc[-1] < 1.9


# --------------------------------------------------------------------------- fitting, from the data


@pytest.fixture(scope="module")
def fit(shared_data):
    import fit_imagenet_estimate as fx

    path = shared_data / "accel_nasbench" / "accel_nasbench.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    rows = im.load_published()
    X = im.features_many([r["net"] for r in rows])
    XA, yA = fx.load_anb(path)
    XO, yO, _, _ = fx.ofa_data(fx.OFA_FIT, fx.OFA_FIT_SEED)
    anb = fx.fit_anb(XA, yA)
    estimate = lambda Xtr, ytr: fx.fit_estimate(Xtr, ytr, anb, XO, yO)  # noqa: E731
    return fx, rows, X, np.array([r["top1"] for r in rows]), np.array([r["family"] for r in rows]), anb, path, estimate


@pytest.mark.parametrize("family", ["v3_large", "v3_small", "v2", "mnasnet_a1"])
def test_a_held_out_family_is_predicted_within_the_target_error(fit, family):
    fx, rows, X, y, fam, anb, _, estimate = fit
    b, coef, _ = estimate(X[fam != family], y[fam != family])
    pred = b + X[fam == family] @ coef
    assert np.abs(pred - y[fam == family]).mean() <= 1.6, family


def test_leave_one_family_out_beats_log_multiply_adds(fit):
    fx, rows, X, y, fam, anb, _, estimate = fit
    from scipy.stats import kendalltau

    def est(Xtr, ytr, Xte):
        b, coef, _ = estimate(Xtr, ytr)
        return b + Xte @ coef

    def madds(Xtr, ytr, Xte):
        w = np.polyfit(Xtr[:, 0], ytr, 1)
        return np.polyval(w, Xte[:, 0])

    p, q = fx.lofo(X, y, fam, est), fx.lofo(X, y, fam, madds)
    tau_p, tau_q = kendalltau(p, y)[0], kendalltau(q, y)[0]
    mae_p, mae_q = np.abs(p - y).mean(), np.abs(q - y).mean()
    assert tau_p >= 0.85 and mae_p <= 1.5
    assert tau_p > tau_q and mae_p < mae_q


def test_accel_nasbench_block_effects_are_positive_and_calibrated_up(fit):
    fx, rows, X, y, fam, anb, _, _ = fit
    assert anb["kernel"] > 0 and anb["se"] > 0  # at equal capacity, 5x5 and SE help after 16 epochs
    _, _, scale = fx.fit_published(X, y, anb)
    assert scale > 1  # and more after full training


def test_the_fit_script_regenerates_the_shipped_model_byte_for_byte(fit, tmp_path):
    fx, *_, path, _ = fit
    out = tmp_path / "imagenet.json"
    assert fx.main(["--anb", str(path), "--out", str(out), "--report", str(tmp_path / "r.md")]) == 0
    assert out.read_bytes() == im.MODEL_PATH.read_bytes()


# --------------------------------------------------------------------------- inside Once-for-All's space


@pytest.fixture(scope="module")
def ofa_subnets():
    """Sub-networks the fit never saw (its seeds are 100, 200, 201), with OFA's predicted top-1."""
    import random

    from mnas.space import load_space

    sp = load_space("ofa")
    rng = random.Random(7)
    samples = [sp.sample(rng) for _ in range(300)]
    nets = [sp.decode(s) for s in samples]
    return sp, samples, nets, np.array([r["top1"] for r in get_evaluator("ofa", space=sp).evaluate_many(nets, samples)])


def test_inside_ofas_space_it_ranks_better_than_multiply_adds(ev, ofa_subnets):
    from scipy.stats import kendalltau

    from mnas.counting import count

    _, _, nets, ofa = ofa_subnets
    est = np.array([r["top1"] for r in ev.evaluate_many(nets)])
    madds = np.array([count(n).madds for n in nets])
    tau_est, tau_madds = kendalltau(est, ofa)[0], kendalltau(madds, ofa)[0]
    assert tau_est >= 0.83 and tau_est > tau_madds + 0.06, (tau_est, tau_madds)


def test_a_5x5_kernel_is_credited_about_as_ofas_predictor_credits_it(ev, ofa_subnets):
    """OFA's predictor moves +0.03 +- 0.10 pp for one block 3x3 -> 5x5 (the issue's probe); the old estimate
    credited +0.16 pp in every block. Resolution +16 px: OFA +0.79, old estimate +0.56."""
    sp, samples, nets, ofa = ofa_subnets
    ofa_ev = get_evaluator("ofa", space=sp)

    def credit(pairs):  # (estimate's change, OFA's change) over (network, changed network) pairs
        a, b = [p[0] for p in pairs], [p[1] for p in pairs]
        return (np.array([r["top1"] for r in ev.evaluate_many(b)]) - np.array([r["top1"] for r in ev.evaluate_many(a)]),
                np.array([r["top1"] for r in ofa_ev.evaluate_many(b)]) - np.array([r["top1"] for r in ofa_ev.evaluate_many(a)]))

    kernel, res = [], []
    for s, net in zip(samples, nets):
        slots = [f"s{i}.l{j}.kernel" for i in range(1, 6) for j in range(1, s[f"s{i}.layers"] + 1)
                 if s[f"s{i}.l{j}.kernel"] == 3]
        if slots:
            kernel.append((net, sp.decode({**s, slots[0]: 5})))
        if s["resolution"] < 224:
            res.append((net, net.with_resolution(s["resolution"] + 16)))
    k_est, k_ofa = credit(kernel)
    r_est, r_ofa = credit(res)
    assert abs(np.mean(k_est) - np.mean(k_ofa)) < 0.1 and np.mean(k_est) < 0.16
    assert abs(np.mean(r_est) - np.mean(r_ofa)) < 0.15

"""The `ofa` evaluator: Once-for-All's accuracy predictor, shipped as JSON, against OFA's published values."""

from __future__ import annotations

import random

import numpy as np
import pytest

from evaluator_contract import check_evaluator_contract
from mnas.accuracy import get_evaluator
from mnas.accuracy.ofa import MODEL_PATH, OfaEvaluator, arch_of, features, sample_of_arch
from mnas.errors import MnasError
from mnas.space import load_space


def uniform(k: int, e: int, d: int, r: int) -> dict:
    return sample_of_arch({"ks": [k] * 20, "e": [e] * 20, "d": [d] * 5, "r": r})


@pytest.mark.parametrize("k, e, d, r, top1", [
    (3, 3, 2, 224, 77.74), (5, 4, 3, 224, 81.73), (7, 6, 4, 224, 83.59), (5, 4, 3, 192, 80.59)])
def test_published_uniform_subnets(k, e, d, r, top1):
    """Figures from the issue (OFA's predictor on uniform sub-networks), from the shipped file alone."""
    sp = load_space("ofa")
    res = get_evaluator("ofa", space=sp).evaluate(sp.decode(uniform(k, e, d, r)))
    assert round(res["top1"], 2) == top1
    assert res["extrapolated"] is False


def ofa_spec2feats(ks, ex, d, r) -> list[int]:
    """OFA's tutorial encoding (AccuracyPredictor.spec2feats), restated from its description."""
    ks, ex = list(ks), list(ex)
    for s in range(5):
        for j in range(s * 4 + d[s], s * 4 + 4):
            ks[j] = ex[j] = 0
    k_onehot, e_onehot, r_onehot = [0] * 60, [0] * 60, [0] * 8
    for i in range(20):
        if ks[i]:
            k_onehot[i * 3 + {3: 0, 5: 1, 7: 2}[ks[i]]] = 1
        if ex[i]:
            e_onehot[i * 3 + {3: 0, 4: 1, 6: 2}[ex[i]]] = 1
    r_onehot[(r - 112) // 16] = 1
    return k_onehot + e_onehot + r_onehot


def test_encoding_is_ofas():
    from mnas.accuracy.ofa import encode_network

    sp = load_space("ofa")
    rng = random.Random(0)
    for _ in range(50):
        arch = {"ks": [rng.choice((3, 5, 7)) for _ in range(20)], "e": [rng.choice((3, 4, 6)) for _ in range(20)],
                "d": [rng.choice((2, 3, 4)) for _ in range(5)], "r": rng.choice((160, 176, 192, 208, 224))}
        ki, ei, d, r = encode_network(sp.decode(sample_of_arch(arch)))
        ours = features(np.array([ki]), np.array([ei]), np.array([r]))[0]
        assert ours.tolist() == ofa_spec2feats(arch["ks"], arch["e"], arch["d"], arch["r"])
        assert d == arch["d"]
        used = [i for i in range(20) if i % 4 < arch["d"][i // 4]]
        back = arch_of(sp.decode(sample_of_arch(arch)))
        assert [back["ks"][i] for i in used] == [arch["ks"][i] for i in used]


def test_resolutions_under_160_are_flagged_and_beyond_the_slots_refused():
    sp = load_space("ofa")
    ev = OfaEvaluator(space=sp)
    net = sp.decode(uniform(5, 4, 3, 224))
    assert ev.evaluate(net.with_resolution(160))["extrapolated"] is False
    low = ev.evaluate(net.with_resolution(144))
    assert low["extrapolated"] is True and "never trained" in low["extrapolated_why"]
    with pytest.raises(MnasError, match="resolution 240 px has no slot"):
        ev.evaluate(net.with_resolution(240))
    with pytest.raises(MnasError, match="resolution 96 px has no slot"):
        ev.evaluate_many([net.with_resolution(96)])


def test_a_network_outside_the_space_is_one_line():
    from mnas.zoo import get

    ev = OfaEvaluator()
    with pytest.raises(MnasError, match=r"not a sub-network of Once-for-All") as e:
        ev.evaluate(get("mobilenet_v3_large"))
    assert "\n" not in str(e.value)
    sp = load_space("ofa")
    net = sp.decode(uniform(5, 4, 3, 224))
    blocks = list(net.blocks)
    blocks[3] = blocks[3].__class__(**{**blocks[3].__dict__, "exp": 120})  # expansion 5 of 24... not 3/4/6
    with pytest.raises(MnasError, match=r"block 3 ir_k5_e120_c32_re_s1: stage s1 later blocks"):
        ev.evaluate(net.replace(blocks=tuple(blocks)))
    with pytest.raises(MnasError, match="stage s2 has 1 block"):
        ev.evaluate(net.replace(blocks=net.blocks[:5] + net.blocks[7:]))


def test_contract_and_batch_agree_bit_for_bit(tmp_path):
    sp = load_space("ofa")
    rng = random.Random(1)
    samples = [sp.sample(rng) for _ in range(40)]
    nets = [sp.decode(s) for s in samples]
    first = check_evaluator_contract(lambda c: get_evaluator("ofa", space=sp, cache=c), nets[:3], tmp_path, samples[:3])
    ev = get_evaluator("ofa", space=sp)
    single = [ev.evaluate(n)["top1"] for n in nets]
    assert [r["top1"] for r in first] == single[:3]
    assert [r["top1"] for r in ev.evaluate_many(nets, samples)] == single  # from samples
    assert [r["top1"] for r in get_evaluator("ofa").evaluate_many(nets)] == single  # from networks
    assert [r["top1"] for r in ev.evaluate_many(nets[5:7])] == single[5:7]  # a small batch


def test_shipped_weights_equal_ofas_pth(shared_data):
    """The shipped JSON is the .pth, lossless: same tensors bit for bit, same outputs as OFA's torch model."""
    torch = pytest.importorskip("torch")
    pth = shared_data / "ofa" / "acc_predictor.pth"
    if not pth.is_file():
        pytest.skip(f"{pth} is absent")
    from mnas.accuracy.ofa import OfaPredictor

    shipped, original = OfaPredictor.load(MODEL_PATH), OfaPredictor.load(pth)
    for (w, b), (w2, b2) in zip(shipped.weights, original.weights):
        assert w.tobytes() == w2.tobytes() and b.tobytes() == b2.tobytes()
    sd = torch.load(pth, map_location="cpu", weights_only=True)
    model = torch.nn.Sequential(torch.nn.Linear(128, 400), torch.nn.ReLU(), torch.nn.Linear(400, 400), torch.nn.ReLU(),
                                torch.nn.Linear(400, 400), torch.nn.ReLU(), torch.nn.Linear(400, 1))
    model.load_state_dict(sd)
    rng = random.Random(2)
    sp = load_space("ofa")
    nets = [sp.decode(sp.sample(rng)) for _ in range(64)]
    archs = [arch_of(n) for n in nets]
    x = np.array([ofa_spec2feats(a["ks"], a["e"], a["d"], a["r"][0]) for a in archs], dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))[:, 0].numpy() * 100
    ours = np.array([r["top1"] for r in OfaEvaluator().evaluate_many(nets)])
    assert np.abs(ours - ref).max() < 1e-4  # float32 sums in another order


def test_converter_regenerates_the_shipped_file(shared_data, tmp_path):
    pytest.importorskip("torch")
    from conftest import load_experiment

    pth = shared_data / "ofa" / "acc_predictor.pth"
    if not pth.is_file():
        pytest.skip(f"{pth} is absent")
    conv = load_experiment("convert_ofa_predictor")
    assert conv.main(["--pth", str(pth), "--out", str(tmp_path / "ofa_acc_predictor.json")]) == 0
    assert (tmp_path / "ofa_acc_predictor.json").read_bytes() == MODEL_PATH.read_bytes()
    assert (tmp_path / "ofa_acc_predictor.LICENSE").read_bytes() == MODEL_PATH.with_name(
        "ofa_acc_predictor.LICENSE").read_bytes()


def test_corrupt_model_file_is_one_line(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(MnasError, match="corrupt or not mnas-ofa-mlp-1"):
        OfaEvaluator(model=bad)

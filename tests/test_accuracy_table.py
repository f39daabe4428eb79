"""The NAS-Bench-Macro table evaluator against values read independently from the benchmark file."""

from __future__ import annotations

import json
import math
import random

import pytest
from evaluator_contract import check_evaluator_contract

from mnas.accuracy import get_evaluator
from mnas.accuracy.table import canonical_key, macro_key
from mnas.arch import parse_network
from mnas.errors import MnasError
from mnas.space import load_space


@pytest.fixture(scope="module")
def bench(shared_data):
    path = shared_data / "nas_bench_macro" / "nas-bench-macro_cifar10.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path, json.loads(path.read_text())


@pytest.fixture(scope="module")
def space():
    return load_space("nasbench_macro")


def test_best_architecture_from_the_benchmark_readme(bench, space):
    path, raw = bench
    ev = get_evaluator("table", space=space, path=path)
    r = ev.evaluate(None, space.decode_string("22212220"))
    assert r["top1"] == pytest.approx(93.13, abs=0.005)  # README: best 22212220 at 93.13 %
    assert r["top1"] == raw["22212220"]["mean_acc"] and math.isnan(r["loss"])


def test_lookups_by_sample_and_by_network_match_the_file(bench, space):
    path, raw = bench
    ev = get_evaluator("table", space=space, path=path)
    for key in random.Random(0).sample(sorted(raw), 200):
        sample = space.decode_string(key)
        assert ev.evaluate(None, sample)["top1"] == raw[key]["mean_acc"]
        net = space.decode(sample)
        r = ev.evaluate(net)
        assert r["top1"] == raw[key]["mean_acc"]
        assert r["params"] == raw[key]["params"]


def test_seed_option_reads_one_run(bench, space):
    path, raw = bench
    ev = get_evaluator("table", space=space, path=path, seed=2)
    assert ev.evaluate(None, space.decode_string("02012100"))["top1"] == raw["02012100"]["test_acc"][2]
    with pytest.raises(MnasError, match="seed must be 0, 1 or 2"):
        get_evaluator("table", path=path, seed=3)


def test_canonicalisation_of_identity_layers(bench, space):
    path, raw = bench
    # by hand: identities after a stage's first layer move to that stage's end (stages of 2, 3, 3)
    assert canonical_key("10102000") == "10120000"
    assert canonical_key("01" + "002" + "020") == "01" + "020" + "020"
    assert canonical_key("00" + "000" + "002") == "00" + "000" + "020"
    assert canonical_key("22212220") == "22212220"
    # the benchmark itself stores equal values under equivalent keys
    assert raw["10102000"]["mean_acc"] == raw["10120000"]["mean_acc"]
    # a network has one key: the canonical one, whichever sample built it
    net = space.decode(space.decode_string("10102000"))
    assert macro_key(net) == "10120000"
    ev = get_evaluator("table", space=space, path=path)
    assert ev.evaluate(net)["key"] == "10120000"


def test_identity_first_layer_is_a_strided_1x1_conv(space):
    net = space.decode(space.decode_string("00000000"))
    assert [b.op for b in net.blocks] == ["conv", "conv", "conv"]
    assert macro_key(net) == "00000000"


def test_not_a_macro_network():
    from mnas import zoo

    with pytest.raises(MnasError, match="its stem must be stem_k3_c32_s1_re"):
        macro_key(zoo.get("mobilenet_v3_small"))
    wrong_kernel = parse_network("r32 stem_k3_c32_s1_re ir_k7_e192_c64_re_s2 ir_k5_e384_c128_re_s2 ir_k3_e384_c256_re_s2 head_c1280_re_d0")
    with pytest.raises(MnasError, match=r"block 0 \(ir_k7_e192_c64_re_s2\) is none of"):
        macro_key(wrong_kernel)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(MnasError, match="nope.json not found.*MNAS_NASBENCH_MACRO"):
        get_evaluator("table", path=tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"00000000": {"acc": 1}}')
    with pytest.raises(MnasError, match="is malformed"):
        get_evaluator("table", path=bad)


def test_contract(bench, space, tmp_path):
    path, _ = bench
    nets = [space.decode(space.decode_string(k)) for k in ("22212220", "01201220")]
    check_evaluator_contract(lambda c: get_evaluator("table", space=space, path=path, cache=c), nets, tmp_path)

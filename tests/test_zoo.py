"""Reference networks against the published figures (not against the code's own output)."""

import pytest

from mnas import zoo
from mnas.arch import format_network, load_network, parse_network, save_network
from mnas.counting import count
from mnas.errors import MnasError

# Exact parameter counts of the reference implementations (torchvision), 1000 classes.
PUBLISHED_PARAMS = {
    "mobilenet_v3_large": 5_483_032,
    "mobilenet_v3_small": 2_542_856,
    "mobilenet_v2": 3_504_872,
    "mnasnet_b1": 4_383_312,
    # torchvision mnasnet0_5 / 0_75 / 1_3 and mobilenet_v1 (slim, BN included)
    "mnasnet_b1_0.5": 2_218_512,
    "mnasnet_b1_0.75": 3_170_208,
    "mnasnet_b1_1.3": 6_282_256,
}

# Multiply-adds at 224x224 as the papers count them (issue #2); checked within 1 %.
PUBLISHED_MADDS_M = {
    "mobilenet_v3_large": 216.6,
    "mobilenet_v3_small": 56.5,
    "mobilenet_v2": 300.0,
    "mnasnet_a1": 312.0,
    "mobilenet_v1": 569.0,
    "mobilenet_v2_1.4": 582.0,  # MobileNetV2 paper / slim table
    "mobilenet_v2_0.35": 59.2,  # MobileNetV3 paper, Table 3
    "mobilenet_v3_large_minimalistic": 209.0,  # slim README
    # MobileNetV3 paper, Appendix Table 9 (width variants, printed as integers)
    "mobilenet_v3_large_1.25": 356.0,
    "mobilenet_v3_large_0.75": 155.0,
    "mobilenet_v3_large_0.5": 69.0,
    "mobilenet_v3_large_0.35": 40.0,
    "mobilenet_v3_small_1.25": 91.0,
    "mobilenet_v3_small_0.75": 44.0,
    "mobilenet_v3_small_0.5": 21.0,
}

# Published parameter counts in millions (papers' tables, printed to 1-2 digits): within 3 %.
PUBLISHED_PARAMS_M = {
    "mnasnet_a1": 3.9,
    "mobilenet_v1": 4.2,
    "mobilenet_v2_1.4": 6.06,
    "mobilenet_v3_large_0.75": 4.0,
    "mobilenet_v3_small_1.25": 3.6,
    "mobilenet_v3_small_0.75": 2.0,
    "mobilenet_v3_large_minimalistic": 3.9,
    "mobilenet_v3_small_minimalistic": 2.0,
}


@pytest.mark.parametrize("name,params", sorted(PUBLISHED_PARAMS.items()))
def test_exact_published_params(name, params):
    assert count(zoo.get(name)).params == params


@pytest.mark.parametrize("name,madds", sorted(PUBLISHED_MADDS_M.items()))
def test_published_madds_within_1_percent(name, madds):
    got = count(zoo.get(name)).madds / 1e6
    # within 1 %; Table 9's width variants (printed as integers) within 1.5 %
    rel = 0.015 if "0." in name[-5:] or "1.25" in name else 0.01
    assert got == pytest.approx(madds, rel=rel), got


def test_v3_small_035_is_the_one_table_9_outlier():
    # Table 9 prints 12 M; slim's rule gives 12.8 M (torchvision's rule 12.1 M, but then the
    # other seven width variants miss by 4-10 %). Recorded here so a change is deliberate.
    assert round(count(zoo.get("mobilenet_v3_small_0.35")).madds / 1e6, 1) == 12.8


@pytest.mark.parametrize("name,params_m", sorted(PUBLISHED_PARAMS_M.items()))
def test_published_params_in_millions(name, params_m):
    assert count(zoo.get(name)).params / 1e6 == pytest.approx(params_m, rel=0.03)


def test_v3_large_exp_sizes_match_paper_table_1():
    exps = [b.exp for b in zoo.get("mobilenet_v3_large").blocks]
    assert exps == [16, 64, 72, 72, 120, 120, 240, 200, 184, 184, 480, 672, 672, 960, 960]


def test_minimalistic_has_no_se_no_hswish_no_5x5():
    for name in ("mobilenet_v3_large_minimalistic", "mobilenet_v3_small_minimalistic"):
        net = zoo.get(name)
        assert all(b.se == 0 and b.kernel == 3 and b.act.value == "re" for b in net.blocks)
        assert net.stem.act.value == "re" and net.head.conv_act.value == "re"


@pytest.mark.parametrize("name", zoo.names())
def test_every_reference_round_trips_text_and_files(name, tmp_path):
    net = zoo.get(name)
    assert parse_network(format_network(net)) == net
    for suffix in (".yaml", ".json", ".txt"):
        assert load_network(save_network(net, tmp_path / f"a{suffix}")) == net


def test_duplicate_registration_refused():
    with pytest.raises(MnasError, match="already registered"):
        zoo.register("mobilenet_v2", zoo.mobilenet_v2)


def test_unknown_name_suggests():
    with pytest.raises(MnasError, match="did you mean mobilenet_v3_small"):
        zoo.get("mobilenet_v3_smal")

"""The architecture data: text form, files, validation and error messages."""

import json

import pytest

from mnas.arch import (
    Act,
    Bneck,
    Conv,
    Head,
    Network,
    load_network,
    make_divisible,
    parse_block,
    parse_network,
    se_channels,
)
from mnas.errors import MnasError


@pytest.mark.parametrize(
    "value,expected",
    [(32 * 0.35, 16), (16 * 0.75, 16), (24 * 0.5, 16), (1280 * 1.4, 1792), (72 / 4, 24), (960 * 0.75, 720), (37, 40)],
)
def test_make_divisible_matches_reference_rule(value, expected):
    # Hand-computed with the reference rule: nearest multiple of 8, bumped up if >10 % down.
    assert make_divisible(value) == expected


def test_se_width_is_v3_rule():
    assert se_channels(72) == 24 and se_channels(960) == 240 and se_channels(16) == 8


def test_block_token_round_trip_and_fields():
    b = parse_block("ir_k5_e72_c40_se24_re_s2")
    assert b == Bneck(out=40, exp=72, kernel=5, stride=2, se=24, act=Act.RELU)
    assert parse_block("ir_c40_e72_s2_k5_re_se24") == b  # any field order
    assert parse_block("ir_k3_e16_c16_hs_s1_nr").skip is False


@pytest.mark.parametrize(
    "token,message",
    [
        ("ir_k4_e72_c40_s1", "kernel 4 is not allowed"),
        ("ir_k3_e72_c40_s3", "stride 3 is not allowed"),
        ("ir_k3_c40_s1", "missing field 'e'"),
        ("ir_k3_e72_c40_x9", "unknown field 'x9'"),
        ("bn_k3_c40", "unknown block type 'bn'"),
        ("ir_k3_e72_c40_re_hs", "more than one activation"),
        ("ir_k3_k5_e72_c40", "given twice"),
    ],
)
def test_bad_tokens_name_the_token(token, message):
    with pytest.raises(MnasError) as e:
        parse_block(token)
    assert token in str(e.value) and message in str(e.value)


def test_network_text_requires_stem_and_orders_tokens():
    with pytest.raises(MnasError, match="stem"):
        parse_network("r224 ir_k3_e16_c16_s1")
    with pytest.raises(MnasError, match="nothing may follow the head"):
        parse_network("r224 stem_k3_c16_s2_hs head_d0.2 ir_k3_e16_c16_s1")


def test_shapes_derived_once():
    net = parse_network("r224 stem_k3_c16_s2_hs ir_k3_e64_c24_re_s2 ir_k3_e72_c24_re_s1 head_c96_hs_d0.2")
    layers = list(net.layers())
    assert [(la.cin, la.hin, la.cout, la.hout) for la in layers] == [(3, 224, 16, 112), (16, 112, 24, 56), (24, 56, 24, 56)]
    assert [la.residual for la in layers] == [False, False, True]
    assert net.with_resolution(225).final_size == 57  # 'same' padding: ceil(225 / 4)


def test_yaml_errors_name_field_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("stem: {out: 16, stride: 2}\nblocks:\n  - {op: ir, out: 24, exp: 64, kernal: 3}\n")
    with pytest.raises(MnasError) as e:
        load_network(p)
    assert "bad.yaml" in str(e.value) and "kernal" in str(e.value) and "blocks[0]" in str(e.value)
    p.write_text(json.dumps({"stem": {"out": 16}, "blocks": [{"op": "ir", "out": 24}]}))
    p = p.rename(tmp_path / "bad.json")
    with pytest.raises(MnasError, match=r"bad.json.*missing field\(s\) \['exp'\]"):
        load_network(p)


def test_frozen():
    net = Network(stem=Conv(out=16, stride=2), blocks=(Bneck(out=16, exp=16),), head=Head())
    with pytest.raises(Exception):
        net.resolution = 10  # type: ignore[misc]

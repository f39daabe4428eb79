"""Once-for-All lookup tables (Samsung Note10) read through the mnas predictor."""

from __future__ import annotations

import pytest
import yaml

from mnas.arch import Act, Bneck, Conv, Head, Network, se_channels
from mnas.errors import MnasError
from mnas.latency import get_predictor
from mnas.latency.ofa import ofa_key_to_mnas


@pytest.fixture(scope="module")
def note10(shared_data):
    path = shared_data / "latency" / "note10_ofa" / "224_lookup_table.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


# An OFA MobileNetV3 subnet (width 1.2): stem 24, a first 3×3 block without expansion, then one
# block per stage (out 32, 48, 96, 136, 192; strides 2, 2, 2, 1, 2), head 1152 -> pool -> 1536 -> 1000.
STAGES = [  # (out, exp, kernel, stride, se, act)
    (32, 96, 3, 2, False, Act.RELU),
    (48, 128, 5, 2, True, Act.RELU),
    (96, 192, 7, 2, False, Act.HSWISH),
    (136, 576, 3, 1, True, Act.HSWISH),
    (192, 816, 5, 2, True, Act.HSWISH),
]
# The same network written as OFA keys by hand (OFA's expand = expanded channels; se:1 = OFA's SE).
OFA_KEYS = [
    "Conv-input:224x224x3-output:112x112x24",
    "expanded_conv-input:112x112x24-output:112x112x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0",
    "expanded_conv-input:112x112x24-output:56x56x32-expand:96-kernel:3-stride:2-idskip:0-se:0-hs:0",
    "expanded_conv-input:56x56x32-output:28x28x48-expand:128-kernel:5-stride:2-idskip:0-se:1-hs:0",
    "expanded_conv-input:28x28x48-output:14x14x96-expand:192-kernel:7-stride:2-idskip:0-se:0-hs:1",
    "expanded_conv-input:14x14x96-output:14x14x136-expand:576-kernel:3-stride:1-idskip:0-se:1-hs:1",
    "expanded_conv-input:14x14x136-output:7x7x192-expand:816-kernel:5-stride:2-idskip:0-se:1-hs:1",
    "Conv_1-input:7x7x192-output:7x7x1152",
    "AvgPool2D-input:7x7x1152-output:1x1x1152",
    "Conv_2-input:1x1x1152-output:1x1x1536",
    "Logits-input:1x1x1536-output:1000",
]


def ofa_net() -> Network:
    blocks = [Bneck(out=24, exp=24, kernel=3, stride=1, act=Act.RELU)]
    for out, exp, k, s, se, act in STAGES:
        blocks.append(Bneck(out=out, exp=exp, kernel=k, stride=s, se=se_channels(exp) if se else 0, act=act))
    return Network(stem=Conv(out=24, kernel=3, stride=2, act=Act.HSWISH), blocks=tuple(blocks),
                   head=Head(conv=1152, conv_act=Act.HSWISH, hidden=1536, hidden_act=Act.HSWISH, dropout=0.1))


def test_note10_sum_matches_yaml_entries_by_hand(note10):
    raw = yaml.safe_load(note10.read_text())
    by_hand = sum(raw[k]["mean"] for k in OFA_KEYS)
    p = get_predictor(str(note10))
    net = ofa_net()
    assert p.missing(net) == []
    assert p.predict(net) == pytest.approx(by_hand, rel=1e-12)
    assert 10 < by_hand < 40  # OFA's Note10 nets at 224 run ~20-30 ms


def test_every_note10_key_maps(note10):
    raw = yaml.safe_load(note10.read_text())
    mapped = {ofa_key_to_mnas(k) for k in raw}
    assert len(mapped) == len(raw)  # the mapping is one-to-one


def test_key_mapping_examples():
    assert (ofa_key_to_mnas("expanded_conv-input:56x56x32-output:28x28x48-expand:128-kernel:5-stride:2-idskip:0-se:1-hs:0")
            == "ir-in:56x56x32-out:28x28x48-exp:128-k5-s2-se32-re-res0")
    assert ofa_key_to_mnas("Conv_2-input:1x1x1152-output:1x1x1536") == "fc-in:1152-out:1536-hs"
    with pytest.raises(MnasError, match="not a known op"):
        ofa_key_to_mnas("Conv_9-input:1x1x1-output:1x1x1")


def test_import_command_writes_an_mnas_table(note10, tmp_path):
    from mnas.cli import COMMANDS, main

    COMMANDS.setdefault("latency", "mnas.cli.latency")
    out = tmp_path / "note10.csv"
    assert main(["latency", "import-ofa", str(note10), "--device", "note10", "--out", str(out)]) == 0
    p = get_predictor(out)
    assert p.device == "note10"
    assert p.predict(ofa_net()) == pytest.approx(get_predictor(str(note10)).predict(ofa_net()), rel=1e-5)

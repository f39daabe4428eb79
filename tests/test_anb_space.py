"""The Accel-NASBench space ``anb``: decoding against the benchmark's own counts, the EKLS encoding, swish."""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from mnas.arch import Act, Bneck, Conv, Head, Network, format_network, parse_network
from mnas.counting import count, count_thop
from mnas.errors import MnasError
from mnas.latency.keys import layer_key
from mnas.model import SqueezeExcite, build
from mnas.space import load_space

B0 = "1311-6321-6521-6331-6531-6541-6311"  # EfficientNet-B0 in the benchmark's searchables.EffNetB0Conf
FIELDS = ("e", "k", "l", "se")


@pytest.fixture(scope="module")
def anb():
    return load_space("anb")


def _csv(shared_data):
    path = shared_data / "accel_nasbench" / "accel_nasbench.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    import pandas as pd

    return pd.read_csv(path)


def test_every_csv_row_decodes_to_the_benchmarks_params_and_macs(anb, shared_data):
    """Independent facts: the benchmark's thop counts (params_m, macs_m) of all 4,626 networks."""
    df = _csv(shared_data)
    assert len(df) == 4626
    cols = [f"block{b}_{f}" for b in range(7) for f in FIELDS]
    plain_madds_match = 0
    for row in df[cols + ["params_m", "macs_m"]].itertuples(index=False):
        code = "-".join("".join(str(int(v)) for v in row[4 * b : 4 * b + 4]) for b in range(7))
        sample = anb.decode_string(code)
        assert anb.encode_string(sample) == code
        net = anb.decode(sample)
        c = count(net)
        assert c.params == round(row.params_m * 1e6), code
        assert count_thop(net) == round(row.macs_m * 1e6), code
        plain_madds_match += c.madds == round(row.macs_m * 1e6)
    # the CSV's figure is thop's convention, not the papers' multiply-adds
    assert plain_madds_match == 0


def test_efficientnet_b0_has_its_published_counts(anb):
    """EfficientNet-B0: 5,288,548 parameters (torchvision's efficientnet_b0; 5.3 M in the paper), 0.39 B FLOPs."""
    net = anb.decode(anb.decode_string(B0))
    c = count(net)
    assert c.params == 5_288_548
    assert round(c.madds / 1e9, 2) == 0.39
    assert len(net.blocks) == 16  # 1 + 2 + 2 + 3 + 3 + 4 + 1 layers
    assert net.stem == Conv(out=32, kernel=3, stride=2, act=Act.RELU)
    assert net.head == Head(conv=1280, conv_act=Act.RELU, dropout=0.2)
    # squeeze width: a quarter of each layer's input channels (EfficientNet), not of the expansion
    assert [b.se for b in net.blocks[:4]] == [8, 4, 6, 6]
    assert net.blocks[1] == Bneck(out=24, exp=96, kernel=3, stride=2, se=4, act=Act.RELU)


def test_space_shape(anb):
    names = [c.name for c in anb.choices()]
    assert len(names) == 28 and names[:4] == ["b0.layers", "b0.kernel", "b0.expand", "b0.se"]
    assert anb.size == 36**6 * 48  # (3 x 2 x 3 x 2) per block, block 5 with 4 depths
    assert dict((c.name, c.options) for c in anb.choices())["b5.layers"] == (1, 2, 3, 4)
    strides = [b.stride for b in anb.decode(anb.extreme("min")).blocks]
    assert strides == [1, 2, 2, 2, 1, 2, 1]


def test_encoding_round_trips(anb):
    rng = random.Random(0)
    for _ in range(200):
        s = anb.sample(rng)
        code = anb.encode_string(s)
        assert re.fullmatch(r"([146][35][123][01]-){5}[146][35][1-4][01]-[146][35][123][01]", code)
        assert anb.decode_string(code) == s
        assert anb.is_code(code)
    assert anb.encode_string(anb.decode_string(B0)) == B0


@pytest.mark.parametrize(
    "code, message",
    [
        ("1311-6321-6521-6331-6531-6541", r"encoding .* has 6 group\(s\), expected 7 .*e\.g\. 1311-6321"),
        ("1311-6321-6521-6331-6531-6541-6311-6311", r"encoding .* has 8 group\(s\), expected 7"),
        ("2311-6321-6521-6331-6531-6541-6311", r"group 1 of 7 \(b0\) '2311': expand 2 is not allowed here "
                                               r"\(choose 1, 4, 6\)"),
        ("1311-6721-6521-6331-6531-6541-6311", r"group 2 of 7 \(b1\) '6721': kernel 7 is not allowed here "
                                               r"\(choose 3, 5\)"),
        ("1311-6321-6521-6341-6531-6541-6311", r"group 4 of 7 \(b3\) '6341': layers 4 is not allowed here "
                                               r"\(choose 1, 2, 3; only b5 allows 4\)"),
        ("1311-6321-6521-6331-6531-6551-6311", r"group 6 of 7 \(b5\) '6551': layers 5 .*\(choose 1, 2, 3, 4\)"),
        ("1311-6321-6521-6331-6531-6541-6312", r"group 7 of 7 \(b6\) '6312': se 2 is not allowed here \(choose 0, 1\)"),
        ("1311-6321-6521-6331-6531-6541-631", r"group 7 of 7 \(b6\) '631' has 3 character\(s\), expected 4 "
                                              r"\(expand, kernel, layers, se\)"),
    ],
)
def test_bad_encodings_name_the_group_and_allowed_values(anb, code, message):
    with pytest.raises(MnasError, match="space anb: " + message):
        anb.decode_string(code)


def test_cli_eval_accepts_the_encoding_and_rejects_bad_ones_in_one_line():
    from mnas.cli.eval import resolve

    sp = load_space("anb")
    net, sample = resolve(B0, sp)
    assert sample is not None and sp.encode_string(sample) == B0 and net == sp.decode(sample)
    with pytest.raises(MnasError, match="only b5 allows 4"):
        resolve("1311-6321-6521-6341-6531-6541-6311", sp)
    with pytest.raises(MnasError, match="give --space"):
        resolve(B0, None)
    r = subprocess.run([sys.executable, "-m", "mnas", "eval", "1311-6321-6521-6341-6531-6541-6311", "--space", "anb"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "layers 4 is not allowed" in r.stderr


def test_nasbench_macro_keys_are_unchanged():
    sp = load_space("nasbench_macro")
    assert sp.encoding is None
    assert sp.encode_string(sp.decode_string("22212220")) == "22212220"
    assert sp.is_code("22212220") and not sp.is_code("2221222")


def test_resolve_load_arch_takes_a_space():
    from mnas.resolve import load_arch

    sp = load_space("anb")
    assert load_arch(B0, space=sp) == sp.decode(sp.decode_string(B0))
    with pytest.raises(MnasError, match="Accel-NASBench"):
        load_arch(B0)


def test_built_module_matches_the_analytic_params_and_runs(anb):
    net = anb.decode(anb.decode_string("4521-1331-6511-4320-6511-1541-6531"))
    model = build(net)
    assert sum(p.numel() for p in model.parameters()) == count(net).params
    ses = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    assert ses and all(isinstance(m.act, nn.ReLU) and isinstance(m.gate, nn.Hardsigmoid) for m in ses)
    model.eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 64, 64))
    assert y.shape == (2, 1000)


def _thop_by_hooks(net: Network, res: int) -> int:
    """thop's rules applied with forward hooks on the built module: a second way to count."""
    model = build(net).eval()
    total = [0]

    def conv(m, x, y):
        total[0] += y.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def bn(m, x, y):
        total[0] += 4 * x[0].numel()

    def linear(m, x, y):
        total[0] += m.in_features * m.out_features

    def pool(m, x, y):  # SE: adaptive average pooling of its input, (H*W + 1) x C
        total[0] += x[0].numel() + x[0].shape[1]

    for m in model.modules():
        hook = {nn.Conv2d: conv, nn.BatchNorm2d: bn, nn.Linear: linear, SqueezeExcite: pool}.get(type(m))
        if hook:
            m.register_forward_hook(hook)
    head_in = []
    model.head.conv.register_forward_hook(lambda m, x, y: head_in.append(y))
    with torch.no_grad():
        model(torch.randn(1, 3, res, res))
    return total[0] + head_in[0].numel() + head_in[0].shape[1]  # the head's pooling


@pytest.mark.parametrize("which", ["anb", "mobilenet_v3_large", "mobilenet_v1"])
def test_count_thop_agrees_with_forward_hooks(anb, which):
    """The convention for blocks the CSV never exercises (depthwise-separable, hidden FC, h-swish)."""
    from mnas import zoo

    net = anb.decode(anb.decode_string(B0)) if which == "anb" else zoo.get(which)
    net = net.with_resolution(96)
    assert count_thop(net) == _thop_by_hooks(net, 96)


def test_swish_is_an_activation_everywhere():
    text = "r224 stem_k3_c32_s2_sw ir_k3_e96_c24_se4_sw_s2 head_c1280_sw_d0.2"
    net = parse_network(text)
    assert net.blocks[0].act is Act.SWISH and format_network(net) == text
    relu = parse_network(text.replace("_sw", "_re"))
    # a distinct latency key
    key, relu_key = layer_key(list(net.layers())[1]), layer_key(list(relu.layers())[1])
    assert key != relu_key and key == relu_key.replace("-re-", "-sw-")
    model = build(net)
    se = [m for m in model.modules() if isinstance(m, SqueezeExcite)][0]
    assert isinstance(se.act, nn.SiLU) and isinstance(se.gate, nn.Sigmoid)  # EfficientNet's squeeze-excite
    assert sum(isinstance(m, nn.SiLU) for m in model.modules()) == 5  # stem, expand, depthwise, SE, head
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(nn.SiLU()(x), x * torch.sigmoid(x))
    # swish changes no count: same params and multiply-adds as the ReLU network
    assert count(net) == count(relu) and count_thop(net) == count_thop(relu)


def test_v3_squeeze_excite_is_unchanged():
    from mnas import zoo

    model = build(zoo.get("mobilenet_v3_small"))
    ses = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    assert ses and all(isinstance(m.act, nn.ReLU) and isinstance(m.gate, nn.Hardsigmoid) for m in ses)


def test_space_file_options_are_checked(tmp_path):
    p = tmp_path / "s.yaml"
    base = ("name: x\nstem: {out: 16, stride: 2}\nstages:\n"
            "  - {out: 24, stride: 2, choices: {layers: [1, 2], kernel: [3, 5]}}\n")
    p.write_text(base + "se_rule: quarter\n")
    with pytest.raises(MnasError, match="se_rule must be one of expanded_quarter, input_quarter"):
        load_space(p)
    p.write_text(base + "encoding: {fields: [kernel], sep: '-'}\n")
    with pytest.raises(MnasError, match=r"leave choice\(s\) \['s1.layers'\] out"):
        load_space(p)
    p.write_text(base.replace("layers: [1, 2]", "layers: [1, 2], depth: [0, 1]"))
    with pytest.raises(MnasError, match="either 'layers'"):
        load_space(p)
    p.write_text(base + "encoding: {fields: [layers, kernel], sep: '-'}\n")
    sp = load_space(p)
    assert sp.encode_string({"s1.layers": 2, "s1.kernel": 5}) == "25"
    assert len(sp.decode(sp.decode_string("25")).blocks) == 2


def test_pixel1_vectorised_path_prices_the_anb_space(anb):
    """The vectorised latency path agrees with the per-network path on the anb space."""
    import numpy as np

    from mnas.latency.predictor import get_predictor

    pred = get_predictor("pixel1")
    fast = pred.compile_space(anb)
    rng = random.Random(3)
    samples = [anb.sample(rng) for _ in range(100)]
    slow = pred.predict_many(anb.decode(s) for s in samples)
    np.testing.assert_allclose(fast.predict_indices(fast.encode(samples)), slow, rtol=1e-9)


def test_arch_show_takes_the_space(capsys):
    from mnas.cli import main

    assert main(["arch", "show", B0, "--space", "anb", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 5_288_548 and out["arch"].startswith("r224 stem_k3_c32_s2_re ir_k3_e32_c16_se8_re_s1")
    assert main(["arch", "show", B0]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--space anb" in err[0]


def test_enumeration_covers_every_layer_of_random_samples(anb):
    """``distinct_layers`` (what a profiler measures) holds every op a sampled network contains."""
    distinct = {(la.block, la.cin, la.hin, la.cout, la.hout) for la in anb.distinct_layers()}
    rng = random.Random(1)
    for _ in range(100):
        for _, la in anb.decode_layers(anb.sample(rng)):
            assert (la.block, la.cin, la.hin, la.cout, la.hout) in distinct


SWISH_TOY = """
name: swish_toy
resolution: 16
se_rule: input_quarter
stem: {out: 8, kernel: 3, stride: 1, act: sw}
stages:
  - {name: b0, out: 16, stride: 2, choices: {kernel: [3, 5], expand: [1, 4], se: [false, true], act: [re, sw],
     layers: [1, 2]}}
head: {conv: 32, conv_act: sw, dropout: 0.0}
"""


def test_supernet_swish_path_equals_the_built_module(tmp_path):
    """The supernet's swish (and its EfficientNet squeeze-excite) computes what mnas.model builds."""
    from mnas.accuracy.supernet_net import Supernet, calibrate, extract, subnet_arch

    p = tmp_path / "swish_toy.yaml"
    p.write_text(SWISH_TOY)
    sp = load_space(p)
    torch.manual_seed(0)
    sn = Supernet.from_space(sp, num_classes=10)
    with torch.no_grad():
        for w in sn.parameters():
            w.add_(0.1 * torch.randn_like(w))
    for sample in ({"b0.kernel": 5, "b0.expand": 4, "b0.se": True, "b0.act": "sw", "b0.layers": 2},
                   {"b0.kernel": 3, "b0.expand": 4, "b0.se": True, "b0.act": "re", "b0.layers": 1}):
        arch = subnet_arch(sp, sample)
        g = torch.Generator().manual_seed(1)
        bn = calibrate(sn, arch, [torch.randn(8, 3, 16, 16, generator=g) for _ in range(2)])
        model = extract(sn, arch, bn, resolution=16).eval()
        x = torch.randn(4, 3, 16, 16, generator=g)
        with torch.no_grad():
            assert torch.allclose(sn.run(x, arch, bn), model(x), atol=1e-4, rtol=1e-4)

"""The `ofa` space: Once-for-All's elastic MobileNetV3 w1.2, checked against OFA's own structure and counts."""

from __future__ import annotations

import random

import pytest

from mnas.counting import count
from mnas.space import load_space

# OFA's supernet as its code builds it (ofa_mbv3.py, width 1.2), written out here independently of the
# space file: (out, stride, SE) per stage after the fixed first block.
OFA_STAGES = [(32, 2, False), (48, 2, True), (96, 2, False), (136, 1, True), (192, 2, True)]


def ofa_divisible(v: float, divisor: int = 8) -> int:
    """OFA's make_divisible (ofa/utils/common_tools.py), restated."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def ofa_torch(arch: dict):
    """OFA's sub-network of ``arch`` ({ks, e, d, r}) as plain torch modules, laid out as OFA's classes are:
    ConvLayer stem, MBConvLayer blocks (1x1 expand + BN, depthwise + BN, SE of two biased 1x1 convs,
    1x1 project + BN), final_expand_layer (1x1 + BN), feature_mix_layer (1x1 conv, no bias, no BN),
    Linear classifier."""
    import torch.nn as nn

    class SE(nn.Module):
        def __init__(self, c):
            super().__init__()
            mid = ofa_divisible(c // 4)
            self.reduce = nn.Conv2d(c, mid, 1, bias=True)
            self.expand = nn.Conv2d(mid, c, 1, bias=True)

        def forward(self, x):
            y = x.mean((2, 3), keepdim=True)
            return x * self.expand(self.reduce(y).relu()).sigmoid()

    class MB(nn.Module):
        def __init__(self, cin, cout, k, stride, e, se):
            super().__init__()
            mid = ofa_divisible(round(cin * e)) if e != 1 else cin
            self.expand = None if e == 1 else nn.Sequential(nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid))
            self.dw = nn.Sequential(nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False), nn.BatchNorm2d(mid))
            self.se = SE(mid) if se else None
            self.project = nn.Sequential(nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.expand(x) if self.expand is not None else x
            y = self.dw(y)
            y = self.se(y) if self.se is not None else y
            y = self.project(y)
            return x + y if self.residual else y

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            blocks = [nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), MB(24, 24, 3, 1, 1, False)]
            cin = 24
            for s, (cout, stride, se) in enumerate(OFA_STAGES):
                for j in range(arch["d"][s]):
                    i = 4 * s + j
                    blocks.append(MB(cin, cout, arch["ks"][i], stride if j == 0 else 1, arch["e"][i], se))
                    cin = cout
            blocks += [nn.Conv2d(cin, 1152, 1, bias=False), nn.BatchNorm2d(1152)]
            self.body = nn.Sequential(*blocks)
            self.mix = nn.Conv2d(1152, 1536, 1, bias=False)
            self.classifier = nn.Linear(1536, 1000)

        def forward(self, x):
            return self.classifier(self.mix(self.body(x).mean((2, 3), keepdim=True)).flatten(1))

    return Net()


def ofa_flops_and_params(arch: dict) -> tuple[int, int]:
    """OFA's count_net_flops convention (ofa/utils/flops_counter.py): forward hooks on Conv2d (cin/groups x
    output elements x k x k) and Linear (in x out); parameters: every parameter tensor."""
    import torch
    import torch.nn as nn

    net = ofa_torch(arch).eval()
    total = [0]

    def conv_hook(m, _, y):
        total[0] += m.in_channels // m.groups * y.nelement() * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, _, __):
        total[0] += m.in_features * m.out_features

    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(conv_hook)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad():
        net(torch.zeros(1, 3, arch["r"], arch["r"]))
    return total[0], sum(p.numel() for p in net.parameters())


def random_arch(rng: random.Random) -> dict:
    return {"ks": [rng.choice((3, 5, 7)) for _ in range(20)], "e": [rng.choice((3, 4, 6)) for _ in range(20)],
            "d": [rng.choice((2, 3, 4)) for _ in range(5)], "r": rng.choice((160, 176, 192, 208, 224))}


def test_choices_are_ofas_arch_dict():
    sp = load_space("ofa")
    names = [c.name for c in sp.choices()]
    assert len(names) == 1 + 5 * (1 + 4 * 2)  # resolution; per stage depth and 4 x (kernel, expansion)
    assert names[:4] == ["resolution", "s1.layers", "s1.l1.kernel", "s1.l1.expand"]
    opts = {c.name: c.options for c in sp.choices()}
    assert opts["resolution"] == (160, 176, 192, 208, 224)
    assert opts["s3.layers"] == (2, 3, 4) and opts["s5.l4.kernel"] == (3, 5, 7) and opts["s2.l1.expand"] == (3, 4, 6)
    # OFA's space: (3 x 3)^20 per-slot choices is what its arch dicts span; depths cut unused slots
    assert sp.size == 5 * 3 ** 5 * 9 ** 20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiply_adds_equal_ofas_count_and_params_differ_by_the_head_bias(seed):
    """Second method: OFA's network built with torch from its description, counted as OFA counts."""
    pytest.importorskip("torch")
    from mnas.accuracy.ofa import sample_of_arch

    sp = load_space("ofa")
    arch = random_arch(random.Random(seed))
    if seed == 0:  # the largest sub-network
        arch = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}
    c = count(sp.decode(sample_of_arch(arch)))
    flops, params = ofa_flops_and_params(arch)
    assert c.madds == flops
    assert c.params == params + 1536  # mnas's hidden (feature-mix) layer has a bias, OFA's 1x1 conv has none


def test_smallest_subnet_by_hand():
    """k3 e3 d2 at 160 px, summed layer by layer by hand (spatial 80, 40, 20, 10, 10, 5)."""
    sp = load_space("ofa")
    net = sp.decode(sp.extreme("min"))
    assert net.resolution == 160
    m = 3 * 3 * 3 * 24 * 80 * 80  # stem
    m += 24 * 9 * 80 * 80 + 24 * 24 * 80 * 80  # first block: depthwise 3x3, project
    cin, h = 24, 80
    for cout, stride, se in OFA_STAGES:
        for j in range(2):
            mid = ofa_divisible(cin * 3)
            ho = h // stride if j == 0 else h
            m += cin * mid * h * h + mid * 9 * ho * ho + mid * cout * ho * ho
            if se:
                m += 2 * mid * ofa_divisible(mid // 4)
            cin, h = cout, ho
    m += 192 * 1152 * 5 * 5 + 1152 * 1536 + 1536 * 1000
    assert count(net).madds == m == 100_320_888


def test_note10_tables_price_every_op(shared_data):
    """OFA's measured Note10 tables key each op by shapes, expanded width, SE, h-swish and residual: every
    op of random sub-networks at each resolution is one of them (the space's networks are OFA's)."""
    from mnas.latency import get_predictor

    folder = shared_data / "latency" / "note10_ofa"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    sp = load_space("ofa")
    rng = random.Random(3)
    for r in (160, 176, 192, 208, 224):
        pred = get_predictor(str(folder / f"{r}_lookup_table.yaml"))
        for _ in range(20):
            s = sp.sample(rng)
            s["resolution"] = r
            assert pred.missing(sp.decode(s)) == []

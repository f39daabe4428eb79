"""MobileNetV3's manual redesign steps: checked against the published V3-Large itself."""

import dataclasses

from mnas import zoo
from mnas.arch import Act, Bneck, Conv
from mnas.counting import count
from mnas.redesign import efficient_last_stage, hswish_from, se_quarter_expansion, stem_16_hswish


def v3_large_before_redesign():
    """V3-Large as it was before Sec. 5.3: a 32-filter ReLU stem and the MnasNet-style last stage."""
    v3 = zoo.get("mobilenet_v3_large")
    first = dataclasses.replace(v3.blocks[0], exp=32)
    old_last = Bneck(out=320, exp=960, kernel=3, stride=1, act=Act.HSWISH)
    head = dataclasses.replace(v3.head, conv=1280, hidden=0)
    return dataclasses.replace(v3, stem=Conv(out=32, kernel=3, stride=2, act=Act.RELU),
                               blocks=(first,) + v3.blocks[1:] + (old_last,), head=head)


def test_last_stage_and_stem_steps_give_the_published_v3_large():
    net = stem_16_hswish(efficient_last_stage(v3_large_before_redesign()))
    assert net == zoo.get("mobilenet_v3_large")


def test_step_savings_have_the_papers_size():
    before = v3_large_before_redesign()
    after_last = efficient_last_stage(before)
    saved_last = (count(before).madds - count(after_last).madds) / 1e6
    saved_stem = (count(after_last).madds - count(stem_16_hswish(after_last)).madds) / 1e6
    # Paper: -30 M and -10 M multiply-adds. Hand count for the last stage: depthwise 3x3x960x49
    # + projection 960x320x49 + 1x1 320x1280x49 - hidden 960x1280 = 35.7 M.
    assert round(saved_last, 1) == round((9 * 960 * 49 + 960 * 320 * 49 + 320 * 1280 * 49 - 960 * 1280) / 1e6, 1)
    assert 25 < saved_last < 40
    # stem 3x3x3x(32-16)x112² + first depthwise 3x3x(32-16)x112² + projection (32-16)x16x112²
    assert round(saved_stem, 2) == round((27 * 16 + 9 * 16 + 16 * 16) * 112 * 112 / 1e6, 2)


def test_hswish_and_se_rules():
    a1 = zoo.get("mnasnet_a1")
    net = se_quarter_expansion(hswish_from(80)(a1))
    for b in net.blocks:
        assert b.act is (Act.HSWISH if b.out >= 80 else Act.RELU)
    # Hand values of MobileNetV3's rule make_divisible(exp / 4, 8): 72 -> 24 (18 rounds to 16, < 90 %),
    # 480 -> 120, 672 -> 168, 960 -> 240.
    by_exp = {b.exp: b.se for b in net.blocks if b.se}
    assert by_exp[72] == 24 and by_exp[480] == 120 and by_exp[672] == 168 and by_exp[960] == 240
    assert sum(b.se > 0 for b in net.blocks) == sum(b.se > 0 for b in a1.blocks)

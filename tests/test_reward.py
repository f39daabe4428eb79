"""MnasNet's reward against hand-computed values and the paper's own reading of w."""

import math

import pytest

from mnas.errors import MnasError
from mnas.search.reward import PRESETS, get_reward, mnas_reward


def test_presets_are_the_papers_exponents():
    assert PRESETS["soft"] == (-0.07, -0.07)  # MnasNet, soft constraint
    assert PRESETS["hard"] == (0.0, -1.0)  # MnasNet, hard constraint
    assert PRESETS["v3-small"] == (-0.15, -0.15)  # MobileNetV3-Small's search


@pytest.mark.parametrize(
    "name, acc, lat, target, expected",
    [
        ("soft", 75.0, 80.0, 80.0, 75.0),  # on target: the accuracy itself
        ("soft", 75.0, 40.0, 80.0, 75.0 * 1.0497166836230674),  # 2 ** 0.07
        ("soft", 75.0, 160.0, 80.0, 75.0 / 1.0497166836230674),
        ("hard", 75.0, 40.0, 80.0, 75.0),  # alpha = 0: no gain below the target
        ("hard", 75.0, 160.0, 80.0, 37.5),  # beta = -1: twice too slow halves the reward
        ("v3-small", 60.0, 30.0, 15.0, 60.0 * 0.9012504626108302),  # 2 ** -0.15
        ("v3-small", 60.0, 7.5, 15.0, 60.0 / 0.9012504626108302),
    ],
)
def test_reward_hand_computed(name, acc, lat, target, expected):
    assert get_reward(name, target)(acc, lat) == pytest.approx(expected, rel=1e-12)


def test_soft_reward_trades_about_5_percent_accuracy_per_2x_latency():
    # MnasNet section 3: with w = -0.07 "a model twice as slow needs ~5% more
    # relative accuracy" to get the same reward.
    r = get_reward("soft", 50.0)
    assert r(70.0 * 1.05, 100.0) == pytest.approx(r(70.0, 50.0), rel=2e-3)


def test_exponent_switches_at_the_target():
    # w = alpha at or below the target, beta above it: custom alpha=0, beta=-2
    r = get_reward("custom", 10.0, alpha=0.0, beta=-2.0)
    assert r(80.0, 10.0) == 80.0
    assert r(80.0, 5.0) == 80.0
    assert r(80.0, 20.0) == pytest.approx(20.0)


def test_pareto_mode_objectives():
    r = get_reward("pareto", None)
    assert r.multi_objective and r.directions == ["maximize", "minimize"]
    assert r.objectives(71.5, 12.0) == (71.5, 12.0)
    assert not get_reward("soft", 10.0).multi_objective
    assert get_reward("soft", 10.0).objectives(70.0, 10.0) == 70.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: get_reward("softer", 10.0), "unknown reward 'softer'"),
        (lambda: get_reward("soft", None), "needs a latency target"),
        (lambda: get_reward("custom", 10.0, alpha=-0.1), "needs both alpha and beta"),
        (lambda: get_reward("soft", 10.0, alpha=-0.1), "is a preset"),
        (lambda: get_reward("soft", -1.0), "must be positive"),
        (lambda: mnas_reward(70.0, 0.0, 10.0, -0.07, -0.07), "latency must be positive"),
    ],
)
def test_reward_errors(call, message):
    with pytest.raises(MnasError, match=message):
        call()


def test_mnas_reward_formula():
    assert mnas_reward(0.7, 12.0, 15.0, -0.07, -0.5) == pytest.approx(0.7 * math.pow(12 / 15, -0.07))
    assert mnas_reward(0.7, 18.0, 15.0, -0.07, -0.5) == pytest.approx(0.7 * math.pow(18 / 15, -0.5))

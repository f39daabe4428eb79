"""experiments/supernet_v3_agreement.py: the cheap parts (no training, no scoring)."""

from __future__ import annotations

import pytest
from conftest import load_experiment


@pytest.fixture(scope="module")
def mod():
    return load_experiment("supernet_v3_agreement")


def test_draw_is_seeded(mod):
    from mnas.space import load_space

    space = load_space("v3_small")
    a, b = mod.draw(space, 5, 0), mod.draw(space, 5, 0)
    assert [space.encode_string(s) for s in a] == [space.encode_string(s) for s in b]
    assert a != mod.draw(space, 5, 1)


def test_agreement_and_table(mod):
    import pandas as pd

    df = pd.DataFrame({"imagenet_top1": [60.0, 62.0, 64.0, 66.0], "supernet_top1": [10.0, 20.0, 30.0, 40.0],
                       "supernet_loss": [2.3, 2.2, 2.1, 2.0], "madds": [4, 3, 2, 1], "params": [1, 2, 3, 4],
                       "blocks": [8, 9, 10, 11]})
    s = mod.agreement(df)
    assert s["kendall_tau_supernet_top1"] == pytest.approx(1.0)
    assert s["kendall_tau_supernet_neg_loss"] == pytest.approx(1.0)
    assert s["kendall_tau_baseline_madds"] == pytest.approx(-1.0)
    assert s["spearman_rho_baseline_params"] == pytest.approx(1.0)
    assert s["kendall_tau_supernet_top1_vs_madds"] == pytest.approx(-1.0)
    s.update(space="v3_small", networks=4, train_seconds=1.0, train_seconds_per_step=0.5, scoring_seconds=2.0,
             scoring_seconds_per_network=0.5)
    assert "multiply-adds" in mod.table(s)


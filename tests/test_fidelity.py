"""`mnas fidelity`: rank agreement of an evaluator with a reference, on hand-checkable cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnas.cli import main
from mnas.errors import MnasError
from mnas.fidelity import fidelity, signal_quality


def test_four_networks_by_hand():
    # pairs: (0,1) (0,2) (0,3) (1,2) (1,3) concordant, (2,3) discordant -> tau = (5 - 1) / 6
    # ranks differ by 0, 0, 1, 1 -> rho = 1 - 6 * 2 / (4 * 15) = 0.8
    # differences 0, 0, -1, 1, median 0 -> MAE 0.5; top-2 by either: networks 2 and 3
    q = signal_quality(np.array([1, 2, 3, 4.0]), np.array([1, 2, 4, 3.0]), latency=np.ones(4), cap_ms=1, k=2,
                       percent=True)
    assert q["kendall_tau"] == pytest.approx(4 / 6)
    assert q["spearman_rho"] == pytest.approx(0.8)
    assert q["mae_pp"] == pytest.approx(0.5)
    assert q["top_k_overlap"] == 1.0
    assert q["regret_pp"] == pytest.approx(1.0)  # the signal picks network 3 (reference 3), the best is 4


def test_regret_only_counts_networks_within_the_cap():
    sig, ref = np.array([1, 2, 3, 4.0]), np.array([1, 4, 2, 3.0])
    # network 3 is over the cap: the signal picks network 2 (reference 2); the best within is network 1 (4)
    q = signal_quality(sig, ref, latency=np.array([1, 1, 1, 9.0]), cap_ms=2, k=1, percent=True)
    assert q["regret_pp"] == pytest.approx(2.0)
    assert q["top_k_overlap"] == 0.0  # top-1: network 3 vs network 1
    # the median offset removes a constant shift
    assert signal_quality(ref + 5, ref, np.ones(4), 1, 1, percent=True)["mae_pp"] == 0.0


def test_baseline_mae_is_after_a_log_linear_fit():
    ref = np.array([70.0, 72.0, 74.0, 76.0])
    madds = 2.0 ** np.array([6, 7, 8, 9])  # reference = 58 + 2 * log2(madds): fitted exactly
    assert signal_quality(madds, ref, np.ones(4), 1, 1, percent=False)["mae_pp"] == pytest.approx(0.0, abs=1e-9)


def test_an_evaluator_against_itself_is_perfect_and_the_baselines_are_measured_beside_it():
    r = fidelity("v3_small", "imagenet", "imagenet", samples=40, seed=1, evaluator_options={"warn": False},
                 reference_options={"warn": False})
    s = r["signals"]
    assert s["imagenet"]["kendall_tau"] == 1.0 and s["imagenet"]["mae_pp"] == 0.0 and s["imagenet"]["regret_pp"] == 0.0
    assert set(s) == {"imagenet", "multiply-adds", "parameters"}
    assert s["multiply-adds"]["kendall_tau"] < 1.0
    assert r["top_k"] == 4 and 0 < r["within_cap"] < 40


def test_command_prints_json(capsys):
    assert main(["fidelity", "--space", "ofa", "--evaluator", "ofa", "--reference", "ofa", "--samples", "30",
                 "--resolution", "224", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["resolution"] == 224 and out["signals"]["ofa"]["kendall_tau"] == 1.0


def test_bad_resolution_is_one_line(capsys):
    with pytest.raises(MnasError, match=r"--resolution 200 is not one of its resolutions \[160, 176"):
        fidelity("ofa", "ofa", "ofa", samples=10, resolution=200)
    assert main(["fidelity", "--space", "ofa", "--evaluator", "ofa", "--reference", "ofa", "--samples", "2"]) == 2
    assert "at least 3 samples" in capsys.readouterr().err

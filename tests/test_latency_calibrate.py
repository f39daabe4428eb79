"""`mnas latency calibrate`: the per-op-type composition and the one-command build of a table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnas.arch import parse_network
from mnas.latency import get_predictor
from mnas.latency.table import Entry, LatencyTable, op_type

TINY = "r32 stem_k3_c8_s2_re ir_k3_e16_c8_re_s1 head_d0"
TINY_KEYS = ["conv-in:32x32x3-out:16x16x8-k3-s2-re", "ir-in:16x16x8-out:16x16x8-exp:16-k3-s1-se0-re-res1",
             "pool-in:16x16x8", "fc-in:8-out:1000-lin"]


def test_op_types_of_keys():
    assert [op_type(k) for k in TINY_KEYS] == ["conv", "ir", "pool", "fc"]
    assert op_type("ir-in:14x14x40-out:14x14x40-exp:240-k5-s1-se64-hs-res1") == "ir_se"
    assert op_type("conv-in:7x7x96-out:7x7x576-k1-s1-hs") == "conv1x1"


def test_predictor_applies_per_type_factors_by_hand(tmp_path):
    values = [0.5, 1.25, 0.125, 2.0]
    meta = {"device": "t", "engine": "TFLite (imported)",
            "correction": {"a": 1.0, "b": 0.3, "per_type": {"conv": 2.0, "ir": 0.5, "fc": 1.5}}}
    LatencyTable(meta=meta, entries={k: Entry(v, 0, 1) for k, v in zip(TINY_KEYS, values)}).save(tmp_path / "t.csv")
    p = get_predictor(tmp_path / "t.csv")
    # pool has no factor: it keeps its measured cost
    assert p.predict(parse_network(TINY)) == pytest.approx(2.0 * 0.5 + 0.5 * 1.25 + 0.125 + 1.5 * 2.0 + 0.3)


def test_fit_composition_recovers_known_factors():
    from mnas.latency.profiler import fit_composition

    rng = np.random.default_rng(0)
    truth = {"conv": 1.3, "ir": 0.85, "ir_se": 1.1, "fc": 1.0}
    sums = [{t: float(rng.uniform(0.2, 3.0)) for t in truth} for _ in range(40)]
    measured = np.array([sum(truth[t] * s[t] for t in truth) + 0.4 for s in sums])
    c = fit_composition(sums, measured, ridge=1e-6)
    assert c["per_type"] == pytest.approx(truth, rel=1e-3)
    assert c["b"] == pytest.approx(0.4, abs=1e-3)
    assert c["mape_fit"] < 0.1 < c["mape_raw_sum"]


@pytest.mark.slow
def test_calibrate_builds_and_validates_a_table(tmp_path, capsys, monkeypatch):
    """NAS-Bench-Macro at 32×32 (19 ops): profile, composition, validation; then a rerun resumes without measuring."""
    from mnas.cli import main

    monkeypatch.setenv("MNAS_NO_REEXEC", "1")  # the CLI would re-execute itself with pinned malloc thresholds

    argv = ["latency", "calibrate", "--device", "nbm", "--engine", "onnxruntime", "--space", "nasbench_macro",
            "--samples", "6", "--calibration", "4", "--rounds", "2", "--budget", "0.01",
            "--out", str(tmp_path / "nbm.csv"), "--work", str(tmp_path / "work"), "--json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["ops"] == res["measured_now"] == 19 and res["samples"] == 6
    for k in ("mape", "within_10", "kendall_tau", "cpu"):
        assert k in res
    assert 0 <= res["mape"] < 100 and set(res["correction"]["per_type"]) <= {"conv", "conv1x1", "ir", "pool", "fc"}
    # the stored correction is what predict uses
    t = get_predictor(tmp_path / "nbm.csv").table
    assert t.meta["correction"]["per_type"] == res["correction"]["per_type"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["measured_now"] == 0


def test_ground_truth_retest_compares_even_rounds_with_odd_rounds():
    import numpy as np

    from mnas.latency.validate import retest

    # 3 networks x 4 rounds: even rounds' minima 1, 2, 3; odd rounds' minima 1.1, 1.8, 3.3 (hand-computed)
    r = np.array([[1.0, 1.1, 1.2, 1.5], [2.5, 1.8, 2.0, 1.9], [3.0, 3.3, 3.1, 3.4]])
    rt = retest(r)
    assert rt["mape"] == pytest.approx(100 * np.mean([0.1 / 1.1, 0.2 / 1.8, 0.3 / 3.3]))
    assert rt["kendall_tau"] == pytest.approx(1.0) and rt["within_10"] == pytest.approx(2 / 3)
    assert retest(r[:, :1]) is None

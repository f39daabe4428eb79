"""Missing ops of a table measured on this machine are measured on demand (NetAdapt's odd widths)."""

from __future__ import annotations

import math

import pytest

from mnas import zoo
from mnas.accuracy import Evaluator
from mnas.counting import count
from mnas.errors import MnasError
from mnas.latency import get_predictor
from mnas.latency.keys import network_keys
from mnas.latency.table import load_table


class ParamsEvaluator(Evaluator):
    """Stand-in accuracy: more parameters, higher 'accuracy' (instant, deterministic)."""

    name = "params"

    def _evaluate(self, net, sample):
        return {"top1": 50.0 + count(net, 10).params / 2e4, "loss": math.nan, "cost_s": 0.0}


def _v3_small_table(tmp_path):
    """A fresh onnxruntime table of this machine holding exactly MobileNetV3-Small's ops."""
    from mnas.latency import profiler

    runner = profiler.Runner("onnxruntime", budget_s=0.003, min_reps=3)
    table = profiler.open_table(tmp_path / "here.csv", "here", runner)
    profiler.profile_ops(profiler.distinct_ops([zoo.get("mobilenet_v3_small")]), table, runner, progress=False)
    return table.path


@pytest.mark.slow
def test_netadapt_steps_on_a_fresh_table_measure_missing_ops(tmp_path, capsys):
    from mnas.netadapt import NetAdaptConfig, run_netadapt

    path = _v3_small_table(tmp_path)
    before = load_table(path)
    net = zoo.get("mobilenet_v3_small")
    pred = get_predictor(path)
    seed_ms = pred.predict(net)
    cfg = NetAdaptConfig(arch=str(net), device=str(path), target_ms=0.97 * seed_ms, evaluator="predictor",
                         budget="smoke", delta=0.01)
    summary = run_netadapt(cfg, tmp_path / "run", predictor=pred, evaluator=ParamsEvaluator(), progress=False,
                           stop_after=2)
    after = load_table(path)
    assert len(after) > len(before)  # NetAdapt's widths were measured and appended
    assert after.meta == before.meta  # the header is left intact
    assert all(after.entries[k] == e for k, e in before.entries.items())
    assert "missing op(s) on demand" in capsys.readouterr().err
    assert summary is not None
    # every network NetAdapt saved is now priced from measured entries only
    from mnas.arch import load_network

    for f in sorted((tmp_path / "run").glob("step_*.yaml")):
        assert all(k in after.entries for k in network_keys(load_network(f)))


def test_a_table_of_another_cpu_refuses_to_grow(tmp_path):
    from mnas.arch import parse_network
    from mnas.latency.table import Entry, LatencyTable

    keys = ["conv-in:32x32x3-out:16x16x8-k3-s2-re", "pool-in:16x16x8", "fc-in:8-out:1000-lin"]
    LatencyTable(meta={"device": "far", "engine": "onnxruntime 1.0", "cpu": "Some Other CPU 9000"},
                 entries={k: Entry(0.1, 0, 1) for k in keys}).save(tmp_path / "far.csv")
    p = get_predictor(tmp_path / "far.csv")
    assert p.on_demand is None
    with pytest.raises(MnasError, match="cannot be extended here.*Some Other CPU 9000.*mnas latency calibrate"):
        p.predict(parse_network("r32 stem_k3_c8_s2_re ir_k3_e16_c8_re_s1 head_d0"))


def test_on_demand_can_be_switched_off(tmp_path, monkeypatch):
    from mnas.latency.profiler import ON_DEMAND_ENV, on_demand_for
    from mnas.latency.table import Entry, LatencyTable, this_cpu

    t = LatencyTable(meta={"device": "h", "engine": "onnxruntime 1.0", "cpu": this_cpu()["model"]},
                     entries={"pool-in:16x16x8": Entry(0.1, 0, 1)})
    t.save(tmp_path / "h.csv")
    assert on_demand_for(t) is not None
    monkeypatch.setenv(ON_DEMAND_ENV, "1")
    assert on_demand_for(t) is None

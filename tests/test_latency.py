"""Latency tables: keys, table files, predictor, missing ops, resumable profiling, vectorised path."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mnas import zoo
from mnas.arch import parse_network
from mnas.errors import MnasError
from mnas.latency import get_predictor
from mnas.latency.keys import layer_key, network_keys
from mnas.latency.table import Entry, LatencyTable, load_table

REPO = Path(__file__).resolve().parents[1]
TINY = "r32 stem_k3_c8_s2_re ir_k3_e16_c8_re_s1 head_d0"
TINY_KEYS = [  # written by hand from the token grammar and Network.layers()
    "conv-in:32x32x3-out:16x16x8-k3-s2-re",
    "ir-in:16x16x8-out:16x16x8-exp:16-k3-s1-se0-re-res1",
    "pool-in:16x16x8",
    "fc-in:8-out:1000-lin",
]


# --------------------------------------------------------------------------- keys

def test_key_of_v3_large_block_4():
    # MobileNetV3-Large Table 1, row 5: 56²×24 in, bneck 5×5, exp 72, SE, ReLU, stride 2, 40 out.
    # SE width = make_divisible(72 / 4, 8) = 24 (16 would be more than 10 % below 18).
    layer = list(zoo.get("mobilenet_v3_large").layers())[4]
    assert layer_key(layer) == "ir-in:56x56x24-out:28x28x40-exp:72-k5-s2-se24-re-res0"


def test_v3_large_stem_and_head_keys():
    keys = network_keys(zoo.get("mobilenet_v3_large"))
    assert len(keys) == 1 + 15 + 4
    assert keys[0] == "conv-in:224x224x3-out:112x112x16-k3-s2-hs"
    assert keys[1] == "ir-in:112x112x16-out:112x112x16-exp:16-k3-s1-se0-re-res1"
    assert keys[-4:] == ["conv-in:7x7x160-out:7x7x960-k1-s1-hs", "pool-in:7x7x960", "fc-in:960-out:1280-hs",
                         "fc-in:1280-out:1000-lin"]


def test_tiny_network_keys_by_hand():
    assert network_keys(parse_network(TINY)) == TINY_KEYS


# --------------------------------------------------------------------------- table and predictor

def _tiny_table(tmp_path, drop: int | None = None) -> LatencyTable:
    values = [0.5, 1.25, 0.125, 2.0]
    entries = {k: Entry(v, 0.01, 10) for i, (k, v) in enumerate(zip(TINY_KEYS, values)) if i != drop}
    t = LatencyTable(meta={"device": "tiny", "engine": "onnxruntime 0", "correction": {"a": 1.1, "b": 0.2}},
                     entries=entries)
    t.save(tmp_path / "tiny.csv")
    return t


def test_predict_is_corrected_hand_sum(tmp_path):
    _tiny_table(tmp_path)
    p = get_predictor(tmp_path / "tiny.csv")
    net = parse_network(TINY)
    assert p.device == "tiny"
    assert p.predict(net) == pytest.approx(1.1 * (0.5 + 1.25 + 0.125 + 2.0) + 0.2)
    assert p.predict_many([net, net]) == pytest.approx([4.4625, 4.4625])
    assert p.missing(net) == []


def test_table_round_trip_and_truncated_last_line(tmp_path):
    t = _tiny_table(tmp_path)
    path = tmp_path / "tiny.csv"
    with open(path, "a") as f:
        f.write("conv-in:8x8x8-out:8x8x8-k1-s1-re,0.3")  # a kill in the middle of a line
    back = load_table(path)
    assert back.entries == t.entries
    assert back.correction == (1.1, 0.2)


def test_missing_op_error_names_keys_and_command(tmp_path):
    _tiny_table(tmp_path, drop=1)
    p = get_predictor(tmp_path / "tiny.csv")
    net = parse_network(TINY)
    assert p.missing(net) == [TINY_KEYS[1]]
    with pytest.raises(MnasError) as e:
        p.predict(net)
    msg = str(e.value)
    assert "lacks 1 op(s)" in msg and TINY_KEYS[1] in msg
    assert f"mnas latency profile --device tiny --engine onnxruntime --arch '{TINY}'" in msg
    assert "\n" not in msg


def test_missing_many_ops_shows_first_few_and_count(tmp_path):
    _tiny_table(tmp_path)
    p = get_predictor(tmp_path / "tiny.csv")
    # V3-Large has 20 ops, 17 distinct (the 120-, 184- and 960-wide blocks repeat); 5 shown + 12 more
    with pytest.raises(MnasError, match=r"lacks 17 op\(s\).*\(and 12 more\)"):
        p.predict(zoo.get("mobilenet_v3_large"))


def test_unknown_device_is_one_line_error():
    with pytest.raises(MnasError, match="unknown latency device 'no-such-phone'.*mnas latency list"):
        get_predictor("no-such-phone")


def test_import_does_not_load_torch():
    code = ("import sys, mnas.latency; from mnas import zoo; "
            "p = mnas.latency.get_predictor('pixel1'); p.predict(zoo.get('mobilenet_v3_small')); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --------------------------------------------------------------------------- profiler (real engine, tiny ops)

def test_profile_resumes_after_a_kill(tmp_path):
    from mnas.latency import profiler

    net = parse_network(TINY)
    ops = profiler.distinct_ops([net])
    assert [op.key for op in ops] == TINY_KEYS
    runner = profiler.Runner("onnxruntime", budget_s=0.002, min_reps=3, warmup_s=0.0)
    path = tmp_path / "dev.csv"
    first: list[str] = []
    table = profiler.open_table(path, "dev", runner)
    n = profiler.profile_ops(ops, table, runner, limit=2, progress=False, on_measured=lambda k, e: first.append(k))
    assert n == 2 and first == TINY_KEYS[:2]
    # a new process: reopen the file, measure only what is left
    again: list[str] = []
    table = profiler.open_table(path, "dev", runner)
    assert len(table) == 2
    n = profiler.profile_ops(ops, table, runner, progress=False, on_measured=lambda k, e: again.append(k))
    assert n == 2 and again == TINY_KEYS[2:]
    final = load_table(path)
    assert sorted(final.entries) == sorted(TINY_KEYS)
    assert all(e.ms >= 0 and e.count >= 3 for e in final.entries.values())
    assert final.meta["engine"].startswith("onnxruntime") and final.meta["threads"] == 1
    assert profiler.profile_ops(ops, final, runner, progress=False) == 0


def test_resume_refuses_other_engine(tmp_path):
    from mnas.latency import profiler

    path = tmp_path / "dev.csv"
    profiler.open_table(path, "dev", profiler.Runner("onnxruntime", budget_s=0.001, min_reps=1))
    with pytest.raises(MnasError, match="was measured with engine"):
        profiler.open_table(path, "dev", profiler.Runner("torch", budget_s=0.001, min_reps=1))


# --------------------------------------------------------------------------- vectorised path

def test_vectorised_space_prediction_equals_plain():
    from mnas.space import load_space

    p = get_predictor("pixel1")
    sp = load_space("nasbench_macro")
    fast = p.compile_space(sp, check=20)
    rng = random.Random(123)
    samples = [sp.sample(rng) for _ in range(50)]
    plain = np.array([p.predict(sp.decode(s)) for s in samples])
    assert np.allclose(fast.predict_indices(fast.encode(samples)), plain, rtol=1e-12)


# --------------------------------------------------------------------------- CLI

def _cli(*argv):
    from mnas.cli import COMMANDS, main

    COMMANDS.setdefault("latency", "mnas.cli.latency")
    return main(list(argv))


def test_cli_predict_json(capsys):
    import json

    assert _cli("latency", "predict", "mobilenet_v3_small", "--device", "pixel1", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "pixel1" and out["latency_ms"] == pytest.approx(
        get_predictor("pixel1").predict(zoo.get("mobilenet_v3_small")))


def test_cli_bad_device_exits_2(capsys):
    assert _cli("latency", "predict", "mobilenet_v3_small", "--device", "nope") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown latency device" in err


def test_cli_list_shows_shipped_tables(capsys):
    import json

    assert _cli("latency", "list", "--json") == 0
    devices = {d["device"] for d in json.loads(capsys.readouterr().out)}
    assert {"pixel1", "pixel1-2018"} <= devices


def test_vectorised_path_handles_width_and_depth_choices():
    # v3_small: a block's key depends on the previous stage's width and on its own depth choice
    from mnas.space import load_space

    p = get_predictor("pixel1")
    sp = load_space("v3_small")
    fast = p.compile_space(sp, check=50)
    rng = random.Random(7)
    samples = [sp.sample(rng) for _ in range(30)]
    plain = p.predict_many(sp.decode(s) for s in samples)
    assert np.allclose(fast.predict_indices(fast.encode(samples)), plain, rtol=1e-12)


def test_merge_keeps_ours_and_refuses_other_engine():
    a = LatencyTable(meta={"engine": "onnxruntime 1"}, entries={"x": Entry(1.0, 0, 1)})
    b = LatencyTable(meta={"engine": "onnxruntime 1"}, entries={"x": Entry(2.0, 0, 1), "y": Entry(3.0, 0, 1)})
    a.merge(b)
    assert a.entries["x"].ms == 1.0 and a.entries["y"].ms == 3.0
    with pytest.raises(MnasError, match="different engine"):
        a.merge(LatencyTable(meta={"engine": "torch 2"}))


def test_error_stats_by_hand():
    from mnas.latency.validate import error_stats

    s = error_stats(np.array([110.0, 190.0, 300.0]), np.array([100.0, 200.0, 300.0]))  # errors 10 %, 5 %, 0 %
    assert s["mape"] == pytest.approx(5.0)
    assert s["max_error"] == pytest.approx(10.0)
    assert s["within_5"] == pytest.approx(2 / 3)
    assert s["within_10"] == pytest.approx(1.0)
    assert s["kendall_tau"] == pytest.approx(1.0)


@pytest.mark.slow
def test_profile_calibrate_validate_end_to_end(tmp_path):
    # NAS-Bench-Macro at 32x32: 19 ops, a few networks; checks the whole loop runs and reports sane figures
    from mnas.latency import profiler
    from mnas.latency.calibration import calibrate
    from mnas.latency.validate import validate
    from mnas.space import load_space

    sp = load_space("nasbench_macro")
    runner = profiler.Runner("onnxruntime", budget_s=0.02)
    table = profiler.open_table(tmp_path / "nb.csv", "nb", runner)
    profiler.profile_ops(profiler.space_ops(sp, [32], 10), table, runner, progress=False)
    rng = random.Random(0)
    cal = [sp.decode(sp.sample(rng)) for _ in range(4)]
    corr = calibrate(table, cal, runner, progress=False, num_classes=10)
    assert corr["n"] == 4 and corr["a"] > 0
    table.meta["spaces"] = ["nasbench_macro"]
    table.save()
    res = validate(str(tmp_path / "nb.csv"), samples=6, out=tmp_path / "val", rounds=2, num_classes=10, progress=False)
    assert res["samples"] == 6 and 0 <= res["table"]["mape"] < 100
    assert (tmp_path / "val" / "scatter.png").stat().st_size > 0

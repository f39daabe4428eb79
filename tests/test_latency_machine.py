"""Measured tables belong to one CPU; `mnas latency explain`; bad tables are one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnas.arch import parse_network
from mnas.errors import MnasError
from mnas.latency import get_predictor
from mnas.latency.table import Entry, LatencyTable, load_table

TINY = "r32 stem_k3_c8_s2_re ir_k3_e16_c8_re_s1 head_d0"
TINY_KEYS = [  # by hand, as in tests/test_latency.py
    "conv-in:32x32x3-out:16x16x8-k3-s2-re",
    "ir-in:16x16x8-out:16x16x8-exp:16-k3-s1-se0-re-res1",
    "pool-in:16x16x8",
    "fc-in:8-out:1000-lin",
]
VALUES = [0.5, 1.25, 0.125, 2.0]


def _machine_model() -> str:
    """This machine's CPU model, read here from /proc/cpuinfo (independently of mnas)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    pytest.skip("no /proc/cpuinfo model name on this machine")


def _table(tmp_path, name: str, cpu: str | None, engine: str = "onnxruntime 1.0", **meta) -> Path:
    m = {"device": name, "engine": engine, "threads": 1, "correction": {"a": 1.0, "b": 0.25}, **meta}
    if cpu is not None:
        m["cpu"] = cpu
    t = LatencyTable(meta=m, entries={k: Entry(v, 0.0, 5) for k, v in zip(TINY_KEYS, VALUES)})
    return t.save(tmp_path / f"{name}.csv")


# --------------------------------------------------------------------------- another CPU

def test_measured_table_from_another_cpu_warns_once(tmp_path, capsys):
    here = _machine_model()
    path = _table(tmp_path, "elsewhere", cpu=f"Not {here} @ 9.9GHz")
    p = get_predictor(path)
    p.predict(parse_network(TINY))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err
    assert "Not " + here in err and "mnas latency calibrate" in err  # says so, and how to build one here
    get_predictor(path).predict(parse_network(TINY))
    assert capsys.readouterr().err == ""  # once per process


def test_measured_table_from_this_cpu_and_modelled_tables_do_not_warn(tmp_path, capsys):
    path = _table(tmp_path, "here", cpu=_machine_model())
    get_predictor(path).predict(parse_network(TINY))
    get_predictor("pixel1").predict(parse_network(TINY))  # modelled: no machine of ours to compare
    _table(tmp_path, "phone", cpu="Snapdragon 855", engine="TFLite 2.1 (imported)")
    get_predictor(tmp_path / "phone.csv")
    assert capsys.readouterr().err == ""


def test_cli_predict_on_another_cpu_prints_one_warning_line(tmp_path, capsys):
    from mnas.cli import main

    path = _table(tmp_path, "elsewhere2", cpu="Some Other CPU 9000")
    assert main(["latency", "predict", TINY, "--device", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["latency_ms"] == pytest.approx(sum(VALUES) + 0.25)
    assert err.count("\n") == 1 and "Some Other CPU 9000" in err


def test_profiling_onto_a_table_from_another_cpu_is_refused(tmp_path):
    from mnas.latency import profiler

    runner = profiler.Runner("torch", budget_s=0.001)
    t = profiler.open_table(tmp_path / "t.csv", "t", runner)  # a new table records this CPU
    assert t.meta["cpu_info"]["model"] == _machine_model()
    t.meta["cpu"] = t.meta["cpu_info"]["model"] = "Some Other CPU 9000"
    t.save()
    with pytest.raises(MnasError, match="Some Other CPU 9000"):
        profiler.open_table(tmp_path / "t.csv", "t", runner)


# --------------------------------------------------------------------------- explain

def test_explain_is_the_hand_made_table(tmp_path, capsys):
    from mnas.cli import main

    path = _table(tmp_path, "explain", cpu=_machine_model())
    assert main(["latency", "explain", TINY, "--device", str(path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [o["key"] for o in res["ops"]] == TINY_KEYS
    assert [o["ms"] for o in res["ops"]] == pytest.approx(VALUES)
    total = sum(VALUES) + 0.25
    assert res["latency_ms"] == pytest.approx(total)
    assert [o["share"] for o in res["ops"]] == pytest.approx([v / total for v in VALUES])
    assert main(["latency", "explain", TINY, "--device", str(path), "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "fc-in:8-out:1000-lin" in out and "pool-in" not in out  # the most expensive op only


def test_explain_marks_ops_priced_by_the_model(capsys):
    from mnas.cli import main

    # an expansion width no table lists: pixel1 prices it by its cost model, and says so
    odd = "r224 stem_k3_c16_s2_hs ir_k3_e40_c16_re_s2 head_d0"
    assert main(["latency", "explain", odd, "--device", "pixel1", "--json"]) == 0
    ops = json.loads(capsys.readouterr().out)["ops"]
    assert [o["source"] for o in ops][:2] == ["table", "model"]


# --------------------------------------------------------------------------- bad tables

def _write(tmp_path, text: str) -> Path:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    return p


HEAD = "# mnas latency table\n# format: 1\n# device: bad\n# engine: onnxruntime 1.0\n"
COLS = "key,ms,spread_ms,count\n"


@pytest.mark.parametrize("text, where, what", [
    (HEAD + "# correction: {a: 1.0, b: [\n" + COLS, ":5", "YAML"),
    (HEAD + "# correction: {a: fast, b: 0}\n" + COLS, ":5", "correction"),
    (HEAD + "# threads: 0\n" + COLS, ":5", "threads"),
    (HEAD + COLS + "pool-in:16x16x8,0.1,0,5\npool-in:16x16x8,0.2,0,5\nfc-in:8-out:1000-lin,1,0,5\n", ":7", "twice"),
    (HEAD + COLS + "pool-in:16x16x8,abc,0,5\nfc-in:8-out:1000-lin,1,0,5\n", ":6", "malformed"),
    (HEAD + COLS + "pool-in:16x16x8,-0.5,0,5\nfc-in:8-out:1000-lin,1,0,5\n", ":6", ">= 0"),
])
def test_bad_table_is_one_line_naming_file_and_line(tmp_path, text, where, what):
    path = _write(tmp_path, text)
    with pytest.raises(MnasError) as e:
        load_table(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}{where}:") and what in msg


def test_remeasured_key_is_not_a_duplicate(tmp_path):
    # `profile --remeasure` appends a second line whose count grows: the later line wins
    path = _write(tmp_path, HEAD + COLS + "pool-in:16x16x8,0.2,0,5\npool-in:16x16x8,0.1,0,10\n")
    assert load_table(path).entries["pool-in:16x16x8"] == Entry(0.1, 0.0, 10)


def test_engine_not_installed_is_one_line(monkeypatch):
    import importlib.util

    from mnas.latency import profiler

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(MnasError, match=r"onnxruntime is not installed.*pip install onnxruntime.*--engine torch"):
        profiler.Runner("onnxruntime")

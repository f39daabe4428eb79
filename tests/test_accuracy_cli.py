"""`mnas eval`: compact encodings, evaluators by name, JSON output, one-line errors."""

from __future__ import annotations

import json

import pytest

from mnas.cli import COMMANDS, main


@pytest.fixture(autouse=True)
def _registered(monkeypatch, tmp_path):
    monkeypatch.setitem(COMMANDS, "eval", "mnas.cli.eval")
    monkeypatch.setenv("MNAS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def table_path(shared_data):
    p = shared_data / "nas_bench_macro" / "nas-bench-macro_cifar10.json"
    if not p.is_file():
        pytest.skip(f"{p} is absent")
    return p


def test_table_by_compact_encoding(table_path, capsys):
    assert main(["eval", "22212220", "--space", "nasbench_macro", "-e", "table", "--table-path", str(table_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    raw = json.loads(table_path.read_text())
    assert out["top1"] == raw["22212220"]["mean_acc"] and out["code"] == "22212220" and out["key"] == "22212220"
    assert out["arch"].startswith("r32 stem_k3_c32_s1_re ir_k5_e192_c64_re_s2")


def test_table_by_text_form(table_path, capsys):
    # stages 2/3/3: [e3k3, id] [1x1-conv identity, id, id] [e3k3, id, id] -> key 10 000 100
    arch = "r32 stem_k3_c32_s1_re ir_k3_e96_c64_re_s2 conv_k1_c128_s2_lin ir_k3_e384_c256_re_s2 head_c1280_re_d0"
    assert main(["eval", arch, "-e", "table", "--table-path", str(table_path)]) == 0
    raw = json.loads(table_path.read_text())
    assert f"top-1 {raw['10000100']['mean_acc']:.2f} %" in capsys.readouterr().out


def test_train_on_digits(capsys, tmp_path):
    arch = "r8 stem_k3_c8_s1_re ir_k3_e16_c16_re_s2 head_c32_re_d0"
    argv = ["eval", arch, "-e", "train", "--dataset", "digits", "--steps", "5", "--threads", "1",
            "-o", "val_size=100", "-o", "batch_size=16", "--cache", str(tmp_path / "r.sqlite"), "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["cached"] is True and second["top1"] == first["top1"] and first["steps"] == 5


def test_errors_are_one_line_exit_2(capsys):
    assert main(["eval", "22212220", "-e", "table"]) == 2
    assert "give --space" in capsys.readouterr().err
    assert main(["eval", "mobilenet_v3_small", "-e", "train", "-o", "epoch=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown option(s) epoch" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "mobilenet_v3_small", "-e", "train", "-o", "oops"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err

"""The `mnas` command: help, tables, JSON, ONNX export, one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mnas import zoo
from mnas.cli import main
from mnas.model import build


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "arch" in out and "export" in out


def test_arch_show_json(capsys):
    code, out, _ = run(capsys, "arch", "show", "mobilenet_v3_small", "--json")
    d = json.loads(out)
    assert code == 0 and d["params"] == 2_542_856 and d["madds"] == 56_510_400
    assert d["table"][1]["operator"].startswith("bneck 3×3") and d["table"][1]["se"]


def test_arch_show_table(capsys):
    code, out, _ = run(capsys, "arch", "show", "mobilenet_v3_large", "--resolution", "160")
    assert code == 0 and "160²×3" in out and "parameters      5,483,032" in out


def test_errors_are_one_line_exit_2():
    for argv in (["arch", "show", "nope"], ["arch", "show", "mobilenet_v2", "--resolution", "x"], ["export", "x.yaml", "--out", "y"]):
        p = subprocess.run([sys.executable, "-m", "mnas", *argv], capture_output=True, text=True)
        assert p.returncode == 2, argv
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr


def test_export_onnx_matches_torch(tmp_path, capsys):
    """The file `mnas export` writes computes what mnas's torch model of the same network computes."""
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "m.onnx"
    torch.manual_seed(0)  # the command builds the model with torch's default initialisation: same seed, same weights
    code, out, _ = run(capsys, "export", "mobilenet_v3_small", "--resolution", "64", "--out", str(path), "--classes", "10")
    assert code == 0 and str(path) in out
    net = zoo.get("mobilenet_v3_small").with_resolution(64)
    torch.manual_seed(0)
    model = build(net, 10).eval()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert inp.name == "input" and list(inp.shape) == [1, 3, 64, 64]
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    got = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert got.shape == (1, 10)
    # the freshly initialised classifier gives tiny logits (~1e-10): compare relative to their scale
    scale = np.abs(want).max()
    assert scale > 0 and len(np.unique(want)) == 10
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * scale)

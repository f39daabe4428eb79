"""Small things a newcomer meets: malformed codes, --resolution, warnings beside progress bars, codes in results."""

from __future__ import annotations

import json
import warnings

import pytest

from mnas.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_code_of_the_wrong_length_is_named_as_such(capsys):
    code, _, err = run(capsys, "eval", "2221222", "--space", "nasbench_macro")  # NAS-Bench-Macro keys have 8 digits
    assert code == 2 and "has 7 characters, expected 8" in err and "reference network" not in err


def test_resolution_sets_the_input_size_of_an_evaluator_without_that_option(capsys):
    from mnas import zoo

    code, out, err = run(capsys, "eval", "mobilenet_v3_small", "--resolution", "160", "--json")
    assert code == 0, err
    got = json.loads(out)
    # the same network written at 160 px, scored by the second path: its text form
    text = str(zoo.get("mobilenet_v3_small").with_resolution(160))
    assert text.startswith("r160 ")
    code, out, err = run(capsys, "eval", text, "--json")
    assert got["top1"] == pytest.approx(json.loads(out)["top1"]) and got["arch"] == text


def test_a_warning_during_a_progress_bar_gets_a_line_of_its_own(capsys, monkeypatch):
    import sys

    from tqdm import tqdm

    import mnas.cli.arch as arch

    def noisy(args):
        bar = tqdm(total=4, file=sys.stderr, ascii=True, mininterval=0)
        bar.update(2)
        warnings.warn("something worth knowing", UserWarning)
        bar.update(2)
        bar.close()
        return 0

    monkeypatch.setattr(arch, "cmd_list", noisy)
    code, _, err = run(capsys, "arch", "list")
    assert code == 0
    # tqdm clears the bar's line ("\r<blanks>\r") before the warning, and draws it again after
    before, _, after = err.partition("UserWarning: something worth knowing\n")
    assert after, err
    line_start = before.rsplit("\r", 1)[-1]  # what stands on the warning's line before it: its location only
    assert "|" not in line_start and "%" not in line_start, repr(err)
    assert "4/4" in after


def test_search_results_carry_the_compact_code(capsys, tmp_path):
    from mnas.space import load_space

    code, out, err = run(capsys, "search", "--target-ms", "15", "--trials", "12", "--out", tmp_path / "r", "--json",
                         "--no-progress")
    assert code == 0, err
    top = json.loads(out)["top"][0]
    space = load_space("v3_small")
    # the code decodes to the very network the row names
    assert str(space.decode(space.decode_string(top["code"]))) == top["arch"]


def test_latency_predict_takes_the_space_its_error_asks_for(capsys):
    from mnas.anb import network_of, parse_code
    from mnas.latency import get_predictor

    b0 = "1311-6321-6521-6331-6531-6541-6311"  # EfficientNet-B0 in Accel-NASBench's encoding
    code, _, err = run(capsys, "latency", "predict", b0, "--device", "pixel1", "--ops")
    assert code == 2 and "--space anb" in err
    code, out, err = run(capsys, "latency", "predict", b0, "--device", "pixel1", "--ops", "--space", "anb", "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["latency_ms"] == pytest.approx(get_predictor("pixel1").predict(network_of(parse_code(b0))))
    assert len(got["ops"]) > 10


def test_every_command_that_produces_results_takes_json():
    """The README promises `--json` on every command that produces results."""
    import argparse

    from mnas.cli import make_parser

    def leaves(p, path=()):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield " ".join(path), p
        for a in subs:
            for name, sp in a.choices.items():
                yield from leaves(sp, path + (name,))

    serving = {"dashboard"}  # a web server: nothing to print as JSON
    missing = [cmd for cmd, p in leaves(make_parser()) if cmd and cmd not in serving
               and not any("--json" in a.option_strings for a in p._actions)]
    assert not missing, f"commands without --json: {missing}"


def test_the_default_reward_on_anb_uses_the_latency_budget(capsys, tmp_path):
    """MnasNet's space gets MnasNet's soft reward: its pick lands near the target instead of far under it
    (with MobileNetV3-Small's w = -0.15 a 300-trial search at 75 ms on pixel1 ended at 34 ms)."""
    code, out, err = run(capsys, "search", "--space", "anb", "--device", "pixel1", "--target-ms", "75",
                         "--trials", "300", "--out", tmp_path / "r", "--json", "--no-progress")
    assert code == 0, err
    d = json.loads(out)
    assert d["reward"] == "soft"
    assert 0.8 * 75 <= d["top"][0]["latency_ms"] <= 1.1 * 75, d["top"][0]


@pytest.mark.slow
def test_netadapt_smoke_budget_learns_the_task(tmp_path):
    """`--budget smoke` on digits pretrains long enough to leave chance accuracy (10 %) behind."""
    from mnas import zoo
    from mnas.netadapt import NetAdaptConfig, run_netadapt
    from mnas.run import get_budget

    steps = get_budget("smoke").netadapt
    cfg = NetAdaptConfig(arch=str(zoo.get("mobilenet_v3_small")), device="pixel1", target_ms=15.5, dataset="digits", **steps)
    summary = run_netadapt(cfg, tmp_path / "na", progress=False, stop_after=0)
    assert summary["seed_top1"] > 50, summary

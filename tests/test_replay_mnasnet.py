"""`mnas replay mnasnet`: settings, the comparison networks, the report, resume, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnas.errors import MnasError

REPO = Path(__file__).resolve().parents[1]


def test_variants_carry_the_papers_settings():
    from mnas.replay.mnasnet import W, ReplayMnasnetConfig

    m = ReplayMnasnetConfig()
    assert (m.variant, m.device, m.target_ms, m.strategy, m.trials, W) == ("mnasnet", "pixel1", 75.0, "rl", 8000, -0.07)
    e = ReplayMnasnetConfig(variant="efficientnet")
    assert (e.device, e.target_ms) == ("madds", 400.0)  # ACC x (FLOPS / 400M)^-0.07
    with pytest.raises(MnasError, match="unknown mnasnet variant 'b7'"):
        ReplayMnasnetConfig(variant="b7")
    with pytest.raises(MnasError, match="--target-ms must be a positive number"):
        ReplayMnasnetConfig(target_ms=float("nan"))
    with pytest.raises(MnasError, match="--trials must be a whole number >= 1"):
        ReplayMnasnetConfig(trials=0)


@pytest.mark.slow  # a 40-trial RL search on anb plus the benchmark's 4,616 networks priced (~30 s on 2 busy cores)
def test_replay_reports_found_b0_and_best_listed(tmp_path, shared_data):
    from mnas.anb import EFFICIENTNET_B0, choices_of, load_csv, network_of
    from mnas.counting import count
    from mnas.latency import get_predictor
    from mnas.replay.mnasnet import ReplayMnasnetConfig, run_replay_mnasnet

    out = tmp_path / "rm"
    s = run_replay_mnasnet(ReplayMnasnetConfig(trials=40, target_ms=70.0), out, progress=False)
    for f in ("report.md", "summary.json", "pareto.png"):
        assert (out / f).is_file()
    assert json.loads((out / "summary.json").read_text())["networks"].keys() == {"found", "efficientnet_b0", "best_listed"}
    nets = s["networks"]
    assert s["trials"] == 40 and nets["efficientnet_b0"]["code"] == EFFICIENTNET_B0
    b0 = nets["efficientnet_b0"]
    # EfficientNet-B0's counts: 5.29 M parameters with ReLU/hard-sigmoid SE (the paper: 5.3 M), ~0.39 B multiply-adds
    assert b0["params"] == count(network_of(choices_of(EFFICIENTNET_B0))).params
    assert abs(b0["params"] / 1e6 - 5.3) < 0.05 and abs(b0["madds"] / 1e9 - 0.39) < 0.01
    assert b0["table_top1"] is None  # B0 is not among the benchmark's trained networks
    # the best listed network: feasible, and no feasible listed network has a higher table top-1 (priced one by one)
    best = nets["best_listed"]
    assert best["latency"] <= 70.0 and best["table_top1"] is not None
    data, pred = load_csv(), get_predictor("pixel1")
    top1 = data.network_values("val_top1")
    nc = data.network_choices()
    better = [i for i in range(len(nc)) if top1[i] > best["table_top1"] + 1e-9]
    assert better and all(pred.predict(network_of(nc[i])) > 70.0 for i in better)
    found = nets["found"]
    assert found["reward"] == pytest.approx(found["surrogate_top1"] * (found["latency"] / 70.0) ** -0.07)
    report = (out / "report.md").read_text()
    assert EFFICIENTNET_B0 in report and found["code"] in report and best["code"] in report
    assert "| b6 |" in report
    # the same command again resumes the stored search (a longer budget extends it)
    again = run_replay_mnasnet(ReplayMnasnetConfig(trials=50, target_ms=70.0), out, progress=False)
    assert again["trials"] == 50
    with pytest.raises(MnasError, match="rerun with those settings to resume it"):
        run_replay_mnasnet(ReplayMnasnetConfig(trials=50, target_ms=60.0), out, progress=False)


def test_cli_rejects_options_that_do_not_apply(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mnas", "replay", "mnasnet", "--delta", "0.01", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "replay mnasnet takes no --delta" in r.stderr


def test_rerun_keeps_the_search_time_and_plot_replay_redraws_it(tmp_path, capsys):
    """A finished replay run again reloads its search: the summary keeps the first run's search time;
    `mnas plot replay` redraws a MnasNet replay from its folder, every trial included."""
    from mnas.cli import main
    from mnas.replay.mnasnet import ReplayMnasnetConfig, run_replay_mnasnet

    out = tmp_path / "rm"
    first = run_replay_mnasnet(ReplayMnasnetConfig(trials=30, target_ms=70.0, strategy="random"), out, progress=False)
    again = run_replay_mnasnet(ReplayMnasnetConfig(trials=30, target_ms=70.0, strategy="random"), out, progress=False)
    assert again["search_wall_s"] == first["search_wall_s"]  # nothing was searched the second time
    capsys.readouterr()
    assert main(["plot", "replay", str(out), "--out", str(tmp_path / "p.png"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert len(d["trials"]) == 30 and (tmp_path / "p.png").stat().st_size > 5_000

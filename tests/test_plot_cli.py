"""`mnas plot ...` on tiny hand-made run folders: the data each plot draws, and the image."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mnas import zoo
from mnas.cli import COMMANDS, main


@pytest.fixture(autouse=True)
def _commands(monkeypatch):
    monkeypatch.setitem(COMMANDS, "plot", "mnas.cli.plot")
    monkeypatch.setitem(COMMANDS, "replay", "mnas.cli.replay")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


NA_COLUMNS = ("step", "proposal", "kind", "layers", "channels_before", "channels_after", "latency_ms",
              "latency_drop_ms", "top1", "loss", "delta_top1", "score", "chosen", "cost_s", "arch")


def netadapt_rows(arch: str) -> list[dict]:
    """A seed and two steps of two proposals each; the chosen ones lower latency 10 -> 9 -> 8."""
    base = dict.fromkeys(NA_COLUMNS, "")
    rows = [{**base, "step": 0, "proposal": "seed", "kind": "seed", "latency_ms": 10.0, "top1": 70.0, "chosen": True,
             "cost_s": 1.0, "arch": arch}]
    for step, (lat, acc) in enumerate([(9.0, 69.5), (8.0, 68.0)], start=1):
        rows.append({**base, "step": step, "proposal": "exp:b1", "kind": "exp", "latency_ms": lat, "top1": acc,
                     "chosen": True, "cost_s": 1.0, "arch": arch})
        rows.append({**base, "step": step, "proposal": "group:b2", "kind": "group", "latency_ms": lat - 0.2,
                     "top1": acc - 3, "chosen": False, "cost_s": 1.0, "arch": arch})
    return rows


def test_plot_netadapt(tmp_path, capsys):
    run_dir = tmp_path / "na"
    run_dir.mkdir()
    pd.DataFrame(netadapt_rows(str(zoo.get("mobilenet_v3_small")))).to_csv(run_dir / "path.csv", index=False)
    code, out, err = run(capsys, "plot", "netadapt", run_dir, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert [s["latency_ms"] for s in d["steps"]] == [10.0, 9.0, 8.0]  # the chosen path, not the rejected proposals
    assert [s["top1"] for s in d["steps"]] == [70.0, 69.5, 68.0]
    assert (run_dir / "path.png").stat().st_size > 5_000


def test_plot_replay(tmp_path, capsys):
    run_dir = tmp_path / "rp"
    (run_dir / "netadapt").mkdir(parents=True)
    a1, v3 = zoo.get("mnasnet_a1"), zoo.get("mobilenet_v3_large")
    pd.DataFrame(netadapt_rows(str(a1))).to_csv(run_dir / "netadapt" / "path.csv", index=False)
    pd.DataFrame([{"step": "last_stage", "applied": True, "latency_ms": 7.0, "top1": 67.5, "arch": str(v3)},
                  {"step": "stem16", "applied": False, "latency_ms": 7.0, "top1": 67.5, "arch": str(v3)}]
                 ).to_csv(run_dir / "redesign.csv", index=False)
    pd.DataFrame([{"name": "mobilenet_v3_large", "latency_ms": 7.5, "top1": 69.0, "params": 5_483_032,
                   "madds": 216_589_760, "arch": str(v3)}]).to_csv(run_dir / "references.csv", index=False)
    out_png = tmp_path / "r.png"
    code, out, err = run(capsys, "plot", "replay", run_dir, "--out", out_png, "--json")
    assert code == 0, err
    pts = json.loads(out)["points"]
    assert [p["phase"] for p in pts] == ["netadapt"] * 3 + ["redesign"]  # a skipped step is no point
    assert [p["latency_ms"] for p in pts] == [10.0, 9.0, 8.0, 7.0]
    assert pts[-1]["madds"] == 216_589_760  # counted from the architecture
    assert out_png.stat().st_size > 5_000


def test_plot_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "plot", "netadapt", tmp_path / "nowhere")
    assert code == 2 and "is not a folder" in err and "Traceback" not in err
    code, _, err = run(capsys, "plot", "netadapt", tmp_path)
    assert code == 2 and "no path.csv" in err
    code, _, err = run(capsys, "plot", "replay", tmp_path)
    assert code == 2 and "no replay phase has finished" in err


def test_replay_cli_bad_input_is_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "replay", "v3-large", "--trials", "0", "--out", tmp_path / "x")
    assert code == 2 and "--trials" in err and "must be a whole number >= 1" in err


def search_run(path, device="pixel1"):
    """Five trials by hand: (accuracy, latency) = A(70, 10) B(72, 12) C(69, 11) D(75, 20) E(74, 25);
    C is beaten by A (faster and better), E by D: the front is A, B, D."""
    path.mkdir()
    rows = [(0, 70.0, 10.0), (1, 72.0, 12.0), (2, 69.0, 11.0), (3, 75.0, 20.0), (4, 74.0, 25.0)]
    df = pd.DataFrame([{"number": n, "state": "COMPLETE", "accuracy": a, "latency_ms": lat,
                        "reward": a * (lat / 15.0) ** -0.15} for n, a, lat in rows])
    df.loc[len(df)] = {"number": 5, "state": "FAIL", "accuracy": 99.0, "latency_ms": 1.0, "reward": 200.0}
    df.to_csv(path / "trials.csv", index=False)
    (path / "config.yaml").write_text(f"device: {device}\ntarget_ms: 15\n")
    return path


def test_plot_pareto(tmp_path, capsys):
    run_dir = search_run(tmp_path / "s1")
    code, out, err = run(capsys, "plot", "pareto", run_dir, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["device"] == "pixel1"
    front = d["runs"][0]["front"]
    assert [r["number"] for r in front] == [0, 1, 3]  # the failed trial is no trial
    assert d["runs"][0]["trials"] == 5
    assert (run_dir / "pareto.png").stat().st_size > 5_000


def test_plot_pareto_draws_the_target_the_chosen_network_and_scored_references(tmp_path, capsys):
    """The plot backs a claim: the target, the network the reward picks, V3-Small at (latency, estimate)
    beside its published top-1, an axis naming the evaluator."""
    run_dir = search_run(tmp_path / "s1")
    code, out, err = run(capsys, "plot", "pareto", run_dir, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["target_ms"] == 15  # config.yaml's target
    # by hand, reward = a (lat/15)^-0.15: A 74.39, B 74.45, C 72.2, D 71.8, E 68.5 -> B (72 %, 12 ms)
    assert (d["chosen"]["accuracy"], d["chosen"]["latency_ms"]) == (72.0, 12.0)
    refs = {r["name"]: r for r in d["references"]}
    v3s = refs["mobilenet_v3_small"]
    assert v3s["published"] == 67.5  # MobileNetV3 paper, Table 9 (V3-Small 1.0 at 224)
    code, out, err = run(capsys, "eval", "mobilenet_v3_small", "--json")  # the evaluator's value, by a second path
    assert v3s["accuracy"] == pytest.approx(json.loads(out)["top1"])
    code, out, err = run(capsys, "latency", "predict", "mobilenet_v3_small", "--device", "pixel1", "--json")
    assert v3s["latency_ms"] == pytest.approx(json.loads(out)["latency_ms"])
    # V3-Large (51 ms) lies beyond 1.5x the slowest trial (25 ms): left out, and said so
    assert "mobilenet_v3_large" in d["references_left_out"] and "mobilenet_v3_large" not in refs
    assert "estimate" in d["ylabel"] and "imagenet" in d["ylabel"]
    assert "target 15 ms" in d["title"] and "5 trials" in d["title"]


def test_plot_pareto_refuses_mixed_devices(tmp_path, capsys):
    a, b = search_run(tmp_path / "a"), search_run(tmp_path / "b", device="pixel1-2018")
    code, _, err = run(capsys, "plot", "pareto", a, b)
    assert code == 2 and "different devices" in err
    code, _, err = run(capsys, "plot", "pareto", a, b, "--device", "pixel1", "--out", tmp_path / "ab.png")
    assert code == 0, err
    assert (tmp_path / "ab.png").is_file()


def test_plot_search(tmp_path, capsys):
    run_dir = search_run(tmp_path / "s")
    code, out, err = run(capsys, "plot", "search", run_dir, "--json")
    assert code == 0, err
    curve = json.loads(out)["trials"]
    rewards = [70.0 * (10 / 15) ** -0.15, 72.0 * (12 / 15) ** -0.15, 69.0 * (11 / 15) ** -0.15,
               75.0 * (20 / 15) ** -0.15, 74.0 * (25 / 15) ** -0.15]
    assert [c["reward"] for c in curve] == pytest.approx(rewards)
    best = [max(rewards[: i + 1]) for i in range(5)]  # running best, by hand
    assert [c["best"] for c in curve] == pytest.approx(best)
    assert (run_dir / "search.png").is_file()


def test_plot_pareto_warns_when_the_trials_table_is_short_of_the_storage(tmp_path, capsys):
    """A trials table cut short (by hand, a copy) is plotted, but a warning names the storage's count."""
    run = tmp_path / "run"
    assert main(["search", "--target-ms", "15", "--trials", "12", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    table = pd.read_csv(run / "trials.csv")
    assert len(table) == 12
    table.head(5).to_csv(run / "trials.csv", index=False)
    (run / "trials.parquet").unlink()
    assert main(["plot", "pareto", str(run)]) == 0
    err = capsys.readouterr().err
    assert "holds 5 of the 12 completed trials" in err and err.count("\n") == 1, err
    assert main(["search", "--resume", str(run), "--no-progress"]) == 0  # the fix the warning names
    capsys.readouterr()
    assert main(["plot", "pareto", str(run)]) == 0
    assert "warning" not in capsys.readouterr().err

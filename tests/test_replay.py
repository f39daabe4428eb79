"""The MobileNetV3 replay: phases, resume, the redesign deltas, the report and its plot data.

A fake device (latency = multiply-adds / 4e6 ms, so MnasNet-A1 ≈ 78 ms and V3-Large ≈ 54 ms, the
published Pixel-1 figures' scale) and a fake accuracy (a smooth function of size) keep these tests
to seconds; the real `pixel1` table and evaluators are exercised by `mnas replay --budget smoke`.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from evaluator_contract import check_evaluator_contract

from mnas import zoo
from mnas.accuracy import Evaluator
from mnas.arch import Act, load_network
from mnas.counting import count
from mnas.errors import MnasError
from mnas.redesign import V3_STEPS
from mnas.replay import Replay, ReplayConfig, replay_points, run_replay, side_by_side, step_applies


def fake_ms(net) -> float:
    return count(net).madds / 4e6 + 0.05 * sum(b.act is Act.HSWISH for b in net.blocks)


def fake_top1(madds: int, params: int) -> float:
    return 40 + 6 * math.log(madds / 1e6) + params / 1e6


class FakePredictor:
    """A :class:`~mnas.protocols.LatencyModel`: ms = multiply-adds / 4e6 + 0.05 per h-swish block."""

    device = "fake"

    def __init__(self):
        self.calls = 0

    def predict(self, net):
        self.calls += 1
        return fake_ms(net)

    def predict_many(self, nets):
        return np.array([self.predict(n) for n in nets])

    def missing(self, net):
        return []


class FakeEvaluator(Evaluator):
    """A real :class:`Evaluator` (cache, contract) whose top-1 is a smooth function of size."""

    name = "fake"

    def __init__(self, space=None, cache=None):
        super().__init__(space, cache)
        self.calls = 0

    def _evaluate(self, net, sample):
        self.calls += 1
        c = count(net)
        return {"top1": fake_top1(c.madds, c.params), "loss": math.nan, "cost_s": 0.0}


def fake_search(**kw):
    """Stands in for the search library: 'finds' V3-Small at width 1.25."""
    net = zoo.get("mobilenet_v3_small_1.25")
    return {"arch": str(net), "trials": kw["trials"], "reward": 1.0, "run": str(kw["out"])}


@pytest.fixture(scope="module")
def large_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay") / "v3l"
    pred, ev = FakePredictor(), FakeEvaluator()
    summary = run_replay(ReplayConfig("v3-large", budget="smoke"), out, predictor=pred, evaluator=ev, progress=False)
    return out, summary


def test_v3_large_smoke_end_to_end(large_run):
    out, s = large_run
    assert (out / "report.md").is_file() and (out / "replay.png").stat().st_size > 10_000
    # the saved summary states the facts checked below against their sources, not just what run_replay returned
    saved = json.loads((out / "summary.json").read_text())
    final = load_network(out / "final.yaml")
    assert saved["found"]["arch"] == str(final) == s["found"]["arch"]
    assert saved["found"]["madds"] == count(final).madds and saved["found"]["params"] == count(final).params
    assert saved["found"]["latency_ms"] == pytest.approx(fake_ms(final))
    assert saved["target_ms"] == pytest.approx(fake_ms(zoo.get("mobilenet_v3_large")))
    assert saved["netadapt"]["seed_latency_ms"] == pytest.approx(fake_ms(zoo.get("mnasnet_a1")))
    assert [r["step"] for r in saved["redesign"]] == [st.name for st in V3_STEPS]
    # NetAdapt ran from MnasNet-A1 down to the published V3-Large's (fake) latency
    v3 = zoo.get("mobilenet_v3_large")
    assert s["target_ms"] == pytest.approx(FakePredictor().predict(v3))
    assert s["netadapt"]["seed_latency_ms"] == pytest.approx(FakePredictor().predict(zoo.get("mnasnet_a1")))
    assert s["netadapt"]["latency_ms"] <= s["target_ms"] < s["netadapt"]["seed_latency_ms"]
    assert s["published"]["params"] == 5_483_032  # the published V3-Large (torchvision's count)
    report = (out / "report.md").read_text()
    for text in ("last_stage", "-7 ms, -30 M", "MobileNetV2", "MnasNet-A1", "Block by block", "replay.png"):
        assert text in report
    # the found network's table rows follow its own layers
    final = load_network(out / "final.yaml")
    assert s["found"]["madds"] == count(final).madds


def test_each_redesign_delta_is_the_counts_difference(large_run):
    out, _ = large_run
    red = pd.read_csv(out / "redesign.csv", keep_default_na=False, na_values=[""])
    net = load_network(out / "netadapt_result.yaml")
    pred = FakePredictor()
    assert list(red["step"]) == [s.name for s in V3_STEPS]
    for step, (_, row) in zip(V3_STEPS, red.iterrows()):
        new, why = step_applies(step, net)
        assert bool(row["applied"]) == (new is not None), why
        if new is None:
            assert row["delta_madds"] == 0 and row["delta_ms"] == 0
            continue
        assert row["delta_madds"] == count(new).madds - count(net).madds
        assert row["delta_params"] == count(new).params - count(net).params
        assert row["delta_ms"] == pytest.approx(pred.predict(new) - pred.predict(net))
        net = new
    assert load_network(out / "final.yaml") == net
    # the efficient last stage removes the last bottleneck: its saving is a hand count of the removed ops
    last = red[red["step"] == "last_stage"].iloc[0]
    assert bool(last["applied"]) and last["delta_madds"] < -25e6 and last["paper_madds_m"] == -30


def test_plot_data_is_the_path(large_run):
    out, _ = large_run
    pts = replay_points(out)
    assert list(pts.columns) == ["phase", "label", "latency_ms", "top1", "madds", "params", "arch"]
    assert pts.iloc[0]["arch"] == str(zoo.get("mnasnet_a1"))
    na = pts[pts["phase"] == "netadapt"]
    assert na["latency_ms"].is_monotonic_decreasing  # each NetAdapt step lowers latency
    red = pd.read_csv(out / "redesign.csv")
    assert list(pts[pts["phase"] == "redesign"]["label"]) == list(red.loc[red["applied"], "step"])
    assert pts.iloc[-1]["arch"] == str(load_network(out / "final.yaml"))
    # the counts beside each point are its network's: MnasNet-A1 has the paper's 312 M multiply-adds, every point's
    # latency and top-1 (measured during the run) follow from its madds/params columns by the fakes' formulas, and
    # each redesign point moves madds by the delta redesign.csv recorded for that step
    assert pts.iloc[0]["madds"] == pytest.approx(312e6, rel=0.005) and pts.iloc[0]["params"] == pytest.approx(3.9e6, rel=0.01)
    for _, r in pts.iterrows():
        hs = sum(b.act is Act.HSWISH for b in load_network_text(r["arch"]).blocks)
        assert r["latency_ms"] == pytest.approx(r["madds"] / 4e6 + 0.05 * hs)
        assert r["top1"] == pytest.approx(fake_top1(r["madds"], r["params"]))
    steps = pts[pts["phase"] == "redesign"]
    before = pts[pts["phase"] != "redesign"].iloc[-1]["madds"]
    for (_, p), (_, row) in zip(steps.iterrows(), red[red["applied"]].iterrows()):
        assert p["madds"] - before == row["delta_madds"]
        before = p["madds"]


def load_network_text(text):
    from mnas.arch import parse_network

    return parse_network(text)


def test_resume_skips_finished_phases(large_run, tmp_path):
    import shutil

    src, _ = large_run
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    for name in ("redesign.csv", "references.csv", "summary.json", "report.md"):
        (out / name).unlink()
    (out / "netadapt" / "path.csv").unlink()  # NetAdapt is finished: its folder is not read again
    pred, ev = FakePredictor(), FakeEvaluator()
    s = Replay.open_or_create(out, None, predictor=pred, evaluator=ev, progress=False).run()
    assert (out / "report.md").is_file()
    assert s["netadapt"]["steps"] >= 1
    # only the redesign (its start and each applied step) and the references were evaluated, NetAdapt not again
    red = pd.read_csv(src / "redesign.csv")
    refs = pd.read_csv(src / "references.csv")
    assert ev.evaluations == 1 + int(red["applied"].astype(bool).sum()) + len(refs)


def test_other_settings_in_an_existing_run_are_an_error(large_run):
    out, _ = large_run
    with pytest.raises(MnasError, match="other settings \\(budget"):
        Replay.open_or_create(out, ReplayConfig("v3-large", budget="default"), predictor=FakePredictor())


def test_bad_config():
    with pytest.raises(MnasError, match="unknown replay 'v3-tiny'"):
        ReplayConfig("v3-tiny")
    with pytest.raises(MnasError, match="unknown budget 'huge'"):
        ReplayConfig("v3-large", budget="huge")


def test_steps_that_do_not_apply_to_v3_small_are_skipped_with_a_reason():
    v3s = zoo.get("mobilenet_v3_small")
    why = {s.name: step_applies(s, v3s)[1] for s in V3_STEPS}
    assert "hidden layer after pooling" in why["last_stage"]  # V3-Small already has the efficient last stage
    assert "16 filters" in why["stem16"]
    assert why["se_quarter"] == "already holds (no change)"  # its SE widths are already 1/4 of the expansion
    # V3-Small uses h-swish from 40 channels on: the ≥ 80 rule changes it, so the step applies
    new, reason = step_applies(V3_STEPS[2], v3s)
    assert reason == "" and new.blocks[3].act is Act.RELU and new.blocks[-1].act is Act.HSWISH


def test_v3_small_smoke_through_the_search_runner(tmp_path):
    pred, ev = FakePredictor(), FakeEvaluator()
    out = tmp_path / "v3s"
    s = run_replay(ReplayConfig("v3-small", budget="smoke", trials=6), out, predictor=pred, evaluator=ev,
                   progress=False)
    trials = pd.read_csv(out / "search" / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() == 6 == s["search"]["trials"]
    assert set(trials["arch"]) >= {s["search"]["arch"]}  # the best is one of the trials...
    best = trials.loc[trials["reward"].idxmax()]
    assert s["search"]["arch"] == best["arch"]  # ...the one with the highest v3-small reward
    target = 15.8
    assert best["reward"] == pytest.approx(best["accuracy"] * (best["latency_ms"] / target) ** -0.15)
    assert s["netadapt"]["seed"] == "search best"
    if best["latency_ms"] <= s["target_ms"]:  # the search already met NetAdapt's target: nothing to shrink
        assert s["netadapt"]["skipped"] and s["netadapt"]["latency_ms"] == pytest.approx(best["latency_ms"])
    else:  # NetAdapt shrank the search's best down to the target
        assert not s["netadapt"].get("skipped") and s["netadapt"]["latency_ms"] <= s["target_ms"]
        assert s["netadapt"]["seed_latency_ms"] == pytest.approx(best["latency_ms"])
    skipped = {r["step"] for r in s["redesign"] if not r["applied"]}
    assert {"last_stage", "stem16"} <= skipped  # the v3_small space already has both
    pts = replay_points(out)
    assert pts.iloc[0]["phase"] == "search" and pts.iloc[0]["arch"] == best["arch"]
    assert "Block-wise search" in (out / "report.md").read_text()


def test_v3_small_with_a_slow_search_result_runs_netadapt(tmp_path):
    pred, ev = FakePredictor(), FakeEvaluator()
    out = tmp_path / "v3s"
    s = run_replay(ReplayConfig("v3-small", budget="smoke"), out, predictor=pred, evaluator=ev, search=fake_search,
                   progress=False)
    assert s["search"]["arch"] == str(zoo.get("mobilenet_v3_small_1.25"))
    assert s["netadapt"]["seed_latency_ms"] > s["target_ms"] >= s["netadapt"]["latency_ms"]
    assert (out / "netadapt" / "path.csv").is_file()


def test_side_by_side_marks_differences():
    v3 = zoo.get("mobilenet_v3_large")
    rows = side_by_side(v3, v3)
    assert all(r["same"] for r in rows) and len(rows) == len(list(v3.layers())) + 4  # + head conv, pool, hidden, fc
    rows = side_by_side(zoo.get("mnasnet_a1"), v3)
    assert not rows[0]["same"]  # 32-filter ReLU stem vs 16-filter h-swish


def test_replay_cli_json_and_resume(tmp_path, capsys, monkeypatch):
    import mnas.accuracy
    import mnas.latency
    from mnas.cli import COMMANDS, main

    monkeypatch.setitem(COMMANDS, "replay", "mnas.cli.replay")
    monkeypatch.setattr(mnas.latency, "get_predictor", lambda device: FakePredictor())
    ev = FakeEvaluator()
    monkeypatch.setattr(mnas.accuracy, "get_evaluator", lambda kind, space=None, **kw: ev)
    argv = ["replay", "v3-large", "--budget", "smoke", "--target-ms", "70", "--out", str(tmp_path / "r"), "--json"]
    assert main(argv) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["target_ms"] == 70 and s["netadapt"]["latency_ms"] <= 70 and s["budget"] == "smoke"
    assert [r["step"] for r in s["redesign"]] == [st.name for st in V3_STEPS]
    calls = ev.calls
    assert main(argv) == 0  # everything finished: nothing is evaluated again
    assert ev.calls == calls and json.loads(capsys.readouterr().out)["found"] == s["found"]
    assert main(argv[:4] + ["--out", str(tmp_path / "r")]) == 2  # other settings (no --target-ms) in that folder
    assert "other settings (target_ms)" in capsys.readouterr().err
    assert main(argv[:-1]) == 0  # table output
    out = capsys.readouterr().out
    assert "last_stage" in out and "report:" in out and "mobilenet_v3_large" in out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["v3-large", "v3-small"])
def test_replay_smoke_on_the_real_pixel1_table_and_predictor(name, tmp_path, capsys, monkeypatch):
    """`mnas replay NAME --budget smoke` as a user types it: shipped `pixel1` table and accuracy predictor."""
    from mnas.accuracy.predictor import shipped_model
    from mnas.cli import COMMANDS, main

    space = {"v3-large": "v3_large", "v3-small": "v3_small"}[name]
    if not shipped_model(space).is_file():
        pytest.skip(f"no shipped accuracy predictor for {space} ({shipped_model(space)})")
    monkeypatch.setitem(COMMANDS, "replay", "mnas.cli.replay")
    trials = ["--trials", "8"] if name == "v3-small" else []  # v3-large has no search (it starts from MnasNet-A1)
    code = main(["replay", name, "--budget", "smoke", "--out", str(tmp_path / "r"), "--json", *trials])
    out, err = capsys.readouterr()
    assert code == 0, err
    s = json.loads(out)
    assert s["device"] == "pixel1" and (tmp_path / "r" / "report.md").is_file()
    assert s["found"]["top1"] is not None and s["published"]["top1"] is not None


def test_agreement_counts_matching_columns_by_hand():
    from mnas.replay import agreement

    v3 = zoo.get("mobilenet_v3_large")
    same = agreement(v3, v3)
    assert same == {"blocks_found": 15, "blocks_published": 15, "compared": 15, "kernel": 15, "exp": 15, "out": 15,
                    "se": 15, "nl": 15, "stride": 15, "stem": True, "head": True}
    # MnasNet-A1 vs V3-Large, the first 15 blocks by position (the paper's Table 1 and MnasNet's Fig. 7): kernels
    # 3,3,3,5,5,5,3,3,3,3,3,3,5,5,5 in both; SE in blocks 4-6 and 12-15 in both; strides equal; A1 is ReLU
    # throughout, V3 uses ReLU in its first 6 blocks only.
    a1 = zoo.get("mnasnet_a1")
    ag = agreement(a1, v3)
    assert ag["blocks_found"] == 16 and ag["compared"] == 15
    assert ag["kernel"] == 15 and ag["se"] == 15 and ag["stride"] == 15
    assert ag["nl"] == 6  # A1 is all ReLU; V3 uses ReLU in its first 6 blocks
    assert not ag["stem"] and not ag["head"]


def test_the_fakes_keep_the_seams(tmp_path):
    from mnas.protocols import AccuracyEvaluator, LatencyModel

    nets = [zoo.get("mobilenet_v3_small"), zoo.get("mnasnet_a1")]
    check_evaluator_contract(lambda c: FakeEvaluator(cache=c), nets, tmp_path)
    assert isinstance(FakeEvaluator(), AccuracyEvaluator) and isinstance(FakePredictor(), LatencyModel)
    np.testing.assert_allclose(FakePredictor().predict_many(nets), [fake_ms(n) for n in nets])


def test_replay_labels_name_every_step_at_a_shared_point_once():
    """Two redesign steps that leave latency and accuracy unchanged share one point: one label names both."""
    import pandas as pd

    from mnas.replay.report import replay_labels

    points = pd.DataFrame({"phase": ["netadapt", "redesign", "redesign", "redesign"],
                           "label": ["seed", "last_stage", "hswish80", "se_quarter"],
                           "latency_ms": [60.0, 45.2, 45.2, 45.1], "top1": [74.0, 73.7, 73.7, 74.8]})
    assert replay_labels(points) == [(45.2, 73.7, "last_stage, hswish80"), (45.1, 74.8, "se_quarter")]

"""NetAdapt: proposals keep shapes valid, weights are the kept filters, the loop meets the target and resumes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mnas import zoo
from mnas.accuracy import Evaluator
from mnas.arch import Bneck, load_network, parse_network, se_channels
from mnas.counting import count
from mnas.errors import MnasError
from mnas.model import build
from mnas.netadapt import NetAdaptConfig, minimum_latency, propose, resume_netadapt, run_netadapt
from mnas.netadapt.finetune import LocalBackend
from mnas.netadapt.proposals import Slot, residual_groups, set_width, slots, topology
from mnas.netadapt.report import path_table, plot_path, proposals_table
from mnas.netadapt.surgery import inherit, inherited_state, kept_channels

torch.set_num_threads(1)


class MaddsPredictor:
    """A stand-in device: latency proportional to multiply-adds (1 ms per 10 M)."""

    device = "fake-madds"

    def __init__(self, missing_keys=()):
        self._missing = list(missing_keys)

    def missing(self, net):
        return self._missing

    def predict(self, net):
        if self._missing:
            raise MnasError(f"latency table fake lacks {len(self._missing)} op(s) of this network: {self._missing[0]}")
        return count(net).madds / 1e7

    def predict_many(self, nets):
        return np.array([self.predict(n) for n in nets])


class ParamsEvaluator(Evaluator):
    """A stand-in accuracy signal: more parameters, higher 'accuracy' (deterministic, instant; a real Evaluator)."""

    name = "fake"

    def __init__(self, space=None, cache=None):
        super().__init__(space, cache)
        self.calls = 0

    def _evaluate(self, net, sample):
        self.calls += 1
        return {"top1": 50.0 + count(net, 10).params / 2e4, "loss": math.nan, "cost_s": 0.0}


TINY = ("r224 stem_k3_c16_s2_hs ir_k3_e16_c16_re_s1 ir_k3_e64_c24_re_s2 ir_k3_e72_c24_re_s1 "
        "ir_k5_e96_c40_se24_hs_s2 ir_k5_e120_c40_se32_hs_s1 head_c128_hs_d0.1")


def _randomise(model):
    """Random weights and BN statistics, so filter norms and every slice differ."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point:
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if "running_var" in name else torch.randn(t.shape, generator=g))
    return model


def _top(norms: np.ndarray, k: int) -> list[int]:
    return sorted(np.argsort(-norms, kind="stable")[:k].tolist())


# --------------------------------------------------------------------------- proposals


def test_residual_groups_follow_the_paper_tables():
    # MobileNetV3-Large, paper Table 1: blocks that repeat an output width at stride 1 share it by residuals.
    assert [g.name for g in residual_groups(zoo.get("mobilenet_v3_large"))] == [
        "stem+b0", "b1+b2", "b3+b4+b5", "b6+b7+b8+b9", "b10+b11", "b12+b13+b14"]
    # MnasNet-A1: the SepConv block has no residual (16 != 32), so the stem is a group of its own.
    assert [g.name for g in residual_groups(zoo.get("mnasnet_a1"))] == [
        "stem", "b0", "b1+b2", "b3+b4+b5", "b6+b7+b8+b9", "b10+b11", "b12+b13+b14", "b15"]


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mnasnet_a1"])
def test_every_proposal_builds_runs_and_saves_delta(name):
    net = zoo.get(name)
    pred = MaddsPredictor()
    seed_ms = pred.predict(net)
    delta = 0.01 * seed_ms
    props = propose(net, pred, delta)
    kinds = {p.kind for p in props}
    assert kinds == {"exp", "group"}
    assert len(props) == len(slots(net))  # at 224x224 every width can save 1 %
    model = _randomise(build(net, 10)).eval()
    x = torch.randn(2, 3, 32, 32)
    for p in props:
        assert topology(p.net) == topology(net), p.name
        assert [layer.residual for layer in p.net.layers()] == [layer.residual for layer in net.layers()]
        assert p.after % 8 == 0 and p.after < p.slot.width
        assert seed_ms - pred.predict(p.net) >= delta - 1e-12
        # the smallest cut: one step of 8 channels less would not save δ (or is not a valid width)
        bigger = p.after + 8
        if bigger < p.slot.width:
            alt = set_width(net, p.slot, bigger)
            assert topology(alt) != topology(net) or seed_ms - pred.predict(alt) < delta, p.name
        child = inherit(model, net, p.net).eval()
        assert child(x).shape == (2, 10)
        assert sum(t.numel() for t in child.parameters()) == count(p.net, 10).params


def test_group_proposal_moves_members_and_tied_depthwise_together():
    net = zoo.get("mobilenet_v3_large")
    slot = next(s for s in slots(net) if s.name == "group:stem+b0")
    new = set_width(net, slot, 8)
    assert new.stem.out == 8 and new.blocks[0].out == 8
    assert new.blocks[0].exp == 8  # the first block has no expansion layer: its depthwise follows its input
    assert new.blocks[1].exp == 64  # the next block keeps its own expansion
    slot = next(s for s in slots(net) if s.name == "group:b3+b4+b5")
    new = set_width(net, slot, 32)
    assert [b.out for b in new.blocks[3:6]] == [32, 32, 32]
    assert [layer.cin for layer in new.layers()][7] == 32  # block 6 reads the group


def test_squeeze_excite_rule():
    v3 = zoo.get("mobilenet_v3_large")  # se = se_channels(exp): MobileNetV3's rule is kept
    new = set_width(v3, Slot("exp", 4, "b4", 120), 88)
    assert new.blocks[4].se == se_channels(88) == 24
    mn = zoo.get("mnasnet_a1")  # MnasNet sets se from the input width: the block's own ratio is kept
    b = mn.blocks[4]
    new = set_width(mn, Slot("exp", 4, "b4", b.exp), 80)
    assert new.blocks[4].se == round(b.se * 80 / b.exp)


def test_widths_that_would_change_topology_are_skipped():
    # b0: 16 -> 24 at stride 1 is no residual; at 16 channels it would become one, so 16 is skipped.
    net = parse_network("r64 stem_k3_c16_s2_re ir_k3_e48_c24_re_s1 ir_k3_e48_c24_re_s1 head_d0")
    slot = next(s for s in slots(net) if s.name == "group:b0+b1")
    assert topology(set_width(net, slot, 16)) != topology(net)
    props = {p.name: p for p in propose(net, MaddsPredictor(), 1e-9)}
    assert props["group:b0+b1"].after == 8
    # an expansion may not fall to its input width (the expansion layer would vanish): with δ set to the
    # saving of 48 -> 16 channels, 24 (= b1's input, which would save even more) is skipped
    exp1 = Slot("exp", 1, "b1", 48)
    assert topology(set_width(net, exp1, 24)) != topology(net)
    pred = MaddsPredictor()
    delta = pred.predict(net) - pred.predict(set_width(net, exp1, 16))
    assert pred.predict(net) - pred.predict(set_width(net, exp1, 24)) > delta
    props = {p.name: p for p in propose(net, pred, delta)}
    assert props["exp:b1"].after == 16


# --------------------------------------------------------------------------- weight inheritance


def test_inherited_weights_are_the_largest_norm_filters_of_an_expansion():
    net = zoo.get("mobilenet_v3_large")
    old = _randomise(build(net, 10))
    new_net = set_width(net, Slot("exp", 4, "b4", 120), 88)
    new = inherit(old, net, new_net)
    ob, nb = old.blocks[4], new.blocks[4]
    w = ob.expand[0].weight.detach().numpy()
    keep = _top(np.sqrt((w.reshape(120, -1) ** 2).sum(1)), 88)
    assert torch.equal(nb.expand[0].weight, ob.expand[0].weight[keep])
    for attr in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(nb.expand[1], attr), getattr(ob.expand[1], attr)[keep])
        assert torch.equal(getattr(nb.depthwise[1], attr), getattr(ob.depthwise[1], attr)[keep])
    assert torch.equal(nb.depthwise[0].weight, ob.depthwise[0].weight[keep])
    assert torch.equal(nb.project[0].weight, ob.project[0].weight[:, keep])
    assert torch.equal(nb.project[1].running_mean, ob.project[1].running_mean)
    # squeeze-excite: 32 -> 24 hidden units, those whose fc1 rows (over the kept channels) are largest
    fc1 = ob.se.fc1.weight.detach()[:, keep].numpy().reshape(32, -1)
    s_keep = _top(np.sqrt((fc1 ** 2).sum(1)), 24)
    assert torch.equal(nb.se.fc1.weight, ob.se.fc1.weight[s_keep][:, keep])
    assert torch.equal(nb.se.fc1.bias, ob.se.fc1.bias[s_keep])
    assert torch.equal(nb.se.fc2.weight, ob.se.fc2.weight[keep][:, s_keep])
    assert torch.equal(nb.se.fc2.bias, ob.se.fc2.bias[keep])
    # untouched blocks are copied as they are
    assert torch.equal(new.blocks[5].expand[0].weight, old.blocks[5].expand[0].weight)


def test_inherited_group_keeps_the_same_channels_in_every_member_and_consumer():
    net = zoo.get("mobilenet_v3_large")
    old = _randomise(build(net, 10))
    new_net = set_width(net, Slot("group", 3, "b3+b4+b5", 40), 32)
    new = inherit(old, net, new_net)
    # the ranking: each member's projection filter norms, summed
    norms = sum(np.sqrt((old.blocks[i].project[0].weight.detach().numpy().reshape(40, -1) ** 2).sum(1)) for i in (3, 4, 5))
    keep = _top(norms, 32)
    assert kept_channels(old, net, new_net)[("t", 3)].tolist() == keep
    for i in (3, 4, 5):
        assert torch.equal(new.blocks[i].project[0].weight, old.blocks[i].project[0].weight[keep])
        assert torch.equal(new.blocks[i].project[1].running_var, old.blocks[i].project[1].running_var[keep])
    for i in (4, 5, 6):  # residual members and the consumer read the kept channels
        assert torch.equal(new.blocks[i].expand[0].weight, old.blocks[i].expand[0].weight[:, keep])


def _kill_channels(model, net, slot, dead):
    """Make channels ``dead`` of ``slot`` contribute nothing (zero filters, zero BN shift and mean)."""
    with torch.no_grad():
        if slot.kind == "exp":
            blk = model.blocks[slot.target]
            blk.expand[0].weight[dead] = 0
            blk.expand[1].bias[dead] = 0
            blk.expand[1].running_mean[dead] = 0
            blk.depthwise[1].bias[dead] = 0
            blk.depthwise[1].running_mean[dead] = 0
            blk.project[0].weight[:, dead] = 0
        else:
            group = next(g for g in residual_groups(net) if g.producer == slot.target)
            for m in group.members:
                conv_bn = model.stem if m == -1 else model.blocks[m].project
                conv_bn[0].weight[dead] = 0
                conv_bn[1].bias[dead] = 0
                conv_bn[1].running_mean[dead] = 0


@pytest.mark.parametrize("name,slot_name", [("mobilenet_v3_large", "exp:b7"), ("mobilenet_v3_large", "group:b6+b7+b8+b9"),
                                            ("mnasnet_a1", "group:b10+b11"), ("mnasnet_a1", "exp:b2")])
def test_removing_dead_channels_keeps_the_function(name, slot_name):
    """An independent check of the surgery: channels that contribute nothing are the ones dropped, and the
    shrunk network computes exactly what the wide one did."""
    net = zoo.get(name)
    model = _randomise(build(net, 10))
    slot = next(s for s in slots(net) if s.name == slot_name)
    dead = list(range(3, 3 + 16, 2))[:8]  # 8 channels
    _kill_channels(model, net, slot, dead)
    new_net = set_width(net, slot, slot.width - len(dead))
    child = inherit(model, net, new_net)
    assert sorted(set(range(slot.width)) - set(next(iter(kept_channels(model, net, new_net).values())).tolist())) == dead
    x = torch.randn(3, 3, 32, 32)
    model.eval(), child.eval()
    with torch.no_grad():
        torch.testing.assert_close(child(x), model(x), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- the loop


def allrows_count(run):
    rows = proposals_table(run)
    return rows[rows["step"] > 0].groupby("step").size().tolist()


def _config(**kw):
    base = dict(arch=TINY, device="fake-madds", target_ms=0.0, evaluator="predictor", budget="smoke", dataset="digits")
    base.update(kw)
    return NetAdaptConfig(**base)


def test_loop_meets_the_target_and_every_step_saves_delta(tmp_path):
    pred, ev = MaddsPredictor(), ParamsEvaluator()
    seed_ms = pred.predict(parse_network(TINY))
    target = 0.7 * seed_ms
    summary = run_netadapt(_config(target_ms=target), tmp_path / "run", predictor=pred, evaluator=ev, progress=False)
    path = path_table(tmp_path / "run")
    lat = path["latency_ms"].to_numpy()
    assert summary["finished"] and lat[-1] <= target
    assert (lat[:-1] > target).all()  # it stopped at the first step that met the target
    assert (-np.diff(lat) >= 0.01 * seed_ms - 1e-9).all()
    assert len(path) >= 3
    np.testing.assert_allclose(path["latency_saved_ms"], seed_ms - lat)
    np.testing.assert_allclose(path["top1_change"], path["top1"] - path["top1"].iloc[0])
    assert path["proposals"].iloc[1:].tolist() == allrows_count(tmp_path / "run")
    for step in path["step"]:  # each step's network is saved and its latency matches the table
        net = load_network(tmp_path / "run" / f"step_{step:03d}.yaml")
        assert pred.predict(net) == pytest.approx(float(path.loc[path["step"] == step, "latency_ms"].iloc[0]))
    # the chosen proposal maximises ΔAcc/|ΔLatency| among its step's proposals
    allrows = proposals_table(tmp_path / "run")
    for step, rows in allrows[allrows["step"] > 0].groupby("step"):
        best = rows.loc[rows["score"].idxmax()]
        assert bool(best["chosen"]) and rows["chosen"].sum() == 1
        ratio = rows["delta_top1"] / rows["latency_drop_ms"]
        np.testing.assert_allclose(rows["score"], ratio)
    plot_path(tmp_path / "run", tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_select_by_accuracy_picks_the_most_accurate(tmp_path):
    pred, ev = MaddsPredictor(), ParamsEvaluator()
    target = 0.9 * pred.predict(parse_network(TINY))
    run_netadapt(_config(target_ms=target, select="accuracy"), tmp_path / "r", predictor=pred, evaluator=ev, progress=False)
    rows = proposals_table(tmp_path / "r")
    for step, r in rows[rows["step"] > 0].groupby("step"):
        assert r.loc[r["chosen"], "top1"].iloc[0] == r["top1"].max()


def test_resume_after_stop_continues_from_the_last_step(tmp_path):
    pred = MaddsPredictor()
    target = 0.7 * pred.predict(parse_network(TINY))
    full = run_netadapt(_config(target_ms=target), tmp_path / "full", predictor=pred, evaluator=ParamsEvaluator(),
                        progress=False)
    ev = ParamsEvaluator()
    part = run_netadapt(_config(target_ms=target), tmp_path / "part", predictor=pred, evaluator=ev, progress=False,
                        stop_after=2)
    assert not part["finished"] and part["steps"] == 2
    calls = ev.calls
    ev2 = ParamsEvaluator()
    done = resume_netadapt(tmp_path / "part", predictor=pred, evaluator=ev2, progress=False)
    assert done["finished"] and done["arch"] == full["arch"]
    a, b = path_table(tmp_path / "full"), path_table(tmp_path / "part")
    assert a.drop(columns="cost_s").equals(b.drop(columns="cost_s"))
    rows = proposals_table(tmp_path / "part")
    assert ev2.calls == (rows["step"] > 2).sum()  # nothing before the stop was evaluated again
    assert calls == (rows["step"] <= 2).sum()


def test_errors_are_one_clear_line(tmp_path):
    pred = MaddsPredictor()
    seed_ms = pred.predict(parse_network(TINY))
    with pytest.raises(MnasError, match="nothing to do"):
        run_netadapt(_config(target_ms=seed_ms + 1), tmp_path / "a", predictor=pred, progress=False)
    floor, small = minimum_latency(parse_network(TINY), pred)
    assert floor < 0.3 * seed_ms and topology(small) == topology(parse_network(TINY))
    with pytest.raises(MnasError, match=rf"below {floor:.2f} ms.*choose --target-ms >= ") as refused:
        run_netadapt(_config(target_ms=floor * 0.9), tmp_path / "b", predictor=pred, progress=False)
    suggested = float(str(refused.value).rsplit(">= ", 1)[1])
    assert floor <= suggested < floor + 0.01  # the advice itself is a target the check accepts (rounded up)
    with pytest.raises(MnasError, match="lacks 1 op"):
        run_netadapt(_config(target_ms=1.0), tmp_path / "c", predictor=MaddsPredictor(["ir-in:56x56x24-..."]),
                     progress=False)
    run_netadapt(_config(target_ms=0.9 * seed_ms), tmp_path / "d", predictor=pred, evaluator=ParamsEvaluator(),
                 progress=False)
    with pytest.raises(MnasError, match="already holds a NetAdapt run"):
        run_netadapt(_config(target_ms=0.9 * seed_ms), tmp_path / "d", predictor=pred, progress=False)
    with pytest.raises(MnasError, match="not a NetAdapt run folder"):
        resume_netadapt(tmp_path / "nothing", predictor=pred)
    with pytest.raises(MnasError, match="unknown selection"):
        _config(select="best")


# --------------------------------------------------------------------------- fine-tuning with inherited weights

MICRO = "r224 stem_k3_c16_s2_hs ir_k3_e16_c16_re_s1 ir_k3_e48_c24_re_s2 ir_k3_e72_c24_re_s1 head_c64_hs_d0"


def _ft_config(**kw):
    base = dict(arch=MICRO, device="fake-madds", target_ms=0.0, evaluator="finetune", budget="smoke",
                dataset="digits", image_size=16, pretrain_steps=60, finetune_steps=3, batch_size=16, train_size=300,
                val_size=100, lr=0.1)
    base.update(kw)
    return NetAdaptConfig(**base)


class StopAfter(LocalBackend):
    """Simulates a kill in the middle of a step: dies after ``n`` proposal results."""

    def __init__(self, n):
        super().__init__(1)
        self.n, self.jobs = n, 0

    def map(self, jobs):
        for r in super().map(jobs):
            self.jobs += 1
            if self.jobs > self.n:
                raise KeyboardInterrupt
            yield r


def test_finetune_run_inherits_weights_and_resumes_mid_step(tmp_path):
    pred = MaddsPredictor()
    target = 0.93 * pred.predict(parse_network(MICRO))
    cfg = _ft_config(target_ms=target)
    full = run_netadapt(cfg, tmp_path / "full", predictor=pred, progress=False, stop_after=1)
    # the seed was trained: better than chance on 10 digit classes
    assert path_table(tmp_path / "full")["top1"].iloc[0] > 20
    # kill run 2 after the seed and 2 proposals of step 1, then resume
    killer = StopAfter(3)  # the seed job + 2 proposals
    with pytest.raises(KeyboardInterrupt):
        run_netadapt(cfg, tmp_path / "part", predictor=pred, progress=False, backend=killer)
    assert len(list((tmp_path / "part" / "pending" / "step_001").glob("*.json"))) == 2
    counter = StopAfter(10 ** 6)
    resume_netadapt(tmp_path / "part", predictor=pred, progress=False, backend=counter, stop_after=1)
    n_props = (proposals_table(tmp_path / "part")["step"] == 1).sum()
    assert counter.jobs == n_props - 2  # the two finished proposals were not trained again
    a, b = path_table(tmp_path / "full"), path_table(tmp_path / "part")
    assert a.drop(columns="cost_s").equals(b.drop(columns="cost_s"))
    sa = torch.load(tmp_path / "full" / "step_001.pt")
    sb = torch.load(tmp_path / "part" / "step_001.pt")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not (tmp_path / "part" / "pending").exists()


def test_inherited_state_of_a_trained_seed_matches_the_checkpoint(tmp_path):
    """The job that fine-tunes a proposal starts from exactly the kept filters of the saved seed."""
    pred = MaddsPredictor()
    net = parse_network(MICRO)
    run_netadapt(_ft_config(target_ms=0.93 * pred.predict(net), finetune_steps=0), tmp_path / "r", predictor=pred,
                 progress=False, stop_after=1)
    seed_state = torch.load(tmp_path / "r" / "step_000.pt")
    model = build(net, 10)
    model.load_state_dict(seed_state)
    step1 = load_network(tmp_path / "r" / "step_001.yaml")
    # with 0 steps of fine-tuning, the chosen proposal's weights are the inherited ones
    expected = inherited_state(model, net, step1)
    got = torch.load(tmp_path / "r" / "step_001.pt")
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_ray_backend_runs_a_step(tmp_path, ray_local):
    pred = MaddsPredictor()
    target = 0.93 * pred.predict(parse_network(MICRO))
    summary = run_netadapt(_ft_config(target_ms=target, pretrain_steps=5, finetune_steps=1), tmp_path / "ray",
                           predictor=pred, progress=False, backend="ray", stop_after=1)
    rows = proposals_table(tmp_path / "ray")
    assert summary["steps"] == 1 and (rows["step"] == 1).sum() >= 2
    assert rows.loc[rows["step"] == 1, "top1"].notna().all()


@pytest.mark.slow
def test_sigkilled_subprocess_resumes_from_the_last_finished_step(tmp_path):
    """A real kill (SIGKILL of the process running the loop) loses nothing that had finished."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    pred = MaddsPredictor()
    target = 0.85 * pred.predict(parse_network(MICRO))
    run_netadapt(_ft_config(target_ms=target), tmp_path / "ref", predictor=pred, progress=False)
    code = (f"import sys, torch; torch.set_num_threads(1); sys.path.insert(0, {str(tests)!r}); "
            "from test_netadapt import MaddsPredictor, _ft_config, run_netadapt; "
            f"run_netadapt(_ft_config(target_ms={target!r}), {str(tmp_path / 'killed')!r}, "
            "predictor=MaddsPredictor(), progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tests.parent)
    deadline = time.time() + 300
    table = tmp_path / "killed" / "path.csv"

    def step1_done():  # step 1's rows are the last thing written for it
        return table.is_file() and "\n1," in table.read_text()

    while not step1_done() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = path_table(tmp_path / "killed")["step"].max()
    summary = resume_netadapt(tmp_path / "killed", predictor=pred, progress=False)
    assert summary["finished"]
    a, b = path_table(tmp_path / "ref"), path_table(tmp_path / "killed")
    assert a.drop(columns="cost_s").equals(b.drop(columns="cost_s"))
    assert finished_before >= 1

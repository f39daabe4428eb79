"""The weight-sharing supernet: real sharing, the supernet path equals a standalone built sub-network,
exact checkpoint resume, and the evaluator contract (tiny spaces, random or bundled data)."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mnas.accuracy.supernet_net import (  # noqa: E402
    BNStats,
    Supernet,
    calibrate,
    extract,
    subnet_arch,
)
from mnas.arch import Act, Bneck, Conv  # noqa: E402
from mnas.errors import MnasError  # noqa: E402
from mnas.space import load_space  # noqa: E402

TOY = """
name: toy
resolution: 16
mode: layer
stem: {out: 8, kernel: 3, stride: 1, act: re}
stages:
  - name: s1
    out: 16
    stride: 2
    depth: 1
    choices: {kernel: [3, 5, 7], expand: [3, 6], se: [false, true], act: [re, hs]}
  - name: s2
    out: 24
    stride: 2
    depth: 2
    block: [{op: skip}, {op: ir, kernel: 3, expand: 3}, {op: ir, kernel: 7, expand: 6}]
    choices: {width: [0.5, 1.0], depth: [-1, 0]}
head: {conv: 32, conv_act: hs, dropout: 0.0}
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    p = tmp_path_factory.mktemp("space") / "toy.yaml"
    p.write_text(TOY)
    return load_space(p)


@pytest.fixture(scope="module")
def toy_supernet(toy):
    torch.manual_seed(0)
    assert toy.size == 864  # small enough to enumerate: the widest shapes are exact
    sn = Supernet.from_space(toy, num_classes=10)
    with torch.no_grad():  # move BN affines and SE biases off their trivial init so the checks can fail
        for p in sn.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return sn


def _sample_with(space, rng, **fixed):
    s = space.sample(rng)
    s.update(fixed)
    return s


def test_kernel_and_expansion_sharing(toy, toy_supernet):
    s = _sample_with(toy, random.Random(1), **{"s1.l1.kernel": 3, "s1.l1.expand": 3})
    arch = subnet_arch(toy, s)
    pos, lay = arch.layers[0]
    assert pos == "s1.l1" and lay.block.kernel == 3 and lay.block.exp == 24  # 8 channels x 3
    block = toy_supernet.block(pos, lay)
    assert block.dw.shape[-1] == 7 and block.dw.shape[0] == 48  # widest: kernel 7, 8 x 6 channels
    model = extract(toy_supernet, arch, resolution=16)
    ir = model.blocks[0]
    # kernel 3 = centre 3x3 of the shared 7x7 tensor, first 24 channels
    assert torch.equal(ir.depthwise[0].weight, block.dw.detach()[:24, :, 2:5, 2:5])
    assert torch.equal(ir.expand[0].weight, block.expand.detach()[:24, :8])
    assert torch.equal(ir.project[0].weight, block.project.detach()[:16, :24])
    # kernel 5 of the same position: the centre 5x5 of the same tensor
    arch5 = subnet_arch(toy, {**s, "s1.l1.kernel": 5})
    w5 = extract(toy_supernet, arch5, resolution=16).blocks[0].depthwise[0].weight
    assert torch.equal(w5, block.dw.detach()[:24, :, 1:6, 1:6])
    assert torch.equal(w5[:, :, 1:4, 1:4], ir.depthwise[0].weight)


def test_forward_shapes_for_sampled_archs(toy, toy_supernet):
    rng = random.Random(0)
    x = torch.randn(3, 3, 16, 16)
    for _ in range(6):
        assert toy_supernet(x, toy.sample(rng)).shape == (3, 10)


@pytest.mark.parametrize("seed", range(5))
def test_subnetwork_equals_standalone_built_model(toy, toy_supernet, seed):
    """Strong check: mnas.model.build(net) with copied weights computes what the supernet path computes."""
    rng = random.Random(seed)
    sample = toy.sample(rng)
    if seed == 0:  # make sure SE, h-swish and a reduced width are covered
        sample.update({"s1.l1.se": True, "s1.l1.act": "hs", "s2.width": 0.5})
    arch = subnet_arch(toy, sample)
    g = torch.Generator().manual_seed(seed)
    calib = [torch.randn(8, 3, 16, 16, generator=g) for _ in range(2)]
    x = torch.randn(4, 3, 16, 16, generator=g)
    bn = calibrate(toy_supernet, arch, calib)
    model = extract(toy_supernet, arch, bn, resolution=16)
    assert str(model.arch) == str(toy.decode(sample).with_resolution(16).replace(head=model.arch.head))
    with torch.no_grad():
        model.eval()
        assert torch.allclose(toy_supernet.run(x, arch, bn), model(x), atol=1e-4, rtol=1e-4)
        model.train()  # batch statistics on both sides
        assert torch.allclose(toy_supernet.run(x, arch), model(x), atol=1e-4, rtol=1e-4)


def test_calibrated_statistics_are_batch_averages(toy, toy_supernet):
    arch = subnet_arch(toy, toy.sample(random.Random(3)))
    a, b = torch.randn(8, 3, 16, 16), torch.randn(8, 3, 16, 16)
    stem_w = toy_supernet.stem.weight.detach()[:8, :3]
    y = [torch.nn.functional.conv2d(t, stem_w, padding=1) for t in (a, b)]
    expected = (y[0].mean((0, 2, 3)) + y[1].mean((0, 2, 3))) / 2
    bn = calibrate(toy_supernet, arch, [a, b])
    assert torch.allclose(bn.stats["stem"][0], expected, atol=1e-5)


def test_uncalibrated_statistics_are_an_error(toy, toy_supernet):
    arch = subnet_arch(toy, toy.sample(random.Random(0)))
    with pytest.raises(MnasError, match="no calibrated statistics"):
        toy_supernet.run(torch.randn(2, 3, 16, 16), arch, BNStats().freeze())


def test_nasbench_macro_identity_layers():
    sp = load_space("nasbench_macro")
    # identity first in a stage: a 1x1 stride-2 conv + BN; identities later in a stage moved to its end
    a = subnet_arch(sp, sp.decode_string("01102100"))
    b = subnet_arch(sp, sp.decode_string("01120100"))
    assert a.key == b.key
    pos, lay = a.layers[0]
    assert pos == "s1.l1" and isinstance(lay.block, Conv) and lay.block.kernel == 1 and lay.block.stride == 2
    assert a.layers[2][1].block.stride == 2 and a.layers[3][1].block.kernel == 5
    assert lay.block.act is Act.NONE
    assert [p for p, _ in a.layers] == ["s1.l1", "s1.l2", "s2.l1", "s2.l2", "s3.l1"]
    assert isinstance(a.layers[1][1].block, Bneck) and a.layers[1][1].block.exp == 192


def test_nasbench_macro_supernet_matches_built_model():
    sp = load_space("nasbench_macro")
    torch.manual_seed(0)
    sn = Supernet.from_space(sp, 10)
    arch = subnet_arch(sp, sp.decode_string("02012100"))
    calib = [torch.randn(4, 3, 8, 8)]
    bn = calibrate(sn, arch, calib)
    model = extract(sn, arch, bn, resolution=8).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(sn.run(x, arch, bn), model(x), atol=1e-4, rtol=1e-4)


def test_batched_scoring_equals_one_by_one(toy, toy_supernet):
    from mnas.accuracy.supernet import SubnetScorer

    g = torch.Generator().manual_seed(0)
    calib = [torch.randn(8, 3, 16, 16, generator=g) for _ in range(2)]
    vx, vy = torch.randn(20, 3, 16, 16, generator=g), torch.randint(0, 10, (20,), generator=g)
    scorer = SubnetScorer(toy_supernet, calib, vx, vy, chunk=7)
    rng = random.Random(5)
    archs = [subnet_arch(toy, toy.sample(rng)) for _ in range(4)]
    archs.append(subnet_arch(toy, {**toy.sample(rng), **{k: v for k, v in toy.sample(rng).items() if k.startswith("s2")}}))
    archs.append(archs[1])  # one network twice: scored once, both copies answered
    seen, heads = [], []
    finish = scorer._finish
    scorer._finish = lambda arch, *a: heads.append(arch) or finish(arch, *a)  # count the networks scored
    many = scorer.score_many(archs, progress=False, callback=lambda i, r: seen.append(i))
    scorer._finish = finish
    assert sorted(seen) == list(range(len(archs))) and many[-1] == many[1]
    assert len(heads) == len({a.key for a in archs}) == len(archs) - 1
    for arch, r in zip(archs, many):
        one = scorer.score(arch)
        assert one["loss"] == pytest.approx(r["loss"], rel=1e-5)
        # and both equal a plain calibrate + forward
        bn = calibrate(toy_supernet, arch, calib)
        with torch.no_grad():
            loss = float(torch.nn.functional.cross_entropy(toy_supernet.run(vx, arch, bn), vy))
        assert loss == pytest.approx(r["loss"], rel=1e-4)


def test_recalibrating_on_the_validation_images_is_the_built_model_in_training_mode(toy, toy_supernet):
    """calib=None (``calib_batches=0``): every batch norm uses the validation images' own statistics,
    which is what mnas.model.build of the sub-network computes in training mode on that one batch."""
    from mnas.accuracy.supernet import SubnetScorer

    g = torch.Generator().manual_seed(1)
    vx, vy = torch.randn(24, 3, 16, 16, generator=g), torch.randint(0, 10, (24,), generator=g)
    scorer = SubnetScorer(toy_supernet, None, vx, vy, chunk=7)
    rng = random.Random(6)
    archs = [subnet_arch(toy, toy.sample(rng)) for _ in range(4)]
    many = scorer.score_many(archs, progress=False)
    for arch, r in zip(archs, many):
        model = extract(toy_supernet, arch, None, resolution=16).train()
        with torch.no_grad():
            logits = model(vx)
        assert float(torch.nn.functional.cross_entropy(logits, vy)) == pytest.approx(r["loss"], rel=1e-4)
        assert float((logits.argmax(1) == vy).float().mean()) * 100 == pytest.approx(r["top1"])
        assert scorer.score(arch)["loss"] == pytest.approx(r["loss"], rel=1e-5)


def _tiny_data(n=64, res=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int64)


def test_checkpoint_resume_is_exact(toy, tmp_path):
    from mnas.accuracy.supernet_train import SupernetConfig, train_supernet

    x, y = _tiny_data()
    cfg = SupernetConfig(steps=6, batch=8, checkpoint_every=2, warmup_steps=2, sampling="sandwich")
    kw = dict(num_classes=10, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), progress=False)
    full = train_supernet(toy, x, y, cfg, tmp_path / "full.pt", **kw)
    part = tmp_path / "part.pt"
    ckpt = train_supernet(toy, x, y, cfg, part, stop_after=3, **kw)  # "killed" after step 3
    assert ckpt.exists() and not part.exists()
    assert torch.load(ckpt, weights_only=True)["state"]["step"] == 3
    train_supernet(toy, x, y, cfg, part, **kw)  # restarted: resumes at step 3
    a = torch.load(full, weights_only=True)
    b = torch.load(part, weights_only=True)
    assert a["losses"] == b["losses"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert not ckpt.exists()
    # a second call finds the finished file and trains nothing
    assert train_supernet(toy, x, y, cfg, part, **kw) == part


def test_a_warm_restart_starts_from_the_parents_weights_and_resumes_exactly(toy, tmp_path):
    """``init``: step 1 of the restart sees the parent's weights (its loss equals the parent's loss on
    that batch and sub-network, recomputed by hand); the cache key names the parent's bytes, not its path;
    a killed restart resumes to the same weights."""
    import shutil

    import torch.nn.functional as F

    from mnas import training
    from mnas.accuracy.supernet_train import SupernetConfig, load_supernet, run_hash, sample_archs, train_supernet

    x, y = _tiny_data()
    kw = dict(num_classes=10, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), progress=False)
    parent = train_supernet(toy, x, y, SupernetConfig(steps=4, batch=8, warmup_steps=1), tmp_path / "p.pt", **kw)
    cfg = SupernetConfig(steps=4, batch=8, warmup_steps=0, lr=0.01, checkpoint_every=1, init=str(parent))
    full = train_supernet(toy, x, y, cfg, tmp_path / "r.pt", **kw)
    # the first step's loss, by hand from the parent's weights (same batch draw, same sampled sub-network)
    sn, _ = load_supernet(toy, parent)
    sn.train()
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, len(y), (8,), generator=gen)
    m, s = training.stats(kw["mean"], kw["std"])
    xb = training.augment(training.to_input(torch.from_numpy(x[idx.numpy()]), m, s, x.shape[1], 3), gen, True)
    arch = sample_archs(toy, random.Random(0), "uniform", None)[0]
    with torch.no_grad():
        want = float(F.cross_entropy(sn.run(xb, arch), torch.from_numpy(y)[idx], label_smoothing=0.1))
    assert torch.load(full, weights_only=True)["losses"][0] == pytest.approx(want, rel=1e-5)
    cold = train_supernet(toy, x, y, SupernetConfig(steps=4, batch=8, warmup_steps=0, lr=0.01), tmp_path / "c.pt", **kw)
    assert torch.load(cold, weights_only=True)["losses"][0] != pytest.approx(want, rel=1e-3)
    # named by the parent's bytes
    moved = tmp_path / "elsewhere.pt"
    shutil.copy(parent, moved)
    assert run_hash(toy, "digits", cfg, 10) == run_hash(toy, "digits", dataclasses.replace(cfg, init=str(moved)), 10)
    assert run_hash(toy, "digits", cfg, 10) != run_hash(toy, "digits", dataclasses.replace(cfg, init=""), 10)
    # killed after step 2 and resumed: the same weights
    part = tmp_path / "r2.pt"
    train_supernet(toy, x, y, cfg, part, stop_after=2, **kw)
    train_supernet(toy, x, y, cfg, part, **kw)
    a, b = torch.load(full, weights_only=True), torch.load(part, weights_only=True)
    assert a["losses"] == b["losses"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    with pytest.raises(MnasError, match="to start from .* does not exist"):
        run_hash(toy, "digits", dataclasses.replace(cfg, init=str(tmp_path / "nope.pt")), 10)


def test_cache_key_changes_with_config_and_space(toy):
    from mnas.accuracy.supernet_train import SupernetConfig, run_hash

    h = run_hash(toy, "digits", SupernetConfig(), 10)
    assert h == run_hash(toy, "digits", SupernetConfig(checkpoint_every=7), 10)
    assert h != run_hash(toy, "digits", SupernetConfig(steps=3), 10)
    assert h != run_hash(toy, "cifar10-folder", SupernetConfig(), 10)
    assert h != run_hash(load_space("nasbench_macro"), "digits", SupernetConfig(), 10)


def test_bad_config_is_one_clear_error():
    from mnas.accuracy.supernet_train import SupernetConfig

    with pytest.raises(MnasError, match="sampling must be one of uniform, sandwich"):
        SupernetConfig(sampling="greedy")


@pytest.fixture(scope="module")
def digits_supernet(toy, tmp_path_factory, monkeypatch_module):
    from mnas.accuracy.supernet import ensure_trained
    from mnas.accuracy.supernet_train import SupernetConfig

    cache = tmp_path_factory.mktemp("mnas-cache")
    monkeypatch_module.setenv("MNAS_CACHE", str(cache))
    cfg = SupernetConfig(steps=4, batch=16, val_size=200, warmup_steps=1)
    return ensure_trained(toy, "digits", config=cfg, progress=False)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_evaluator_contract(toy, digits_supernet, tmp_path):
    from evaluator_contract import check_evaluator_contract

    from mnas.accuracy import get_evaluator

    rng = random.Random(0)
    samples = [toy.sample(rng) for _ in range(2)]
    nets = [toy.decode(s) for s in samples]

    def make(cache):
        return get_evaluator("supernet", space=toy, checkpoint=digits_supernet, dataset="digits",
                             calib_batches=1, calib_batch_size=16, val_images=50, cache=cache)

    res = check_evaluator_contract(make, nets, tmp_path, samples)
    assert all(r["val_images"] == 50 for r in res)
    # the batched path gives the same numbers
    ev = make(None)
    many = ev.evaluate_many(nets, samples)
    assert [r["top1"] for r in many] == [r["top1"] for r in res]


def test_rank_by_loss_scores_by_the_loss_and_workers_give_the_same_numbers(toy, digits_supernet):
    import math

    from mnas.accuracy import get_evaluator

    rng = random.Random(3)
    samples = [toy.sample(rng) for _ in range(6)]
    nets = [toy.decode(s) for s in samples]
    kw = dict(space=toy, checkpoint=digits_supernet, dataset="digits", calib_batches=1, calib_batch_size=16,
              val_images=50)
    one = get_evaluator("supernet", **kw).evaluate_many(nets, samples)
    two = get_evaluator("supernet", workers=2, **kw).evaluate_many(nets, samples)  # forked processes
    assert [(r["top1"], r["loss"]) for r in two] == [(r["top1"], r["loss"]) for r in one]
    for r in one:  # the default ranks by loss: score = 100·exp(-loss), hand-computed from the loss
        assert r["rank_by"] == "loss" and r["score"] == pytest.approx(100 * math.exp(-r["loss"]))
    by_top1 = get_evaluator("supernet", rank_by="top1", **kw).evaluate(nets[0], samples[0])
    assert "score" not in by_top1 and by_top1["top1"] == one[0]["top1"]
    with pytest.raises(MnasError, match="rank_by must be one of loss, top1"):
        get_evaluator("supernet", rank_by="flops", **kw)
    with pytest.raises(MnasError, match="workers must be >= 1"):
        get_evaluator("supernet", workers=0, **kw)


def test_a_search_maximises_an_evaluators_score_over_its_top1():
    from mnas.search.runner import _row

    class Comp:
        space = None

        @staticmethod
        def reward(acc, lat):
            return acc

    from mnas import zoo

    net = zoo.get("mobilenet_v3_small")
    row = _row(Comp, net, {}, 10.0, {"top1": 50.0, "loss": 1.0, "cost_s": 0.0, "score": 36.8})
    assert row["accuracy"] == 36.8 and row["reward"] == 36.8
    assert _row(Comp, net, {}, 10.0, {"top1": 50.0, "loss": 1.0, "cost_s": 0.0})["accuracy"] == 50.0


def test_evaluator_errors(toy, tmp_path):
    from mnas.accuracy import get_evaluator

    with pytest.raises(MnasError, match="does not exist"):
        get_evaluator("supernet", space=toy, checkpoint=tmp_path / "nope.pt", dataset="digits")
    with pytest.raises(MnasError, match="needs a search space"):
        get_evaluator("supernet", checkpoint=tmp_path / "nope.pt", dataset="digits")


@pytest.fixture
def cli(monkeypatch):
    from mnas import cli as mcli

    monkeypatch.setitem(mcli.COMMANDS, "supernet", "mnas.cli.supernet")
    return mcli.main


def test_cli_train_json_and_cache_hit(cli, toy, tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.setenv("MNAS_CACHE", str(tmp_path / "cache"))
    space_file = tmp_path / "toy.yaml"
    space_file.write_text(TOY)
    argv = ["supernet", "train", "--space", str(space_file), "--dataset", "digits", "--steps", "2", "--batch", "8",
            "--val-size", "100", "--no-progress", "--json"]
    assert cli(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"] == 2 and out["supernet"].startswith(str(tmp_path / "cache" / "supernets"))
    assert cli(argv) == 0  # found in the cache: same file, nothing trained
    again = json.loads(capsys.readouterr().out)
    assert again["supernet"] == out["supernet"] and again["train_seconds"] == out["train_seconds"]


def test_cli_bad_input_is_one_line_exit_2(cli, capsys):
    assert cli(["supernet", "train", "--space", "no_such_space", "--dataset", "digits"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_space" in err[0]
    assert cli(["supernet", "train", "--space", "nasbench_macro", "--dataset", "digits", "--epochs", "-1"]) == 2
    assert "argument --epochs: must be a positive number" in capsys.readouterr().err


# ---- networks no sample names (NetAdapt's shrunk networks, big spaces): placed by their blocks


@pytest.mark.parametrize("name", ["nasbench_macro", "v3_small", "v3_large"])
def test_network_arch_finds_the_positions_a_sample_gives(name):
    """A decoded network's blocks cut into the space's stages give the sample's own positions; where
    they do not, the other cut decodes to the very same network (v3_small: s3 at width 1.25 and s4
    have one width, so one network has two readings) and is just as valid."""
    from mnas.accuracy.supernet_net import arch_network, network_arch

    sp = load_space(name)
    sn = Supernet.from_space(sp, num_classes=10, limit=200)
    rng = random.Random(1)
    same = 0
    for _ in range(150):
        s = sp.sample(rng)
        net = sp.decode(s)
        want, got = subnet_arch(sp, s), network_arch(sp, net, sn)
        assert arch_network(got, net.resolution, net.in_channels) == net
        same += want.key == got.key
    if name != "v3_small":
        assert same == 150
    else:
        assert same >= 100


def test_a_shrunk_network_is_scored_by_the_supernet_as_its_built_model_computes(toy, toy_supernet):
    """NetAdapt's smallest network of a sample (every width cut, no sample names it) runs on the
    supernet's sliced weights exactly as mnas.model.build of that network with the weights copied in."""
    from mnas.accuracy.supernet_net import network_arch
    from mnas.netadapt.proposals import minimal_network

    sample = toy.sample(random.Random(4))
    sample.update({"s1.l1.expand": 6, "s1.l1.se": True, "s2.width": 1.0, "s2.depth": 0})
    net = minimal_network(toy.decode(sample))
    assert net.blocks[0].out < toy.decode(sample).blocks[0].out and net.head.conv < 32
    arch = network_arch(toy, net, toy_supernet)
    g = torch.Generator().manual_seed(0)
    calib = [torch.randn(8, 3, 16, 16, generator=g) for _ in range(2)]
    x = torch.randn(4, 3, 16, 16, generator=g)
    bn = calibrate(toy_supernet, arch, calib)
    model = extract(toy_supernet, arch, bn, resolution=16)
    assert str(model.arch) == str(net.replace(head=model.arch.head))
    with torch.no_grad():
        model.eval()
        assert torch.allclose(toy_supernet.run(x, arch, bn), model(x), atol=1e-4, rtol=1e-4)


def test_a_network_off_the_space_template_is_one_clear_error(toy, toy_supernet):
    from mnas.accuracy.supernet_net import network_arch
    from mnas.zoo import get

    with pytest.raises(MnasError, match="do not fit the stages of space toy"):
        network_arch(toy, get("mobilenet_v3_small"), toy_supernet)
    net = toy.decode(toy.sample(random.Random(0)))
    off = net.replace(blocks=(dataclasses.replace(net.blocks[0], stride=1), *net.blocks[1:]))  # s1 has stride 2
    with pytest.raises(MnasError, match="strides, widths or depths differ"):
        network_arch(toy, off, toy_supernet)


def test_the_evaluator_scores_a_network_without_its_sample(toy, digits_supernet):
    """``evaluate(net)`` of a NetAdapt-shrunk network (no sample names it) works and gives what
    scoring its blocks' arch gives; a decoded network without its sample gives the sample's score."""
    from mnas.accuracy import get_evaluator
    from mnas.accuracy.supernet_net import network_arch
    from mnas.netadapt.proposals import minimal_network

    ev = get_evaluator("supernet", space=toy, checkpoint=digits_supernet, dataset="digits",
                       calib_batches=1, calib_batch_size=16, val_images=50)
    s = toy.sample(random.Random(5))
    net = toy.decode(s)
    assert ev.evaluate(net)["top1"] == ev.evaluate(net, s)["top1"]
    small = minimal_network(net)
    r = ev.evaluate(small)
    assert r["top1"] == ev.scorer.score(network_arch(toy, small, ev.supernet))["top1"]
    assert [x["top1"] for x in ev.evaluate_many([small, net])] == [r["top1"], ev.evaluate(net, s)["top1"]]


def test_netadapt_shrinks_a_space_network_under_the_supernet(toy, digits_supernet, tmp_path):
    """NetAdapt scores its proposals (cut widths no sample of the space has) with the supernet: the
    run reaches its target, and each kept network's top-1 is what the supernet gives that network."""
    from mnas.accuracy import get_evaluator
    from mnas.accuracy.supernet_net import space_archs
    from mnas.arch import parse_network
    from mnas.latency.predictor import get_predictor
    from mnas.netadapt import NetAdaptConfig, run_netadapt
    from mnas.netadapt.report import path_table

    ev = get_evaluator("supernet", space=toy, checkpoint=digits_supernet, dataset="digits",
                       calib_batches=1, calib_batch_size=16, val_images=50)
    pred = get_predictor("madds")
    seed = toy.decode(toy.sample(random.Random(2)))
    target = 0.8 * pred.predict(seed)
    cfg = NetAdaptConfig(arch=str(seed), device="madds", target_ms=target, evaluator="supernet", budget="smoke",
                         dataset="digits")
    summary = run_netadapt(cfg, tmp_path / "na", predictor=pred, evaluator=ev, progress=False)
    path = path_table(tmp_path / "na")
    assert summary["latency_ms"] <= target and len(path) >= 2
    members = {str(toy.decode(s)) for s in space_archs(toy)}
    fresh = get_evaluator("supernet", space=toy, checkpoint=digits_supernet, dataset="digits",
                          calib_batches=1, calib_batch_size=16, val_images=50)
    for _, row in path.iloc[1:].iterrows():
        net = parse_network(row["arch"])
        assert str(net) not in members  # a shrunk network: no sample names it
        assert row["top1"] == pytest.approx(fresh.evaluate(net)["top1"])

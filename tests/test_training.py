"""The shared training stack (mnas.training) against hand-computed facts."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from mnas import training  # noqa: E402
from mnas.errors import MnasError  # noqa: E402


def test_schedule_at_hand_computed_steps():
    # 10 steps, 2 warm-up: 0.1·1/2, 0.1·2/2, then 0.05·(1 + cos(π·(s-2)/8))
    lr = [training.lr_at(s, 10, 0.1, warmup=2) for s in range(11)]
    assert lr[0] == pytest.approx(0.05) and lr[1] == pytest.approx(0.1)
    assert lr[2] == pytest.approx(0.1)  # t = 0: the peak right after the warm-up
    assert lr[4] == pytest.approx(0.05 * (1 + math.sqrt(0.5)))  # t = 1/4: cos(π/4) = √½
    assert lr[6] == pytest.approx(0.05)  # t = 1/2
    assert lr[10] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(lr[2:], lr[3:]))  # decays monotonically after the warm-up
    assert [training.lr_at(s, 10, 0.1) for s in (0, 5)] == pytest.approx([0.1, 0.05])  # no warm-up
    assert [training.lr_at(s, 10, 0.1, 4, "constant") for s in (1, 4, 9)] == pytest.approx([0.05, 0.1, 0.1])
    with pytest.raises(MnasError, match="schedule"):
        training.lr_at(0, 10, 0.1, schedule="step")


def test_weight_decay_split_by_parameter_names():
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    decay, no_decay = training.param_groups(model, 1e-4)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (1e-4, 0.0)
    assert set(decay["names"]) == {"0.weight", "3.weight"}
    assert set(no_decay["names"]) == {"0.bias", "1.weight", "1.bias", "3.bias"}
    opt = training.make_optimizer(model, "sgd", 0.1, 1e-4)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_weight_decay_split_on_a_built_network_matches_module_types():
    from mnas.arch import parse_network
    from mnas.model import build

    model = build(parse_network("r8 i1 stem_k3_c8_s1_re ir_k3_e16_c16_se8_hs_s2 head_c32_re_d0"), 10)
    bn = {f"{m}.{p}" for m, mod in model.named_modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)
          for p, _ in mod.named_parameters(recurse=False)}
    biases = {n for n, _ in model.named_parameters() if n.endswith(".bias")}
    decay, no_decay = training.param_groups(model, 4e-5)
    assert bn and set(no_decay["names"]) == bn | biases
    assert not set(decay["names"]) & (bn | biases)


def test_to_input_normalises_resizes_and_repeats_grey():
    x = torch.full((2, 4, 4, 1), 255, dtype=torch.uint8)
    mean, std = training.stats([0.5], [0.25])
    out = training.to_input(x, mean, std, 8, channels=3)
    assert out.shape == (2, 3, 8, 8)
    assert torch.allclose(out, torch.full_like(out, 2.0))  # (1 - 0.5) / 0.25


def _images(n=16, seed=0):
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_augment_keeps_shape_is_seeded_and_crops_windows_of_the_padded_image():
    x = _images()
    a = training.augment(x, torch.Generator().manual_seed(1), hflip=False)
    b = training.augment(x, torch.Generator().manual_seed(1), hflip=False)
    c = training.augment(x, torch.Generator().manual_seed(2), hflip=False)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    pad = 1  # 8 // 8
    xp = torch.nn.functional.pad(x, (pad,) * 4)
    for i in range(len(x)):  # every output is one 8×8 window of its zero-padded input
        windows = [xp[i, :, dy:dy + 8, dx:dx + 8] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(a[i], w) for w in windows)
    assert not torch.equal(a, x)  # 16 images, 9 offsets each: some moved


def test_augment_flips_about_half_and_pad_zero_is_identity():
    x = _images(400)
    out = training.augment(x, torch.Generator().manual_seed(0), hflip=True, pad=0)
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, x)]
    assert all(s or f for s, f in zip(same, flipped))
    assert 150 < sum(flipped) < 250
    assert torch.equal(training.augment(x, torch.Generator().manual_seed(0), hflip=False, pad=0), x)


def test_train_step_reduces_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    x, y = _images(32), torch.arange(32) % 4
    opt = training.make_optimizer(model, "sgd", 0.05, 0.0)
    losses = [training.train_step(model, opt, x, y) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0]
    assert losses[0] == pytest.approx(math.log(4), abs=0.5)  # starts near chance: small random init


class _Constant(torch.nn.Module):
    """Always predicts class 0 with logits (1, 0, 0, ...)."""

    def forward(self, x):
        out = torch.zeros(len(x), 10)
        out[:, 0] = 1.0
        return out


def test_validate_against_hand_counted_top1_and_loss():
    import numpy as np

    x = np.zeros((20, 4, 4, 3), dtype=np.uint8)
    y = np.array([0] * 6 + [3] * 14)
    mean, std = training.stats([0.5] * 3, [0.25] * 3)
    top1, loss = training.validate(_Constant(), x, y, mean, std, 4, batch=7)
    assert top1 == pytest.approx(30.0)
    z = math.log(math.e + 9)  # log-sum-exp of (1, 0, ..., 0)
    assert loss == pytest.approx((6 * (z - 1) + 14 * z) / 20)
    with pytest.raises(MnasError, match="empty"):
        training.validate(_Constant(), x[:0], y[:0], mean, std, 4)


def test_same_seed_gives_identical_weights():
    from mnas.accuracy.train import TrainConfig, train_and_evaluate
    from mnas.arch import parse_network
    from mnas.data import load_dataset

    net = parse_network("r8 i1 stem_k3_c8_s1_re ir_k3_e16_c16_re_s2 head_c32_re_d0")
    ds = load_dataset("digits")
    train, val = ds.split(200, seed=0, train_size=300)

    def run(seed):
        cfg = TrainConfig(dataset="digits", steps=6, batch_size=32, seed=seed, threads=1)
        return train_and_evaluate(net, train, val, ds, cfg, return_state=True)["state"]

    a, b, c = run(3), run(3), run(4)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_netadapt_fine_tuning_is_the_train_evaluator_with_initial_weights(tmp_path, monkeypatch):
    from mnas.accuracy import get_evaluator
    from mnas.arch import parse_network
    from mnas.netadapt.finetune import DataSpec, TrainSpec, make_job, run_job

    monkeypatch.setenv("MNAS_CACHE", str(tmp_path / "cache"))
    net = parse_network("r8 i1 stem_k3_c8_s1_re ir_k3_e16_c16_re_s2 head_c32_re_d0")
    data = DataSpec(dataset="digits", image_size=8, val_size=200, train_size=300)
    r = run_job(make_job(str(net), data, TrainSpec(steps=4, batch_size=16)))
    no_crop = run_job(make_job(str(net), data, TrainSpec(steps=4, batch_size=16, augment=False)))
    assert any(not torch.equal(r["state"][k], no_crop["state"][k]) for k in r["state"])  # augmentation is on
    path = tmp_path / "w.pt"
    torch.save(r["state"], path)
    ev = get_evaluator("train", dataset="digits", val_size=200, train_size=300, resolution=8, steps=0,
                       init_weights=str(path), threads=1)
    again = ev.evaluate(net)
    assert (again["top1"], again["loss"]) == (r["top1"], r["loss"])


def test_supernet_training_draws_its_batches_and_rates_from_the_shared_stack(monkeypatch, tmp_path):
    """The supernet trainer is on this stack: its batches are mnas.training.augment's crops of
    mnas.training.to_input's tensors, its learning rates mnas.training.lr_at's (hand-checked for step 0)."""
    import numpy as np

    from mnas.accuracy import supernet_train
    from mnas.space import load_space

    calls = {"augment": 0, "lr": []}
    real_augment, real_lr_at = training.augment, training.lr_at

    def spy_augment(x, gen, hflip, *a, **k):
        calls["augment"] += 1
        assert x.shape[-1] == 8 and hflip is True
        return real_augment(x, gen, hflip, *a, **k)

    def spy_lr_at(step, steps, lr, warmup=0, schedule="cosine"):
        calls["lr"].append(real_lr_at(step, steps, lr, warmup, schedule))
        return calls["lr"][-1]

    monkeypatch.setattr(training, "augment", spy_augment)
    monkeypatch.setattr(training, "lr_at", spy_lr_at)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (32, 8, 8, 3), dtype=np.uint8), rng.integers(0, 10, 32).astype(np.int64)
    cfg = supernet_train.SupernetConfig(steps=3, batch=8, warmup_steps=2, lr=0.1, checkpoint_every=10)
    supernet_train.train_supernet(load_space("nasbench_macro"), x, y, cfg, tmp_path / "s.pt", num_classes=10,
                                  mean=(0.5,) * 3, std=(0.25,) * 3, progress=False)
    assert calls["augment"] == 3
    assert calls["lr"][:2] == [pytest.approx(0.05), pytest.approx(0.1)]  # warm-up: lr·1/2, lr·2/2

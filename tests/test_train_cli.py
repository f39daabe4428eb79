"""`mnas train`: recipes checked against the papers, learning, weights loadable, resume bitwise, DDP = accumulation."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from mnas.arch import parse_network  # noqa: E402
from mnas.cli import main  # noqa: E402
from mnas.errors import MnasError  # noqa: E402
from mnas.train import recipe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = "r8 i1 stem_k3_c8_s1_re ir_k3_e16_c16_re_s2 ir_k3_e32_c16_re_s1 head_c32_re_d0"
TINY_DROP = "r8 i1 stem_k3_c8_s1_re ir_k3_e16_c16_re_s2 ir_k3_e32_c16_re_s1 head_c32_re_d0.2"
FAST = dict(dataset="digits", batch_size=32, workers=0, threads=1, augment="pad-crop")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MNAS_CACHE", str(tmp_path / "cache"))


def _state(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# ------------------------------------------------------------------ recipes against the papers


def test_v3_recipe_is_the_papers():
    """Howard et al. 2019, 6.1.1: RMSProp momentum 0.9, lr 0.1 at batch 4096, decay 0.01 every 3 epochs,
    dropout 0.8 (keep), weight decay 1e-5, EMA 0.9999, batch-norm decay 0.99."""
    r = recipe("v3")
    assert (r.optimizer, r.momentum, r.lr, r.lr_batch, r.batch_size) == ("rmsprop", 0.9, 0.1, 4096, 4096)
    assert (r.schedule, r.decay_every_epochs, r.decay_factor) == ("exponential", 3.0, 1 - 0.01)
    assert math.isclose(1 - r.dropout, 0.8) and r.weight_decay == 1e-5 and r.ema_decay == 0.9999
    assert math.isclose(1 - r.bn_momentum, 0.99) and r.augment == "inception"
    # linear scaling: batch 1024 -> lr 0.025
    assert math.isclose(recipe("v3", batch_size=1024).scaled_lr, 0.025)


def test_mnasnet_proxy_is_five_epochs_with_50k_held_out():
    r = recipe("mnasnet-proxy")
    assert r.epochs == 5 and r.holdout == 50_000 and (r.decay_every_epochs, r.decay_factor) == (2.4, 0.97)
    assert math.isclose(r.scaled_lr, 0.256 * 256 / 4096)


def test_exponential_schedule_by_hand():
    from mnas.train.loop import lr_at_step

    r = recipe("v3", batch_size=4096)
    spe = 100
    # epoch 0..2.99: 0.1; epoch 3: 0.1*0.99; epoch 6.5: 0.1*0.99^2
    assert lr_at_step(r, 299, 10_000, spe) == pytest.approx(0.1)
    assert lr_at_step(r, 300, 10_000, spe) == pytest.approx(0.099)
    assert lr_at_step(r, 650, 10_000, spe) == pytest.approx(0.1 * 0.99 ** 2)
    w = recipe("mnasnet-proxy", batch_size=4096)  # 1 warm-up epoch: linear from lr/spe to lr
    assert lr_at_step(w, 0, 500, spe) == pytest.approx(0.256 / 100)
    assert lr_at_step(w, 49, 500, spe) == pytest.approx(0.256 / 2)


def test_bad_recipe_input_is_one_line(tmp_path, capsys):
    with pytest.raises(MnasError, match="unknown recipe 'v4'"):
        recipe("v4")
    with pytest.raises(MnasError, match="unknown field.*lrr"):
        recipe("quick", lrr=1)
    with pytest.raises(MnasError, match="ema_decay must be in"):
        recipe("quick", ema_decay=1.0)
    assert main(["train", TINY, "--set", "optimizer=adam", "--out", str(tmp_path / "x")]) == 2
    assert "unknown optimizer 'adam'" in capsys.readouterr().err
    assert main(["train", TINY, "--dataset", "imagenet-folder", "--out", str(tmp_path / "y")]) == 2
    assert "needs --data-dir" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()  # refused before the run folder was made


# ------------------------------------------------------------------ a run folder


def test_trains_digits_and_best_weights_load_into_build(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", TINY, "--dataset", "digits", "--steps", "60", "--batch-size", "64", "--workers", "0",
                 "--threads", "1", "--lr", "0.2", "--set", "augment=none", "--set", "label_smoothing=0",
                 "--no-progress", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["top1"] > 40.0  # chance is 10 %
    for name in ("config.yaml", "arch.yaml", "metrics.csv", "metrics.parquet", "best.pt", "last.pt", "checkpoint.pt", "curve.png"):
        assert (out / name).is_file(), name
    import pandas as pd

    m = pd.read_csv(out / "metrics.csv")
    assert list(m["step"]) == [22, 44, 60] and m["val_top5"].ge(m["val_top1"]).all()
    # a second method: the train evaluator's validation (mnas.training.validate) on the digits test images
    from mnas import training
    from mnas.data import load_dataset
    from mnas.model import build

    from mnas.arch import load_network

    net = load_network(out / "arch.yaml")
    assert str(net) == summary["arch"]
    model = build(net, 10)
    model.load_state_dict(_state(out / "best.pt"), strict=True)
    ds = load_dataset("digits")
    mean, std = training.stats(ds.mean, ds.std)
    top1, _ = training.validate(model, ds.test.x, ds.test.y, mean, std, 8, 1)
    assert top1 == pytest.approx(summary["top1"], abs=1e-9)
    # an existing run is not overwritten
    assert main(["train", TINY, "--dataset", "digits", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err


class _StopAfter:
    """A Ctrl-C arriving during step ``k`` (the guard's flag, as mnas.io.GracefulStop sets it)."""

    def __init__(self, k: int):
        self.k, self.calls, self.signum = k, 0, None

    @property
    def stopped(self) -> bool:
        self.calls += 1
        if self.calls >= self.k:
            self.signum = signal.SIGINT
        return self.signum is not None


def test_interrupted_run_resumes_to_the_same_weights_bitwise(tmp_path):
    from mnas.io import Interrupted
    from mnas.train.loop import train

    net = parse_network(TINY_DROP)  # dropout: the resumed run must redraw the same masks
    rc = recipe("quick", **FAST, steps=30, ema_decay=0.9)
    train(net, rc, tmp_path / "a", progress=False, log=lambda s: None)
    with pytest.raises(Interrupted, match="resume with"):
        train(net, rc, tmp_path / "b", progress=False, log=lambda s: None, stop=_StopAfter(13))  # mid-epoch 1
    ck = _state(tmp_path / "b" / "checkpoint.pt")
    assert ck["global_step"] == 13
    train(net, rc, tmp_path / "b", progress=False, log=lambda s: None)
    for name in ("last.pt", "checkpoint.pt"):
        a, b = _state(tmp_path / "a" / name), _state(tmp_path / "b" / name)
        ka = a["model"] if "model" in a else a
        kb = b["model"] if "model" in b else b
        assert ka.keys() == kb.keys()
        assert all(torch.equal(ka[k], kb[k]) for k in ka), name
    # and an uninterrupted run with another seed differs (the comparison can fail)
    train(net, rc.replace(seed=1), tmp_path / "c", progress=False, log=lambda s: None)
    a, c = _state(tmp_path / "a" / "last.pt"), _state(tmp_path / "c" / "last.pt")
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_refuses_changes_that_alter_the_result(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", TINY, "--dataset", "digits", "--steps", "2", "--batch-size", "32", "--workers", "0",
                 "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--lr", "0.3"]) == 2
    assert "would change the result" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "not a training run folder" in capsys.readouterr().err


# ------------------------------------------------------------------ processes (slow: each starts Python + torch)


def _env(tmp_path) -> dict:
    env = dict(os.environ, MNAS_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return env


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "mnas", "train", *args]


RUN = [TINY_DROP, "--dataset", "digits", "--steps", "40", "--batch-size", "32", "--workers", "0", "--threads", "1",
       "--set", "save_every_steps=3", "--set", "augment=pad-crop", "--no-progress"]


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_gives_the_same_weights(tmp_path):
    env = _env(tmp_path)
    subprocess.run(_cli(*RUN, "--out", str(tmp_path / "a")), env=env, check=True, capture_output=True)
    out = tmp_path / "b"
    p = subprocess.Popen(_cli(*RUN, "--out", str(out)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.01)
    # killed right after its first checkpoint: on an idle machine a pause here let all 40 steps finish
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = _state(out / "checkpoint.pt")["global_step"]
    assert 0 < done < 40
    subprocess.run(_cli("--resume", str(out), "--no-progress"), env=env, check=True, capture_output=True)
    a, b = _state(tmp_path / "a" / "last.pt"), _state(out / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_130(tmp_path):
    out = tmp_path / "c"
    args = [*RUN, "--out", str(out)]
    args[args.index("40")] = "100000"
    p = subprocess.Popen(_cli(*args), env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("mnas: interrupted by SIGINT") and "--resume" in lines[-1]
    assert "Traceback" not in err
    ck = _state(out / "checkpoint.pt")
    assert ck["global_step"] > 0


@pytest.mark.slow
def test_two_process_ddp_equals_one_process_at_the_same_global_batch(tmp_path):
    """2 gloo processes x 16 images = 1 process x 2 micro-batches of 16: the same shards (and dropout masks), the
    gradients averaged by DDP's all-reduce in one, accumulated in the other; parameters agree to float rounding."""
    env = _env(tmp_path)
    base = [TINY_DROP, "--dataset", "digits", "--steps", "12", "--batch-size", "32", "--workers", "0", "--threads", "1",
            "--set", "augment=pad-crop", "--no-progress", "--set", "label_smoothing=0"]  # dropout: masks per shard
    subprocess.run(_cli(*base, "--nproc", "2", "--out", str(tmp_path / "ddp")), env=env, check=True, capture_output=True)
    subprocess.run(_cli(*base, "--accum", "2", "--out", str(tmp_path / "one")), env=env, check=True, capture_output=True)
    subprocess.run(_cli(*base, "--out", str(tmp_path / "full")), env=env, check=True, capture_output=True)
    a, b, c = (_state(tmp_path / n / "last.pt") for n in ("ddp", "one", "full"))
    params = [k for k in a if "running" not in k and "num_batches" not in k]
    worst = max(float((a[k] - b[k]).abs().max()) for k in params)
    assert worst < 1e-4
    # batch norm over 32 images instead of two shards of 16 gives other weights: the check can fail
    assert max(float((a[k] - c[k]).abs().max()) for k in params) > 100 * max(worst, 1e-7)
    sa = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert sa["processes"] == 2


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_cleanly_and_it_resumes(tmp_path):
    env = _env(tmp_path)
    base = [TINY, "--dataset", "digits", "--steps", "200", "--batch-size", "32", "--workers", "0", "--threads", "1",
            "--set", "save_every_steps=2", "--no-progress"]
    out = tmp_path / "k"
    p = subprocess.Popen(_cli(*base, "--nproc", "2", "--out", str(out)), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 180
    while not (out / "checkpoint.pt").exists() and time.time() < deadline:
        time.sleep(0.1)
    # rank 1: the child of torch.distributed.run whose environment says RANK=1
    victim = None
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                envb = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            if b"RANK=1\x00" in envb and str(out).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                victim = int(pid)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    _, err = p.communicate(timeout=180)
    assert p.returncode == 2
    assert "mnas: error: 2 training processes ended" in err and "--resume" in err
    done = _state(out / "checkpoint.pt")["global_step"]
    assert 0 < done < 200
    r = subprocess.run(_cli("--resume", str(out), "--nproc", "2", "--no-progress", "--json"), env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["steps"] == 200

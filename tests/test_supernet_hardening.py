"""Supernet bad input and checkpoint format: weights-only files, truncated or foreign checkpoints,
a missing dataset, NaN loss (keeps the last good checkpoint), and FairNAS's fair sampling."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mnas.accuracy.supernet_train import (  # noqa: E402
    SupernetConfig,
    TrainState,
    fair_samples,
    load_supernet,
    train_supernet,
)
from mnas.errors import MnasError  # noqa: E402
from mnas.space import load_space  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

TINY = """
name: tiny
resolution: 8
mode: layer
stem: {out: 4, kernel: 3, stride: 1, act: re}
stages:
  - name: s1
    out: 8
    stride: 2
    depth: 2
    block: [{op: skip}, {op: ir, kernel: 3, expand: 3}, {op: ir, kernel: 5, expand: 6}]
    choices: {act: re, se: false}
head: {conv: 16, conv_act: re, dropout: 0.0}
"""

# the same layer list, other widths: a supernet of one does not fit the other
OTHER = TINY.replace("name: tiny", "name: other").replace("out: 8\n", "out: 12\n")

KW = dict(num_classes=10, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), progress=False)


def _space(tmp_path, text, name):
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return load_space(p)


@pytest.fixture()
def tiny(tmp_path):
    return _space(tmp_path, TINY, "tiny")


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8), rng.integers(0, 10, 64)


CFG = SupernetConfig(steps=4, batch=8, checkpoint_every=2, warmup_steps=1)


def test_files_load_weights_only(tiny, data, tmp_path):
    """Checkpoint and finished file hold tensors and plain containers only (no pickled objects)."""
    ckpt = train_supernet(tiny, *data, CFG, tmp_path / "s.pt", stop_after=2, **KW)
    assert torch.load(ckpt, weights_only=True)["state"]["step"] == 2
    out = train_supernet(tiny, *data, CFG, tmp_path / "s.pt", **KW)
    rec = torch.load(out, weights_only=True)
    assert rec["num_classes"] == 10 and len(rec["losses"]) == 4
    sn, _ = load_supernet(tiny, out)
    assert sum(p.numel() for p in sn.parameters()) > 0


def test_truncated_files_are_one_clear_error(tiny, data, tmp_path):
    out = train_supernet(tiny, *data, CFG, tmp_path / "s.pt", **KW)
    blob = out.read_bytes()
    out.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(MnasError, match="truncated"):
        load_supernet(tiny, out)
    out.write_bytes(b"")
    with pytest.raises(MnasError, match="empty"):
        load_supernet(tiny, out)
    # a truncated training checkpoint is refused, not silently restarted
    ckpt = train_supernet(tiny, *data, CFG, tmp_path / "r.pt", stop_after=2, **KW)
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(MnasError, match="truncated.*delete it"):
        train_supernet(tiny, *data, CFG, tmp_path / "r.pt", **KW)


def test_older_format_with_python_objects_is_named(tiny, data, tmp_path):
    """The format before weights-only checkpoints pickled a TrainState dataclass."""
    out = train_supernet(tiny, *data, CFG, tmp_path / "s.pt", **KW)
    rec = torch.load(out, weights_only=True)
    rec.pop("format")
    rec["state"] = TrainState(step=4)  # an arbitrary Python object, as the old files held
    torch.save(rec, out)
    with pytest.raises(MnasError, match="older format"):
        load_supernet(tiny, out)


def test_supernet_of_another_space_is_refused(tiny, data, tmp_path):
    out = train_supernet(tiny, *data, CFG, tmp_path / "s.pt", **KW)
    other = _space(tmp_path, OTHER, "other")
    with pytest.raises(MnasError, match="another search space than other"):
        load_supernet(other, out)
    # without the recorded fingerprint (an older file), the shapes still tell
    rec = torch.load(out, weights_only=True)
    rec.pop("space_fingerprint")
    torch.save(rec, out)
    with pytest.raises(MnasError, match="does not fit the space other"):
        load_supernet(other, out)
    # a training checkpoint of another space is not resumed into this one
    train_supernet(tiny, *data, CFG, tmp_path / "c.pt", stop_after=2, **KW)
    with pytest.raises(MnasError, match="another search space"):
        train_supernet(other, *data, CFG, tmp_path / "c.pt", **KW)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny, data, tmp_path):
    ckpt = train_supernet(tiny, *data, CFG, tmp_path / "s.pt", stop_after=2, **KW)
    good = ckpt.read_bytes()
    # resume the same run with an absurd learning rate: the weights blow up to inf/NaN within steps
    bad = dataclasses.replace(CFG, steps=40, lr=1e30, momentum=0.5, checkpoint_every=1)
    with pytest.raises(MnasError, match=r"diverged: (loss is (nan|inf)|the weights are no longer finite).*last good checkpoint .*\(step \d+\) is kept\. Lower --lr"):
        train_supernet(tiny, *data, bad, tmp_path / "s.pt", **KW)
    assert not (tmp_path / "s.pt").exists()
    # every checkpoint written holds finite weights; the one left is the last good one
    left = torch.load(ckpt, weights_only=True)
    assert all(bool(torch.isfinite(v).all()) for v in left["model"].values() if v.is_floating_point())
    assert left["state"]["step"] >= 2
    if left["state"]["step"] == 2:
        assert ckpt.read_bytes() == good


def test_fair_sampling_uses_every_option_once(tmp_path):
    space = _space(tmp_path, TINY.replace("depth: 2", "depth: 3"), "t3")
    rng = random.Random(0)
    seen_sets = set()
    for _ in range(20):
        samples = fair_samples(space, rng)
        assert len(samples) == 3
        for c in space.choices():
            assert Counter(s[c.name] for s in samples) == Counter(c.options), c.name
        seen_sets.add(tuple(tuple(sorted(s.items())) for s in samples))
    assert len(seen_sets) > 1  # the pairing of options across layers is random


def test_fair_sampling_tops_up_short_choices(tmp_path):
    text = TINY.replace("    choices: {act: re, se: false}", "    choices: {act: [re, hs], se: false}")
    space = _space(tmp_path, text, "mixed")
    by = {c.name: c.options for c in space.choices()}
    assert sorted(len(o) for o in by.values()) == [2, 2, 3, 3]
    samples = fair_samples(space, random.Random(1))
    for name, opts in by.items():
        got = Counter(s[name] for s in samples)
        assert set(got) == set(opts) and sum(got.values()) == 3


def _cli(*args):
    code = "import sys; from mnas.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_cli_missing_dataset_is_one_line(tmp_path):
    r = _cli("supernet", "train", "--space", "nasbench_macro", "--dataset", "cifar10-folder",
             "--data-dir", str(tmp_path / "nowhere"), "--steps", "2", "--no-progress")
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "nowhere" in lines[0] and "does not exist" in lines[0]

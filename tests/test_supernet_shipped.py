"""The NAS-Bench-Macro supernet shipped in mnas/accuracy/models (experiments/fidelity_supernet.py --phase ship).

Checked against independent facts: NAS-Bench-Macro's own accuracies (the ranking must beat
counting non-identity layers, computed here from the keys), its 6,561 keys, and a fresh
re-scoring of 50 random keys with the shipped weights (must reproduce the committed CSV).
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from mnas.accuracy.supernet import SHIPPED  # noqa: E402

WEIGHTS = SHIPPED[("nasbench_macro", "cifar10-folder")]
SCORES = WEIGHTS.with_suffix(".scores.csv")
FIDELITY = WEIGHTS.with_suffix(".fidelity.json")


def _scores() -> dict[str, tuple[float, float]]:
    with open(SCORES) as f:
        return {r["key"]: (float(r["supernet_top1"]), float(r["supernet_loss"])) for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def bench(shared_data) -> dict:
    path = shared_data / "nas_bench_macro" / "nas-bench-macro_cifar10.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return json.loads(path.read_text())


def test_shipped_weights_load_without_pickle_and_fit_the_space():
    from mnas.accuracy.supernet_train import load_supernet
    from mnas.space import load_space

    assert WEIGHTS.stat().st_size <= 25e6
    rec = torch.load(WEIGHTS, weights_only=True)  # tensors and plain values only
    assert rec["num_classes"] == 10 and rec["config"]["steps"] >= 1
    supernet, _ = load_supernet(load_space("nasbench_macro"), WEIGHTS)
    assert sum(p.numel() for p in supernet.parameters()) > 0


def test_scores_cover_every_benchmark_key_and_beat_counting_layers(bench):
    from scipy.stats import kendalltau

    scores = _scores()
    assert set(scores) == set(bench) and len(scores) == 6561
    keys = sorted(bench)
    acc = [bench[k]["mean_acc"] for k in keys]
    tau_loss = kendalltau([-scores[k][1] for k in keys], acc).statistic
    tau_layers = kendalltau([sum(c != "0" for c in k) for k in keys], acc).statistic  # the trivial baseline
    tau_flops = kendalltau([bench[k]["flops"] for k in keys], acc).statistic
    assert tau_loss > tau_layers > 0.6 and tau_loss > tau_flops
    fid = json.loads(FIDELITY.read_text())  # the figures shipped beside the weights are those of these scores
    assert fid["keys"] == 6561
    assert fid["kendall_tau_neg_loss"] == pytest.approx(tau_loss, abs=1e-6)
    assert fid["baseline_kendall_tau_layers"] == pytest.approx(tau_layers, abs=1e-6)


def test_rescoring_50_random_keys_with_the_shipped_weights_reproduces_the_csv(shared_data):
    from mnas.accuracy import get_evaluator
    from mnas.space import load_space

    tarball = shared_data / "cifar10" / "cifar10_jpg.tar.gz"
    if not tarball.is_file():
        pytest.skip(f"{tarball} is absent")
    space = load_space("nasbench_macro")
    scores = _scores()
    keys = random.Random(0).sample(sorted(scores), 50)
    ev = get_evaluator("supernet", space=space, data_dir=str(tarball), threads=1)  # the shipped weights by default
    assert ev.checkpoint == WEIGHTS
    samples = [space.decode_string(k) for k in keys]
    results = ev.evaluate_many([space.decode(s) for s in samples], samples)
    for k, r in zip(keys, results):
        top1, loss = scores[k]
        assert r["loss"] == pytest.approx(loss, abs=2e-4), k
        assert abs(r["top1"] - top1) <= 0.15, k  # one validation image is 0.1 pp
        assert r["fidelity"]["kendall_tau_neg_loss"] > r["fidelity"]["baseline_kendall_tau_layers"]
        assert "note" not in r["fidelity"]  # the defaults score as the figures were measured
    # scored another way, the figures say they belong to the shipped scoring
    other = get_evaluator("supernet", space=space, data_dir=str(tarball), threads=1, calib_batches=2)
    assert "measured with scoring" in other.fidelity["note"]

"""Proxy-training search on a simulated Ray cluster (ray.cluster_utils.Cluster: three nodes on this machine, one
with fake GPUs): spread over the nodes, a worker node lost mid-search, the driver lost, Ctrl-C in the Ray loop.

Slow (each scenario starts Ray nodes and trains real networks): ``pytest -m slow tests/test_ray_cluster.py``.
The session's local Ray (``ray_local`` in conftest.py) is shut down for the cluster and started again after it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("torch")

from mnas.accuracy.train import TrainEvaluator  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
PROXY = dict(dataset="digits", steps=3, batch_size=16, threads=1, val_size=100)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ray.cluster_utils import Cluster

    from mnas.data import load_dataset

    cache = tmp_path_factory.mktemp("cache")
    old_cache = os.environ.get("MNAS_CACHE")
    os.environ["MNAS_CACHE"] = str(cache)  # the nodes' workers inherit it
    load_dataset("digits")  # decoded once, before many workers would race to write the cache
    was_up = ray.is_initialized()
    if was_up:
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.workers = [c.add_node(num_cpus=1), c.add_node(num_cpus=1, num_gpus=2)]  # the second: 2 fake GPUs
    c.wait_for_nodes()
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        if old_cache is None:
            os.environ.pop("MNAS_CACHE", None)
        else:
            os.environ["MNAS_CACHE"] = old_cache
        if was_up:  # give the rest of the session its local runtime back
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)


class NodeTrain(TrainEvaluator):
    """The train evaluator, leaving a note per measurement: which node started it, and whether it finished."""

    def __init__(self, notes: str, pause_s: float = 0.0, **options):
        super().__init__(**options)
        self.notes, self.pause_s = notes, pause_s

    def _evaluate(self, net, sample):
        import ray as r

        node = r.get_runtime_context().get_node_id()
        tag = uuid.uuid4().hex
        Path(self.notes, f"{node}.{tag}.start").write_text(str(net))
        time.sleep(self.pause_s)
        out = super()._evaluate(net, sample)
        Path(self.notes, f"{node}.{tag}.done").write_text(str(net))
        return out


def _notes(folder: Path) -> list[tuple[str, str, str]]:
    return [(p.name.split(".")[0], p.name.split(".")[2], p.read_text()) for p in folder.iterdir()]


def _states(run_dir: Path) -> list[str]:
    with sqlite3.connect(run_dir / "trials.db") as db:
        return [s for (s,) in db.execute("SELECT state FROM trials ORDER BY number")]


def _config(out: Path, trials: int, **kw):
    from mnas.search.config import SearchConfig

    return SearchConfig(target_ms=15.0, evaluator="train", evaluator_options=dict(PROXY), trials=trials,
                        backend="ray", out=str(out), strategy="random", seed=1, **kw)


def test_search_spreads_over_nodes_and_survives_losing_one(cluster, tmp_path):
    from ray import cloudpickle

    from mnas.search.runner import run_search

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    notes = tmp_path / "notes"
    notes.mkdir()
    victim = cluster.workers[0]
    killed: list[bool] = []

    def kill_when_busy():  # remove the first worker node while it is measuring a trial
        deadline = time.time() + 300
        while time.time() < deadline:
            if any(n == victim.node_id and k == "start" for n, k, _ in _notes(notes)):
                time.sleep(0.5)
                cluster.remove_node(victim)
                killed.append(True)
                return
            time.sleep(0.1)

    t = threading.Thread(target=kill_when_busy, daemon=True)
    t.start()
    n = 8
    res = run_search(_config(tmp_path / "run", n), evaluator=NodeTrain(str(notes), pause_s=2.0, **PROXY),
                     progress=False, plot=False)
    t.join(timeout=5)
    assert killed, "the worker node never started a trial"
    states = _states(res.run_dir)
    assert states.count("COMPLETE") == n and "RUNNING" not in states  # none lost
    assert len(res.table[res.table["state"] == "COMPLETE"]) == n  # none counted twice
    rows = _notes(notes)
    nodes_done = {node for node, kind, _ in rows if kind == "done"}
    assert len(nodes_done) >= 2  # spread over the nodes
    # the lost node's unfinished measurement ran again, to the end, on another node
    lost = [arch for node, kind, arch in rows if node == victim.node_id and kind == "start"
            and (node, "done", arch) not in {(a, b, c) for a, b, c in rows}]
    assert lost
    assert all(any(k == "done" and a == arch and node != victim.node_id for node, k, a in rows) for arch in lost)
    ray.shutdown()


def test_gpus_per_trial_runs_on_the_node_with_gpus(cluster, tmp_path):
    from ray import cloudpickle

    from mnas.search.runner import run_search

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    notes = tmp_path / "notes"
    notes.mkdir()
    res = run_search(_config(tmp_path / "run", 3, gpus_per_trial=1.0), evaluator=NodeTrain(str(notes), **PROXY),
                     progress=False, plot=False)
    gpu_node = cluster.workers[1].node_id
    assert _states(res.run_dir).count("COMPLETE") == 3
    assert {node for node, _, _ in _notes(notes)} == {gpu_node}
    ray.shutdown()


def _driver(out: Path, trials: int, address: str, *extra: str) -> list[str]:
    opts = [f"--evaluator-option={k}={v}" for k, v in PROXY.items() if k != "dataset"]
    return [sys.executable, "-m", "mnas", "search", "--backend", "ray", "--address", address, "--evaluator", "train",
            "--dataset", "digits", *opts, "--trials", str(trials), "--target-ms", "15", "--strategy", "random",
            "--no-progress", "--out", str(out), *extra]


def _wait_complete(run_dir: Path, k: int, p: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None:
        try:
            if (run_dir / "trials.db").is_file() and _states(run_dir).count("COMPLETE") >= k:
                return
        except sqlite3.Error:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{k} trials did not complete (driver exit {p.poll()})")


def test_killed_driver_resumes_to_exactly_the_requested_count(cluster, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = tmp_path / "run"
    p = subprocess.Popen(_driver(out, 6, cluster.address), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_complete(out, 2, p)
    p.send_signal(signal.SIGKILL)
    p.wait()
    states = _states(out)
    assert states.count("COMPLETE") < 6 and "RUNNING" in states  # the dead driver left trials in flight
    r = subprocess.run([sys.executable, "-m", "mnas", "search", "--resume", str(out), "--no-progress"], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    states = _states(out)
    assert states.count("COMPLETE") == 6 and "RUNNING" not in states


def test_ctrl_c_in_the_ray_loop_is_one_line_exit_130_nothing_running(cluster, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = tmp_path / "run"
    p = subprocess.Popen(_driver(out, 50, cluster.address), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    _wait_complete(out, 1, p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-1].startswith("mnas: interrupted by SIGINT"), err[-2000:]  # one line, after the search's log
    assert "Traceback" not in err and sum("interrupt" in ln.lower() for ln in lines) == 1, err[-2000:]
    states = _states(out)
    assert "RUNNING" not in states and states.count("COMPLETE") >= 1

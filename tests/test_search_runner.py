"""The search runner: storage, export, impossible targets, kill-and-resume, the CLI handler, Ray.

Measurements come from small stand-ins defined here (a latency and an accuracy
that follow multiply-adds), so the tests check the runner, not the predictors.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from mnas.accuracy import Evaluator
from mnas.arch import Bneck, Conv, Head, Network, load_network
from mnas.counting import count
from mnas.errors import MnasError
from mnas.search.config import SearchConfig

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


# ---------------------------------------------------------------------- stand-ins


@dataclass(frozen=True)
class Choice:
    name: str
    options: tuple


class ToySpace:
    """``blocks`` bneck blocks; per block: kernel, expansion ratio, activation, SE."""

    name = "toy"
    resolution = 64

    def __init__(self, blocks: int = 5):
        self.blocks = blocks
        self._choices = []
        for i in range(1, blocks + 1):
            self._choices += [Choice(f"b{i}.kernel", (3, 5, 7)), Choice(f"b{i}.expand", (2, 4, 6)),
                              Choice(f"b{i}.act", ("re", "hs")), Choice(f"b{i}.se", (False, True))]

    def choices(self):
        return list(self._choices)

    @property
    def size(self):
        return math.prod(len(c.options) for c in self._choices)

    def decode(self, s: dict) -> Network:
        blocks, cin = [], 16
        for i in range(1, self.blocks + 1):
            out = 16 * (1 + i // 2)
            exp = cin * s[f"b{i}.expand"]
            blocks.append(Bneck(out=out, exp=exp, kernel=s[f"b{i}.kernel"], stride=2 if i % 2 else 1,
                                se=exp // 4 if s[f"b{i}.se"] else 0, act=s[f"b{i}.act"]))
            cin = out
        return Network(stem=Conv(16, 3, 2, "hs"), blocks=tuple(blocks), head=Head(conv=128, dropout=0.0),
                       resolution=self.resolution)

    def encode_string(self, s: dict) -> str:
        return "".join(str(c.options.index(s[c.name])) for c in self._choices)


class MaddsLatency:
    """ms = multiply-adds / 1e6 × 0.4, plus 0.05 ms per h-swish block."""

    device = "toy-phone"

    def predict(self, net: Network) -> float:
        hs = sum(1 for b in net.blocks if b.act.value == "hs")
        return count(net).madds / 1e6 * 0.4 + 0.05 * hs

    def predict_many(self, nets):
        import numpy as np

        return np.array([self.predict(n) for n in nets])

    def missing(self, net: Network) -> list[str]:
        return []


class MaddsAccuracy(Evaluator):
    """top1 grows with log multiply-adds, plus a fixed per-architecture offset; ``delay`` s per call."""

    name = "toy-accuracy"

    def __init__(self, delay: float = 0.0, cache=None):
        super().__init__(None, cache)
        self.delay = delay

    def config(self) -> dict:
        return {**super().config(), "delay": self.delay}

    def _evaluate(self, net: Network, sample=None) -> dict:
        if self.delay:
            time.sleep(self.delay)
        noise = (zlib.crc32(str(net).encode()) % 1000) / 1000.0
        return {"top1": 50 + 5 * math.log10(count(net).madds) + noise, "loss": math.nan, "cost_s": self.delay}


def toy_run(tmp_path, *, space=None, delay=0.0, progress=False, **cfg):
    from mnas.search.runner import run_search

    settings = dict(target_ms=4.0, space="toy", device="toy-phone", evaluator="toy", strategy="random", trials=12,
                    reward="soft", out=str(tmp_path / "run"), seed=0)
    settings.update(cfg)
    resume = settings.pop("_resume", False)
    config = SearchConfig(**settings)
    return run_search(config, space=space or ToySpace(), predictor=MaddsLatency(), evaluator=MaddsAccuracy(delay),
                      progress=progress, plot=False, resume=resume)


# ---------------------------------------------------------------------- runs and exports


def test_search_writes_run_folder(tmp_path):
    res = toy_run(tmp_path, strategy="evolution", trials=25, strategy_options={"population_size": 8, "sample_size": 3})
    run = res.run_dir
    for f in ("config.yaml", "trials.db", "trials.csv", "trials.parquet"):
        assert (run / f).is_file(), f
    df = pd.read_parquet(run / "trials.parquet")
    assert (df["state"] == "COMPLETE").sum() == 25 == res.completed
    names = [c.name for c in ToySpace().choices()]
    for col in names + ["accuracy", "latency_ms", "madds", "params", "reward", "arch", "code"]:
        assert col in df.columns, col
    csv = pd.read_csv(run / "trials.csv")
    assert list(csv["arch"]) == list(df["arch"]) and list(csv["reward"]) == pytest.approx(list(df["reward"]))
    # every row is consistent with its own choices: decode them again and re-measure
    space, lat = ToySpace(), MaddsLatency()
    for _, r in df.iterrows():
        sample = {n: getattr(r[n], "item", lambda v=r[n]: v)() for n in names}
        net = space.decode(sample)
        assert str(net) == r["arch"]
        assert r["latency_ms"] == pytest.approx(lat.predict(net))
        assert r["madds"] == count(net).madds and r["params"] == count(net).params
        assert r["reward"] == pytest.approx(r["accuracy"] * (r["latency_ms"] / 4.0) ** -0.07)
    # top architectures: best reward first, as files that load back to the same network
    assert [t["rank"] for t in res.top] == [1, 2, 3, 4, 5]
    assert res.top[0]["reward"] == pytest.approx(df["reward"].max())
    assert all(a["reward"] >= b["reward"] for a, b in zip(res.top, res.top[1:]))
    for t in res.top:
        assert str(load_network(t["file"])) == t["arch"]
    # the saved config is re-runnable as is
    again = SearchConfig.load(run / "config.yaml")
    assert again.strategy == "evolution" and again.trials == 25 and again.strategy_options["population_size"] == 8


def test_existing_run_folder_is_not_overwritten(tmp_path):
    toy_run(tmp_path, trials=3)
    with pytest.raises(MnasError, match="already holds a search: continue it with `mnas search --resume"):
        toy_run(tmp_path, trials=3)


def test_resume_extends_without_duplicates(tmp_path):
    res = toy_run(tmp_path, trials=6, strategy="tpe")
    before = pd.read_csv(res.run_dir / "trials.csv")
    res2 = toy_run(tmp_path, trials=10, strategy="tpe", _resume=True)
    after = pd.read_csv(res2.run_dir / "trials.csv")
    assert (after["state"] == "COMPLETE").sum() == 10
    assert after["number"].is_unique
    assert list(before["arch"]) == list(after["arch"].iloc[:6])
    assert list(before["reward"]) == pytest.approx(list(after["reward"].iloc[:6]))


def test_resume_needs_a_run_folder(tmp_path):
    with pytest.raises(MnasError, match="not a search run folder"):
        toy_run(tmp_path, _resume=True)


# ---------------------------------------------------------------------- the fastest network


def test_min_latency_coordinate_descent_matches_enumeration():
    from mnas.search import runner

    space, lat = ToySpace(blocks=2), MaddsLatency()
    brute = min(lat.predict(space.decode(dict(zip([c.name for c in space.choices()], combo))))
                for combo in itertools.product(*(c.options for c in space.choices())))
    exact, _ = runner.min_latency(space, lat)  # 1,296 networks > limit: coordinate descent
    assert space.size > runner.ENUMERATE_LIMIT
    assert exact == pytest.approx(brute)
    small = ToySpace(blocks=1)
    fastest, sample = runner.min_latency(small, lat)  # 36 networks: enumerated
    assert sample == {"b1.kernel": 3, "b1.expand": 2, "b1.act": "re", "b1.se": False}
    assert fastest == pytest.approx(lat.predict(small.decode(sample)))


def test_impossible_target_is_reported_with_the_minimum(tmp_path):
    from mnas.search.runner import min_latency

    fastest, _ = min_latency(ToySpace(), MaddsLatency())
    with pytest.raises(MnasError) as e:
        toy_run(tmp_path, target_ms=fastest * 0.9)
    msg = str(e.value)
    assert f"target {fastest * 0.9:g} ms is impossible" in msg
    assert f"the fastest network of space 'toy' takes {fastest:.2f} ms on toy-phone" in msg
    assert not (tmp_path / "run").exists()  # nothing written
    toy_run(tmp_path, target_ms=fastest * 1.01, trials=2)  # just above: fine


# ---------------------------------------------------------------------- kill and resume

LAUNCHER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_search_runner import MaddsAccuracy, MaddsLatency, ToySpace
    from mnas.search.config import SearchConfig
    from mnas.search.runner import run_search
    cfg = SearchConfig(target_ms=4.0, space="toy", device="toy-phone", evaluator="toy", strategy="random",
                       trials={trials}, reward="soft", out={out!r}, seed=0, heartbeat_interval=1, grace_period=2)
    run_search(cfg, resume={resume}, space=ToySpace(), predictor=MaddsLatency(), evaluator=MaddsAccuracy({delay}),
               progress=False, plot=False)
    """
)


def _launch(out: Path, resume: bool, trials: int = 20, delay: float = 0.25) -> subprocess.Popen:
    code = LAUNCHER.format(tests=str(TESTS), trials=trials, out=str(out), resume=resume, delay=delay)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _states(db: Path) -> list[tuple[int, str]]:
    con = sqlite3.connect(db, timeout=30)
    try:
        return con.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    finally:
        con.close()


def test_sigkill_then_resume_loses_nothing_and_repeats_nothing(tmp_path):
    import optuna

    out = tmp_path / "killed"
    proc = _launch(out, resume=False)
    db = out / "trials.db"
    deadline = time.time() + 120
    while time.time() < deadline:
        if db.exists():
            try:
                if sum(s == "COMPLETE" for _, s in _states(db)) >= 5:
                    break
            except sqlite3.OperationalError:
                pass
        if proc.poll() is not None:
            pytest.fail(f"search ended early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("search made no progress in 120 s")
    time.sleep(0.1)  # land mid-evaluation (each takes 0.25 s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    storage = f"sqlite:///{db}"
    before = optuna.load_study(study_name="mnas-search", storage=storage).trials
    done_before = {t.number: t.params for t in before if t.state.name == "COMPLETE"}
    running = [t for t in before if t.state.name == "RUNNING"]
    assert 5 <= len(done_before) < 20
    assert len(running) == 1  # killed mid-evaluation

    proc = _launch(out, resume=True)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err.decode()[-2000:]

    after = optuna.load_study(study_name="mnas-search", storage=storage).trials
    complete = [t for t in after if t.state.name == "COMPLETE"]
    assert len(complete) == 20  # exactly the requested number, none lost, none extra
    numbers = [t.number for t in after]
    assert len(numbers) == len(set(numbers))
    for n, params in done_before.items():  # every trial finished before the kill is kept as it was
        assert after[n].state.name == "COMPLETE" and after[n].params == params
    keys = [tuple(sorted(t.params.items())) for t in complete]
    assert len(keys) == len(set(keys))  # no architecture evaluated twice
    for t in running:  # the trial killed mid-way was failed and retried with the same choices
        assert after[t.number].state.name == "FAIL"
        retries = [r for r in complete if r.system_attrs.get("failed_trial") == t.number]
        assert len(retries) == 1
        assert t.params.items() <= retries[0].params.items()  # (all of them, if it was killed while choosing)
    table = pd.read_csv(out / "trials.csv")
    assert (table["state"] == "COMPLETE").sum() == 20


# ---------------------------------------------------------------------- CLI handler


def _args(argv):
    from mnas.cli import Parser
    from mnas.cli import search as cli_search

    parser = Parser(prog="mnas")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    cli_search.register(sub)
    return parser.parse_args(["search", *argv])


def test_cli_needs_a_target_for_a_scalar_reward():
    from mnas.cli.search import config_from_args

    with pytest.raises(MnasError, match="needs a latency target: add --target-ms"):
        config_from_args(_args([]))
    cfg = config_from_args(_args(["--target-ms", "15"]))
    # issue 12: the estimated ImageNet top-1 is the default accuracy of the MobileNetV3 spaces
    assert (cfg.space, cfg.device, cfg.evaluator, cfg.reward) == ("v3_small", "pixel1", "imagenet", "v3-small")
    assert cfg.strategy == "evolution"
    pareto = config_from_args(_args(["--reward", "pareto"]))
    assert pareto.target_ms is None and pareto.strategy == "tpe"


def test_cli_flags_override_config_file(tmp_path):
    from mnas.cli.search import config_from_args

    path = SearchConfig(target_ms=20, strategy="tpe", trials=50, out="somewhere").save(tmp_path / "c.yaml")
    cfg = config_from_args(_args(["--config", str(path), "--trials", "7", "--strategy-option", "n_startup_trials=3"]))
    assert (cfg.target_ms, cfg.strategy, cfg.trials, cfg.out) == (20, "tpe", 7, None)
    assert cfg.strategy_options == {"n_startup_trials": 3}


def test_cli_resume_keeps_settings(tmp_path):
    from mnas.cli.search import config_from_args

    SearchConfig(target_ms=20, trials=50).save(tmp_path / "config.yaml")
    cfg = config_from_args(_args(["--resume", str(tmp_path), "--trials", "80"]))
    assert cfg.trials == 80 and cfg.out == str(tmp_path)
    with pytest.raises(MnasError, match="cannot change strategy"):
        config_from_args(_args(["--resume", str(tmp_path), "--strategy", "rl"]))


def test_config_rejects_unknown_settings(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("target_ms: 15\nstrategy: tpe\npopulation: 3\n")
    with pytest.raises(MnasError, match=r"unknown setting\(s\) \['population'\]"):
        SearchConfig.load(p)


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    code = ("import sys; from mnas.cli import COMMANDS, main; COMMANDS['search'] = 'mnas.cli.search'; "
            "sys.exit(main(sys.argv[1:]))")
    r = subprocess.run([sys.executable, "-c", code, "search", "--target-ms", "15", "--strategy", "ppo",
                        "--out", str(tmp_path / "x")], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "--strategy" in r.stderr and "'ppo'" in r.stderr and "'evolution'" in r.stderr  # names it and the choices


# ---------------------------------------------------------------------- Ray


@pytest.mark.slow  # ~15 s of Ray start-up plus a worker process per trial (~60 s on 2 busy cores)
def test_ray_backend_runs_trials_into_the_same_storage(tmp_path, ray_local):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    res = toy_run(tmp_path, backend="ray", trials=3, strategy="evolution")
    df = pd.read_csv(res.run_dir / "trials.csv")
    assert (df["state"] == "COMPLETE").sum() == 3
    assert df["accuracy"].notna().all() and df["latency_ms"].notna().all()
    assert len(res.top) >= 1


# ---------------------------------------------------------------------- end to end on real components


def _main(argv, cwd):
    code = ("import sys; from mnas.cli import COMMANDS, main; COMMANDS['search'] = 'mnas.cli.search'; "
            "sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.slow  # two full CLI runs in subprocesses (~20 s on 2 busy cores)
def test_cli_search_on_nas_bench_macro_json(tmp_path, shared_data):
    out = tmp_path / "macro"
    r = _main(["search", "--space", "nasbench_macro", "--evaluator", "table", "--reward", "soft", "--target-ms", "8",
               "--trials", "6", "--strategy", "random", "--out", str(out), "--json"], REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["completed"] == 6 and summary["run_dir"] == str(out)
    table = json.loads((shared_data / "nas_bench_macro" / "nas-bench-macro_cifar10.json").read_text())
    df = pd.read_csv(out / "trials.csv", dtype={"code": str})
    for _, row in df.iterrows():  # accuracy is the benchmark's own mean for the trial's key
        assert row["accuracy"] == pytest.approx(table[row["code"]]["mean_acc"])
    assert (out / "pareto.png").is_file() and len(list((out / "top").glob("*.yaml"))) == len(summary["top"])
    # the saved config re-runs as is (into a new folder)
    r2 = _main(["search", "--config", str(out / "config.yaml"), "--out", str(tmp_path / "again"), "--json"], REPO)
    assert r2.returncode == 0, r2.stderr[-2000:]
    again = pd.read_csv(tmp_path / "again" / "trials.csv", dtype={"code": str})
    assert list(again["code"]) == list(df["code"])  # same seed, same trials


def test_impossible_target_on_the_cli(tmp_path, shared_data):
    r = _main(["search", "--space", "nasbench_macro", "--evaluator", "table", "--reward", "soft", "--target-ms", "0.5",
               "--out", str(tmp_path / "x")], REPO)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "target 0.5 ms is impossible: the fastest network of space 'nasbench_macro' takes" in r.stderr


"""The fast search path: rounds of trials on an in-memory study, stored in a journal file.

Checked against the sequential path (Optuna's ``study.optimize`` on SQLite, one trial at a
time), which is what the rounds must reproduce where the strategy allows it, and against a
SIGKILL: a killed run resumes without losing or repeating a stored trial.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from mnas.errors import MnasError
from mnas.search.config import SearchConfig

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))

from test_search_runner import MaddsAccuracy, MaddsLatency, ToySpace  # noqa: E402


class InstantAccuracy(MaddsAccuracy):
    """The toy accuracy, declared instant (so the runner takes the rounds path), with a batch path."""

    instant = True

    def __init__(self, delay: float = 0.0):
        super().__init__(delay)
        self.batches: list[int] = []

    def evaluate_many(self, nets, samples=None):
        self.batches.append(len(nets))
        return [self.evaluate(n) for n in nets]


def run(tmp_path, name, *, evaluator=None, resume=False, **cfg):
    from mnas.search.runner import run_search

    settings = dict(target_ms=4.0, space="toy", device="toy-phone", evaluator="toy", strategy="random", trials=40,
                    reward="soft", out=str(tmp_path / name), seed=3)
    settings.update(cfg)
    return run_search(SearchConfig(**settings), space=ToySpace(), predictor=MaddsLatency(),
                      evaluator=evaluator if evaluator is not None else InstantAccuracy(), progress=False, plot=False,
                      resume=resume)


def trials(res) -> list[tuple]:
    df = res.table
    return list(zip(df["number"], df["state"], df["arch"], df["reward"]))


@pytest.mark.parametrize("strategy,options,batch", [
    ("random", {}, None),  # rounds of 64: random draws ignore the told values
    ("rl", {"batch_size": 8}, None),  # rounds of batch_size: the controller learns once per round either way
    ("evolution", {"population_size": 6, "sample_size": 2}, None),  # rounds of 1
])
def test_rounds_give_the_sequential_trials(tmp_path, strategy, options, batch):
    """Rounds on the journal reproduce Optuna's sequential loop on SQLite trial for trial."""
    from mnas.search.runner import resolve_storage, round_size

    fast = run(tmp_path, "fast", strategy=strategy, strategy_options=options, batch=batch)
    assert (fast.run_dir / "trials.journal").is_file() and not (fast.run_dir / "trials.db").exists()
    slow = run(tmp_path, "slow", strategy=strategy, strategy_options=options, evaluator=MaddsAccuracy())
    assert (slow.run_dir / "trials.db").is_file() and not (slow.run_dir / "trials.journal").exists()
    assert resolve_storage(SearchConfig(target_ms=1, out=str(slow.run_dir)), slow.run_dir, resume=True)[0] == "rdb"
    assert len(fast.table) == len(slow.table) == 40
    assert trials(fast) == trials(slow)
    k = round_size(SearchConfig(target_ms=1, strategy=strategy, strategy_options=options))
    assert k == {"random": 64, "rl": 8, "evolution": 1}[strategy]


def test_rounds_are_evaluated_in_batches(tmp_path):
    ev = InstantAccuracy()
    res = run(tmp_path, "b", trials=30, batch=8, evaluator=ev)
    assert ev.batches == [8, 8, 8, 6]  # the last round is cut to the trials still wanted
    assert (res.table["state"] == "COMPLETE").sum() == 30 and res.table["number"].tolist() == list(range(30))


def test_measure_many_equals_measure():
    from mnas.search.reward import get_reward
    from mnas.search.runner import Components, measure, measure_many

    space = ToySpace()
    comp = Components(space, MaddsLatency(), InstantAccuracy(), get_reward("soft", 4.0))
    import random

    rng = random.Random(1)
    samples = [{c.name: rng.choice(c.options) for c in space.choices()} for _ in range(9)]
    assert measure_many(comp, samples) == [measure(comp, s) for s in samples]


def test_same_seed_same_trials_and_resume_extends(tmp_path):
    a = run(tmp_path, "a", strategy="evolution", trials=25, strategy_options={"population_size": 6, "sample_size": 2})
    b = run(tmp_path, "b", strategy="evolution", trials=25, strategy_options={"population_size": 6, "sample_size": 2})
    assert trials(a) == trials(b)
    more = run(tmp_path, "a", strategy="evolution", trials=40, resume=True,
               strategy_options={"population_size": 6, "sample_size": 2})
    assert len(more.table) == 40 and more.table["number"].is_unique
    assert trials(more)[:25] == trials(a)  # the stored trials are kept as they were
    assert more.table["arch"].iloc[25:].tolist() != a.table["arch"].iloc[:15].tolist()  # new draws, not replays


def test_memory_storage_writes_no_study_and_cannot_resume(tmp_path):
    res = run(tmp_path, "m", storage="memory", trials=10)
    assert (res.table["state"] == "COMPLETE").sum() == 10
    assert not (res.run_dir / "trials.journal").exists() and not (res.run_dir / "trials.db").exists()
    with pytest.raises(MnasError, match="storage 'memory' keeps nothing to resume"):
        run(tmp_path, "m", storage="memory", trials=12, resume=True)


def test_batch_needs_a_journal(tmp_path):
    with pytest.raises(MnasError, match="--batch 4 needs a journal storage"):
        run(tmp_path, "x", batch=4, storage=f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(MnasError, match="--batch must be a whole number >= 1"):
        SearchConfig(target_ms=1, batch=0)


def test_a_write_cut_short_is_dropped_on_resume(tmp_path):
    """A kill during a write leaves a partial last line: it is cut off, the rest resumes."""
    res = run(tmp_path, "cut", trials=20, batch=5)
    journal = res.run_dir / "trials.journal"
    data = journal.read_bytes()
    journal.write_bytes(data + data.splitlines(keepends=True)[-1][:37])  # half a trial line, no newline
    more = run(tmp_path, "cut", trials=30, batch=5, resume=True)
    assert (more.table["state"] == "COMPLETE").sum() == 30 and more.table["number"].tolist() == list(range(30))
    assert trials(more)[:20] == trials(res)
    again = _stored(journal)  # the file itself reads back whole (the new rounds were not glued to the half line)
    assert [t.number for t in again] == list(range(30)) and all(t.state.name == "COMPLETE" for t in again)


def test_damaged_journal_is_one_clear_error(tmp_path):
    from mnas.search.storage import open_journal

    bad = tmp_path / "trials.journal"
    bad.write_text('{"op_code": 0, "worker_id": "x"\nnot json\n{"op_code": 1}\n')
    with pytest.raises(MnasError, match="damaged journal"):
        open_journal(bad)


# ---------------------------------------------------------------------- SIGKILL

LAUNCHER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_search_scale import InstantAccuracy
    from test_search_runner import MaddsLatency, ToySpace
    from mnas.search.config import SearchConfig
    from mnas.search.runner import run_search
    cfg = SearchConfig(target_ms=4.0, space="toy", device="toy-phone", evaluator="toy", strategy="random",
                       trials={trials}, reward="soft", out={out!r}, seed=0, batch=4)
    run_search(cfg, resume={resume}, space=ToySpace(), predictor=MaddsLatency(), evaluator=InstantAccuracy({delay}),
               progress=False, plot=False)
    """
)


def _launch(out: Path, resume: bool, trials: int = 60, delay: float = 0.03) -> subprocess.Popen:
    code = LAUNCHER.format(tests=str(TESTS), trials=trials, out=str(out), resume=resume, delay=delay)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stored(journal: Path):
    import optuna

    from mnas.search.storage import open_journal

    storage, _ = open_journal(journal)
    return optuna.load_study(study_name="mnas-search", storage=storage).get_trials(deepcopy=False)


def test_sigkill_mid_round_then_resume_loses_nothing_and_repeats_nothing(tmp_path):
    out = tmp_path / "killed"
    journal = out / "trials.journal"
    proc = _launch(out, resume=False)
    deadline = time.time() + 120
    while time.time() < deadline:
        if journal.exists() and journal.stat().st_size > 0 and journal.read_bytes().count(b'"op_code":4') >= 12:
            break  # at least 12 trials stored (op 4 = create trial)
        if proc.poll() is not None:
            pytest.fail(f"search ended early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("search made no progress in 120 s")
    time.sleep(0.05)  # land inside a round (4 evaluations of 0.03 s)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    before = _stored(journal)
    assert 12 <= len(before) < 60
    assert all(t.state.name == "COMPLETE" for t in before)  # only finished trials are ever stored

    proc = _launch(out, resume=True)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err.decode()[-2000:]
    after = _stored(journal)
    assert [t.number for t in after] == list(range(60))
    assert all(t.state.name == "COMPLETE" for t in after)
    for t in before:  # every trial stored before the kill is kept as it was
        assert after[t.number].params == t.params and after[t.number].values == t.values
    keys = [tuple(sorted(t.params.items())) for t in after]
    assert len(keys) == len(set(keys))  # no architecture evaluated twice
    table = pd.read_csv(out / "trials.csv")
    assert (table["state"] == "COMPLETE").sum() == 60


def test_window_shows_the_strategy_only_the_newest_trials(tmp_path):
    """With a window, TPE samples as if the study held only the newest trials; every trial is still stored."""
    import optuna

    seen: list[int] = []

    class Spy(optuna.samplers.RandomSampler):
        def sample_relative(self, study, trial, search_space):
            seen.append(len(study.get_trials(deepcopy=False)))
            return super().sample_relative(study, trial, search_space)

    from mnas.search import runner

    real = runner.make_sampler
    runner.make_sampler = lambda config, comp, existing=0: Spy(seed=0)
    try:
        res = run(tmp_path, "w", strategy="tpe", window=5, trials=23)
        mem_res = run(tmp_path, "wm", strategy="tpe", window=5, trials=23, storage="memory")
    finally:
        runner.make_sampler = real
    assert (res.table["state"] == "COMPLETE").sum() == 23 and res.table["number"].tolist() == list(range(23))
    assert mem_res.table["number"].tolist() == list(range(23))  # the in-memory study keeps what slid out
    first = seen[:23]
    # each ask sees the finished trials plus itself: 1..10, then back to the newest 5 (+ itself) after a slide
    assert first[:10] == list(range(1, 11)) and max(first) <= 10
    assert first[10:15] == [6, 7, 8, 9, 10] and first[15] == 6
    with pytest.raises(MnasError, match="window does not apply to strategy 'rl'"):
        run(tmp_path, "x", strategy="rl", window=5)


# ---------------------------------------------------------------------- Ray


@pytest.mark.slow  # Ray start-up (~15 s on 2 busy cores)
def test_ray_rounds_give_the_local_trials(tmp_path, ray_local):
    """Instant evaluator on Ray: rounds split into tasks of many architectures; the same trials as locally."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(sys.modules["test_search_runner"])
    local = run(tmp_path, "local", trials=50, batch=16)
    ray_run = run(tmp_path, "ray", trials=50, batch=16, backend="ray")
    assert (ray_run.run_dir / "trials.journal").is_file()
    assert trials(ray_run) == trials(local)


@pytest.mark.slow
def test_ray_expensive_trials_one_per_task_and_orphans_requeued(tmp_path, ray_local):
    """Expensive evaluator on Ray: one trial per task on SQLite; a trial a dead driver left RUNNING is retried."""
    import optuna
    from ray import cloudpickle

    from mnas.search.ray_backend import _requeue_orphans

    cloudpickle.register_pickle_by_value(sys.modules["test_search_runner"])
    res = run(tmp_path, "slow", trials=4, evaluator=MaddsAccuracy(), backend="ray")
    db = f"sqlite:///{res.run_dir / 'trials.db'}"
    study = optuna.load_study(study_name="mnas-search", storage=db)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    orphan = study.ask({n: d for n, d in study.trials[0].distributions.items()})  # as if the driver died here
    assert _requeue_orphans(study) == 1
    states = {t.number: t.state.name for t in study.trials}
    assert states[orphan.number] == "FAIL" and list(states.values()).count("WAITING") == 1
    more = run(tmp_path, "slow", trials=5, evaluator=MaddsAccuracy(), backend="ray", resume=True)
    retried = [t for t in optuna.load_study(study_name="mnas-search", storage=db).trials
               if t.user_attrs.get("retry_of") == orphan.number]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE" and retried[0].params == orphan.params
    assert (more.table["state"] == "COMPLETE").sum() == 5

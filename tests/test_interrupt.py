"""Ctrl-C, SIGTERM and two processes on one run folder, against a real `mnas search` subprocess.

The search runs the real CLI on the v3_small space and the pixel1 table with a slow
stand-in accuracy (``SlowMadds``: a fixed function of multiply-adds after a short
sleep, registered in the subprocess), so a signal lands in the middle of a trial.
Checked against the stored study, not against what the command printed: after an
interrupt no trial is left RUNNING, every completed trial is kept, and a resume ends
with exactly the requested number of completed trials, none repeated.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mnas.accuracy.base import Evaluator

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


class SlowMadds(Evaluator):
    """top-1 = 40 + 5·log10(multiply-adds) after ``delay`` seconds (trial-by-trial storage: SQLite)."""

    name = "slowmadds"
    instant = False

    def __init__(self, space=None, cache=None, delay: float = 0.2):
        super().__init__(space, cache)
        self.delay = delay

    def config(self) -> dict:
        return {**super().config(), "delay": self.delay}

    def _evaluate(self, net, sample):
        from mnas.counting import count

        time.sleep(self.delay)
        return {"top1": 40.0 + 5.0 * math.log10(count(net).madds), "loss": 0.0}


class SlowMaddsRounds(SlowMadds):
    """The same, declared instant: the runner uses rounds on the journal storage."""

    name = "slowmadds_rounds"
    instant = True


LAUNCHER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from mnas.accuracy.base import EVALUATORS
    EVALUATORS["slowmadds"] = "test_interrupt:SlowMadds"
    EVALUATORS["slowmadds_rounds"] = "test_interrupt:SlowMaddsRounds"
    from mnas.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _mnas(*argv, env_extra: dict | None = None, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MNAS_DEBUG": "", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-c", LAUNCHER.format(tests=str(TESTS)), *map(str, argv)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _search(out: Path, evaluator: str, trials: int, *extra) -> subprocess.Popen:
    # evolution: rounds of one trial on the journal storage (random would ask all 12 in one round)
    return _mnas("search", "--target-ms", "15", "--trials", trials, "--strategy", "evolution", "--evaluator", evaluator,
                 "--out", out, "--no-progress", *extra)


def _trials(out: Path):
    """The stored trials (SQLite or journal, whichever the run has)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if (out / "trials.db").is_file():
        storage = f"sqlite:///{out / 'trials.db'}"
    elif not (out / "trials.journal").is_file():
        return []  # not started yet (opening a journal backend would create the file)
    else:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(out / "trials.journal")))
    return optuna.load_study(study_name="mnas-search", storage=storage).get_trials(deepcopy=False)


def _completed(out: Path) -> int:
    """Completed trials so far, read without Optuna's storage classes (which may create or migrate the file)."""
    import sqlite3

    try:
        if (out / "trials.db").is_file():
            con = sqlite3.connect(f"file:{out / 'trials.db'}?mode=ro", uri=True, timeout=30)
            try:
                return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
            finally:
                con.close()
        return sum(t.state.name == "COMPLETE" for t in _trials(out))
    except Exception:  # not created yet, or being written
        return 0


def _wait_for(proc: subprocess.Popen, cond, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            pytest.fail(f"search ended before {what}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no {what} within {timeout} s")


def _interrupt_then_resume(tmp_path, evaluator: str, sig: int, retried: bool) -> None:
    out, trials = tmp_path / "run", 12
    proc = _search(out, evaluator, trials)
    _wait_for(proc, lambda: _completed(out) >= 3, "3 completed trials")
    time.sleep(0.07)  # land inside a 0.2 s evaluation
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.count("\n") == 1 and "Traceback" not in err, err  # one line
    assert f"interrupted by {signal.Signals(sig).name}" in err and f"--resume {out}" in err, err

    before = _trials(out)
    assert not [t.number for t in before if t.state.name == "RUNNING"]  # nothing left running
    done = {t.number: (t.params, t.values) for t in before if t.state.name == "COMPLETE"}
    assert 3 <= len(done) < trials

    proc = _mnas("search", "--resume", out, "--no-progress")
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    after = _trials(out)
    complete = [t for t in after if t.state.name == "COMPLETE"]
    assert len(complete) == trials  # exactly the requested number: none lost, none extra
    assert len({t.number for t in after}) == len(after)
    by_number = {t.number: t for t in after}
    for n, (params, values) in done.items():  # finished work kept as it was, not redone
        assert by_number[n].state.name == "COMPLETE" and by_number[n].params == params
        assert by_number[n].values == values
    assert not [t for t in after if t.state.name in ("RUNNING", "WAITING")]
    cut = [t for t in before if t.state.name == "FAIL"]
    assert len(cut) <= 1  # at most the trial the signal cut short (none if it landed between two trials)
    if retried and cut:  # that trial was re-queued with its choices and evaluated first on resume
        retries = [t for t in after if t.user_attrs.get("retry_of_interrupted") == cut[0].number]
        assert len(retries) == 1 and retries[0].state.name == "COMPLETE" and retries[0].params == cut[0].params


@pytest.mark.slow  # two CLI subprocesses, ~15 s on 2 busy cores
def test_sigint_during_a_trial_fails_it_and_resume_completes(tmp_path):
    _interrupt_then_resume(tmp_path, "slowmadds", signal.SIGINT, retried=True)


@pytest.mark.slow
def test_sigterm_in_a_rounds_search_is_graceful_and_resume_completes(tmp_path):
    _interrupt_then_resume(tmp_path, "slowmadds_rounds", signal.SIGTERM, retried=False)


@pytest.mark.slow
def test_a_second_search_on_a_busy_run_folder_is_refused_before_writing(tmp_path):
    out = tmp_path / "run"
    first = _search(out, "slowmadds", 10)
    try:
        _wait_for(first, lambda: _completed(out) >= 1, "a completed trial")
        config = (out / "config.yaml").read_text()
        for argv in (("search", "--target-ms", "25", "--trials", "5", "--out", out),
                     ("search", "--resume", out, "--trials", "20")):
            second = _mnas(*argv, "--no-progress")
            _, err = second.communicate(timeout=60)
            assert second.returncode == 2, err
            assert err.count("\n") == 1 and "Traceback" not in err, err
            assert f"is in use by process {first.pid}" in err, err
            assert (out / "config.yaml").read_text() == config  # the loser wrote nothing
        _, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        assert _completed(out) == 10
    finally:
        if first.poll() is None:
            first.kill()


# ---------------------------------------------------------------------- supernet training

TOY_SPACE = """
name: toy
resolution: 16
mode: layer
stem: {out: 8, kernel: 3, stride: 1, act: re}
stages:
  - name: s1
    out: 16
    stride: 2
    depth: 1
    choices: {kernel: [3, 5], expand: [3, 6], se: [false, true], act: [re, hs]}
  - name: s2
    out: 24
    stride: 2
    depth: 2
    choices: {width: [0.5, 1.0], depth: [-1, 0]}
head: {conv: 32, conv_act: hs, dropout: 0.0}
"""


def _train(space: Path, out: Path) -> subprocess.Popen:
    return _mnas("supernet", "train", "--space", space, "--dataset", "digits", "--steps", 200, "--batch", 8,
                 "--threads", 1, "--out", out, "--no-progress", env_extra={"MNAS_CACHE": str(out.parent / "cache")})


@pytest.mark.slow  # three short trainings in subprocesses, ~40 s
def test_supernet_interrupted_then_resumed_equals_the_uninterrupted_training(tmp_path):
    import re

    import torch

    space = tmp_path / "toy.yaml"
    space.write_text(TOY_SPACE)
    whole, cut = tmp_path / "whole.pt", tmp_path / "cut.pt"
    proc = _train(space, whole)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    other = _mnas("supernet", "train", "--space", space, "--dataset", "digits", "--steps", 100, "--batch", 8,
                  "--out", whole, "--no-progress")  # the finished file is not returned as if trained so
    _, err = other.communicate(timeout=120)
    assert other.returncode == 2 and err.count("\n") == 1 and "steps (200 there, 100 now)" in err, err

    proc = _train(space, cut)
    _wait_for(proc, lambda: cut.with_suffix(".ckpt").is_file(), "the first checkpoint", timeout=300)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.count("\n") == 1 and "Traceback" not in err, err
    m = re.search(r"interrupted by SIGINT: training saved at step (\d+) of 200 in \S+cut\.ckpt", err)
    assert m and int(m.group(1)) % 100 == 0, err  # the step of a checkpoint that exists, not a promise
    assert not cut.exists()

    proc = _train(space, cut)  # the same command again continues from the checkpoint
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    a, b = torch.load(whole, weights_only=False), torch.load(cut, weights_only=False)
    assert a["losses"] == b["losses"]  # every step the same as without the interrupt
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


def test_supernet_interrupted_before_its_first_checkpoint_says_nothing_was_saved(tmp_path):
    space = tmp_path / "toy.yaml"
    space.write_text(TOY_SPACE)
    code = textwrap.dedent(
        """
        import sys
        import mnas.accuracy.supernet as s
        def interrupted(*a, **k):
            raise KeyboardInterrupt
        s.ensure_trained = interrupted
        from mnas.cli import main
        sys.exit(main(sys.argv[1:]))
        """
    )
    out = tmp_path / "s.pt"
    r = subprocess.run([sys.executable, "-c", code, "supernet", "train", "--space", str(space), "--dataset", "digits",
                        "--steps", "200", "--batch", "8", "--out", str(out), "--no-progress"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert r.returncode == 130, r.stderr
    assert r.stderr == "mnas: interrupted by SIGINT: nothing saved (no checkpoint yet; one is written every 100 steps)\n"
    assert not out.exists() and not out.with_suffix(".ckpt").exists()

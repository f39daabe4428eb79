"""Bad input, every subcommand: exit code 2, one line on stderr naming what is wrong, no traceback, nothing written.

The cases are the reproductions of issue 15 and their kin. Each runs the CLI in-process
(``mnas.cli.main``) and checks, besides the exit code and the one line, the part of the
message that names the culprit (the flag, the file, the field), and that no output
appeared where the command would have written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mnas.cli import main

REPO = Path(__file__).resolve().parents[1]
BINARY = bytes(range(256)) * 4  # not UTF-8 text anywhere


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str, exit_code: int = 2) -> None:
    assert code == exit_code, err
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line, got:\n{err}"
    assert "Traceback" not in err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"


# ---------------------------------------------------------------------- numeric options

NUMERIC = [
    # (argv, flag named in the message)
    (["search", "--target-ms", "nan"], "--target-ms"),
    (["search", "--target-ms", "inf"], "--target-ms"),
    (["search", "--target-ms", "-1"], "--target-ms"),
    (["search", "--target-ms", "0"], "--target-ms"),
    (["search", "--target-ms", "15", "--reward", "custom", "--alpha", "nan", "--beta", "-0.07"], "--alpha"),
    (["search", "--target-ms", "15", "--reward", "custom", "--alpha", "-0.07", "--beta", "inf"], "--beta"),
    (["search", "--target-ms", "15", "--trials", "0"], "--trials"),
    (["search", "--target-ms", "15", "--trials", "-5"], "--trials"),
    (["search", "--target-ms", "15", "--trials", "2.5"], "--trials"),
    (["search", "--target-ms", "15", "--seed", "-1"], "--seed"),
    (["search", "--target-ms", "15", "--top", "0"], "--top"),
    (["search", "--target-ms", "15", "--gpus-per-trial", "-1"], "--gpus-per-trial"),
    (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "nan"], "--target-ms"),
    (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "inf"], "--target-ms"),
    (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "10", "--delta", "2"], "--delta"),
    (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "10", "--lr", "nan"], "--lr"),
    (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "10", "--finetune-steps", "0"],
     "--finetune-steps"),
    (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "10", "--workers", "0"],
     "--workers"),
    (["replay", "v3-large", "--target-ms", "nan"], "--target-ms"),
    (["replay", "v3-small", "--trials", "0"], "--trials"),
    (["replay", "v3-small", "--delta", "0"], "--delta"),
    (["supernet", "train", "--space", "v3_small", "--steps", "0"], "--steps"),
    (["supernet", "train", "--space", "v3_small", "--steps", "-4"], "--steps"),
    (["supernet", "train", "--space", "v3_small", "--lr", "nan"], "--lr"),
    (["supernet", "train", "--space", "v3_small", "--epochs", "nan"], "--epochs"),
    (["supernet", "train", "--space", "v3_small", "--epochs", "0"], "--epochs"),
    (["supernet", "train", "--space", "v3_small", "--batch", "0"], "--batch"),
    (["supernet", "train", "--space", "v3_small", "--val-size", "-1"], "--val-size"),
    (["latency", "profile", "--device", "x", "--space", "v3_small", "--limit", "-1"], "--limit"),
    (["latency", "profile", "--device", "x", "--space", "v3_small", "--budget", "nan"], "--budget"),
    (["latency", "profile", "--device", "x", "--space", "v3_small", "--threads", "0"], "--threads"),
    (["latency", "profile", "--device", "x", "--space", "v3_small", "--calibrate", "-1"], "--calibrate"),
    (["latency", "validate", "--device", "pixel1", "--rounds", "0"], "--rounds"),
    (["latency", "validate", "--device", "pixel1", "--samples", "0"], "--samples"),
    (["latency", "predict", "mobilenet_v2", "--device", "pixel1", "--classes", "-3"], "--classes"),
    (["arch", "show", "mobilenet_v2", "--classes", "0"], "--classes"),
    (["arch", "show", "mobilenet_v2", "--classes", "-3"], "--classes"),
    (["arch", "show", "mobilenet_v2", "--resolution", "0"], "--resolution"),
    (["export", "mobilenet_v2", "--classes", "0", "--out", "x.onnx"], "--classes"),
    (["eval", "mobilenet_v2", "--evaluator", "train", "--steps", "0"], "--steps"),
    (["eval", "mobilenet_v2", "--evaluator", "train", "--epochs", "nan"], "--epochs"),
]


@pytest.mark.parametrize("argv,flag", NUMERIC, ids=[" ".join(a[:2] + a[-2:]) for a, _ in NUMERIC])
def test_bad_number_is_one_line_naming_the_flag(capsys, tmp_path, monkeypatch, argv, flag):
    monkeypatch.chdir(tmp_path)  # any default output (runs/…) would land here
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, err, f"argument {flag}")
    assert out == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_every_numeric_option_of_every_subcommand_is_checked():
    """A new option declared ``type=int`` or ``type=float`` gets a checking type (a nan or a negative never passes)."""
    import argparse

    from mnas.cli import make_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, (*path, name))
            else:
                yield path, action

    checked = 0
    for path, action in walk(make_parser(), ()):
        assert action.type not in (int, float), f"mnas {' '.join(path)} {action.option_strings}: unchecked number"
        if action.type is not None and getattr(action.type, "__module__", "") == "mnas.cli.common":
            if action.dest != "out":
                signed = action.dest in ("alpha", "beta")  # reward exponents may be negative
                for bad in ("nan", "inf") if signed else ("nan", "inf", "-1"):
                    with pytest.raises(argparse.ArgumentTypeError):
                        action.type(bad)  # the rejection itself, not just the name of the type
                checked += 1
    assert checked >= 40  # the options listed in NUMERIC and their kin


# ---------------------------------------------------------------------- files that are not text


@pytest.fixture
def binary(tmp_path):
    def make(name: str) -> Path:
        p = tmp_path / name
        p.write_bytes(BINARY)
        return p

    return make


def _binary_run_dir(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "config.yaml").write_bytes(BINARY)
    return d


BINARY_CASES = {
    "arch show yaml": lambda b, t: (["arch", "show", b("net.yaml")], "net.yaml"),
    "arch show text": lambda b, t: (["arch", "show", b("net.txt")], "net.txt"),
    "export": lambda b, t: (["export", b("net.yaml"), "--format", "onnx", "--out", t / "x.onnx"], "net.yaml"),
    "eval": lambda b, t: (["eval", b("net.json")], "net.json"),
    "netadapt --arch": lambda b, t: (["netadapt", "--arch", b("net.yaml"), "--device", "pixel1", "--target-ms", "10",
                                      "--out", t / "na"], "net.yaml"),
    "netadapt --device": lambda b, t: (["netadapt", "--arch", "mobilenet_v3_small", "--device", b("dev.csv"),
                                        "--target-ms", "10", "--out", t / "na"], "dev.csv"),
    "netadapt --resume": lambda b, t: (["netadapt", "--resume", _binary_run_dir(t, "na_run")], "config.yaml"),
    "latency predict": lambda b, t: (["latency", "predict", "mobilenet_v2", "--device", b("dev.csv")], "dev.csv"),
    "latency import-ofa": lambda b, t: (["latency", "import-ofa", b("ofa.yaml"), "--device", "z", "--out",
                                         t / "z.csv"], "ofa.yaml"),
    "search --space": lambda b, t: (["search", "--space", b("space.yaml"), "--target-ms", "15", "--out", t / "s"],
                                    "space.yaml"),
    "search --config": lambda b, t: (["search", "--config", b("config.yaml")], "config.yaml"),
    "search --resume": lambda b, t: (["search", "--resume", _binary_run_dir(t, "s_run")], "config.yaml"),
    "supernet --space": lambda b, t: (["supernet", "train", "--space", b("space.yaml"), "--out", t / "s.pt"],
                                      "space.yaml"),
    "replay config": lambda b, t: (["replay", "v3-large", "--out", _binary_run_dir(t, "r_run")], "config.yaml"),
    "plot pareto config": lambda b, t: (["plot", "pareto", _binary_run_dir(t, "p_run"), "--out", t / "p.png"],
                                        "config.yaml"),
}


def _binary_table(tmp_path: Path, name: str, table: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / table).write_bytes(BINARY)
    return d


BINARY_CASES.update({
    "plot pareto trials.csv": lambda b, t: (["plot", "pareto", _binary_table(t, "p_run", "trials.csv"), "--out",
                                            t / "p.png"], "trials.csv"),
    "plot search trials.csv": lambda b, t: (["plot", "search", _binary_table(t, "p_run", "trials.csv"), "--out",
                                            t / "p.png"], "trials.csv"),
    "plot netadapt path.csv": lambda b, t: (["plot", "netadapt", _binary_table(t, "n_run", "path.csv"), "--out",
                                            t / "p.png"], "path.csv"),
})


@pytest.mark.parametrize("case", sorted(BINARY_CASES))
def test_binary_file_is_one_line_naming_the_file(capsys, tmp_path, binary, case):
    argv, name = BINARY_CASES[case](binary, tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, name, "binary data")
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


# ---------------------------------------------------------------------- --out checked before any work

def _file(tmp_path: Path) -> Path:
    p = tmp_path / "taken.txt"
    p.write_text("not a folder\n")
    return p


OUT_CASES = {
    "search into a file": lambda t: (["search", "--target-ms", "15", "--out", _file(t)], "is a file"),
    "search under a file": lambda t: (["search", "--target-ms", "15", "--out", _file(t) / "run"], "is a file"),
    "netadapt into a file": lambda t: (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1",
                                        "--target-ms", "10", "--out", _file(t)], "is a file"),
    "replay into a file": lambda t: (["replay", "v3-large", "--out", _file(t)], "is a file"),
    "supernet into a folder": lambda t: (["supernet", "train", "--space", "v3_small", "--out", t], "is a folder"),
    "supernet bad suffix": lambda t: (["supernet", "train", "--space", "v3_small", "--out", t / "s.txt"], ".pt"),
    "plot into a folder": lambda t: (["plot", "search", t, "--out", t], "is a folder"),
    "plot bad extension": lambda t: (["plot", "pareto", t, "--out", t / "front.bmp"], "unsupported file type"),
    "export into a folder": lambda t: (["export", "mobilenet_v2", "--out", t], "is a folder"),
    "latency profile into a folder": lambda t: (["latency", "profile", "--device", "x", "--space", "v3_small",
                                                 "--out", t], "is a folder"),
    "latency validate into a file": lambda t: (["latency", "validate", "--device", "pixel1", "--out", _file(t)],
                                               "is a file"),
}


@pytest.mark.parametrize("case", sorted(OUT_CASES))
def test_bad_out_is_refused_before_anything_is_written(capsys, tmp_path, case):
    argv, needle = OUT_CASES[case](tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, "--out", needle)
    assert sorted(tmp_path.rglob("*")) == before


def test_export_suffix_must_match_the_format(capsys, tmp_path):
    code, _, err = run(capsys, "export", "mobilenet_v2", "--format", "yaml", "--out", tmp_path / "net.json")
    assert_one_line_error(code, err, "net.yaml")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- fields of data files


@pytest.fixture
def v3s_yaml(tmp_path, capsys) -> str:
    code, _, err = run(capsys, "export", "mobilenet_v3_small", "--format", "yaml", "--out", tmp_path / "v3s.yaml")
    assert code == 0, err
    return (tmp_path / "v3s.yaml").read_text()


@pytest.mark.parametrize("old,new,needle", [
    ("stem:\n  out: 16\n", "stem:\n  out: 16.5\n", "out must be a whole number, got 16.5"),
    ("  kernel: 3\n  stride: 2\n", "  kernel: true\n  stride: 2\n", "kernel must be a whole number, got True"),
    ("resolution: 224\n", "resolution: 224.5\n", "resolution must be a whole number"),
    ("  exp: 16\n", "  exp: 16.0\n", "exp must be a whole number"),
])
def test_architecture_fields_must_be_whole_numbers(capsys, tmp_path, v3s_yaml, old, new, needle):
    assert old in v3s_yaml
    bad = tmp_path / "bad.yaml"
    bad.write_text(v3s_yaml.replace(old, new, 1))
    for argv in (["arch", "show", bad], ["export", bad, "--out", tmp_path / "x.onnx"]):
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, "bad.yaml", needle)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("out", ["-16", "0", "16.5", "true"])
def test_space_stage_width_is_rejected_not_clamped(capsys, tmp_path, out):
    text = (REPO / "search_spaces" / "v3_small.yaml").read_text()
    assert "\n    out: 16\n" in text
    bad = tmp_path / "space.yaml"
    bad.write_text(text.replace("\n    out: 16\n", f"\n    out: {out}\n", 1))
    code, _, err = run(capsys, "search", "--space", bad, "--target-ms", "15", "--out", tmp_path / "run")
    assert_one_line_error(code, err, "space.yaml", "out", "must be a whole number >= 1")
    assert not (tmp_path / "run").exists()


def test_latency_table_with_a_negative_time_is_rejected(capsys, tmp_path):
    lines = (REPO / "latency_tables" / "xeon-onnxruntime.csv").read_text().splitlines(keepends=True)
    i = next(k for k, line in enumerate(lines) if line.startswith("key,")) + 1
    key, ms, *rest = lines[i].split(",")
    lines[i] = ",".join([key, f"-{ms}", *rest])
    bad = tmp_path / "neg.csv"
    bad.write_text("".join(lines))
    code, _, err = run(capsys, "latency", "predict", "mobilenet_v3_small", "--device", bad)
    assert_one_line_error(code, err, "neg.csv", key, "must be finite and >= 0")


@pytest.mark.parametrize("text,needle", [
    ("target_ms: .nan\n", "target_ms must be a finite number"),
    ("target_ms: .inf\n", "target_ms must be a finite number"),
    ("target_ms: 15\ntrials: 2.5\n", "trials must be a whole number, got 2.5"),
    ("target_ms: 15\ntrials: true\n", "trials must be a whole number, got True"),
    ("target_ms: 15\nreward: custom\nalpha: .nan\nbeta: -0.07\n", "alpha must be a finite number"),
    ("target_ms: 15\nlayerwise: 1\n", "layerwise must be true or false"),
    ("target_ms: 15\nspace: [1, 2]\n", "space must be a string"),
])
def test_config_file_values_are_checked_like_flags(capsys, tmp_path, monkeypatch, text, needle):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    code, _, err = run(capsys, "search", "--config", cfg)
    assert_one_line_error(code, err, "cfg.yaml", needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]


# ---------------------------------------------------------------------- resuming damaged runs


def _rdb_run(tmp_path: Path) -> Path:
    """A run folder as `mnas search` leaves it for a trial-by-trial (SQLite) search: config.yaml + trials.db."""
    from mnas.search.config import SearchConfig

    run_dir = tmp_path / "run"
    SearchConfig(target_ms=15, evaluator="train", out=str(run_dir)).save(run_dir / "config.yaml")
    return run_dir


@pytest.mark.parametrize("damage,needle", [
    (lambda db: db.write_bytes(b""), "is empty"),
    (lambda db: db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84), "damaged"),
    (lambda db: db.write_bytes(b"garbage, not a database\n" * 10), "not an SQLite database"),
])
def test_resume_with_damaged_trials_db_is_reported_not_restarted(capsys, tmp_path, damage, needle):
    run_dir = _rdb_run(tmp_path)
    damage(run_dir / "trials.db")
    before = (run_dir / "trials.db").read_bytes()
    code, _, err = run(capsys, "search", "--resume", run_dir, "--no-progress")
    assert_one_line_error(code, err, "trials.db", needle)
    assert (run_dir / "trials.db").read_bytes() == before  # left for the user to inspect, not replaced


def test_resume_of_a_sqlite_file_without_the_study_is_reported(capsys, tmp_path):
    import sqlite3

    run_dir = _rdb_run(tmp_path)
    con = sqlite3.connect(run_dir / "trials.db")
    con.execute("CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name TEXT)")
    con.commit()
    con.close()
    code, _, err = run(capsys, "search", "--resume", run_dir, "--no-progress")
    assert_one_line_error(code, err, "trials.db", "holds no study 'mnas-search'")


def test_resume_of_a_folder_that_does_not_exist_creates_nothing(capsys, tmp_path):
    code, _, err = run(capsys, "search", "--resume", tmp_path / "typo")
    assert_one_line_error(code, err, "typo", "no such")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- a run folder busy in another process

HOLDER = textwrap.dedent(
    """
    import sys, time
    from mnas.io import claim_run_dir
    claim_run_dir(sys.argv[1], "search")
    print("held", flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def busy_run(tmp_path):
    """A run folder whose lock another live process holds; yields (folder, pid)."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "held"
        yield run_dir, proc.pid
    finally:
        proc.kill()
        proc.wait()


BUSY_STARTS = {
    "search": ["search", "--target-ms", "15", "--trials", "3", "--no-progress", "--out"],
    "netadapt": ["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "12",
                 "--budget", "smoke", "--dataset", "digits", "--no-progress", "--out"],
    "replay": ["replay", "v3-large", "--budget", "smoke", "--no-progress", "--out"],
}


@pytest.mark.parametrize("command", sorted(BUSY_STARTS))
def test_start_on_a_busy_run_folder_is_refused_before_writing(capsys, busy_run, command):
    run_dir, pid = busy_run
    code, _, err = run(capsys, *BUSY_STARTS[command], run_dir)
    assert_one_line_error(code, err, f"in use by process {pid}")
    assert not run_dir.exists() or list(run_dir.iterdir()) == []


def test_a_dead_owners_lock_is_taken_over(capsys, tmp_path):
    from mnas.io import claim_run_dir, lock_path

    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    assert lock_path(run_dir).read_text().strip() == str(proc.pid)
    proc.send_signal(signal.SIGKILL)  # no clean-up: the lock file stays, naming a dead process
    proc.wait()
    assert lock_path(run_dir).is_file()
    lock = claim_run_dir(run_dir, "search")
    try:
        assert lock.held and lock_path(run_dir).read_text().strip() == str(os.getpid())
    finally:
        lock.release()
    assert not lock_path(run_dir).exists()


# ---------------------------------------------------------------------- the error path itself


def _command_raising(monkeypatch, exc: BaseException) -> None:
    import mnas.cli.arch as cli_arch

    def boom(args):
        raise exc

    monkeypatch.setattr(cli_arch, "cmd_list", boom)


def test_unexpected_error_is_one_line_with_the_traceback_saved(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MNAS_CACHE", str(tmp_path))
    monkeypatch.delenv("MNAS_DEBUG", raising=False)
    _command_raising(monkeypatch, ZeroDivisionError("float division by zero"))
    code, _, err = run(capsys, "arch", "list")
    assert_one_line_error(code, err, "internal error: ZeroDivisionError: float division by zero", "MNAS_DEBUG=1",
                          str(tmp_path / "last-traceback.txt"), exit_code=1)
    saved = (tmp_path / "last-traceback.txt").read_text()
    assert "Traceback" in saved and "ZeroDivisionError" in saved and "boom" in saved


def test_mnas_debug_reraises(monkeypatch):
    monkeypatch.setenv("MNAS_DEBUG", "1")
    _command_raising(monkeypatch, ZeroDivisionError("x"))
    with pytest.raises(ZeroDivisionError):
        main(["arch", "list"])


def test_keyboard_interrupt_is_one_line_and_exit_130(capsys, monkeypatch):
    _command_raising(monkeypatch, KeyboardInterrupt())
    code, _, err = run(capsys, "arch", "list")
    assert_one_line_error(code, err, "interrupted", exit_code=130)
    assert "saved" not in err  # nothing claims work was saved that the command did not save


def test_sigterm_becomes_a_clean_exit_130(tmp_path):
    code = textwrap.dedent(
        """
        import sys, time
        import mnas.cli.arch as a
        def slow(args):
            print("ready", flush=True)
            time.sleep(30)
        a.cmd_list = slow
        from mnas.cli import main
        sys.exit(main(["arch", "list"]))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)  # the command sleeps 30 s: only the signal ends it in time
    assert proc.returncode == 130 and err.strip() == "mnas: terminated by SIGTERM", err


# ---------------------------------------------------------------------- supernet files of other settings


def test_supernet_checkpoint_of_other_settings_is_not_resumed(capsys, tmp_path):
    import json

    from mnas.accuracy.supernet_train import SupernetConfig
    from mnas.cli.supernet import _settings
    from mnas.space import load_space

    out = tmp_path / "s.pt"
    ckpt = out.with_suffix(".ckpt")
    ckpt.write_bytes(b"an unfinished training")  # never loaded: the settings beside it are checked first
    argv = ["supernet", "train", "--space", "v3_small", "--dataset", "digits", "--steps", "200", "--batch", "8",
            "--out", out, "--no-progress"]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, "s.ckpt", "unknown settings")

    started = SupernetConfig(steps=200, batch=8, lr=0.1, val_size=360)  # an earlier start with --lr 0.1
    (tmp_path / "s.pt.settings.json").write_text(json.dumps(_settings(load_space("v3_small"), "digits", started)))
    code, _, err = run(capsys, *argv, "--lr", "0.05")
    assert_one_line_error(code, err, "s.ckpt", "other settings", "lr (0.1 there, 0.05 now)")
    code, _, err = run(capsys, *[a if a != "v3_small" else "v3_large" for a in argv], "--lr", "0.1")
    assert_one_line_error(code, err, "s.ckpt", "space ('v3_small' there, 'v3_large' now)")
    assert ckpt.read_bytes() == b"an unfinished training" and not out.exists()


def test_supernet_file_that_is_not_a_supernet_is_refused(capsys, tmp_path):
    out = tmp_path / "s.pt"
    out.write_bytes(BINARY)
    code, _, err = run(capsys, "supernet", "train", "--space", "v3_small", "--dataset", "digits", "--out", out)
    assert_one_line_error(code, err, "s.pt", "not a supernet file")
    assert out.read_bytes() == BINARY


# ---------------------------------------------------------------------- audit of issue 15 (regressions)


def test_interrupt_turned_into_another_exception_is_still_an_interrupt(capsys, monkeypatch):
    # a Ctrl-C while matplotlib's Agg renderer draws (a search's final plots) surfaces as
    # `ValueError: Invalid bounding box`; it used to be reported as an internal error, exit 1
    import mnas.cli.arch as cli_arch

    def drawing(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise ValueError("Invalid bounding box") from None

    monkeypatch.setattr(cli_arch, "cmd_list", drawing)
    monkeypatch.delenv("MNAS_DEBUG", raising=False)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code, _, err = run(capsys, "arch", "list")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # main put it back
    finally:
        signal.signal(signal.SIGINT, before)
    assert_one_line_error(code, err, "interrupted by SIGINT", exit_code=130)
    assert "internal error" not in err
    # the next command in this process is not taken for an interrupted one
    _command_raising(monkeypatch, ZeroDivisionError("x"))
    code, _, err = run(capsys, "arch", "list")
    assert_one_line_error(code, err, "internal error: ZeroDivisionError", exit_code=1)


def test_eval_train_on_digits_works_with_the_default_validation_size(capsys, tmp_path):
    # the README's smoke dataset has 1,437 training images: the train evaluator's default 5,000
    # held out used to end in an error; digits holds out 360 (as `supernet train`)
    net = "r8 stem_k3_c8_s1_re ir_k3_e8_c8_re_s1 head_c16_re_f32_re_d0"
    code, out, err = run(capsys, "eval", net, "--evaluator", "train", "--dataset", "digits", "--steps", "1",
                         "--threads", "1", "--cache", tmp_path / "cache.db", "--json")
    assert code == 0, err
    import json

    top1 = json.loads(out)["top1"]
    assert abs(top1 / 100 * 360 - round(top1 / 100 * 360)) < 1e-6  # a whole number of 360 images right


def test_existing_file_that_is_no_latency_table_is_named_as_such(capsys, tmp_path):
    bad = tmp_path / "table.dat"
    bad.write_bytes(BINARY)
    code, _, err = run(capsys, "latency", "predict", "mobilenet_v3_small", "--device", bad)
    assert_one_line_error(code, err, "table.dat", "not a latency table file")
    assert "no such" not in err


def test_latency_table_with_a_malformed_complete_last_line_is_rejected(capsys, tmp_path):
    # only a last line cut short by a kill (no newline) is dropped; a complete malformed one is an error
    text = (REPO / "latency_tables" / "xeon-onnxruntime.csv").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text(text + "conv-in:8x8x3-out:8x8x8-k3-s1-re,abc,0,1\n")
    code, _, err = run(capsys, "latency", "predict", "mobilenet_v3_small", "--device", bad)
    assert_one_line_error(code, err, "bad.csv:", "malformed entry", "abc")

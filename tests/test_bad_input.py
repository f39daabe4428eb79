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
            if action.type.__name__ not in ("out_file", "out_dir", "resume_dir", "cache_file"):  # paths
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
            # short sleeps, not one time.sleep(30): a signal that lands after the interpreter's last
            # check and before the sleep's system call starts does not interrupt that call (CPython runs
            # Python-level handlers between bytecodes), so one long sleep made this test hang at random
            for _ in range(600):
                time.sleep(0.05)
        a.cmd_list = slow
        from mnas.cli import main
        sys.exit(main(["arch", "list"]))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=25)  # the command sleeps 30 s: only the signal ends it in time
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


# ====================================================================== issue 25
# Every write, every option value and every stored file checked: each case is one line naming the real
# cause, exit 2, and nothing written (or changed) where the command would have written.

LONG = "n" * 300  # a file name over the 255 bytes file systems take


def _tree(root: Path) -> list:
    """Every path under ``root`` with its size and content hash: what a refused command must leave alone."""
    import hashlib

    out = []
    for p in sorted(root.rglob("*")):
        out.append((str(p.relative_to(root)), p.is_dir(), None if p.is_dir() else
                    hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "special"))
    return out


# ---------------------------------------------------------------------- writes


def _search_run(tmp_path: Path, capsys, name: str = "run", trials: int = 6) -> Path:
    run_dir = tmp_path / name
    code, _, err = run(capsys, "search", "--target-ms", "15", "--trials", trials, "--strategy", "random",
                       "--no-progress", "--out", run_dir)
    assert code == 0, err
    return run_dir


WRITE_CASES = {
    # (argv with {d} for a destination folder, what the line must name)
    "export": (["export", "mobilenet_v2", "--format", "yaml", "--out", "{d}/net.yaml"], "--out"),
    "export onnx": (["export", "mobilenet_v2", "--out", "{d}/net.onnx"], "--out"),
    "search --out": (["search", "--target-ms", "15", "--trials", "3", "--out", "{d}/run"], "--out"),
    "netadapt --out": (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "10",
                        "--out", "{d}/na"], "--out"),
    "replay --out": (["replay", "v3-large", "--budget", "smoke", "--out", "{d}/r"], "--out"),
    "plot --out": (["plot", "search", "{d}", "--out", "{d}/p.png"], "--out"),
    "supernet --out": (["supernet", "train", "--space", "v3_small", "--out", "{d}/s.pt"], "--out"),
    "latency profile --out": (["latency", "profile", "--device", "x", "--space", "v3_small", "--out", "{d}/x.csv"],
                              "--out"),
    "latency validate --out": (["latency", "validate", "--device", "pixel1", "--out", "{d}/v"], "--out"),
    "latency calibrate --out": (["latency", "calibrate", "--device", "x", "--engine", "torch", "--space", "v3_small",
                                 "--out", "{d}/x.csv"], "--out"),
    "latency calibrate --work": (["latency", "calibrate", "--device", "x", "--engine", "torch", "--space", "v3_small",
                                  "--work", "{d}/w"], "--work"),
    "latency import-ofa --out": (["latency", "import-ofa", str(REPO / "latency_tables" / "README.md"), "--device", "z",
                                  "--out", "{d}/z.csv"], "--out"),
    "eval --cache": (["eval", "mobilenet_v2", "--cache", "{d}/c.db"], "--cache"),
}


def _argv(template: list[str], d: Path) -> list[str]:
    return [a.replace("{d}", str(d)) for a in template]


@pytest.mark.parametrize("case", sorted(WRITE_CASES))
def test_a_name_too_long_is_refused_before_any_work(capsys, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    template, flag = WRITE_CASES[case]
    argv = [a.replace("{d}", str(tmp_path / LONG)) if "{d}/" in a else a.replace("{d}", str(tmp_path))
            for a in template]
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, err, f"argument {flag}", "name too long (300 bytes")
    assert out == "" and list(tmp_path.iterdir()) == []


def _mount_tmpfs(where: Path, options: str) -> bool:
    """Mount a small tmpfs at ``where`` (root only); False where that is not possible (then the test skips)."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    return r.returncode == 0


@pytest.fixture
def small_fs(tmp_path):
    """``make(options)``: a fresh tmpfs folder mounted with ``options`` (``ro``, ``size=64k``), unmounted after."""
    mounts: list[Path] = []

    def make(options: str) -> Path:
        where = tmp_path / f"fs{len(mounts)}"
        if not _mount_tmpfs(where, options):
            pytest.skip("needs root and tmpfs to mount a read-only or full file system")
        mounts.append(where)
        return where

    yield make
    for m in reversed(mounts):
        subprocess.run(["umount", "-l", str(m)], capture_output=True)


@pytest.mark.parametrize("case", sorted(WRITE_CASES))
def test_a_read_only_destination_is_refused_before_any_work(capsys, tmp_path, monkeypatch, small_fs, case):
    ro = small_fs("ro,size=64k")
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    template, flag = WRITE_CASES[case]
    code, out, err = run(capsys, *_argv(template, ro))
    assert_one_line_error(code, err, f"argument {flag}", f"cannot write in {ro}", "read-only")
    assert out == "" and _tree(tmp_path) == before


@pytest.mark.parametrize("case", sorted(WRITE_CASES))
def test_a_full_destination_is_refused_before_any_work(capsys, tmp_path, monkeypatch, small_fs, case):
    full = small_fs("size=64k")
    fd = os.open(full / "filler", os.O_WRONLY | os.O_CREAT)  # fill it: the last write fails with ENOSPC
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    template, flag = WRITE_CASES[case]
    code, out, err = run(capsys, *_argv(template, full))
    assert_one_line_error(code, err, f"argument {flag}", "no space left")
    assert out == "" and _tree(tmp_path) == before


def test_a_disk_that_fills_during_the_write_leaves_no_partial_file(capsys, tmp_path, small_fs):
    """The check passes (space is left), the write itself runs out: one line naming the file, nothing left."""
    fs = small_fs("size=32k")
    ofa = tmp_path / "big_lookup_table.yaml"  # 1,500 ops: a table of ~80 KB
    ofa.write_text("".join(f"Conv-input:{r}x{r}x3-output:{r // 2}x{r // 2}x24:\n  count: 50\n  mean: 1.5\n"
                           "  std: 0.1\n" for r in range(8, 3008, 2)))
    code, out, err = run(capsys, "latency", "import-ofa", ofa, "--device", "big", "--out", fs / "big.csv")
    assert_one_line_error(code, err, f"cannot write {fs / 'big.csv'}", "No space left on device")
    assert out == "" and list(fs.iterdir()) == []
    code, _, err = run(capsys, "latency", "import-ofa", ofa, "--device", "big", "--out", tmp_path / "big.csv")
    assert code == 0, err  # the same import where there is room (the table is not refused for itself)


@pytest.mark.parametrize("special", ["/dev/null", "fifo"])
def test_a_device_or_fifo_as_out_is_refused(capsys, tmp_path, special):
    if special == "fifo":
        special = tmp_path / "fifo"
        os.mkfifo(special)
    code, _, err = run(capsys, "export", "mobilenet_v2", "--format", "yaml", "--out", special)
    assert_one_line_error(code, err, "argument --out", "not a regular file")
    assert Path(special).exists() and not Path(special).is_file()  # still the device / FIFO it was


@pytest.mark.parametrize("special", ["/dev/null", "fifo", "folder"])
def test_a_device_fifo_or_folder_as_an_input_file_says_what_it_is(capsys, tmp_path, special):
    if special == "fifo":
        special = tmp_path / "fifo.yaml"
        os.mkfifo(special)  # reading it would block forever: refused before it is opened
    elif special == "folder":
        special = tmp_path / "cfg.yaml"
        special.mkdir()
    code, _, err = run(capsys, "search", "--config", special)
    assert_one_line_error(code, err, str(special), "is a folder" if str(special).endswith("cfg.yaml")
                          else "not a regular file")
    assert "no such" not in err


def test_a_full_stdout_is_one_line_exit_2(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    for argv in (["arch", "list"], ["arch", "list", "--json"]):
        with open("/dev/full", "w") as full:
            proc = subprocess.run([sys.executable, "-m", "mnas", *argv], stdout=full, stderr=subprocess.PIPE,
                                  text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == "mnas: error: cannot write to standard output (No space left on device)\n"


def test_a_stdout_that_refuses_writes_is_one_line_in_process(capsys, monkeypatch):
    import errno as errno_

    class Full:
        def write(self, text):
            raise OSError(errno_.ENOSPC, os.strerror(errno_.ENOSPC))

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Full())
    code = main(["arch", "list"])
    err = capsys.readouterr().err
    assert_one_line_error(code, err, "cannot write to standard output", os.strerror(errno_.ENOSPC))


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_umasks_mode(tmp_path, umask):
    from mnas.io import atomic_write_text

    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        with open(plain, "w") as f:  # the independent fact: what a plain open() gives under this umask
            f.write("x")
        atomic = atomic_write_text(tmp_path / "atomic.txt", "x")
        replaced = tmp_path / "replaced.txt"
        replaced.write_text("old")
        atomic_write_text(replaced, "new")
    finally:
        os.umask(old)
    mode = plain.stat().st_mode & 0o777
    assert mode == 0o666 & ~umask
    assert atomic.stat().st_mode & 0o777 == mode and replaced.stat().st_mode & 0o777 == mode


def test_a_search_run_is_readable_by_others_under_the_usual_umask(capsys, tmp_path):
    old = os.umask(0o022)
    try:
        run_dir = _search_run(tmp_path, capsys, trials=3)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in run_dir.rglob("*") if p.is_file()}
    assert {"config.yaml", "trials.csv", "trials.journal", "trials.parquet"} <= set(modes)
    assert all(m & 0o044 == 0o044 for m in modes.values()), modes  # group and others can read every file


def test_a_name_of_exactly_255_bytes_is_written(capsys, tmp_path):
    # the temporary name beside it must not push it over the limit
    name = "m" * (255 - len(".yaml")) + ".yaml"
    code, _, err = run(capsys, "export", "mobilenet_v2", "--format", "yaml", "--out", tmp_path / name)
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_export_format_and_suffix_must_agree(capsys, tmp_path):
    code, _, err = run(capsys, "export", "mobilenet_v2", "--format", "onnx", "--out", tmp_path / "model.yaml")
    assert_one_line_error(code, err, "--format onnx writes a .onnx file", "model.onnx", "or add --format yaml")
    assert list(tmp_path.iterdir()) == []
    code, _, err = run(capsys, "export", "mobilenet_v2", "--format", "yaml", "--out", tmp_path / "model.yaml")
    assert code == 0, err  # the suggested fix works


def test_import_ofa_does_not_replace_a_shipped_or_another_table(capsys, tmp_path):
    from mnas.latency.table import SHIPPED_DIR

    ofa = tmp_path / "224_lookup_table.yaml"
    ofa.write_text("Conv-input:224x224x3-output:112x112x24:\n  count: 50\n  mean: 1.5\n  std: 0.1\n")
    shipped = SHIPPED_DIR / "pixel1.csv"
    before = shipped.read_bytes()
    code, _, err = run(capsys, "latency", "import-ofa", ofa, "--device", "pixel1", "--out", shipped)
    assert_one_line_error(code, err, "shipped with mnas", "give another --out")
    assert shipped.read_bytes() == before
    other = tmp_path / "other.csv"
    other.write_bytes((REPO / "latency_tables" / "xeon-onnxruntime.csv").read_bytes())
    code, _, err = run(capsys, "latency", "import-ofa", ofa, "--device", "z", "--out", other)
    assert_one_line_error(code, err, "holds another table", "xeon")
    assert other.read_bytes() == (REPO / "latency_tables" / "xeon-onnxruntime.csv").read_bytes()
    fresh = tmp_path / "z.csv"
    for _ in range(2):  # a new file, then the same import again over it
        code, _, err = run(capsys, "latency", "import-ofa", ofa, "--device", "z", "--out", fresh)
        assert code == 0, err


def test_eval_cache_is_never_written_into_a_searchs_database(capsys, tmp_path):
    import sqlite3

    db = tmp_path / "trials.db"
    import optuna

    optuna.create_study(storage=f"sqlite:///{db}", study_name="mnas-search")
    before = db.read_bytes()
    code, _, err = run(capsys, "eval", "mobilenet_v2", "--cache", db)
    assert_one_line_error(code, err, "argument --cache", "an Optuna study", "give a new file name")
    assert db.read_bytes() == before
    con = sqlite3.connect(db)
    assert "results" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()


# ---------------------------------------------------------------------- option values at parse time

OPTION_CASES = [
    # (argv, needles) — every one refused before a run folder or any output exists
    (["eval", "mobilenet_v3_small", "-e", "train", "-o", "lr=nan"], ["-o lr='nan'", "lr must be a finite number"]),
    (["eval", "mobilenet_v3_small", "-e", "train", "-o", "lr=.nan"], ["lr must be a finite number"]),
    (["eval", "mobilenet_v3_small", "-e", "train", "-o", "steps=abc"], ["steps must be a whole number, got 'abc'"]),
    (["eval", "mobilenet_v3_small", "-e", "train", "-o", "steps=2.5"], ["steps must be a whole number, got 2.5"]),
    (["eval", "mobilenet_v3_small", "-e", "train", "-o", "steps=-3"], ["steps must be a whole number >= 1"]),
    (["eval", "mobilenet_v3_small", "-e", "train", "-o", "augment=maybe"], ["augment must be true or false"]),
    (["eval", "mobilenet_v3_small", "-e", "train", "-o", "label_smoothing=3"], ["label_smoothing must be a fraction"]),
    (["eval", "mobilenet_v3_small", "-e", "train", "-o", "seed=1180591620717411303424"], ["seed must be a whole number between 0"]),
    (["eval", "mobilenet_v3_small", "-o", "lr=0.1"], ["imagenet evaluator: unknown option(s) lr"]),
    (["search", "--target-ms", "15", "--strategy-option", "population_size=abc"],
     ["--strategy-option population_size='abc'", "population_size must be a whole number"]),
    (["search", "--target-ms", "15", "--strategy", "evolution", "--strategy-option", "population_size=2.5"],
     ["population_size must be a whole number, got 2.5"]),
    (["search", "--target-ms", "15", "--strategy", "evolution", "--strategy-option", "population_size=1"],
     ["strategy 'evolution': population_size must be >= 2, got 1"]),
    (["search", "--target-ms", "15", "--strategy", "nsga2", "--strategy-option", "crossover_prob=1.5"],
     ["crossover_prob must be a fraction between 0 and 1"]),
    (["search", "--target-ms", "15", "--strategy", "tpe", "--strategy-option", "n_startup_trials=-1"],
     ["n_startup_trials must be >= 0"]),
    (["search", "--target-ms", "15", "--strategy-option", "popsize=5"], ["unknown option(s) popsize", "population_size"]),
    (["search", "--target-ms", "15", "--evaluator", "train", "--evaluator-option", "steps=abc"],
     ["--evaluator-option steps='abc'", "steps must be a whole number"]),
    (["search", "--target-ms", "15", "--seed", str(2 ** 70)], ["argument --seed", "between 0 and 4294967295"]),
    (["search", "--target", "15"], ["unrecognized arguments: --target 15"]),
    (["search", "--target-ms", "15", "--tri", "3"], ["unrecognized arguments: --tri"]),
    (["search", "--target-ms", "15", "--address", "10.0.0.1:6379"], ["--address only applies with --backend ray"]),
    (["search", "--target-ms", "15", "--gpus-per-trial", "1"], ["--gpus-per-trial only applies with --backend ray"]),
    (["search", "--target-ms", "15", "--alpha", "-0.1"], ["--alpha/--beta set the exponents of --reward custom"]),
    (["search", "--reward", "pareto", "--strategy", "rl"], ["--reward pareto", "needs a multi-objective strategy",
                                                            "--strategy rl optimises one number"]),
    (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "10", "--image-size", "1"],
     ["argument --image-size", "pixels >= 8"]),
    (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "10", "--evaluator", "imagenet",
      "--final-steps", "5"], ["--final-steps set NetAdapt's fine-tuning, which --evaluator imagenet replaces"]),
    (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "10", "--eval-option",
      "steps=3"], ["--eval-option sets an option of a scoring --evaluator", "finetune, takes none"]),
    (["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "10", "--evaluator", "train",
      "--eval-option", "lr=abc"], ["--eval-option lr='abc'", "lr must be a finite number"]),
    (["replay", "v3-large", "--trials", "5"], ["replay v3-large does not use --trials"]),
    (["replay", "v3-large", "--strategy", "rl"], ["replay v3-large does not use --strategy"]),
    (["replay", "v3-small", "--variant", "efficientnet"], ["replay v3-small does not use --variant"]),
    (["replay", "mnasnet", "--budget", "smoke"], ["replay mnasnet does not use --budget"]),
    (["replay", "v3-large", "--eval-option", "steps=abc", "--evaluator", "train"], ["steps must be a whole number"]),
    (["supernet", "train", "--space", "v3_small", "--low-res", "1"], ["argument --low-res", "0 (off) or"]),
    (["supernet", "train", "--space", "v3_small", "--steps", "2", "--warmup-steps", "100"],
     ["--warmup-steps 100 must be less than --steps 2"]),
    (["arch", "show", "mobilenet_v2", "--resolution", "1"], ["argument --resolution", "pixels >= 8"]),
    (["latency", "profile", "--device", "x", "--space", "v3_small", "--resolutions", "224", "2"],
     ["argument --resolutions"]),
]


@pytest.mark.parametrize("argv,needles", OPTION_CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in OPTION_CASES])
def test_option_values_are_checked_at_parse_time(capsys, tmp_path, monkeypatch, argv, needles):
    monkeypatch.chdir(tmp_path)  # a default run folder (runs/...) or table would land here
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, err, *needles)
    assert "internal error" not in err
    assert out == "" and list(tmp_path.iterdir()) == []


def test_every_parser_refuses_abbreviations():
    """``--target 15`` must not mean ``--target-ms 15``: every (sub)command's parser, present and future."""
    import argparse

    from mnas.cli import make_parser

    def parsers(p):
        yield p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for child in a.choices.values():
                    yield from parsers(child)

    found = list(parsers(make_parser()))
    assert len(found) > 20 and all(not p.allow_abbrev for p in found)


@pytest.mark.parametrize("text,needles", [
    ("target_ms: 15\ntrials: -3\n", ["cfg.yaml: trials must be >= 1, got -3"]),
    ("target_ms: 15\ngpus_per_trial: -1\n", ["cfg.yaml: gpus_per_trial must be >= 0"]),
    ("target_ms: 15\nstrategy: evolution\nstrategy_options: {population_size: abc}\n",
     ["cfg.yaml: strategy_options.population_size", "must be a whole number"]),
    ("target_ms: 15\nevaluator: train\nevaluator_options: {lr: -1}\n",
     ["cfg.yaml: evaluator_options.lr", "must be a positive number"]),
    ("target_ms: 15\naddress: 10.0.0.1:6379\n", ["--address only applies with --backend ray"]),
    ("target_ms: 15\ncpus_per_trial: -1\n", ["cpus_per_trial"]),
    ("a: " + "[" * 20000 + "]" * 20000 + "\n", ["cfg.yaml", "nested 20000 levels deep"]),
])
def test_config_file_fields_name_the_file_and_field(capsys, tmp_path, monkeypatch, text, needles):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    code, _, err = run(capsys, "search", "--config", cfg)
    assert_one_line_error(code, err, *needles)
    assert "--trials" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml"]


def test_a_deeply_nested_option_value_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "eval", "mobilenet_v2", "-o", "model=" + "[" * 5000 + "]" * 5000)
    assert_one_line_error(code, err, "--option model", "nested 5000 levels deep")


@pytest.mark.parametrize("field,value,needle", [
    ("act: hs", "act: [re, hs]", "unknown activation ['re', 'hs']"),
    ("act: hs", "act: {a: 1}", "unknown activation {'a': 1}"),
])
def test_architecture_fields_of_the_wrong_kind_are_named(capsys, tmp_path, v3s_yaml, field, value, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text(v3s_yaml.replace(field, value, 1))
    code, _, err = run(capsys, "arch", "show", bad)
    assert_one_line_error(code, err, "bad.yaml", needle)


def test_the_multi_objective_fix_suggested_for_pareto_works(capsys, tmp_path):
    code, _, err = run(capsys, "search", "--reward", "pareto", "--strategy", "rl", "--out", tmp_path / "run")
    assert code == 2 and not (tmp_path / "run").exists()
    suggested = err.split("use --strategy ")[1].split(" ")[0]
    code, _, err = run(capsys, "search", "--reward", "pareto", "--strategy", suggested, "--trials", "3",
                       "--no-progress", "--out", tmp_path / "run")
    assert code == 0, err


# ---------------------------------------------------------------------- stored files


def _table_lines() -> list[str]:
    return (REPO / "latency_tables" / "xeon-onnxruntime.csv").read_text().splitlines(keepends=True)


def _with_header(field: str, value: str) -> str:
    lines = _table_lines()
    for i, line in enumerate(lines):
        if line.startswith(f"# {field}:"):
            j = i + 1
            while lines[j].startswith("#  "):  # the field's own indented lines
                j += 1
            return "".join(lines[:i] + [f"# {field}: {value}\n"] + lines[j:])
    i = next(k for k, line in enumerate(lines) if line.startswith("key,"))
    return "".join(lines[:i] + [f"# {field}: {value}\n"] + lines[i:])


def _with_entries(ms: str) -> str:
    lines = _table_lines()
    i = next(k for k, line in enumerate(lines) if line.startswith("key,")) + 1
    return "".join(lines[:i] + [",".join([ln.split(",")[0], ms, *ln.split(",")[2:]]) for ln in lines[i:]])


TABLE_CASES = {
    "negative correction": (lambda: _with_header("correction", "{a: -5, b: 0}"), "factors (a, per_type) must be > 0"),
    "zero correction": (lambda: _with_header("correction", "{a: 0, b: 0}"), "must be > 0"),
    "entries of 1e308": (lambda: _with_entries("1e308"), "more than 1e+06 ms for one op"),
    "all zeros": (lambda: _with_entries("0"), "have time 0 ms"),
    "empty device": (lambda: _with_header("device", ""), "header field device must be a non-empty text"),
    "unit us": (lambda: _with_header("unit", "us"), "unit must be ms"),
    "format text": (lambda: _with_header("format", "one"), "format must be a whole number"),
}


@pytest.mark.parametrize("case", sorted(TABLE_CASES))
def test_a_latency_table_with_impossible_values_is_rejected(capsys, tmp_path, case):
    make, needle = TABLE_CASES[case]
    bad = tmp_path / "bad.csv"
    bad.write_text(make())
    code, out, err = run(capsys, "latency", "predict", "mobilenet_v3_small", "--device", bad)
    assert_one_line_error(code, err, "bad.csv", needle)
    assert out == ""


def test_a_latency_table_with_a_bom_reads_as_without(capsys, tmp_path):
    good = REPO / "latency_tables" / "xeon-onnxruntime.csv"
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + good.read_bytes())
    results = []
    for table in (good, bom):
        code, out, err = run(capsys, "latency", "predict", "mobilenet_v3_small", "--device", table, "--json")
        assert code == 0, err
        import json

        results.append(json.loads(out)[0]["latency_ms"] if isinstance(json.loads(out), list) else
                       json.loads(out)["latency_ms"])
    assert results[0] == results[1]


@pytest.mark.parametrize("content,needles", [
    (BINARY, ["not a torch file", "unknown binary data"]),
    (b"a text file\n", ["not a torch file", "holds text"]),
    (b"\x1f\x8b\x08\x00" + bytes(40), ["not a torch file", "gzip data"]),
    (b"PK\x03\x04" + bytes(60), ["truncated", "delete it"]),  # a torch file (a zip) cut short
])
def test_a_supernet_file_that_is_no_torch_file_names_its_format(capsys, tmp_path, content, needles):
    ckpt = tmp_path / "s.pt"
    ckpt.write_bytes(content)
    code, _, err = run(capsys, "eval", "mobilenet_v3_small", "--space", "v3_small", "-e", "supernet", "-o",
                       f"checkpoint={ckpt}")
    assert_one_line_error(code, err, "s.pt", *needles)
    assert "older mnas" not in err
    assert ckpt.read_bytes() == content


def test_a_zip_of_other_files_is_not_taken_for_a_torch_file(tmp_path):
    import zipfile

    import torch

    from mnas.accuracy.supernet_train import file_format

    other = tmp_path / "other.pt"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("readme.txt", "hello")
    real = tmp_path / "real.pt"
    torch.save({"a": torch.zeros(2)}, real)  # the independent fact: what torch.save writes
    assert file_format(other) == "a zip archive of other files" and file_format(real) == "torch"


def _image_archive(tmp_path: Path) -> Path:
    import io
    import tarfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path / "images.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for split in ("train", "test"):
            for cls in ("a", "b"):
                for i in range(3):
                    buf = io.BytesIO()
                    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, format="PNG")
                    info = tarfile.TarInfo(f"{split}/{cls}/{i}.png")
                    info.size = len(buf.getvalue())
                    tf.addfile(info, io.BytesIO(buf.getvalue()))
    return path


def test_an_archive_with_a_flipped_byte_is_rejected_by_its_crc(tmp_path):
    from mnas.data import load_dataset
    from mnas.errors import MnasError

    good = _image_archive(tmp_path)
    ds = load_dataset("imagenet-folder", good, resolution=8, progress=False)
    assert len(ds.train.y) == 6  # the intact archive reads
    data = bytearray(good.read_bytes())
    data[-6] ^= 0xFF  # the gzip trailer's CRC-32: every image still decodes, only the checksum tells
    bad = tmp_path / "flipped.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(MnasError, match="checksum does not match"):
        load_dataset("imagenet-folder", bad, resolution=8, progress=False)


# journals: every line is checked, with its position


def _journal_lines(run_dir: Path) -> list[bytes]:
    return (run_dir / "trials.journal").read_bytes().splitlines(keepends=True)


JOURNAL_DAMAGE = {
    "a line dropped": (lambda ls: ls[:3] + ls[4:], "trials.journal:4", "1 line(s) before this one are missing"),
    "a line duplicated": (lambda ls: ls + [ls[3]], "repeats line 4"),
    "a line that is not JSON": (lambda ls: ls[:2] + [b"{garbage\n"] + ls[3:], "trials.journal:3", "not JSON"),
    "a line without op_code": (lambda ls: ls[:2] + [b'{"a": 1}\n'] + ls[3:], "trials.journal:3", "no op_code"),
    "a parameter out of its choices": (
        lambda ls: ls[:2] + [ls[2].replace(b'"params":{"s1.kernel":', b'"params":{"s1.kernel":9', 1)] + ls[3:],
        "trials.journal:3", "malformed journal entry"),
    "a distribution damaged": (
        lambda ls: ls[:2] + [ls[2].replace(b'\\"choices\\"', b'\\"chioces\\"', 1)] + ls[3:],
        "trials.journal:3", "malformed journal entry"),
}


@pytest.mark.parametrize("case", sorted(JOURNAL_DAMAGE))
def test_damage_inside_a_journal_is_reported_with_its_line(capsys, tmp_path, case):
    run_dir = _search_run(tmp_path, capsys)
    damage, *needles = JOURNAL_DAMAGE[case]
    (run_dir / "trials.journal").write_bytes(b"".join(damage(_journal_lines(run_dir))))
    before = _tree(tmp_path)
    code, _, err = run(capsys, "search", "--resume", run_dir, "--trials", "12", "--no-progress")
    assert_one_line_error(code, err, *needles)
    assert _tree(tmp_path) == before  # nothing replayed, nothing rewritten


def test_a_journal_shorter_than_trials_csv_is_reported_and_the_advice_works(capsys, tmp_path):
    run_dir = _search_run(tmp_path, capsys)
    lines = _journal_lines(run_dir)
    (run_dir / "trials.journal").write_bytes(b"".join(lines[:4]))  # an older copy: 3 of the 6 trials
    code, _, err = run(capsys, "search", "--resume", run_dir, "--trials", "8", "--no-progress")
    assert_one_line_error(code, err, "holds 3 finished trials but", "trials.csv lists 6", "lost 3")
    assert f"move {run_dir / 'trials.csv'} away" in err
    (run_dir / "trials.csv").rename(tmp_path / "trials.before.csv")  # what the line says to do
    code, out, err = run(capsys, "search", "--resume", run_dir, "--trials", "8", "--no-progress", "--json")
    assert code == 0, err
    import json

    assert json.loads(out)["completed"] == 8


def test_an_intact_journal_still_resumes_and_a_cut_last_line_is_dropped(capsys, tmp_path):
    import json

    run_dir = _search_run(tmp_path, capsys)
    data = (run_dir / "trials.journal").read_bytes()
    (run_dir / "trials.journal").write_bytes(data + data.splitlines(keepends=True)[-1][:40])  # a write cut by a kill
    code, out, err = run(capsys, "search", "--resume", run_dir, "--trials", "9", "--no-progress", "--json")
    assert code == 0, err
    assert json.loads(out)["completed"] == 9
    trials = [json.loads(x) for x in (run_dir / "trials.journal").read_bytes().splitlines()]
    assert sum(1 for t in trials if t.get("op_code") == 4 and t.get("state") == 1) == 9  # never more than --trials


@pytest.mark.parametrize("content", [BINARY, b'{"a": 1}\n', b"not json\n"])
def test_dashboard_on_a_garbage_journal_is_one_line(capsys, tmp_path, monkeypatch, content):
    def no_server(*a, **kw):
        raise AssertionError("the damaged journal was not refused: the dashboard went on to serve it")

    monkeypatch.setattr("wsgiref.simple_server.make_server", no_server)  # a regression fails, never serves forever
    run_dir = tmp_path / "run"
    from mnas.search.config import SearchConfig

    SearchConfig(target_ms=15, out=str(run_dir)).save(run_dir / "config.yaml")
    (run_dir / "trials.journal").write_bytes(content)
    code, _, err = run(capsys, "dashboard", run_dir)
    assert_one_line_error(code, err, "trials.journal:1", "cannot show a damaged journal")


def test_a_path_csv_with_other_columns_is_named(capsys, tmp_path):
    d = tmp_path / "na"
    d.mkdir()
    (d / "path.csv").write_text("a,b\n1,2\n")
    code, _, err = run(capsys, "plot", "netadapt", d, "--out", tmp_path / "p.png")
    assert_one_line_error(code, err, "path.csv", "not a NetAdapt path table", "no column step")
    assert not (tmp_path / "p.png").exists()


# ---------------------------------------------------------------------- a refused command writes nothing


REFUSED_LATE = {
    # refused after the run folder was made (the check needs the space, the table or the first trial)
    "replay target below the fastest": ["replay", "v3-large", "--budget", "smoke", "--target-ms", "0.001",
                                        "--no-progress"],
    "replay unknown device": ["replay", "v3-large", "--budget", "smoke", "--device", "nosuchdevice", "--no-progress"],
    "search unknown dataset": ["search", "--target-ms", "15", "--evaluator", "train", "--dataset", "bogus", "--trials",
                               "2", "--no-progress"],
    "search bad storage": ["search", "--target-ms", "15", "--storage", "bogus:x", "--no-progress"],
    "replay unknown dataset": ["replay", "v3-small", "--budget", "smoke", "--evaluator", "train", "--dataset", "bogus",
                               "--no-progress"],
    "netadapt target below the fastest": ["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1",
                                          "--target-ms", "0.01", "--budget", "smoke", "--dataset", "digits",
                                          "--no-progress"],
}


@pytest.mark.parametrize("case", sorted(REFUSED_LATE))
def test_a_refused_run_leaves_no_run_folder(capsys, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *REFUSED_LATE[case], "--out", tmp_path / "run")
    assert_one_line_error(code, err)
    assert "--resume" not in err  # a resume could not change the setting: no dead-end advice
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [
    ["latency", "profile", "--device", "x", "--space", "nosuchspace"],
    ["latency", "profile", "--device", "x", "--arch", "nosucharch"],
])
def test_a_refused_profile_writes_no_table(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)  # the default table would be latency_tables/x.csv here
    monkeypatch.setenv("MNAS_NO_REEXEC", "1")  # profile re-executes itself for its malloc settings: not in a test
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, "nosuch")
    assert list(tmp_path.iterdir()) == []


def test_a_refused_supernet_training_leaves_no_settings_file(capsys, tmp_path):
    code, _, err = run(capsys, "supernet", "train", "--space", "v3_small", "--dataset", "bogus", "--steps", "3",
                       "--out", tmp_path / "s.pt")
    assert_one_line_error(code, err, "unknown dataset 'bogus'")
    assert list(tmp_path.iterdir()) == []


def test_a_squeeze_excite_wider_than_its_block_is_refused(capsys):
    code, _, err = run(capsys, "arch", "show", "r224 stem_k3_c16_s2_hs ir_k3_e16_c16_se999_re_s2 head_c576_hs_f1024_hs_d0.2")
    assert_one_line_error(code, err, "squeeze-excite width 999 exceeds the 16 expanded channels")


def test_the_corrected_command_then_runs(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = run(capsys, "replay", "v3-large", "--budget", "smoke", "--target-ms", "0.001", "--no-progress",
                       "--out", out)
    assert code == 2 and "choose --target-ms >= " in err
    code, _, err = run(capsys, "replay", "v3-large", "--budget", "smoke", "--no-progress", "--out", out)
    assert code == 0, err  # not "already holds a replay with other settings", which --resume could not change


def test_a_failed_resume_never_removes_the_run(capsys, tmp_path):
    run_dir = _search_run(tmp_path, capsys, trials=3)
    before = _tree(tmp_path)
    code, _, err = run(capsys, "search", "--resume", run_dir, "--strategy-option", "population_size=abc")
    assert code == 2
    assert _tree(tmp_path) == before


def test_an_empty_out_folder_given_is_kept_but_emptied_again(capsys, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    code, _, err = run(capsys, "replay", "v3-large", "--budget", "smoke", "--target-ms", "0.001", "--no-progress",
                       "--out", out)
    assert code == 2
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_another_commands_run_folder_is_named_with_the_command_that_continues_it(capsys, tmp_path):
    run_dir = _search_run(tmp_path, capsys, trials=3)
    before = _tree(tmp_path)
    for argv in (["netadapt", "--resume", run_dir],
                 ["netadapt", "--arch", "mobilenet_v3_small", "--device", "pixel1", "--target-ms", "10", "--out", run_dir],
                 ["latency", "validate", "--device", "pixel1", "--out", run_dir],
                 ["replay", "v3-large", "--out", run_dir]):
        code, _, err = run(capsys, *argv)
        assert_one_line_error(code, err, "holds a `mnas search` run")
        assert "unknown setting" not in err
    assert _tree(tmp_path) == before
    code, _, err = run(capsys, "netadapt", "--resume", run_dir)
    suggested = err.split("to continue it: `")[1].split("`")[0].split()
    assert suggested[:3] == ["mnas", "search", "--resume"]
    code, _, err = run(capsys, *suggested[1:], "--trials", "4", "--no-progress")
    assert code == 0, err  # the advice is a command that works


def test_a_bad_host_is_not_blamed_on_the_port(capsys, tmp_path):
    pytest.importorskip("optuna_dashboard")
    run_dir = _search_run(tmp_path, capsys, trials=3)
    code, _, err = run(capsys, "dashboard", run_dir, "--host", "no-such-host.invalid", "--port", "8999")
    assert_one_line_error(code, err, "--host must be an address of this machine")
    assert "--port" not in err.split(":", 3)[-1].split("(")[-1]

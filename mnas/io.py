"""Safe file and run-folder I/O: decoding reads, atomic writes, run-folder locks, graceful Ctrl-C.

* :func:`read_text_file` reads a file a user named, or raises one :class:`MnasError`
  line naming the file (missing, a folder, unreadable, not UTF-8 text).
* :func:`atomic_write_text`, :func:`atomic_write_bytes` and :func:`atomic_output`
  write to a temporary file in the same folder and ``os.replace`` it over the
  target: a kill leaves the old file or the new one, never half of one.
* :func:`check_out_file`, :func:`check_out_dir` check an ``--out`` before any work.
* :func:`claim_run_dir` takes a run folder's lock (``.RUN.lock`` beside it, holding the
  owner's PID) so two processes never write one run at the same time.
* :func:`check_trials_db`, :func:`check_journal` refuse to resume from empty or damaged
  trial storage (which Optuna would silently replace by a new study).
* :class:`GracefulStop` turns SIGINT/SIGTERM into :class:`Interrupted`, raised only
  where the caller says it is safe (inside a trial's measurement), never half-way
  through a storage write; :func:`optimize_interruptibly` is ``study.optimize`` with it.
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import errno
import os
import signal
import threading
from pathlib import Path
from typing import Iterator

from mnas.errors import MnasError

_ACTIVE: list["GracefulStop"] = []  # the installed guards, innermost last (see interruptible())
# the last SIGINT/SIGTERM this process received (set by every mnas handler): an exception raised while
# one is being handled (e.g. a C extension turning the interrupt into a ValueError) is then reported as
# the interrupt it is, not as a bug (see mnas.cli.main)
last_signal: int | None = None


def lock_path(run_dir: str | Path) -> Path:
    """The lock file of a run folder: ``.NAME.lock`` beside it, so claiming writes nothing inside it."""
    run_dir = Path(os.path.abspath(run_dir))
    return run_dir.parent / f".{run_dir.name}.lock"



# ---------------------------------------------------------------------- reading


def not_a_file(path: str | Path, what: str = "file") -> MnasError:
    """The error for ``path`` given where a regular file (``what``) was expected and ``path`` is none:
    missing, a folder, or a device/FIFO/socket (``/dev/null``), each said as it is, not "no such file"."""
    p = Path(path)
    if p.is_dir():
        return MnasError(f"{p}: is a folder (expected a file: {what})")
    if p.exists():
        return MnasError(f"{p}: not a regular file (a device, FIFO or socket; expected {what})")
    if p.is_symlink():
        return MnasError(f"{p}: a broken symbolic link (expected {what})")
    return MnasError(f"{p}: no such file (expected {what})")


def read_text_file(path: str | Path, what: str = "text") -> str:
    """The text of ``path`` (UTF-8), or a :class:`MnasError` naming the file and what was expected.

    ``what`` names the expected content in the message, e.g. ``"YAML architecture"``.
    """
    p = Path(path)
    if not p.is_file():  # a FIFO would block the read, /dev/null would read as an empty file
        raise not_a_file(p, what)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise MnasError(f"{p}: cannot read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MnasError(f"{p}: expected {what}, found binary data (byte 0x{data[e.start]:02x} at offset {e.start} "
                        "is not UTF-8 text)") from None
    if "\x00" in text:
        raise MnasError(f"{p}: expected {what}, found binary data (NUL bytes)")
    return text


# ---------------------------------------------------------------------- atomic writes

MAX_NAME_BYTES = 255  # the longest file name (one path component) common file systems take
# errno values of an OSError that the user's environment causes (a full disk, a read-only folder, a name
# too long): reported as one line naming the path (:func:`write_error`), never as an internal error
USER_ERRNOS = frozenset(getattr(errno, n) for n in (
    "ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "ENAMETOOLONG", "EFBIG", "EIO", "ENOTDIR", "EISDIR", "EEXIST",
    "ENOENT", "ELOOP", "EMLINK", "ENXIO", "ETXTBSY", "EBUSY", "EXDEV", "ENOTEMPTY") if hasattr(errno, n))


def write_error(path: str | Path, e: OSError, action: str = "cannot write") -> MnasError:
    """One line naming ``path`` and the cause of ``e`` (e.g. ``cannot write run/trials.csv (No space left on device)``)."""
    cause = e.strerror or str(e) or type(e).__name__
    return MnasError(f"{action} {path} ({cause})")


def _temp_name(path: Path) -> Path:
    """A fresh hidden name beside ``path`` that keeps its suffix and stays within :data:`MAX_NAME_BYTES`."""
    import secrets

    token = f".{secrets.token_hex(4)}.tmp{path.suffix}"
    stem = path.name
    while len(os.fsencode(f".{stem}{token}")) > MAX_NAME_BYTES and stem:
        stem = stem[:-1]
    return path.with_name(f".{stem}{token}")


def _create_temp(path: Path) -> Path:
    """Create an empty temporary file beside ``path``; it gets the umask's mode, as a plain ``open`` would."""
    for _ in range(100):
        tmp = _temp_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    For writers that want a file name (``df.to_parquet(tmp)``, ``torch.save(obj, tmp)``,
    ``fig.savefig(tmp)``). On an exception (or Ctrl-C) the temporary file is removed and
    ``path`` is left as it was. The file gets the mode a plain ``open`` gives (the umask's),
    and an ``OSError`` (full disk, read-only folder, name too long) becomes one
    :class:`MnasError` line naming ``path`` and the cause.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        if path.exists() and not path.is_file():
            raise MnasError(f"cannot write {path}: it exists and is not a regular file (a folder, a device or a "
                            "FIFO); give a file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temp(path)
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e) from None
    finally:
        if tmp is not None and tmp.exists():
            with contextlib.suppress(OSError):
                tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace`` (flushed to disk first)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ---------------------------------------------------------------------- --out checks


def check_out_file(path: str | Path, flag: str = "--out", suffixes: tuple[str, ...] | None = None) -> Path:
    """Check that ``path`` can be written as a file, before any work.

    It must not be a folder, a device or a FIFO, must have a known suffix, no name in it may be
    longer than :data:`MAX_NAME_BYTES`, and the nearest existing folder above it must be writable
    and not full (the missing folders are created on write).
    """
    p = Path(path)
    _check_names(p, flag)
    if p.is_dir():
        raise MnasError(f"{flag} {p} is a folder; give a file name (e.g. {p / ('out' + (suffixes or ('',))[0])})")
    if p.exists() and not p.is_file():
        raise MnasError(f"{flag} {p} is not a regular file (a device or a FIFO); give a file name")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise MnasError(f"{flag} {p}: unsupported file type {p.suffix or '(none)'!r} (use {', '.join(suffixes)})")
    _check_parents(p, flag)
    return p


def _check_names(p: Path, flag: str) -> None:
    """No name in ``p`` longer than :data:`MAX_NAME_BYTES` (checked first: ``Path.exists`` raises on one)."""
    if len(os.fsencode(str(p.absolute()))) >= 4096:
        raise MnasError(f"{flag} {str(p)[:40]}...: path too long (4,096 bytes at most); choose a shorter path")
    for part in p.parts:
        n = len(os.fsencode(part))
        if n > MAX_NAME_BYTES:
            short = part if len(part) <= 40 else part[:20] + "..." + part[-12:]
            raise MnasError(f"{flag} {short!s}: name too long ({n} bytes; file systems take at most "
                            f"{MAX_NAME_BYTES} per name); choose a shorter name")


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (``os.access`` also sees a read-only mount, even as root)."""
    return os.access(folder, os.W_OK | os.X_OK)


def _check_parents(p: Path, flag: str) -> None:
    """The nearest existing parent of ``p`` must be a writable folder with free space (the rest is created on write)."""
    for parent in p.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise MnasError(f"{flag} {p}: {parent} is a file, not a folder")
            _check_folder(parent, f"{flag} {p}")
            break


def _check_folder(folder: Path, what: str) -> None:
    if not _writable(folder):
        raise MnasError(f"{what}: cannot write in {folder} (no write permission or a read-only file system); "
                        "choose another location")
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # pragma: no cover - no statvfs (Windows)
        return
    if st.f_bavail == 0 and st.f_blocks > 0:
        raise MnasError(f"{what}: no space left on the file system of {folder}; free some space or choose "
                        "another location")


def check_out_dir(path: str | Path, flag: str = "--out", kind: str | None = None) -> Path:
    """Check that ``path`` can be a run folder: missing or a writable folder (not a file, not under a file).

    Given ``kind`` (the command: ``search``, ``netadapt``, ``replay``, ``latency validate``), a folder that
    holds another command's run (:func:`run_kind`) is refused, naming it.
    """
    p = Path(path)
    _check_names(p, flag)
    if p.exists() and not p.is_dir():
        raise MnasError(f"{flag} {p} is a file; give a folder for the run (a new or an empty one)")
    if p.is_dir():
        other = run_kind(p) if kind else None
        if other and other != kind:
            raise MnasError(f"{flag} {p} holds a `mnas {other}` run, not a {kind} one; give another folder")
        _check_folder(p, f"{flag} {p}")
    else:
        _check_parents(p, flag)
    return p


def run_kind(folder: str | Path) -> str | None:
    """Which command's run ``folder`` holds (``search``, ``netadapt``, ``replay``, ``latency validate``), from its
    files; None for a folder that holds none (empty, or files of no mnas run)."""
    folder = Path(folder)
    cfg = folder / "config.yaml"
    if cfg.is_file():
        import yaml

        try:
            data = yaml.safe_load(cfg.read_text(errors="replace"))
        except (yaml.YAMLError, OSError):
            data = None
        if isinstance(data, dict):
            if "replay" in data:
                return "replay"
            if "study_name" in data or "strategy_options" in data:
                return "search"
            if "arch" in data and "delta" in data:
                return "netadapt"
        return None
    if (folder / "validate.csv").is_file() or ((folder / "summary.json").is_file() and
                                               (folder / "scatter.png").is_file()):
        return "latency validate"
    if (folder / "trials.journal").is_file() or (folder / "trials.db").is_file():
        return "search"
    return None


# ---------------------------------------------------------------------- run-folder lock


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class RunLock:
    """A held run-folder lock; :meth:`release` (or process exit) gives it back."""

    def __init__(self, run_dir: Path, fd: int, before: frozenset[str] | None = None):
        self.run_dir = run_dir
        self.path = lock_path(run_dir)
        self._fd: int | None = fd
        # what the folder held when it was claimed (None: it did not exist); see discard_unused()
        self.before = before

    def discard_unused(self) -> bool:
        """After a failed command: remove what this claim added to the folder if none of it holds results
        (settings files, empty files, trial storage without trials), and the folder if the claim found none.

        So a command refused after its run folder was made leaves nothing that would block the corrected
        command ("already holds a search"). Anything that may hold work is kept. True if removed.
        """
        import shutil

        d = self.run_dir
        if not d.is_dir():
            return False
        try:
            added = [d / n for n in os.listdir(d) if self.before is None or n not in self.before]
            if any(holds_results(x) for x in added):
                return False
            for x in added:
                if x.is_dir() and not x.is_symlink():
                    shutil.rmtree(x)
                else:
                    x.unlink()
            if self.before is None:
                d.rmdir()
        except OSError:
            return False
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        _HELD.pop(str(self.run_dir.resolve()), None)
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            self.path.unlink()  # before unlocking: a waiting claimer then sees a new file, not this one
        _unlock(fd)
        os.close(fd)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


try:  # POSIX: the kernel drops an flock when its process dies, so a SIGKILL leaves no stale lock
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # pragma: no cover - Windows: the PID in the file decides
    fcntl = None  # type: ignore[assignment]

    def _try_lock(fd: int) -> bool:
        return True

    def _unlock(fd: int) -> None:
        return None


def _holder(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


_HELD: dict[str, RunLock] = {}


@atexit.register
def release_all(failed: bool = False) -> None:
    """Give back every run folder this process claimed (at exit, and when a CLI command ends).

    ``failed`` (a command refused with a :class:`MnasError`): first remove what each claim added that
    holds no results (:meth:`RunLock.discard_unused`).
    """
    for lock in reversed(list(_HELD.values())):  # the newest first: a nested run's lock file goes before its parent
        if failed:
            lock.discard_unused()
        lock.release()


# Files a run folder holds before any result: settings written when it starts.
SETTINGS_FILES = frozenset({"config.yaml", "settings.json"})
_OPTUNA_META_TABLES = frozenset({"studies", "version_info", "alembic_version", "study_directions",
                                 "study_user_attributes", "study_system_attributes"})


def holds_results(path: Path) -> bool:
    """Whether ``path`` (a file or folder in a run folder) may hold results; False only when sure it does not.

    No results: an empty file, a settings file (:data:`SETTINGS_FILES`, ``*.settings.json``), Optuna
    trial storage (a journal, an SQLite file) without a finished trial, another SQLite file without a row
    (an empty evaluation cache), SQLite's side files, and folders of those.
    """
    import json
    import sqlite3

    try:
        if path.is_symlink():
            return True
        if path.is_dir():
            return any(holds_results(p) for p in path.iterdir())
        size = path.stat().st_size
        name = path.name
        if size == 0 or name in SETTINGS_FILES or name.endswith(".settings.json"):
            return False
        if name.endswith(("-wal", "-shm", "-journal")) and not name.endswith(".journal"):
            return False
        if name.endswith(".journal"):  # Optuna's journal: one JSON operation per line; op 6 with state 1 completes a trial
            with open(path, "rb") as f:
                for line in f:
                    try:
                        op = json.loads(line)
                        if op.get("op_code") == 6 and op.get("state") == 1:
                            return True
                    except (ValueError, AttributeError):
                        return True
            return False
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                return True
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            if "trials" in tables and "studies" in tables:  # Optuna's: only a finished trial is a result
                return con.execute("SELECT 1 FROM trials WHERE state = 'COMPLETE' LIMIT 1").fetchone() is not None
            for t in tables:
                if t in _OPTUNA_META_TABLES or t.startswith("sqlite_"):
                    continue
                if con.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone():
                    return True
        finally:
            con.close()
        return False
    except (OSError, sqlite3.Error):
        return True


def claim_run_dir(run_dir: str | Path, what: str = "run", *, create: bool = True) -> RunLock:
    """Take the lock of run folder ``run_dir``; refuse (one line) if a live process holds it.

    The lock is the file ``.RUN.lock`` beside the folder, holding the owner's PID (the
    folder itself is not created: a run that fails its checks leaves nothing behind).
    It is taken with an exclusive ``flock`` on POSIX (released by the kernel when the owner dies, even on
    SIGKILL) and, where ``flock`` is missing, by exclusive create with the PID check:
    a lock whose PID is dead is stale and taken over. Call it before writing anything
    into the folder (with ``create=False`` when resuming: a missing folder is an error).
    The lock is held until :meth:`RunLock.release` or the process ends (which removes
    the file); claiming a folder this process already holds returns the same lock.
    """
    run_dir = check_out_dir(run_dir)
    if not create and not run_dir.is_dir():
        raise MnasError(f"{run_dir}: not a {what} run folder (no such folder); give the folder the {what} wrote")
    key = str(run_dir.resolve())
    if key in _HELD and _HELD[key].held:
        return _HELD[key]
    path = lock_path(run_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _claim(run_dir, key, path, what)
    except OSError as e:
        raise MnasError(f"{run_dir}: cannot take the run folder's lock {path} ({e.strerror or e}); "
                        "choose a writable --out") from None


def _claim(run_dir: Path, key: str, path: Path, what: str) -> RunLock:
    for _ in range(5):
        if fcntl is None:  # pragma: no cover
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid = _holder(path)
                if pid is not None and _pid_alive(pid) and pid != os.getpid():
                    raise _busy(run_dir, what, pid) from None
                with contextlib.suppress(OSError):
                    path.unlink()  # stale: its process is gone
                continue
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                os.close(fd)
                raise _busy(run_dir, what, _holder(path))
            try:  # the file we locked must still be the one at the path (no unlink race)
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                _unlock(fd)
                os.close(fd)
                continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        before = frozenset(os.listdir(run_dir)) if run_dir.is_dir() else None
        lock = _HELD[key] = RunLock(run_dir, fd, before)
        return lock
    raise MnasError(f"{run_dir}: could not take the run folder's lock ({path}); try again")


def _busy(run_dir: Path, what: str, pid: int | None) -> MnasError:
    who = f"process {pid}" if pid else "another process"
    return MnasError(f"{run_dir} is in use by {who} (another {what} writes it now): wait for it to finish or stop "
                     f"it, then resume; or choose another --out")


# ---------------------------------------------------------------------- Ctrl-C and SIGTERM


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised at a safe point; ``str()`` is the one line the CLI prints."""

    def __init__(self, message: str = "interrupted", signum: int | None = None):
        super().__init__(message)
        self.signum = signum

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "interrupted"


def signal_name(signum: int | None) -> str:
    if signum is None:
        return "interrupt"
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class GracefulStop:
    """While active, SIGINT/SIGTERM set :attr:`signum` instead of raising anywhere.

    :class:`Interrupted` is raised at once only inside an :meth:`interruptible` block
    (e.g. a trial's measurement, which the caller then marks failed) or on a third
    signal; elsewhere the caller polls :meth:`check` (e.g. before starting the next
    trial). Installs nothing outside the main thread.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.hint = ""  # appended to the message: what is saved, how to resume (set by check())
        self.count = 0
        self._depth = 0
        self._old: dict[int, object] = {}

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    def _handler(self, signum, frame) -> None:
        global last_signal
        last_signal = signum
        self.signum = signum
        self.count += 1
        if self._depth > 0 or self.count >= 3:  # a third Ctrl-C: stop now, wherever it lands
            raise Interrupted(f"interrupted by {signal_name(signum)}{self.hint}", signum)

    def start(self) -> "GracefulStop":
        """Install the handlers (main thread only); :func:`interruptible` then refers to this guard."""
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handler)
        _ACTIVE.append(self)
        return self

    def restore(self) -> None:
        """Put the previous handlers back."""
        for s, old in self._old.items():
            signal.signal(s, old)  # type: ignore[arg-type]
        self._old.clear()
        if self in _ACTIVE:
            _ACTIVE.remove(self)

    def __enter__(self) -> "GracefulStop":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.restore()

    def check(self, saved: str = "") -> None:
        """Raise :class:`Interrupted` if a signal arrived; ``saved`` is added to its message (and kept
        for a signal raised later inside :meth:`interruptible`)."""
        self.hint = saved or self.hint
        if self.signum is not None:
            raise Interrupted(f"interrupted by {signal_name(self.signum)}{self.hint}", self.signum)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A block a signal may interrupt at once (it raises :class:`Interrupted` inside it)."""
        self.check()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block no first signal interrupts (e.g. cleanup writes after an interrupt)."""
        depth, self._depth = self._depth, 0
        try:
            yield
        finally:
            self._depth = depth


MAX_YAML_DEPTH = 100  # nesting levels a YAML input may have (a deeper one is no mnas file, and overflows the parser)


def safe_yaml(text: str, where: str | Path = "YAML input"):
    """``yaml.safe_load(text)``, but an input nested too deeply is one :class:`MnasError` line naming ``where``
    (not a ``RecursionError``); ``yaml.YAMLError`` passes through for the caller to word."""
    import yaml

    prefix = f"{where}: " if where else ""
    depth = deepest = 0
    for ch in text:  # flow collections ([ {) are what nests fastest; block nesting is bounded by the line width
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    if deepest > MAX_YAML_DEPTH:
        raise MnasError(f"{prefix}nested {deepest} levels deep (at most {MAX_YAML_DEPTH}): not a file mnas writes "
                        "or reads")
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise MnasError(f"{prefix}nested too deeply to read (at most {MAX_YAML_DEPTH} levels)") from None


def load_yaml_file(path: str | Path, what: str = "YAML"):
    """The parsed YAML of ``path``; a missing, binary or malformed file is one :class:`MnasError` line."""
    import yaml

    text = read_text_file(path, what)
    try:
        return safe_yaml(text, path)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        raise MnasError(f"{path}:{line} not valid YAML ({getattr(e, 'problem', None) or str(e).splitlines()[0]})") from None


# ---------------------------------------------------------------------- guarded Optuna loops

@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Mark a block (a trial's measurement) that Ctrl-C may interrupt at once, if a
    :class:`GracefulStop` is active (see :func:`optimize_interruptibly`); a no-op otherwise."""
    if not _ACTIVE:
        yield
        return
    with _ACTIVE[-1].interruptible():
        yield


def check_trials_db(db: str | Path, study_name: str) -> None:
    """Before a resume: ``db`` must be an SQLite file holding study ``study_name`` (else one clear line).

    A missing, empty, truncated or foreign file is reported, never silently replaced by a new study
    (which would restart the search from trial 0).
    """
    import sqlite3

    db = Path(db)
    run = db.parent
    fresh = f"start a new search with another --out (or delete {run})"
    if not db.is_file():
        raise MnasError(f"{db} is missing: the run's trials are gone, so it cannot be resumed; {fresh}")
    if db.stat().st_size == 0:
        raise MnasError(f"{db} is empty (0 bytes): the run's trials are gone, so it cannot be resumed; {fresh}")
    with open(db, "rb") as f:
        magic = f.read(16)
    if magic != b"SQLite format 3\x00":
        raise MnasError(f"{db} is not an SQLite database (damaged or replaced): cannot resume; {fresh}")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)
        try:
            ok = con.execute("PRAGMA quick_check").fetchone()
            names = [r[0] for r in con.execute("SELECT study_name FROM studies")]
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise MnasError(f"{db} is damaged ({e}): cannot resume; {fresh}") from None
    if not ok or ok[0] != "ok":
        raise MnasError(f"{db} is damaged (integrity check: {ok[0] if ok else 'no answer'}): cannot resume; {fresh}")
    if study_name not in names:
        raise MnasError(f"{db} holds no study {study_name!r} (found {names or 'none'}): cannot resume; {fresh}")


def optimize_interruptibly(study, objective, *, callbacks=(), resume_hint: str = "", **kwargs) -> None:
    """``study.optimize(objective, ...)`` where Ctrl-C / SIGTERM stop the search cleanly.

    A signal during a trial's measurement (inside :func:`interruptible`) fails that trial
    at once; anywhere else (storage writes, the sampler) it only asks the study to stop
    after the current trial. Either way, every trial this call left RUNNING is then told
    FAIL through ``study.tell`` and re-queued with the same choices (so a resume evaluates
    it first), and :class:`Interrupted` is raised with one line saying how to resume.
    Optuna's own per-trial failure log (a traceback) is silenced: the error itself
    propagates to the caller.
    """
    import optuna
    from optuna.trial import TrialState

    def running() -> set[int]:
        return {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}

    before = running()
    known = {t.number for t in study.get_trials(deepcopy=False)}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    guard = GracefulStop()

    def stop_when_signalled(study, trial) -> None:
        if guard.stopped:
            study.stop()

    error: KeyboardInterrupt | None = None
    with guard:
        try:
            study.optimize(objective, callbacks=[stop_when_signalled, *callbacks], **kwargs)
        except KeyboardInterrupt as e:
            error = e
        except MnasError as e:  # e.g. a wrong --data-dir found by the first trial
            if resume_hint and not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                if any(lock.before is None for lock in _HELD.values()):  # a new run: removed on exit (release_all)
                    raise MnasError(f"{e} (no trial finished, nothing was kept: fix this and run the command "
                                    "again)") from None
                raise MnasError(f"{e} (no trial finished yet: fix this{resume_hint}; --data-dir may be "
                                "given again on resume)") from None
            raise
        finally:
            optuna.logging.set_verbosity(verbosity)
        if error is None and not guard.stopped:
            return
        with guard.deferred():
            left = sorted(running() - before)
            if error is not None:  # the trial the signal interrupted, already failed by Optuna
                new_failed = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                              if t.number not in known]
                left = sorted(set(left) | set(new_failed[-1:]))
            for number in left:
                _fail_and_requeue(study, number)
    name = signal_name(guard.signum if guard.signum is not None else getattr(error, "signum", None))
    if name == "interrupt":
        name = "SIGINT"
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    failed = f"; the running trial{'s' if len(left) > 1 else ''} ({', '.join(map(str, left))}) marked failed" if left else ""
    raise Interrupted(f"interrupted by {name}: {done} completed trials are saved{failed}{resume_hint}",
                      guard.signum) from None


def _fail_and_requeue(study, number: int) -> None:
    from optuna.trial import TrialState

    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or trial.state not in (TrialState.RUNNING, TrialState.FAIL):
        return
    if trial.state == TrialState.RUNNING:
        try:
            study.tell(number, state=TrialState.FAIL)
        except (ValueError, RuntimeError):  # finished meanwhile (another worker, a heartbeat): leave it
            return
    if trial.params:
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of_interrupted": number})


def check_journal(path: str | Path, study_name: str) -> None:
    """Before a resume: the journal ``path`` must begin by creating study ``study_name`` (else one clear line).

    An empty or foreign journal would otherwise make Optuna start a new study: the
    search would restart from trial 0 without a word.
    """
    import json

    path = Path(path)
    fresh = f"start a new search with another --out (or delete {path.parent})"
    if path.stat().st_size == 0:
        raise MnasError(f"{path} is empty (0 bytes): the run's trials are gone, so it cannot be resumed; {fresh}")
    with open(path, "rb") as f:
        first = f.readline(1 << 20)
    try:
        op = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MnasError(f"{path} is damaged (its first line is not an Optuna journal entry): cannot resume; "
                        f"{fresh}") from None
    if not isinstance(op, dict) or op.get("op_code") != 0 or op.get("study_name") != study_name:
        raise MnasError(f"{path} does not start with the study {study_name!r}: cannot resume; {fresh}")


def read_table_file(path: str | Path, what: str = "results table", required: tuple[str, ...] = (), **kwargs):
    """``pandas.read_csv`` (``.parquet``: ``read_parquet``) of ``path``; a damaged file is one line naming it.

    ``required``: columns the table must have (a table of another kind names the ones it lacks).
    """
    df = _read_table_file(path, what, **kwargs)
    missing = [c for c in required if c not in df.columns]
    if missing:
        have = ", ".join(map(str, list(df.columns)[:8])) + (", ..." if len(df.columns) > 8 else "")
        raise MnasError(f"{path}: not a {what} (no column {', '.join(missing)}; it has {have or 'no columns'})")
    return df


def _read_table_file(path: str | Path, what: str, **kwargs):
    import pandas as pd

    path = Path(path)
    if path.suffix != ".parquet" and path.is_file():
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < 1 << 16)  # a cut last char is fine
            binary = b"\x00" in head
        except UnicodeDecodeError:
            binary = True
        if binary:
            raise MnasError(f"{path}: expected a {what} (CSV), found binary data")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path, **kwargs)
        return pd.read_csv(path, **kwargs)
    except FileNotFoundError:
        raise MnasError(f"{path}: no such file (expected a {what})") from None
    except UnicodeDecodeError as e:
        raise MnasError(f"{path}: expected a {what} (CSV), found binary data (byte offset {e.start} is not UTF-8 "
                        "text)") from None
    except (ValueError, OSError) as e:  # pandas' ParserError and EmptyDataError are ValueErrors; pyarrow's too
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MnasError(f"{path}: not a readable {what} ({first})") from None

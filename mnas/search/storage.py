"""Trial storage for fast searches: Optuna's journal file, written once per round of trials.

Optuna's RDB storage costs ~2 ms of SQLAlchemy per stored parameter (≈ 50 ms
per trial of a 28-choice space), far more than an instant evaluator (a
surrogate or a lookup table) needs to score a network. Optuna's
:class:`~optuna.storages.JournalStorage` keeps the study in memory and appends
every operation to a log; its file backend takes a lock and ``fsync``s per
append. :class:`RoundJournalBackend` keeps that file format and that
durability, but holds the operations of the current *round* (the trials asked,
evaluated and told together) in memory and appends them in one locked write
when the round ends (:meth:`RoundJournalBackend.flush`), fsync'ed every few seconds.

Crash safety: a round is on disk once ``flush`` returns; a kill loses at most
the round in flight (its trials were never reported finished), never a stored
trial. A write cut short by a kill leaves a partial last line, which
:func:`open_journal` cuts off before the study is replayed; the trials of a
round that reached the disk only in part (asked, never told) are then failed
on resume by the runner, so no trial stays RUNNING.

The backend assumes one writing process per study (the run folder's owner):
logs of another writer appended between two flushes would interleave with
this round's. Use an RDB URL (``--storage postgresql://…``) for many workers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from mnas.errors import MnasError

JOURNAL_FILE = "trials.journal"
MEMORY = "memory"  # storage setting for throw-away in-memory studies (benchmarks, tests): not resumable
JOURNAL_PREFIX = "journal:"
SYNC_S = 2.0  # seconds between fsyncs of the journal (each round is written to the OS at once)
LINE_KEY = "mnas_line"  # the 0-based position of a line, written with it (lines of other writers lack it)


def _journal_classes():
    from optuna.storages.journal import BaseJournalBackend, JournalFileBackend

    return BaseJournalBackend, JournalFileBackend


def _cut_partial_line(path: Path) -> int:
    """Drop an unterminated last line (a write interrupted by a kill); the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        # find the last newline, reading backwards in blocks
        pos, block, keep = size, 1 << 16, 0
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


def make_round_backend(path: str | Path):
    """A :class:`RoundJournalBackend` over the journal file ``path`` (created if missing)."""
    BaseJournalBackend, JournalFileBackend = _journal_classes()
    from optuna.storages.journal import JournalFileSymlinkLock

    class RoundJournalBackend(BaseJournalBackend):  # type: ignore[valid-type, misc]  # optuna imported lazily
        """Journal file backend that appends a round's logs in one write; see the module docstring."""

        def __init__(self, file_path: str | Path):
            self.path = Path(file_path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                self.cut_bytes = _cut_partial_line(self.path)
            else:
                self.cut_bytes = 0
            self._lock = JournalFileSymlinkLock(str(self.path))
            self._file = JournalFileBackend(str(self.path), lock_obj=self._lock)
            self._synced = time.monotonic()
            self._n_file = sum(1 for _ in self._file.read_logs(0))
            self._pending: list[dict[str, Any]] = []
            self.flushes = 0

        def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
            n = log_number_from
            if n < self._n_file:
                for i, log in enumerate(self._file.read_logs(n), start=n):
                    if i >= self._n_file:
                        break
                    yield log
                n = self._n_file
            yield from self._pending[n - self._n_file:]

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            self._pending.extend(logs)

        @property
        def pending(self) -> int:
            return len(self._pending)

        def flush(self, sync: bool = False) -> None:
            """Append the round's logs to the file: one lock, one write (the file backend's own line format).

            The write reaches the operating system before this returns, so it survives the
            process being killed; it is ``fsync``'ed to the disk every :data:`SYNC_S` seconds
            and with ``sync`` (a power cut can lose at most those seconds), like SQLite's
            ``synchronous=NORMAL``. Optuna's own ``append_logs`` fsyncs every call, which
            costs 0.2-6 ms per round here (more under load) for no gain against a kill.
            """
            if self._pending:
                logs, self._pending = self._pending, []
                # each line carries its own position (LINE_KEY), so a line dropped or repeated later is found
                # (verify_journal); Optuna's replay ignores the extra key
                data = ("\n".join(json.dumps({**log, LINE_KEY: self._n_file + i}, separators=(",", ":"))
                                  for i, log in enumerate(logs)) + "\n").encode("utf-8")
                self._lock.acquire()
                try:
                    with open(self.path, "ab") as f:
                        f.write(data)
                        f.flush()
                        now = time.monotonic()
                        if sync or now - self._synced >= SYNC_S:
                            os.fsync(f.fileno())
                            self._synced = now
                finally:
                    self._lock.release()
                self._n_file += len(logs)
                self.flushes += 1
            elif sync:
                with open(self.path, "ab") as f:
                    os.fsync(f.fileno())

    return RoundJournalBackend(path)


class NoFlush:
    """Stand-in backend handle for storages that write through (RDB, in-memory)."""

    pending = 0

    def flush(self, sync: bool = False) -> None:  # noqa: D401 - nothing to do
        return None


def is_journal(storage_setting: str | None) -> bool:
    return bool(storage_setting) and storage_setting.startswith(JOURNAL_PREFIX)


def journal_path(storage_setting: str) -> Path:
    path = storage_setting[len(JOURNAL_PREFIX):]
    if path.startswith("//"):  # journal:///abs/path
        path = path[2:]
    if not path:
        raise MnasError(f"storage {storage_setting!r}: give a file, e.g. journal:runs/x/trials.journal")
    return Path(path)


def open_journal(path: str | Path):
    """``(JournalStorage, backend)`` over the journal file ``path``; ``backend.flush()`` ends a round.

    An existing journal is verified first (:func:`verify_journal`): a damaged one is one error line naming
    the line, never replayed into a study with trials missing or doubled.
    """
    import optuna

    path = Path(path)
    if path.exists() and path.is_dir():
        raise MnasError(f"{path}: is a folder, expected a journal file")
    if path.is_file():
        verify_journal(path)
    try:
        backend = make_round_backend(path)
        storage = optuna.storages.JournalStorage(backend)
    except (ValueError, UnicodeDecodeError) as e:
        raise MnasError(f"{path}: not a readable Optuna journal ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                        "it may be damaged: move it away to start a new search") from None
    return storage, backend


# ---------------------------------------------------------------------- verification

_TRIAL_OPS = range(5, 10)  # set param, state/values, intermediate value, user attr, system attr: name a trial_id


def verify_journal(path: str | Path, table: str | Path | None = None, use: str = "resume from") -> dict[str, int]:
    """Check every line of the journal ``path`` before it is replayed; counts of what it holds.

    Each line must be an Optuna journal operation whose fields are well formed (distributions and
    parameters readable, a trial that exists); a line that carries its position (:data:`LINE_KEY`)
    must sit at it, so a dropped line (a trial lost) or a repeated one (a trial counted twice) is
    reported with its line number. A last line without its newline (a write cut by a kill) is left
    to :func:`open_journal`, which drops it. ``table`` (default: ``trials.csv`` beside the journal),
    if it exists, must not list more finished trials than the journal holds (a journal cut short or
    replaced by an older copy). ``use`` says what was to be done, for the message. Returns
    ``{"lines", "trials", "complete"}``.
    """
    from optuna.distributions import json_to_distribution

    path = Path(path)
    listed = path.parent / "trials.csv"
    fresh = "" if use != "resume from" else (
        f" (the finished trials are listed in {listed}; start a new search with another --out)" if listed.is_file()
        else " (start a new search with another --out)")
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    lines = lines[:-1]  # the part after the last newline: empty, or a cut write (dropped on open)
    trials = complete = 0
    states: list[int] = []
    dists: dict[str, object] = {}

    def bad(n: int, why: str) -> MnasError:
        return MnasError(f"{path}:{n}: {why}; cannot {use} a damaged journal{fresh}")

    for n, raw in enumerate(lines, start=1):
        try:
            op = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise bad(n, "not a journal entry (not JSON)") from None
        if not isinstance(op, dict) or not isinstance(op.get("op_code"), int) or not 0 <= op["op_code"] <= 10:
            raise bad(n, "not an Optuna journal entry (no op_code)")
        pos = op.get(LINE_KEY)
        if pos is not None and pos != n - 1:
            if isinstance(pos, int) and pos < n - 1:
                raise bad(n, f"this line repeats line {pos + 1} (it was written there): a duplicated line would "
                             "count a trial twice")
            if isinstance(pos, int):
                raise bad(n, f"{pos - n + 1} line(s) before this one are missing (it was written as line {pos + 1}): "
                             "a trial would be lost")
            raise bad(n, f"its position field {LINE_KEY} is {pos!r}, not a line number")
        code = op["op_code"]
        try:
            if code == 0:
                if not isinstance(op["study_name"], str) or not isinstance(op["directions"], list):
                    raise ValueError("study_name/directions")
            elif code == 4:
                for name, text in (op.get("distributions") or {}).items():
                    if text not in dists:
                        dists[text] = json_to_distribution(text)
                    dist = dists[text]
                    if name in (op.get("params") or {}):
                        dist.to_external_repr(op["params"][name])  # type: ignore[attr-defined]
                if set(op.get("params") or {}) - set(op.get("distributions") or {}):
                    raise ValueError("a parameter without its distribution")
                state = op.get("state", 0)
                if not isinstance(state, int) or not 0 <= state <= 4:
                    raise ValueError(f"state {state!r}")
                states.append(state)
                trials += 1
            elif code in _TRIAL_OPS:
                tid = op["trial_id"]
                if not isinstance(tid, int) or not 0 <= tid < trials:
                    raise bad(n, f"it refers to trial {tid!r}, which no earlier line creates (a line was dropped?)")
                if code == 5:
                    dist = json_to_distribution(op["distribution"])
                    dist.to_external_repr(op["param_value_internal"])
                elif code == 6:
                    state = op["state"]
                    if not isinstance(state, int) or not 0 <= state <= 4:
                        raise ValueError(f"state {state!r}")
                    if states[tid] in (1, 2, 3) and state in (1, 2, 3):
                        raise bad(n, f"trial {tid} is finished twice (a duplicated line?)")
                    states[tid] = state
        except MnasError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            what = f"missing field {e}" if isinstance(e, KeyError) else (str(e).splitlines()[0] if str(e) else
                                                                          type(e).__name__)
            raise bad(n, f"a malformed journal entry ({what})") from None
    complete = sum(1 for st in states if st == 1)
    table = Path(table) if table is not None else path.parent / "trials.csv"
    if table.is_file():
        n_listed = _complete_in_table(table)
        if n_listed is not None and n_listed > complete:
            raise MnasError(f"{path} holds {complete} finished trials but {table} lists {n_listed}: the journal lost "
                            f"{n_listed - complete} (cut short, or replaced by an older copy); resuming would run them "
                            f"again without a word. Restore the journal, or move {table} away to continue from "
                            f"{complete} trials")
    return {"lines": len(lines), "trials": trials, "complete": complete}


def _complete_in_table(table: Path) -> int | None:
    """How many rows of a trials table (``number,state,...``) are COMPLETE; None if it is not such a table."""
    import csv

    try:
        with open(table, newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            head = next(rows, None)
            if not head or "state" not in head:
                return None
            i = head.index("state")
            return sum(1 for r in rows if len(r) > i and r[i] == "COMPLETE")
    except (OSError, UnicodeDecodeError, csv.Error):
        return None

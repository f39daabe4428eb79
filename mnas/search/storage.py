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
                data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
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
    """``(JournalStorage, backend)`` over the journal file ``path``; ``backend.flush()`` ends a round."""
    import optuna

    path = Path(path)
    if path.exists() and path.is_dir():
        raise MnasError(f"{path}: is a folder, expected a journal file")
    try:
        backend = make_round_backend(path)
        storage = optuna.storages.JournalStorage(backend)
    except (ValueError, UnicodeDecodeError) as e:
        raise MnasError(f"{path}: not a readable Optuna journal ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                        "it may be damaged: move it away to start a new search") from None
    return storage, backend

"""A durable local spool for writes made while the database is unreachable.

An append-only JSON-lines file, ``<dir>/pending.jsonl``: one line per write, fsync'd
before `add_record` / `add_label` return, so a crash right after loses nothing.  Two kinds
of line::

    {"v": 1, "op": "insert", "record": {...PredictionRecord.to_json()...}}
    {"v": 1, "op": "label", "uuid": "...", "label": 3, "at": "2026-01-01T12:00:00+00:00"}

An insert whose record has a ``model_version_id`` may also carry ``"model_sha256"``, the
weights' hash of that version, so that a replay finds the version by its weights even in
another database than the one that gave the id.  Lines written before model versions
existed have neither key; they read as records without a version.

`replay` hands every line, in order, to a function that applies them in one database
transaction; only when it returns is the file emptied.  Replays are idempotent (inserts
are ``ON CONFLICT (uuid) DO NOTHING``, a label only replaces an older one), so a crash
between the commit and the truncation does no harm.  A label of a record that is still
in the spool is simply a later line.

Several processes may share one spool folder: every read and write holds an exclusive
lock on ``<dir>/spool.lock`` (POSIX ``flock``; on Windows only a thread lock).
A line that the database refuses for good is moved to ``rejected.jsonl`` with the reason.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator

from app.db.records import PredictionRecord
from app.fsutil import fsync_dir

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class Spool:
    PENDING = "pending.jsonl"
    LOCK = "spool.lock"
    REJECTED = "rejected.jsonl"

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / self.PENDING
        self._thread_lock = threading.RLock()
        self._depth = 0  # nesting of _locked() in the thread that holds it
        self._count = 0
        self._counted_size = -1
        with self._locked():
            self._repair_tail()
            self._recount()

    # ---- writing ----------------------------------------------------------------
    def add_record(self, record: PredictionRecord, model_sha256: str | None = None) -> None:
        entry = {"v": FORMAT_VERSION, "op": "insert", "record": record.to_json()}
        if model_sha256 is not None:
            entry["model_sha256"] = model_sha256
        self._append(entry)

    def add_label(self, uuid: str, label: int | None, at: datetime) -> None:
        self._append({"v": FORMAT_VERSION, "op": "label", "uuid": uuid, "label": label,
                      "at": at.isoformat()})

    def _append(self, entry: dict) -> None:
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
        with self._locked():
            self._repair_tail()
            self._recount_if_changed()
            new_file = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if new_file:
                fsync_dir(self.directory)
            self._count += 1
            self._counted_size = self.path.stat().st_size

    # ---- reading ----------------------------------------------------------------
    def __len__(self) -> int:
        """How many writes are waiting (also those another process added)."""
        with self._locked():
            self._recount_if_changed()
            return self._count

    def pending_nowait(self) -> int:
        """Like len(), but returns the last known count instead of waiting for the lock."""
        if not self._thread_lock.acquire(blocking=False):
            return self._count
        try:
            if fcntl is None or self._depth:
                self._recount_if_changed()
                return self._count
            fd = os.open(self.directory / self.LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return self._count
                self._recount_if_changed()
                return self._count
            finally:
                os.close(fd)
        finally:
            self._thread_lock.release()

    def entries(self) -> list[dict]:
        with self._locked():
            return list(self._read())

    def replay(self, apply: Callable[[list[dict]], None]) -> int:
        """Give all waiting entries, in order, to ``apply``; empty the spool when it returns.

        If ``apply`` raises, the spool is left as it was and the exception propagates.
        Returns how many entries were applied.
        """
        with self._locked():
            entries = list(self._read())
            if not entries:
                return 0
            apply(entries)
            with open(self.path, "r+b") as f:
                f.truncate(0)
                f.flush()
                os.fsync(f.fileno())
            self._count = 0
            self._counted_size = 0
            return len(entries)

    def reject(self, entry: dict, reason: str) -> None:
        """Keep an entry the database refused for good in ``rejected.jsonl``."""
        log.error("Spooled write refused by the database and set aside in %s: %s",
                  self.directory / self.REJECTED, reason)
        line = json.dumps({"reason": reason, "entry": entry}, separators=(",", ":")) + "\n"
        with self._locked(), open(self.directory / self.REJECTED, "ab") as f:
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    # ---- internals ------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            if fcntl is None or self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            fd = os.open(self.directory / self.LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._depth = 1
                yield
            finally:
                self._depth = 0
                os.close(fd)  # releases the flock

    def _read(self) -> Iterator[dict]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    log.warning("Ignoring an unfinished last line in %s", self.path)
                    return
                try:
                    entry = json.loads(raw)
                except ValueError:
                    log.error("Line %d of %s is not JSON; setting it aside", number, self.path)
                    self.reject({"raw": raw.decode("utf-8", "replace")}, "not JSON")
                    continue
                if entry.get("op") not in ("insert", "label"):
                    self.reject(entry, "unknown operation")
                    continue
                yield entry

    def _repair_tail(self) -> None:
        """Cut a last line left unfinished by a crash in the middle of a write."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(self.path, "r+b") as f:
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            keep = data.rfind(b"\n") + 1
            log.warning("Cutting an unfinished line (%d bytes) from %s", size - keep, self.path)
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())

    def _recount_if_changed(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size != self._counted_size:
            self._recount()

    def _recount(self) -> None:
        try:
            with open(self.path, "rb") as f:
                self._count = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            self._counted_size = self.path.stat().st_size
        except FileNotFoundError:
            self._count = 0
            self._counted_size = 0



"""A durable local spool for writes made while the database is unreachable.

An append-only JSON-lines file, ``<dir>/pending.jsonl``: one line per write, fsync'd
before `add_record` / `add_label` return, so a crash right after loses nothing.  Two kinds
of line::

    {"v": 2, "op": "insert", "record": {...PredictionRecord.to_json()...},
     "model_sha256": "...", "version": {...VersionSpec.to_json()...}}
    {"v": 2, "op": "label", "uuid": "...", "label": 3, "at": "2026-01-01T12:00:00+00:00"}

``model_sha256`` (the weights' hash of the record's version) and ``version`` (that
version's description, so that a replay can register it) are optional.  Format 1 lines
(older releases) read the same way.  A line of another format version is set aside.

`replay` hands the waiting lines, in order, to a function in bounded chunks: each chunk
is a run of lines of one kind (inserts or labels), applied by the caller in one short
database transaction.  After each chunk the byte offset of the first line not yet sent is
kept in ``pending.offset`` (fsync'd), so a crash between chunks neither loses nor resends
what was committed; the file is emptied once everything is sent.  Replays are idempotent
anyway (inserts are ``ON CONFLICT (uuid) DO NOTHING``, a label only replaces an older one).

Bad lines never stop the spool: a line that is not JSON, not a JSON object, of an unknown
format or operation, or cut off by a crash, is moved (once) to ``rejected.jsonl`` (0600)
with the reason and its bytes, and every other line is still sent.  So is a line the
database refuses for good.

Several processes may share one spool folder: every read and write holds an exclusive
lock on ``<dir>/spool.lock`` (POSIX ``flock``; on Windows only a thread lock).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator, Sequence

from app.db.records import PredictionRecord, VersionSpec
from app.fsutil import fsync_dir

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
OPERATIONS = ("insert", "label")
# A replay chunk: at most this many lines, or this many bytes of them.
CHUNK_ENTRIES = 100
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Line:
    """A waiting line: its entry, and where its bytes are in pending.jsonl."""

    entry: dict
    start: int
    end: int
    raw: bytes


@dataclass(frozen=True)
class ReplayResult:
    sent: int = 0        # lines applied (inserts and labels)
    drawings: int = 0    # of those, predictions (inserts)
    rejected: int = 0    # lines the database refused, set aside


# apply(entries) -> the (index in entries, reason) of those the database refused for good.
ApplyChunk = Callable[[list[dict]], Sequence[tuple[int, str]]]


class Spool:
    PENDING = "pending.jsonl"
    OFFSET = "pending.offset"
    LOCK = "spool.lock"
    REJECTED = "rejected.jsonl"

    def __init__(self, directory: str | os.PathLike):
        """Open (and create) the spool folder; OSError when it cannot be used."""
        self.directory = Path(directory)
        if not self.directory.is_dir():
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.directory / self.PENDING
        self._thread_lock = threading.RLock()
        self._depth = 0  # nesting of _locked() in the thread that holds it
        self._count = 0
        self._known = (-1, -1)  # (file size, offset) the count is for
        with self._locked():
            self._refresh(force=True)

    # ---- writing ----------------------------------------------------------------
    def add_record(self, record: PredictionRecord, model_sha256: str | None = None,
                   version: VersionSpec | None = None) -> None:
        entry: dict = {"v": FORMAT_VERSION, "op": "insert", "record": record.to_json()}
        if model_sha256 is not None:
            entry["model_sha256"] = model_sha256
        if version is not None:
            entry["version"] = version.to_json()
        self._append(entry)

    def add_label(self, uuid: str, label: int | None, at: datetime) -> None:
        self._append({"v": FORMAT_VERSION, "op": "label", "uuid": uuid, "label": label,
                      "at": at.isoformat()})

    def _append(self, entry: dict) -> None:
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
        with self._locked():
            self._refresh()
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
            self._known = (self.path.stat().st_size, self._known[1])

    # ---- reading ----------------------------------------------------------------
    def __len__(self) -> int:
        """How many writes are waiting (also those another process added)."""
        with self._locked():
            self._refresh()
            return self._count

    def pending_nowait(self) -> int:
        """Like len(), but returns the last known count instead of waiting for the lock."""
        if not self._thread_lock.acquire(blocking=False):
            return self._count
        try:
            if fcntl is None or self._depth:
                return self._count
            try:
                fd = os.open(self.directory / self.LOCK, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                return self._count
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return self._count
                self._depth = 1
                try:
                    self._refresh()
                except OSError:
                    pass
                finally:
                    self._depth = 0
                return self._count
            finally:
                os.close(fd)
        finally:
            self._thread_lock.release()

    def entries(self) -> list[dict]:
        """The waiting entries, in order."""
        with self._locked():
            return [line.entry for line in self._scan()]

    def replay(self, apply: ApplyChunk, *, chunk_entries: int = CHUNK_ENTRIES,
               chunk_bytes: int = CHUNK_BYTES) -> ReplayResult:
        """Give the waiting entries, in order and in chunks, to ``apply``.

        A chunk is a run of entries of one operation, at most ``chunk_entries`` of them
        and ``chunk_bytes`` of their lines.  After ``apply`` returns, the chunk counts as
        sent (its refused entries go to rejected.jsonl) and the offset moves past it.
        If ``apply`` raises, the chunk and those after it stay waiting and the exception
        propagates.  When everything is sent the file is emptied.
        """
        sent = drawings = refused = 0
        with self._locked():
            lines = self._scan()
            for chunk in _chunks(lines, chunk_entries, chunk_bytes):
                rejections = apply([line.entry for line in chunk])
                for index, reason in rejections:
                    self._reject_line(chunk[index].raw, reason, chunk[index].entry)
                refused += len(rejections)
                sent += len(chunk) - len(rejections)
                if chunk[0].entry["op"] == "insert":
                    drawings += len(chunk) - len(rejections)
                self._write_offset(chunk[-1].end)
                self._count = max(0, self._count - len(chunk))
            if lines:
                self._clear()
        return ReplayResult(sent=sent, drawings=drawings, rejected=refused)

    # ---- internals: the lock ----------------------------------------------------------
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

    # ---- internals: reading the file ---------------------------------------------------
    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _refresh(self, force: bool = False) -> None:
        """Recount (and clean: see `_scan`) when the file or offset changed since."""
        known = (self._size(), self._read_offset())
        if force or known != self._known:
            self._scan()

    def _scan(self) -> list[Line]:
        """The good lines after the offset.  Bad ones (and a line cut off by a crash) are
        moved to rejected.jsonl and removed from the file, so they are reported once."""
        size = self._size()
        offset = self._valid_offset(size)
        lines: list[Line] = []
        bad: list[tuple[bytes, str]] = []
        if size > offset:
            with open(self.path, "rb") as f:
                f.seek(offset)
                data = f.read()
            position = offset
            for raw in data.splitlines(keepends=True):
                start, position = position, position + len(raw)
                if not raw.endswith(b"\n"):
                    bad.append((raw, "unfinished line (the app stopped while writing it)"))
                    continue
                entry, reason = _parse(raw)
                if reason is not None:
                    bad.append((raw, reason))
                else:
                    lines.append(Line(entry, start, position, raw))
        if bad:
            for raw, reason in bad:
                self._reject_line(raw, reason)
            lines = self._rewrite(lines)
        self._count = len(lines)
        self._known = (self._size(), self._read_offset())
        return lines

    def _rewrite(self, lines: list[Line]) -> list[Line]:
        """Replace pending.jsonl by ``lines`` alone (atomically); the offset goes to 0."""
        tmp = self.directory / (self.PENDING + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        kept: list[Line] = []
        position = 0
        try:
            for line in lines:
                os.write(fd, line.raw)
                kept.append(Line(line.entry, position, position + len(line.raw), line.raw))
                position += len(line.raw)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._remove_offset()
        fsync_dir(self.directory)
        return kept

    # ---- internals: the offset -----------------------------------------------------------
    def _read_offset(self) -> int:
        try:
            return int((self.directory / self.OFFSET).read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _valid_offset(self, size: int) -> int:
        """The offset, if it is a line start within the file; else 0 (resend: harmless)."""
        offset = self._read_offset()
        if offset == 0:
            return 0
        ok = 0 < offset <= size
        if ok:
            with open(self.path, "rb") as f:
                f.seek(offset - 1)
                ok = f.read(1) == b"\n"
        if not ok:
            log.warning("Ignoring %s (%d does not start a line of %s)",
                        self.directory / self.OFFSET, offset, self.path)
            self._remove_offset()
            return 0
        return offset

    def _write_offset(self, offset: int) -> None:
        target = self.directory / self.OFFSET
        tmp = self.directory / (self.OFFSET + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{offset}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        fsync_dir(self.directory)
        self._known = (self._size(), offset)

    def _remove_offset(self) -> None:
        try:
            (self.directory / self.OFFSET).unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.directory)

    def _clear(self) -> None:
        """Everything was sent: empty the file, then forget the offset."""
        with open(self.path, "r+b") as f:
            f.truncate(0)
            f.flush()
            os.fsync(f.fileno())
        self._remove_offset()
        self._count = 0
        self._known = (0, 0)

    # ---- internals: rejected lines ----------------------------------------------------------
    def _reject_line(self, raw: bytes, reason: str, entry: dict | None = None) -> None:
        """Keep a refused line's bytes, once, in rejected.jsonl (0600)."""
        path = self.directory / self.REJECTED
        digest = hashlib.sha256(raw).hexdigest()
        if digest in self._rejected_digests(path):
            return
        log.error("A spooled write was set aside in %s: %s", path, reason)
        record: dict = {"reason": reason, "sha256": digest}
        try:
            record["line"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            record["line_base64"] = base64.b64encode(raw).decode("ascii")
        if entry is not None:
            record["entry"] = entry
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # also a file an older release made 0644
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    @staticmethod
    def _rejected_digests(path: Path) -> set[str]:
        try:
            with open(path, "rb") as f:
                found = set()
                for raw in f:
                    try:
                        digest = json.loads(raw).get("sha256")
                    except (ValueError, AttributeError):
                        continue
                    if isinstance(digest, str):
                        found.add(digest)
                return found
        except FileNotFoundError:
            return set()


def _parse(raw: bytes) -> tuple[dict | None, str | None]:
    """(entry, None) for a line this app can apply, else (None, why not)."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return None, "not JSON"
    if not isinstance(entry, dict):
        return None, f"not a JSON object (a JSON {type(entry).__name__})"
    version = entry.get("v")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        return None, (f"format version {version!r} is not one this app reads "
                      f"({', '.join(map(str, READABLE_VERSIONS))})")
    op = entry.get("op")
    if op not in OPERATIONS:
        return None, f"unknown operation {op!r}"
    if op == "insert" and not isinstance(entry.get("record"), dict):
        return None, "an insert without a record"
    if op == "label" and not ("uuid" in entry and "at" in entry and "label" in entry):
        return None, "a label without uuid, label and time"
    return entry, None


def _chunks(lines: list[Line], max_entries: int, max_bytes: int) -> Iterator[list[Line]]:
    chunk: list[Line] = []
    size = 0
    for line in lines:
        if chunk and (line.entry["op"] != chunk[0].entry["op"] or len(chunk) >= max_entries
                      or size + len(line.raw) > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(line)
        size += len(line.raw)
    if chunk:
        yield chunk

"""`DbSession`: the one connection policy every part of the repository shares.

Connect (and apply the schema), reconnect after a lost connection (at most every
``retry_interval`` seconds, or at once when asked), run each piece of work in one
transaction retried on deadlock or serialization failure, translate database errors into
messages for people, and, when the server cannot be reached, either spool a write or
raise `DatabaseUnavailable` for a read.  One lock guards the connection, so the parts may
be used from several threads; `status()` never waits.

When a connection comes (back) and the spool holds writes, the session calls its
``replay`` hook (set by app.db.writes) before anything else, so the order is kept.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from app.db import schema
from app.db.errors import (DatabaseError, DatabaseUnavailable, InvalidRecord, SchemaError,
                           describe_connect_error)
from app.db.params import ConnectionParams
from app.db.records import DbStatus
from app.db.spool import Spool

log = logging.getLogger(__name__)

T = TypeVar("T")

APPLICATION_NAME = "mnist-classifier"
DEADLOCK_ATTEMPTS = 5
# SQLSTATEs that mean the connection is gone (class 08) or the server is going away.
_LOST_STATES = {"57P01", "57P02", "57P03"}
# Classes of errors that are the server's trouble, not the data's: 25 read-only
# transaction, 40 rollback (after retries), 53 resources (disk full, out of memory),
# 55 object not ready, 57 operator intervention, 58 system error, XX internal.
_SERVER_TROUBLE_CLASSES = {"25", "40", "53", "55", "57", "58", "XX"}


class DbSession:
    """The connection, the spool and the policy around them (see the module's doc).

    params:  where to connect (also what messages name); connect: a function returning a
             new psycopg2 connection instead (it may raise psycopg2.Error or
             DatabaseError, both meaning "offline").
    where:   what `status()` shows as the place, when not ``params.where``.
    """

    def __init__(self, params: ConnectionParams, *,
                 connect: Callable[[], psycopg2.extensions.connection] | None = None,
                 spool_dir: str | os.PathLike | None = None, where: str | None = None,
                 retry_interval: float = 5.0, connect_timeout: int = 5,
                 time_zone: str | None = None, sql_dir: str | os.PathLike | None = None):
        self.params = params
        self.where = where or params.where
        self._connect_fn = connect
        self._retry_interval = retry_interval
        self._connect_timeout = connect_timeout
        self._time_zone = time_zone
        self._sql_dir = Path(sql_dir) if sql_dir is not None else None
        self.lock = threading.RLock()
        self.conn: psycopg2.extensions.connection | None = None
        self.last_error: DatabaseError | None = None
        self._next_attempt = 0.0
        self.closed = False
        # Counts of what replays sent from the spool (for flush_spool and DbStatus).
        self.sent_entries = 0
        self.sent_drawings = 0
        # Set by the writer: sends the spool; False when the connection broke meanwhile.
        self.replay: Callable[[], bool] = lambda: True
        self.spools = SpoolAccess(spool_dir, retry_interval)

    # ---- connecting -----------------------------------------------------------------
    def check_open(self) -> None:
        if self.closed:
            raise DatabaseError("The repository is closed.")

    def _new_connection(self) -> psycopg2.extensions.connection:
        if self._connect_fn is not None:
            return self._connect_fn()
        return psycopg2.connect(**self.params.connect_kwargs(
            connect_timeout=self._connect_timeout, application_name=APPLICATION_NAME))

    def ensure_online(self, force: bool = False) -> bool:
        """Connected, schema applied, spool replayed?  Tries to get there (caller holds lock)."""
        if self.conn is None or self.conn.closed:
            if not force and time.monotonic() < self._next_attempt:
                return False
            if not self._connect():
                return False
        spool = self.spools.usable()  # (a folder that became usable may hold writes)
        if spool is not None and len(spool):
            return self.replay()
        return True

    def _connect(self) -> bool:
        was_offline_reason = self.last_error
        try:
            conn = self._new_connection()
        except psycopg2.Error as exc:
            self.go_offline(describe_connect_error(exc, self.params))
            return False
        except DatabaseError as exc:  # from a connect function (e.g. the embedded server)
            self.go_offline(exc)
            return False
        try:
            conn.autocommit = False
            schema.apply_schema(conn, self._sql_dir)
            with conn.cursor() as cur:
                # A commit must mean "on disk": a server set to synchronous_commit=off may
                # lose the last commits in a crash, after we emptied the spool.
                cur.execute("SELECT current_setting('synchronous_commit')")
                if cur.fetchone()[0] == "off":
                    cur.execute("SET synchronous_commit TO on")
                if self._time_zone:
                    cur.execute("SELECT set_config('TimeZone', %s, false)", (self._time_zone,))
            conn.commit()
        except SchemaError as exc:
            conn.close()
            log.error("%s", exc)
            self.go_offline(exc)
            return False
        except psycopg2.Error as exc:
            conn.close()
            self.go_offline(describe_connect_error(exc, self.params))
            return False
        self.conn = conn
        self.last_error = None
        if was_offline_reason is not None:
            log.info("Database at %s is reachable again", self.where)
        else:
            log.info("Connected to the database (%s)", self.params.describe())
        return True

    def go_offline(self, error: DatabaseError) -> None:
        if self.last_error is None or str(self.last_error) != str(error):
            log.warning("Database offline: %s", error)
        self.last_error = error
        self._next_attempt = time.monotonic() + self._retry_interval

    def lose_connection(self, exc: BaseException) -> None:
        """Drop the connection after ``exc`` and go offline (retrying later)."""
        lost = not isinstance(exc, psycopg2.Error) or self.is_connection_lost(exc)
        conn, self.conn = self.conn, None
        if conn is not None and not conn.closed:
            try:
                conn.close()
            except psycopg2.Error:
                pass
        first_line = self.first_line(exc)
        if lost:
            message = f"Lost the connection to the database at {self.where}: {first_line}"
        else:
            message = f"The database at {self.where} cannot take writes now: {first_line}"
        self.go_offline(DatabaseUnavailable(message))

    def check_alive(self) -> None:
        """Notice a connection that broke while idle (caller holds the lock)."""
        if self.conn is not None and not self.conn.closed:
            try:
                with self.conn.cursor() as cur:
                    cur.execute("SELECT 1")
                self.conn.rollback()
            except psycopg2.Error as exc:
                self.lose_connection(exc)

    def is_connection_lost(self, exc: psycopg2.Error) -> bool:
        if self.conn is None or self.conn.closed:
            return True
        if isinstance(exc, psycopg2.InterfaceError):
            return True
        code = exc.pgcode
        if code is None:
            return isinstance(exc, psycopg2.OperationalError)
        return code.startswith("08") or code in _LOST_STATES

    def is_server_trouble(self, exc: psycopg2.Error) -> bool:
        """Lost connection, or the server cannot do it now (disk full, read-only, shutting
        down, out of memory, ...): worth spooling and retrying.  Not: a bad value (classes
        22, 23) or a bug in our SQL (42)."""
        if self.is_connection_lost(exc):
            return True
        code = exc.pgcode or ""
        return code[:2] in _SERVER_TROUBLE_CLASSES

    # ---- running work -------------------------------------------------------------------
    def run(self, work: Callable[[Any], T]) -> T:
        """Run ``work(cursor)`` in one transaction, retried on deadlock/serialization.

        Raises psycopg2 errors of server trouble as they are; translates the others
        (`translate`).  The caller holds the lock and the connection is open.
        """
        for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
            try:
                with self.conn.cursor() as cur:
                    result = work(cur)
                self.conn.commit()
                return result
            except psycopg2.Error as exc:
                if self.is_connection_lost(exc):
                    raise
                self.conn.rollback()
                if isinstance(exc, psycopg2.extensions.TransactionRollbackError) \
                        and attempt < DEADLOCK_ATTEMPTS:
                    log.info("Retrying after %s (attempt %d)", type(exc).__name__, attempt)
                    time.sleep(random.uniform(0.005, 0.02) * attempt)
                    continue
                if self.is_server_trouble(exc):
                    raise
                raise self.translate(exc) from exc
            except BaseException:
                if self.conn is not None and not self.conn.closed:
                    try:
                        self.conn.rollback()
                    except psycopg2.Error:
                        pass
                raise
        raise AssertionError("unreachable")

    def try_online(self, work: Callable[[Any], T]) -> tuple[bool, T | None]:
        """Run ``work`` on the server if it can be reached: (True, result), or (False, None).

        Second round: the connection broke (e.g. the server restarted): reconnect now.
        The caller holds the lock.
        """
        for force in (False, True):
            if not self.ensure_online(force=force):
                break
            try:
                return True, self.run(work)
            except psycopg2.Error as exc:
                self.lose_connection(exc)
        return False, None

    def write(self, online: Callable[[Any], T], offline: Callable[[], T]) -> T:
        """``online(cursor)`` on the server, or ``offline()`` (which spools) when it
        cannot be reached."""
        with self.lock:
            self.check_open()
            done, result = self.try_online(online)
            if done:
                return result
            return offline()

    def read(self, query: Callable[[Any], T]) -> T:
        """``query(cursor)`` on the server; `DatabaseUnavailable` when it cannot be reached."""
        with self.lock:
            self.check_open()
            done, result = self.try_online(query)
            if done:
                return result
            error = self.last_error
            raise DatabaseUnavailable(
                str(error) if error else f"The database at {self.where} is not reachable.",
                setting=error.setting if error else None)

    # ---- errors ------------------------------------------------------------------------------
    def first_line(self, exc: BaseException) -> str:
        """The first line of an error's text, redacted."""
        return self.params.redact((str(exc).strip().splitlines() or [type(exc).__name__])[0])

    def translate(self, exc: psycopg2.Error) -> DatabaseError:
        """A psycopg2 error (not a lost connection) as a message for people."""
        return translate(exc, self.first_line(exc))

    # ---- state ---------------------------------------------------------------------------------
    def status(self) -> DbStatus:
        """Online or not, how many writes wait, where.  Never blocks on I/O to the server."""
        conn = self.conn
        online = conn is not None and not conn.closed and not self.closed
        spool = self.spools.spool
        pending = spool.pending_nowait() if spool is not None else 0
        error = self.last_error
        message = None if online else (str(error) if error else "Not connected.")
        return DbStatus(online=online, pending=pending, where=self.where, message=message,
                        drawings_sent=self.sent_drawings, warning=self.spools.problem)

    def close(self) -> None:
        """Close the connection (what waits in the spool stays there for the next start)."""
        with self.lock:
            self.closed = True
            conn, self.conn = self.conn, None
            if conn is not None and not conn.closed:
                conn.close()


def translate(exc: psycopg2.Error, first_line: str) -> DatabaseError:
    """A psycopg2 error (not a lost connection), whose first line (redacted) is
    ``first_line``, as a message for people."""
    if isinstance(exc, (psycopg2.errors.CheckViolation, psycopg2.errors.NotNullViolation,
                        psycopg2.DataError)):
        constraint = getattr(exc.diag, "constraint_name", None)
        what = f" ({constraint})" if constraint else ""
        return InvalidRecord(f"The database refused a value{what}: {first_line}. "
                             f"Nothing was written.")
    return DatabaseError(f"Database error: {first_line}")


class SpoolAccess:
    """The offline spool, opened when its folder can be used; when it cannot, the
    database still works online and `problem` says that offline writes cannot be kept.
    Opening is tried again at most every ``retry_interval`` seconds."""

    def __init__(self, directory: str | os.PathLike | None, retry_interval: float):
        self.directory = Path(directory) if directory is not None else None
        self.spool: Spool | None = None
        self.problem: str | None = None
        self._retry_interval = retry_interval
        self._next_attempt = 0.0
        self.usable()

    def usable(self) -> Spool | None:
        """The spool, opening it if it is not open yet (and it is time to try)."""
        if self.spool is not None or self.directory is None \
                or time.monotonic() < self._next_attempt:
            return self.spool
        try:
            self.spool = Spool(self.directory)
        except OSError as exc:
            problem = (f"The offline spool folder {self.directory} cannot be used "
                       f"({exc.strerror or exc}): while the database is unreachable, new "
                       f"drawings cannot be kept. Fix MNIST_DATA_HOME (the per-user data "
                       f"folder) or the folder's permissions.")
            if problem != self.problem:
                log.warning("%s", problem)
            self.problem = problem
            self._next_attempt = time.monotonic() + self._retry_interval
            return None
        if self.problem is not None:
            log.info("The offline spool folder %s works again", self.directory)
        self.problem = None
        return self.spool

    def for_write(self, last_error: DatabaseError | None) -> Spool:
        """The spool, for a write the server cannot take now; or DatabaseUnavailable
        saying that the write is lost."""
        spool = self.usable()
        if spool is not None:
            return spool
        reason = str(last_error) if last_error else "The database is not reachable."
        if self.problem is None:  # no spool configured
            raise last_error or DatabaseUnavailable(reason)
        raise DatabaseUnavailable(f"{reason} {self.problem} This write was not saved.",
                                  setting="MNIST_DATA_HOME")

    def write(self, method, *args, last_error: DatabaseError | None = None) -> None:
        """Call a Spool method; an OSError (disk full, ...) becomes a clear DatabaseError."""
        try:
            method(*args)
        except OSError as exc:
            raise DatabaseError(
                f"The database is offline ({last_error}) and the offline spool "
                f"{self.directory} cannot be written: {exc.strerror or exc}. "
                f"Nothing was saved.") from exc

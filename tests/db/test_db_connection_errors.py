"""Clear messages for bad settings, and `open_database` for both kinds of server."""

from __future__ import annotations

import socket

import pytest
from dbhelpers import make_record

from app.db import (DatabaseConfigError, DatabaseUnavailable, PredictionRepository,
                    open_database)
from app.settings import Settings


def settings_for(tmp_path, **env) -> Settings:
    env = {"MNIST_DATA_HOME": str(tmp_path / "home"), **env}
    return Settings.load(env=env, dotenv_path=None)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when we return


def test_wrong_password_names_db_password(external_pg, tmp_path):
    s = settings_for(tmp_path, DB_HOST="127.0.0.1", DB_PORT=str(external_pg.port),
                     DB_NAME="postgres", DB_USER="postgres", DB_PASSWORD="wrong")
    with pytest.raises(DatabaseConfigError) as err:
        open_database(s, offline_ok=False)
    message = str(err.value)
    assert "Wrong password for user 'postgres'" in message
    assert f"127.0.0.1:{external_pg.port}" in message
    assert "DB_PASSWORD" in message and err.value.setting.startswith("DB_PASSWORD")


def test_wrong_password_in_url_names_database_url(external_pg, tmp_path):
    url = external_pg.url_for("postgres", password="wrong")
    repo = PredictionRepository(url, spool_dir=tmp_path / "spool")
    status = repo.status()
    assert not status.online
    assert "Wrong password" in status.message and "DATABASE_URL" in status.message
    repo.close()


def test_unknown_user_and_database(external_pg, tmp_path):
    repo = PredictionRepository(f"postgresql://nobody:x@127.0.0.1:{external_pg.port}/postgres")
    assert "nobody" in repo.status().message
    repo.close()
    repo = PredictionRepository(external_pg.url_for("no_such_db"))
    assert "There is no database 'no_such_db'" in repo.status().message
    assert "DB_NAME" in repo.status().message
    repo.close()


def test_unknown_host_names_db_host(tmp_path):
    s = settings_for(tmp_path, DB_HOST="no-such-host.invalid", DB_PASSWORD="x")
    with pytest.raises(DatabaseConfigError, match="Unknown host 'no-such-host.invalid'.*DB_HOST"):
        open_database(s, offline_ok=False)


def test_refused_connection_names_the_setting(tmp_path):
    port = closed_port()
    s = settings_for(tmp_path, DATABASE_URL=f"postgresql://u:p@127.0.0.1:{port}/mnist")
    with pytest.raises(DatabaseUnavailable) as err:
        open_database(s, offline_ok=False)
    assert "connection refused" in str(err.value)
    assert "DATABASE_URL" in str(err.value)


def test_offline_at_startup_still_gives_a_spooling_repository(tmp_path):
    port = closed_port()
    s = settings_for(tmp_path, DB_HOST="127.0.0.1", DB_PORT=str(port), DB_PASSWORD="x")
    repo, server = open_database(s, retry_interval=0)
    assert server is None
    status = repo.status()
    assert (status.online, status.pending, status.where) == (False, 0, f"127.0.0.1:{port}")
    assert "DB_PORT" in status.message
    repo.log(make_record())
    u = repo.log(make_record())
    repo.set_label(u, 4)
    assert repo.status().pending == 3
    assert str(repo.status()) == f"offline (127.0.0.1:{port}), 3 waiting"
    with pytest.raises(DatabaseUnavailable):
        repo.accuracy()
    assert repo.flush_spool() == 0
    repo.close()
    assert (s.spool_dir / "pending.jsonl").exists()


def test_open_database_external_by_url(external_db_url, tmp_path):
    repo, server = open_database(settings_for(tmp_path, DATABASE_URL=external_db_url))
    assert server is None
    assert repo.status().online and repo.status().where.startswith("127.0.0.1:")
    repo.log(make_record())
    assert repo.accuracy()["total"] == 1
    repo.close()


def test_open_database_embedded(scratch_pgdata):
    """No database settings: the embedded server in the data folder, stopped on request."""
    from app.db.server import postmasters
    s = Settings.load(env={"MNIST_DATA_HOME": str(scratch_pgdata.parent)}, dotenv_path=None)
    assert s.embedded_pg_dir == scratch_pgdata
    repo, server = open_database(s, offline_ok=False)
    try:
        assert server is not None and server.running
        status = repo.status()
        assert (status.online, status.where, str(status)) == (True, "embedded", "online (embedded)")
        repo.log(make_record())
        assert repo.accuracy()["total"] == 1
        assert postmasters(s.embedded_pg_dir) == [server.pid]
    finally:
        repo.close()
        server.stop()
    assert postmasters(s.embedded_pg_dir) == []
    # The next start finds the same data.
    repo, server = open_database(s, offline_ok=False)
    try:
        assert repo.accuracy()["total"] == 1
    finally:
        repo.close()
        server.stop()


def test_embedded_server_that_dies_is_started_again(scratch_pgdata):
    import os
    import signal

    import psutil

    from app.db.server import postmasters
    s = Settings.load(env={"MNIST_DATA_HOME": str(scratch_pgdata.parent)}, dotenv_path=None)
    repo, server = open_database(s, offline_ok=False, retry_interval=0)
    try:
        before = repo.accuracy()["total"]
        old_pid = server.pid
        backends = psutil.Process(old_pid).children()
        os.kill(old_pid, signal.SIGKILL)               # the server crashes
        # Its backends notice and quit (until then our connection would still work).
        psutil.wait_procs(backends, timeout=10)
        u = repo.log(make_record())                    # spooled or sent: never lost
        repo.flush_spool()
        assert repo.status().online and repo.status().pending == 0
        assert repo.accuracy()["total"] == before + 1
        assert u in {r.uuid for r in repo.recent()}
        assert server.pid != old_pid and postmasters(scratch_pgdata) == [server.pid]
    finally:
        repo.close()
        server.stop()
    assert postmasters(scratch_pgdata) == []


def test_unusable_data_folder_names_mnist_data_home(tmp_path):
    from app.db import DatabaseError, EmbeddedServer, EmbeddedServerError
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(DatabaseError, match="MNIST_DATA_HOME"):
        open_database(settings_for(tmp_path, MNIST_DATA_HOME=str(blocker)), offline_ok=False)
    repo, server = open_database(settings_for(tmp_path, MNIST_DATA_HOME=str(blocker)))
    status = repo.status()
    assert not status.online and "MNIST_DATA_HOME" in status.message
    assert "cannot be kept" in status.warning
    with pytest.raises(DatabaseUnavailable, match="not saved"):
        repo.log(make_record())
    repo.close()
    server.stop()
    with pytest.raises(EmbeddedServerError, match="MNIST_DATA_HOME"):
        EmbeddedServer(blocker / "postgres").start()

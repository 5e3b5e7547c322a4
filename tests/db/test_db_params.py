"""Connection parameters: malformed URLs are refused with a clear message, and the password
never appears in an exception, a log record or the status, whatever the URL looks like."""

from __future__ import annotations

import logging
import socket

import pytest
from dbhelpers import make_record

from app.db import (ConnectionParams, DatabaseConfigError, DatabaseError, PredictionRepository,
                    open_database)
from app.db.params import redact_text
from app.settings import Settings

SECRET = "Sup3r-s3cret"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = closed_port()
# name -> (DATABASE_URL, the words the message must have)
MALFORMED = {
    "scheme typo": (f"postgresq://app:{SECRET}@127.0.0.1:{PORT}/mnist", "postgresql://"),
    "no scheme": (f"app:{SECRET}@127.0.0.1:{PORT}/mnist", "postgresql://"),
    "slash in password": (f"postgresql://app:{SECRET}/x@127.0.0.1:{PORT}/mnist", "%2F"),
    "slash first in password": (f"postgresql://app:/{SECRET}@127.0.0.1:{PORT}/mnist", "%2F"),
    "hash in password": (f"postgresql://app:{SECRET}#x@127.0.0.1:{PORT}/mnist", "%23"),
    "question mark in password": (f"postgresql://app:{SECRET}?x@127.0.0.1:{PORT}/mnist", "%3F"),
    "unclosed IPv6 bracket": (f"postgresql://app:{SECRET}@[::1:{PORT}/mnist", "[::1]"),
    "no at sign": (f"postgresql://app:{SECRET}/mnist", "port"),
    "bad key=value": (f"host=127.0.0.1 password={SECRET} port", "key=value"),
    "bad query": (f"postgresql://app:{SECRET}@127.0.0.1:{PORT}/mnist?a=b&&c", "query"),
}


def settings_for(tmp_path, **env) -> Settings:
    return Settings.load(env={"MNIST_DATA_HOME": str(tmp_path / "home"), **env},
                         dotenv_path=None)


def no_secret_in(*texts) -> None:
    for text in texts:
        assert SECRET not in str(text), text


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_url_never_shows_its_password(case, tmp_path, caplog):
    url, words = MALFORMED[case]
    caplog.set_level(logging.DEBUG)
    settings = settings_for(tmp_path, DATABASE_URL=url)
    no_secret_in(repr(settings))

    with pytest.raises(DatabaseConfigError) as err:
        ConnectionParams.from_url(url, origins=settings.sources)
    message = str(err.value)
    no_secret_in(message, repr(err.value), err.value.setting)
    assert words in message and "DATABASE_URL (set in the environment)" in message

    with pytest.raises(DatabaseError) as err:
        open_database(settings, offline_ok=False)
    no_secret_in(str(err.value))
    assert "Fix DATABASE_URL" in str(err.value)

    repo, server = open_database(settings, retry_interval=0)  # offline, spooling
    assert server is None
    repo.log(make_record())
    repo.flush_spool()
    status = repo.status()
    assert not status.online and status.pending == 1
    no_secret_in(status.message, str(status), status.where)

    direct = PredictionRepository(url, spool_dir=tmp_path / "spool2")
    no_secret_in(direct.status().message, direct.last_error)
    direct.close()
    repo.close()
    no_secret_in(caplog.text, *(r.getMessage() for r in caplog.records))


def test_a_wrong_password_is_not_shown_either(external_pg, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    url = external_pg.url_for("postgres", password=SECRET)
    repo = PredictionRepository(url, spool_dir=tmp_path / "spool")
    assert "Wrong password" in repo.status().message
    no_secret_in(repo.status().message, caplog.text)
    repo.close()


def test_db_variables_are_used_as_fields(external_pg, tmp_path, caplog):
    """A password with '/', '#', '@' and spaces works from DB_PASSWORD (no URL involved)."""
    caplog.set_level(logging.DEBUG)
    settings = settings_for(tmp_path, DB_HOST="127.0.0.1", DB_PORT=str(external_pg.port),
                            DB_NAME="postgres", DB_USER="postgres",
                            DB_PASSWORD=external_pg.password)
    repo, _ = open_database(settings, offline_ok=False)
    assert repo.status().online
    repo.close()
    bad = settings_for(tmp_path, DB_HOST="127.0.0.1", DB_PORT="54x3", DB_PASSWORD=SECRET)
    with pytest.raises(DatabaseConfigError, match=r"DB_PORT \(set in the environment\)"):
        open_database(bad, offline_ok=False)
    wrong = settings_for(tmp_path, DB_HOST="127.0.0.1", DB_PORT=str(external_pg.port),
                         DB_USER="postgres", DB_NAME="postgres", DB_PASSWORD=f"a/b#c@d {SECRET}")
    with pytest.raises(DatabaseConfigError) as err:
        open_database(wrong, offline_ok=False)
    assert "DB_PASSWORD (set in the environment)" in str(err.value)
    no_secret_in(str(err.value), caplog.text)


def test_parsing_keeps_every_part():
    p = ConnectionParams.from_url("postgresql://us%40er:p%2Fw%23d@[::1]:6543/my%20db"
                                  "?sslmode=require&connect_timeout=3")
    assert (p.host, p.port, p.dbname, p.user, p.password) == ("::1", "6543", "my db", "us@er",
                                                              "p/w#d")
    assert p.options == {"sslmode": "require", "connect_timeout": "3"}
    assert p.where == "[::1]:6543" and "p/w#d" not in repr(p)
    kwargs = p.connect_kwargs(connect_timeout=5)
    assert kwargs["connect_timeout"] == "3" and kwargs["keepalives"] == 1
    socket_url = ConnectionParams.from_url("postgresql://postgres@/mnist?host=/run/pg&passfile=/x/p")
    assert socket_url.where == "local socket /run/pg" and "keepalives" not in socket_url.connect_kwargs()
    assert ConnectionParams.from_url("postgres://h1:5432,h2:5433/db").port == "5432,5433"


@pytest.mark.parametrize("text", [
    f"postgresql://app:{SECRET}@host/db",
    f"postgresql://app:{SECRET}/x@host/db",
    f"postgresql://app:{SECRET}#x@host/db",
    f"postgresq://app:{SECRET}@[::1/db",
    f"could not parse host=h password={SECRET} port=1",
    f"password='{SECRET}' host=h",
])
def test_redaction_covers_passwords_with_slash_and_hash(text):
    assert SECRET not in redact_text(text)
    assert SECRET not in ConnectionParams(password=SECRET).redact(f"x {SECRET} y")

"""Settings: where each value came from (the environment or which .env), MODEL_PATH as
another name of MNIST_MODEL_PATH, and messages that name the real source."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import pytest

from app import paths
from app.db import DatabaseUnavailable, open_database
from app.settings import Settings


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_dotenv_read_is_recorded_with_its_absolute_path_and_logged(tmp_path, monkeypatch,
                                                                     caplog):
    (tmp_path / ".env").write_text("MNIST_MODEL_PATH=weights/mine.pth\nDB_HOST=db.example\n"
                                   "DB_PASSWORD=hunter22\n")
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="app.settings")
    s = Settings.load(env={"MNIST_DATA_HOME": str(tmp_path / "home")})
    assert s.dotenv_path == (tmp_path / ".env").resolve() and s.dotenv_path.is_absolute()
    assert s.model_path == Path("weights/mine.pth")
    assert s.source_of("MNIST_MODEL_PATH") == str(s.dotenv_path)
    assert s.source_of("MNIST_DATA_HOME") == "the environment"
    assert s.source_of("DATABASE_URL") is None
    assert s.where_set("DB_PASSWORD") == f"DB_PASSWORD (set in {s.dotenv_path})"
    assert s.where_set("DB_PORT") == "DB_PORT (not set)"
    [line] = [r.getMessage() for r in caplog.records if "Read settings" in r.getMessage()]
    assert str(s.dotenv_path) in line and "MNIST_MODEL_PATH" in line
    assert "hunter22" not in caplog.text and "hunter22" not in repr(s)


def test_no_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings.load(env={})
    assert s.dotenv_path is None and s.sources == {}
    assert s.model_path == paths.bundled_model_path()


def test_the_environment_wins_over_the_dotenv(tmp_path):
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://a@file/db\n")
    s = Settings.load(env={"DATABASE_URL": "postgresql://a@env/db"},
                      dotenv_path=tmp_path / ".env")
    assert s.database_url == "postgresql://a@env/db"
    assert s.source_of("DATABASE_URL") == "the environment"


@pytest.mark.parametrize("env, dotenv, expected", [
    ({"MODEL_PATH": "a.pth"}, "", "a.pth"),
    ({}, "MODEL_PATH=b.pth\n", "b.pth"),
    ({"MODEL_PATH": "a.pth", "MNIST_MODEL_PATH": "c.pth"}, "", "c.pth"),
    ({"MODEL_PATH": "a.pth"}, "MNIST_MODEL_PATH=d.pth\n", "d.pth"),  # the specific name wins
    ({"MNIST_MODEL_PATH": "c.pth"}, "MODEL_PATH=b.pth\n", "c.pth"),
])
def test_model_path_is_another_name_for_mnist_model_path(tmp_path, env, dotenv, expected):
    (tmp_path / ".env").write_text(dotenv)
    s = Settings.load(env=env, dotenv_path=tmp_path / ".env")
    assert s.model_path == Path(expected)


@pytest.mark.parametrize("where", ["environment", "dotenv"])
def test_the_database_message_names_where_database_url_was_set(tmp_path, where):
    url = f"postgresql://app:pw@127.0.0.1:{closed_port()}/mnist"
    env = {"MNIST_DATA_HOME": str(tmp_path / "home")}
    dotenv = tmp_path / "project" / ".env"
    dotenv.parent.mkdir()
    if where == "environment":
        env["DATABASE_URL"] = url
        dotenv.write_text("")
    else:
        dotenv.write_text(f"DATABASE_URL={url}\n")
    s = Settings.load(env=env, dotenv_path=dotenv)
    with pytest.raises(DatabaseUnavailable) as err:
        open_database(s, offline_ok=False)
    message = str(err.value)
    if where == "environment":
        assert "DATABASE_URL (set in the environment)" in message
        assert ".env" not in message
    else:
        assert f"DATABASE_URL (set in {dotenv.resolve()})" in message
        assert os.path.isabs(str(s.dotenv_path))

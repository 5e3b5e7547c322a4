"""Schema versions and migrations on a real server."""

from __future__ import annotations

import shutil

import psycopg2
import pytest
from dbhelpers import make_record

from app import paths
from app.db import PredictionRepository, SchemaError
from app.db import schema


def fetch(url, query, params=None):
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture
def sql_copy(tmp_path):
    """A copy of sql/ that a test may add migrations to."""
    target = tmp_path / "sql"
    shutil.copytree(paths.sql_dir(), target)
    (target / "migrations").mkdir(exist_ok=True)
    return target


def test_migration_changes_an_existing_database_without_losing_rows(db_url, sql_copy, tmp_path):
    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool", sql_dir=sql_copy)
    uuids = [repo.log(make_record(i % 10, 0.9, label=i % 10 if i % 2 else None, seed=i))
             for i in range(20)]
    repo.close()
    assert fetch(db_url, "SELECT max(version) FROM schema_version") == [(1,)]

    (sql_copy / "migrations" / "002_add_reviewed.sql").write_text(
        "ALTER TABLE predictions ADD COLUMN reviewed boolean NOT NULL DEFAULT false;\n"
        "UPDATE predictions SET reviewed = true WHERE true_label IS NOT NULL;\n")
    (sql_copy / "migrations" / "003_reviewed_index.sql").write_text(
        "CREATE INDEX predictions_reviewed_idx ON predictions (reviewed);\n")
    assert schema.latest_version(sql_copy) == 3

    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool", sql_dir=sql_copy)
    assert repo.status().online
    assert fetch(db_url, "SELECT version, name FROM schema_version ORDER BY version") == [
        (1, "initial"), (2, "add_reviewed"), (3, "reviewed_index")]
    assert fetch(db_url, "SELECT count(*), count(*) FILTER (WHERE reviewed) FROM predictions") \
        == [(20, 10)]
    assert {r.uuid for r in repo.recent(limit=100)} == set(uuids)
    assert repo.accuracy()["total"] == 20
    repo.log(make_record(1, 0.5))  # still writable after the migration
    repo.close()


def test_a_failing_migration_changes_nothing_and_keeps_writes(db_url, sql_copy, tmp_path):
    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool", sql_dir=sql_copy)
    repo.log(make_record())
    repo.close()
    (sql_copy / "migrations" / "002_broken.sql").write_text(
        "ALTER TABLE predictions ADD COLUMN half_done integer;\nSELECT no_such_function();\n")
    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool", sql_dir=sql_copy)
    status = repo.status()
    assert not status.online and "002_broken.sql" in status.message
    assert repo.log(make_record()) and repo.status().pending == 1  # spooled, not lost
    repo.close()
    assert fetch(db_url, "SELECT max(version) FROM schema_version") == [(1,)]
    assert fetch(db_url, "SELECT count(*) FROM information_schema.columns "
                         "WHERE table_name = 'predictions' AND column_name = 'half_done'") == [(0,)]


def test_migration_files_are_checked(tmp_path, sql_copy):
    (sql_copy / "migrations" / "001_again.sql").write_text("SELECT 1;")
    with pytest.raises(SchemaError, match="002"):
        schema.migrations(sql_copy)


def test_two_connections_migrate_once(db_url, tmp_path):
    a = PredictionRepository(db_url, spool_dir=tmp_path / "a")
    b = PredictionRepository(db_url, spool_dir=tmp_path / "b")
    a.log(make_record())
    b.log(make_record())
    assert fetch(db_url, "SELECT count(*) FROM schema_version") == [(1,)]
    assert a.accuracy()["total"] == 2
    a.close()
    b.close()

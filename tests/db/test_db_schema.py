"""Schema versions and migrations on a real server."""

from __future__ import annotations

import shutil

import psycopg2
import pytest
from dbhelpers import fetch, make_record, utc

from app import paths
from app.db import PredictionRepository, SchemaError
from app.db import schema


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
    n = schema.latest_version(sql_copy)
    assert fetch(db_url, "SELECT max(version) FROM schema_version") == [(n,)]

    (sql_copy / "migrations" / f"{n + 1:03d}_add_reviewed.sql").write_text(
        "ALTER TABLE predictions ADD COLUMN reviewed boolean NOT NULL DEFAULT false;\n"
        "UPDATE predictions SET reviewed = true WHERE true_label IS NOT NULL;\n")
    (sql_copy / "migrations" / f"{n + 2:03d}_reviewed_index.sql").write_text(
        "CREATE INDEX predictions_reviewed_idx ON predictions (reviewed);\n")
    assert schema.latest_version(sql_copy) == n + 2

    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool", sql_dir=sql_copy)
    assert repo.status().online
    assert fetch(db_url, "SELECT version, name FROM schema_version WHERE version > %s "
                         "ORDER BY version", (n,)) == [
        (n + 1, "add_reviewed"), (n + 2, "reviewed_index")]
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
    n = schema.latest_version(sql_copy)
    (sql_copy / "migrations" / f"{n + 1:03d}_broken.sql").write_text(
        "ALTER TABLE predictions ADD COLUMN half_done integer;\nSELECT no_such_function();\n")
    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool", sql_dir=sql_copy)
    status = repo.status()
    assert not status.online and f"{n + 1:03d}_broken.sql" in status.message
    assert repo.log(make_record()) and repo.status().pending == 1  # spooled, not lost
    repo.close()
    assert fetch(db_url, "SELECT max(version) FROM schema_version") == [(n,)]
    assert fetch(db_url, "SELECT count(*) FROM information_schema.columns "
                         "WHERE table_name = 'predictions' AND column_name = 'half_done'") == [(0,)]


V1_INSERT = """
INSERT INTO predictions (uuid, created_at, predicted_digit, confidence, probabilities,
                         true_label, labelled_at, image_png, model_version, model_version_id,
                         source)
VALUES (%s, %s, %s, %s, %s::real[], %s, %s, %s, %s, %s, 'canvas')
"""
V1_VIEWS = ("SELECT * FROM prediction_accuracy", "SELECT * FROM digit_statistics",
            "SELECT * FROM confusion_matrix", "SELECT * FROM accuracy_per_day")


def test_a_version_1_database_with_rows_is_upgraded(any_db_url, tmp_path):
    """Schema 1 (init.sql only) with predictions, some of them already pointing at a
    model_versions row: the upgrade to model versions keeps every row and every number."""
    conn = psycopg2.connect(any_db_url)
    assert schema.apply_schema(conn, up_to=1) == 1
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        cur.execute("INSERT INTO model_versions (arch, weights_sha256, path) "
                    "VALUES ('MnistCNN', repeat('ab', 32), '/m.pth') RETURNING id")
        v = cur.fetchone()[0]
        rows = []
        for i in range(30):
            r = make_record(i % 10, 0.5 + i / 100, seed=i, created_at=utc(2026, 1, 1 + i % 4, i % 24),
                            label=[None, i % 10, (i + 1) % 10][i % 3])
            version = v if i % 2 else None
            cur.execute(V1_INSERT, (r.uuid, r.created_at, r.predicted_digit, r.confidence,
                                    r.probabilities, r.true_label,
                                    r.created_at if r.true_label is not None else None,
                                    psycopg2.Binary(r.image_png), r.model_version, version))
            rows.append((r.uuid, r.true_label, version))
        v1_stats = []
        for query in V1_VIEWS:
            cur.execute(query)
            v1_stats.append(cur.fetchall())
    conn.commit()
    conn.close()
    assert v1_stats[0][0][:3] == (30, 20, 10)

    repo = PredictionRepository(any_db_url, spool_dir=tmp_path / "spool", time_zone="UTC")
    assert repo.status().online
    assert fetch(any_db_url, "SELECT max(version) FROM schema_version") == \
        [(schema.latest_version(),)]
    assert sorted(fetch(any_db_url, "SELECT uuid::text, true_label, model_version_id "
                                    "FROM predictions")) == sorted(rows)
    conn = psycopg2.connect(any_db_url)
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        v2_stats = []
        for query in V1_VIEWS:
            cur.execute(query)
            v2_stats.append(cur.fetchall())
    conn.close()
    assert v2_stats == v1_stats  # the views of version 1 give the same numbers
    assert repo.accuracy()["total"] == 30
    # The version's own numbers: odd rows; labelled when i % 3 != 0, right when i % 3 == 1.
    odd = [i for i in range(1, 30, 2)]
    assert repo.accuracy(v) == {"total": 15, "labelled": sum(i % 3 != 0 for i in odd),
                                "correct": sum(i % 3 == 1 for i in odd),
                                "accuracy": pytest.approx(5 / 10)}
    version = repo.model_version(v)
    assert (version.kind, version.name, version.predictions, version.labelled) == (
        "trained", None, 15, 10)
    assert repo.labelled_count() == 20 and len(repo.labelled_samples(v)) == 10
    repo.log(make_record(1, 0.5, model_version_id=v))  # writable, and counted per version
    assert repo.accuracy(v)["total"] == 16
    repo.close()


def test_migrating_to_a_version_that_does_not_exist_is_refused(db_url):
    conn = psycopg2.connect(db_url)
    with pytest.raises(SchemaError, match="no schema version 99"):
        schema.apply_schema(conn, up_to=99)
    conn.close()


def test_migration_files_are_checked(tmp_path, sql_copy):
    (sql_copy / "migrations" / "001_again.sql").write_text("SELECT 1;")
    with pytest.raises(SchemaError, match="002"):
        schema.migrations(sql_copy)


def test_two_connections_migrate_once(db_url, tmp_path):
    a = PredictionRepository(db_url, spool_dir=tmp_path / "a")
    b = PredictionRepository(db_url, spool_dir=tmp_path / "b")
    a.log(make_record())
    b.log(make_record())
    assert fetch(db_url, "SELECT count(*) FROM schema_version") == [(len(schema.migrations()),)]
    assert a.accuracy()["total"] == 2
    a.close()
    b.close()

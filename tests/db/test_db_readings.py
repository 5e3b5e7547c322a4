"""Numbers read digit by digit: each digit a prediction row, linked by a reading id and its
position; the ``readings`` view; online, offline (spool) and after the migration."""

from __future__ import annotations

import io

import numpy as np
import psycopg2
import pytest
from dbhelpers import fetch, make_record, utc
from PIL import Image

from app.db import PredictionRepository
from app.db import schema
from app.db.spool import Spool
from app.ml import MNISTPredictor, data
from tests.db.dbhelpers import Switch
from tests.ml.test_segment import compose, mnist_digit



def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def reading(mnist_dir):
    """The number 2025 written with MNIST training digits, read by the default model."""
    mnist = data.load(mnist_dir)
    picture, _ = compose([mnist_digit(mnist.train.images, mnist.train.labels, d, nth=2) for d in (2, 0, 2, 5)],
                         gap=45)
    result = MNISTPredictor().read_number(picture)
    assert result.text == "2025"
    return result


def records_of(reading, labels=None):
    """One prediction record per digit, as the app logs them: the 28x28 image the network
    saw, its probabilities, and the label (the digit read, when the user confirms it)."""
    labels = [p.digit for p in reading.digits] if labels is None else labels
    return [make_record(p.digit, p.confidence, probabilities=list(p.probabilities), image_png=_png(p.image),
                        label=label)
            for p, label in zip(reading.digits, labels)]


def readings(url):
    return fetch(url, "SELECT reading_id::text, digits, text, true_text, correct FROM readings "
                      "ORDER BY created_at")


def test_a_reading_is_logged_digit_by_digit(db_url, tmp_path, reading):
    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool")
    records = records_of(reading)
    rid = repo.log_reading(records)
    rows = fetch(db_url, "SELECT reading_position, predicted_digit, true_label, probabilities, image_png "
                         "FROM predictions WHERE reading_id = %s ORDER BY reading_position", (rid,))
    assert [(r[0], r[1], r[2]) for r in rows] == [(0, 2, 2), (1, 0, 0), (2, 2, 2), (3, 5, 5)]
    for row, p in zip(rows, reading.digits):
        assert row[3] == pytest.approx(p.probabilities, abs=1e-6)
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(bytes(row[4])))), p.image)
    assert readings(db_url) == [(rid, 4, "2025", "2025", True)]
    assert repo.reading_accuracy() == {"total": 1, "labelled": 1, "correct": 1, "accuracy": 1.0}
    assert repo.accuracy()["total"] == 4  # the digits count in the digit statistics as before
    repo.close()


def test_correcting_one_digit_makes_the_number_wrong(db_url, tmp_path, reading):
    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool")
    records = records_of(reading)
    right = repo.log_reading(records)
    unlabelled = repo.log_reading(records_of(reading, labels=[None] * 4))
    repo.set_label(records[3].uuid, 6)  # the user clicks the last chip: it was a 6
    assert sorted(readings(db_url)) == sorted([(right, 4, "2025", "2026", False),
                                               (unlabelled, 4, "2025", None, None)])
    assert repo.reading_accuracy() == {"total": 2, "labelled": 1, "correct": 0, "accuracy": 0.0}
    repo.close()


def test_a_reading_logged_offline_is_sent_later(db_url, tmp_path, reading):
    switch = Switch(db_url)
    repo = PredictionRepository(connect=switch, spool_dir=tmp_path / "spool", retry_interval=0)
    switch.down = True  # and the open connection is cut
    conn = psycopg2.connect(db_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    conn.close()
    rid = repo.log_reading(records_of(reading))
    assert not repo.status().online and repo.status().pending == 4
    entries = Spool(tmp_path / "spool").entries()
    assert [(e["record"]["reading_id"], e["record"]["reading_position"]) for e in entries] == \
        [(rid, k) for k in range(4)]
    repo.close()
    switch.down = False  # the app starts again with the database back
    repo = PredictionRepository(connect=switch, spool_dir=tmp_path / "spool", retry_interval=0)
    assert repo.status().pending == 0
    assert readings(db_url) == [(rid, 4, "2025", "2025", True)]
    repo.close()


def test_a_bad_digit_writes_nothing(db_url, tmp_path):
    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool")
    digits = [make_record(1, 0.9, seed=1), make_record(7, 0.9, seed=2, probabilities=[0.5] * 10)]
    with pytest.raises(ValueError, match="sum to 1"):
        repo.log_reading(digits)
    with pytest.raises(ValueError, match="at least one digit"):
        repo.log_reading([])
    with pytest.raises(ValueError, match="go together"):
        repo.log(make_record(3, 0.9, reading_position=0))
    assert fetch(db_url, "SELECT count(*) FROM predictions") == [(0,)]
    repo.close()


V2_INSERT = """
INSERT INTO predictions (uuid, created_at, predicted_digit, confidence, probabilities,
                         true_label, labelled_at, image_png, model_version, source)
VALUES (%s, %s, %s, %s, %s::real[], %s, %s, %s, %s, 'canvas')
"""


def test_the_migration_keeps_the_rows_of_an_existing_database(any_db_url, tmp_path):
    conn = psycopg2.connect(any_db_url)
    assert schema.apply_schema(conn, up_to=2) == 2
    with conn.cursor() as cur:
        for i in range(12):
            r = make_record(i % 10, 0.8, seed=i, created_at=utc(2026, 2, 1, i), label=i % 10 if i % 2 else None)
            cur.execute(V2_INSERT, (r.uuid, r.created_at, r.predicted_digit, r.confidence, r.probabilities,
                                    r.true_label, r.created_at if r.true_label is not None else None,
                                    psycopg2.Binary(r.image_png), r.model_version))
    conn.commit()
    conn.close()
    before = fetch(any_db_url, "SELECT * FROM prediction_accuracy")

    repo = PredictionRepository(any_db_url, spool_dir=tmp_path / "spool")
    assert repo.status().online
    assert fetch(any_db_url, "SELECT max(version) FROM schema_version") == [(schema.latest_version(),)]
    assert fetch(any_db_url, "SELECT version, name FROM schema_version WHERE version = 4") == [(4, "readings")]
    assert fetch(any_db_url, "SELECT count(*), count(reading_id), count(reading_position) FROM predictions") \
        == [(12, 0, 0)]
    assert fetch(any_db_url, "SELECT * FROM prediction_accuracy") == before
    assert repo.reading_accuracy() == {"total": 0, "labelled": 0, "correct": 0, "accuracy": None}
    digits = [make_record(d, 0.9, seed=d, label=d) for d in (1, 9)]
    rid = repo.log_reading(digits)
    assert readings(any_db_url) == [(rid, 2, "19", "19", True)]
    with pytest.raises(ValueError, match="reading_position"):
        repo.log(make_record(3, 0.9, reading_id=rid, reading_position=100))
    repo.close()

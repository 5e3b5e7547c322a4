"""Whether a drawing looked like a digit: the migration that adds predictions.is_digit to
a database that already has rows (on both servers), the record's field and its spool
form (old spool lines without it still replay), and the not_a_digit statistics."""

from __future__ import annotations

import json

import psycopg2
import pytest
from dbhelpers import fetch, make_record, utc

from app.db import PredictionRepository
from app.db import schema
from app.db.spool import Spool

V2_INSERT = """
INSERT INTO predictions (uuid, created_at, predicted_digit, confidence, probabilities,
                         true_label, labelled_at, image_png, model_version, model_version_id,
                         source)
VALUES (%s, %s, %s, %s, %s::real[], %s, %s, %s, %s, %s, 'canvas')
"""


def test_a_version_2_database_with_rows_gets_is_digit(any_db_url, tmp_path):
    conn = psycopg2.connect(any_db_url)
    assert schema.apply_schema(conn, up_to=2) == 2
    with conn.cursor() as cur:
        cur.execute("INSERT INTO model_versions (arch, weights_sha256, path, kind) "
                    "VALUES ('mnist_cnn', repeat('cd', 32), '/m.pth', 'shipped') RETURNING id")
        v = cur.fetchone()[0]
        old = []
        for i in range(12):
            r = make_record(i % 10, 0.9, seed=i, created_at=utc(2026, 2, 1, i),
                            label=i % 10 if i % 2 else None)
            cur.execute(V2_INSERT, (r.uuid, r.created_at, r.predicted_digit, r.confidence, r.probabilities,
                                    r.true_label, r.created_at if r.true_label is not None else None,
                                    psycopg2.Binary(r.image_png), r.model_version, v if i % 3 else None))
            old.append(r.uuid)
    conn.commit()
    conn.close()
    assert fetch(any_db_url, "SELECT count(*) FROM information_schema.columns "
                             "WHERE table_name = 'predictions' AND column_name = 'is_digit'") == [(0,)]

    repo = PredictionRepository(any_db_url, spool_dir=tmp_path / "spool", time_zone="UTC")
    assert repo.status().online
    assert fetch(any_db_url, "SELECT version, name FROM schema_version WHERE version = 3") == [(3, "is_digit")]
    # Every row kept, none judged: the statistics say so instead of inventing a share.
    assert sorted(fetch(any_db_url, "SELECT uuid::text, is_digit FROM predictions")) == \
        sorted((u, None) for u in old)
    assert repo.accuracy()["total"] == 12 and repo.accuracy()["labelled"] == 6
    assert repo.not_a_digit() == {"judged": 0, "not_digit": 0, "share": None}
    assert all(row.is_digit is None for row in repo.recent(20))

    # New rows carry the verdict; the share counts only the judged ones, per version too.
    repo.log(make_record(4, 0.4, seed=20, is_digit=False, model_version_id=v))
    repo.log(make_record(1, 0.99, seed=21, is_digit=True, model_version_id=v))
    repo.log(make_record(2, 0.3, seed=22, is_digit=False))
    repo.log(make_record(7, 0.97, seed=23, is_digit=True))
    assert repo.not_a_digit() == {"judged": 4, "not_digit": 2, "share": pytest.approx(0.5)}
    assert repo.not_a_digit(v) == {"judged": 2, "not_digit": 1, "share": pytest.approx(0.5)}
    assert fetch(any_db_url, "SELECT judged, not_digit FROM not_a_digit") == [(4, 2)]
    assert [row.is_digit for row in repo.recent(4)] == [True, False, True, False]
    assert repo.accuracy()["total"] == 16  # the running totals go on counting
    repo.close()


def test_the_verdict_survives_the_spool_and_old_spool_lines_still_replay(db_url, tmp_path):
    spool_dir = tmp_path / "spool"
    # A line written by the release before is_digit existed: its record has no such field.
    old = make_record(3, 0.8, seed=1)
    old_json = old.to_json()
    del old_json["is_digit"]
    Spool(spool_dir)  # (makes the folder)
    with open(spool_dir / Spool.PENDING, "ab") as f:
        f.write(json.dumps({"v": 2, "op": "insert", "record": old_json}).encode() + b"\n")
    # Offline now: a drawing that was not a digit waits in the spool with its verdict.
    offline = PredictionRepository("postgresql://nobody@127.0.0.1:1/none", spool_dir=spool_dir)
    assert not offline.status().online
    scribble = make_record(5, 0.3, seed=2, is_digit=False)
    offline.log(scribble)
    assert offline.status().pending == 2
    offline.close()

    repo = PredictionRepository(db_url, spool_dir=spool_dir)
    assert repo.status().online and repo.status().pending == 0
    assert sorted(fetch(db_url, "SELECT uuid::text, is_digit FROM predictions")) == \
        sorted([(old.uuid, None), (scribble.uuid, False)])
    assert not (spool_dir / "rejected.jsonl").exists()
    repo.close()


@pytest.mark.parametrize("bad", ["yes", 1, 0.0])
def test_is_digit_must_be_a_bool_or_none(bad):
    with pytest.raises(ValueError, match="is_digit"):
        make_record(is_digit=bad).validate()


def test_numpy_bools_are_taken_as_bools():
    import numpy as np

    r = make_record(is_digit=np.bool_(False)).validate()
    assert r.is_digit is False

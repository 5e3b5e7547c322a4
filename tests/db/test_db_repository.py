"""The repository against real servers: the embedded one and an "external" one by URL."""

from __future__ import annotations

import csv
import threading

import psycopg2
import pytest
from dbhelpers import make_png, make_record, utc

from app.db import InvalidRecord, PredictionRepository, UnknownPrediction
from app.db.records import PredictionRecord

# (predicted digit, confidence, true label) -- the known set the expectations below are for.
KNOWN = [
    (3, 0.9, 3),
    (3, 0.8, 5),
    (3, 0.7, None),
    (5, 0.6, 5),
    (5, 0.5, None),
    (7, 1.0, 7),
    (1, 0.95, 7),
    (0, 0.4, 0),
]


@pytest.fixture
def repo(any_db_url, tmp_path):
    r = PredictionRepository(any_db_url, spool_dir=tmp_path / "spool", time_zone="UTC")
    yield r
    r.close()


def log_known(repo) -> list[str]:
    return [repo.log(make_record(d, c, label=t, seed=i, created_at=utc(2026, 1, 1 + i % 3, 12)))
            for i, (d, c, t) in enumerate(KNOWN)]


def stats_by_digit(repo) -> dict[int, dict]:
    return {row["digit"]: row for row in repo.digit_statistics()}


def same(actual: dict, expected: dict) -> bool:
    """Dicts equal, floats to 1e-6 (real columns), None only where None is expected."""
    assert actual.keys() == expected.keys()
    for key, want in expected.items():
        got = actual[key]
        if want is None or isinstance(want, int):
            assert got == want, (key, got, want)
        else:
            assert got == pytest.approx(want, rel=1e-6), (key, got, want)
    return True


def test_schema_is_applied_on_connect(repo, any_db_url):
    from app.db import schema
    assert repo.status().online
    with psycopg2.connect(any_db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in cur.fetchall()] == [m.version for m in schema.migrations()]
    conn.close()


def test_empty_database_statistics(repo):
    assert repo.accuracy() == {"total": 0, "labelled": 0, "correct": 0, "accuracy": None}
    stats = repo.digit_statistics()
    assert [s["digit"] for s in stats] == list(range(10))
    assert all(s["predictions"] == 0 and s["recall"] is None for s in stats)
    assert repo.confusion() == [[0] * 10 for _ in range(10)]
    assert repo.accuracy_per_day() == []
    assert repo.recent() == []


def test_views_give_the_right_numbers(repo):
    log_known(repo)
    assert same(repo.accuracy(), {"total": 8, "labelled": 6, "correct": 4, "accuracy": 4 / 6})

    s = stats_by_digit(repo)
    assert same(s[3], dict(digit=3, predictions=3, labelled=2, correct=1, actual=1,
                                      accuracy=0.5, mean_confidence=0.8, precision=0.5,
                                      recall=1.0))
    assert same(s[5], dict(digit=5, predictions=2, labelled=1, correct=1, actual=2,
                                      accuracy=1.0, mean_confidence=0.55, precision=1.0,
                                      recall=0.5))
    assert same(s[7], dict(digit=7, predictions=1, labelled=1, correct=1, actual=2,
                                      accuracy=1.0, mean_confidence=1.0, precision=1.0,
                                      recall=0.5))
    assert same(s[1], dict(digit=1, predictions=1, labelled=1, correct=0, actual=0,
                                      accuracy=0.0, mean_confidence=0.95, precision=0.0,
                                      recall=None))
    assert s[0]["recall"] == 1.0 and s[0]["predictions"] == 1
    for d in (2, 4, 6, 8, 9):
        assert s[d] == dict(digit=d, predictions=0, labelled=0, correct=0, actual=0,
                            accuracy=None, mean_confidence=None, precision=None, recall=None)

    m = repo.confusion()
    expected = [[0] * 10 for _ in range(10)]
    for t, p in [(3, 3), (5, 3), (5, 5), (7, 7), (7, 1), (0, 0)]:
        expected[t][p] += 1
    assert m == expected

    # Days (UTC): row i is on Jan 1 + i % 3 -> day 1: rows 0,3,6; day 2: 1,4,7; day 3: 2,5.
    days = repo.accuracy_per_day()
    assert [(d["day"].day, d["predictions"], d["labelled"], d["correct"]) for d in days] == [
        (1, 3, 3, 2), (2, 3, 2, 1), (3, 2, 1, 1)]
    assert [d["accuracy"] for d in days] == pytest.approx([2 / 3, 0.5, 1.0])


def test_labels_can_be_set_changed_and_cleared(repo):
    uuids = log_known(repo)
    repo.set_label(uuids[1], 3)          # was 5: now correct
    assert repo.accuracy()["correct"] == 5
    s = stats_by_digit(repo)
    assert (s[3]["correct"], s[3]["actual"], s[5]["actual"], s[5]["recall"]) == (2, 2, 1, 1.0)
    assert repo.confusion()[5][3] == 0 and repo.confusion()[3][3] == 2

    repo.set_label(uuids[2], 8)          # was unlabelled
    repo.set_label(uuids[7], None)       # cleared
    acc = repo.accuracy()
    assert (acc["labelled"], acc["correct"]) == (6, 4)
    rows = {r.uuid: r for r in repo.recent()}
    assert rows[uuids[1]].true_label == 3
    assert rows[uuids[2]].true_label == 8
    assert rows[uuids[7]].true_label is None


def test_label_of_unknown_prediction_is_refused(repo):
    with pytest.raises(UnknownPrediction, match="no prediction"):
        repo.set_label("00000000-0000-4000-8000-000000000000", 3)
    with pytest.raises(ValueError, match="digit 0-9"):
        repo.set_label("00000000-0000-4000-8000-000000000000", 10)
    with pytest.raises(ValueError, match="not a UUID"):
        repo.set_label("nope", 3)


def test_recent_is_newest_first_with_images(repo):
    records = [make_record(i % 10, 0.9, seed=i, created_at=utc(2026, 2, 1, 10, i))
               for i in range(12)]
    for r in records:
        repo.log(r)
    rows = repo.recent(limit=5)
    assert [r.uuid for r in rows] == [r.uuid for r in reversed(records)][:5]
    assert rows[0].image_png == records[-1].image_png
    assert rows[0].image_png.startswith(b"\x89PNG")
    assert rows[0].created_at == records[-1].created_at
    assert rows[0].model_version == "test-1" and rows[0].source == "canvas"
    assert [r.uuid for r in repo.recent(limit=5, offset=5)] == \
        [r.uuid for r in reversed(records)][5:10]


def test_logging_the_same_uuid_twice_keeps_one_row(repo):
    r = make_record(4, 0.7)
    assert repo.log(r) == r.uuid
    assert repo.log(r) == r.uuid
    assert repo.accuracy()["total"] == 1


def test_raw_drawing_and_label_at_log_time(repo, any_db_url):
    raw = make_png(5, size=(280, 280))
    r = make_record(2, 0.99, label=2, raw_png=raw, source="file", model_version=None)
    repo.log(r)
    with psycopg2.connect(any_db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT raw_png, true_label, labelled_at IS NOT NULL, source, model_version, "
                    "probabilities FROM predictions")
        raw_db, label, has_at, source, version, probs = cur.fetchone()
    conn.close()
    assert (bytes(raw_db), label, has_at, source, version) == (raw, 2, True, "file", None)
    assert probs == pytest.approx(r.probabilities, rel=1e-6)


def test_export_csv(repo, tmp_path):
    uuids = log_known(repo)
    out = tmp_path / "export.csv"
    assert repo.export_csv(out) == len(KNOWN)
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["uuid", "created_at", "predicted_digit", "confidence",
                             *[f"p{i}" for i in range(10)], "true_label", "labelled_at",
                             "model_version", "model_version_id", "source", "is_digit"]
    assert {r["uuid"] for r in rows} == set(uuids)
    by_uuid = {r["uuid"]: r for r in rows}
    assert by_uuid[uuids[0]]["true_label"] == "3" and by_uuid[uuids[2]]["true_label"] == ""
    assert float(by_uuid[uuids[0]]["p3"]) == pytest.approx(0.9, rel=1e-6)

    assert repo.export_csv(out, include_images=True) == len(KNOWN)
    with open(out, newline="") as f:
        first = next(csv.DictReader(f))
    import base64
    assert base64.b64decode(first["image_png_base64"]).startswith(b"\x89PNG")


BAD_FIELDS = [
    (dict(predicted_digit=10), "predicted_digit"),
    (dict(predicted_digit=-1), "predicted_digit"),
    (dict(predicted_digit=True), "predicted_digit"),
    (dict(predicted_digit="3"), "predicted_digit"),
    (dict(confidence=1.5), "confidence"),
    (dict(confidence=-0.1), "confidence"),
    (dict(confidence=float("nan")), "confidence"),
    (dict(probabilities=[0.1] * 9), "10 values"),
    (dict(probabilities=[0.1] * 11), "10 values"),
    (dict(probabilities=[0.2] * 10), "sum to 1"),
    (dict(probabilities=[1.5] + [-0.5 / 9] * 9), "between 0 and 1"),
    (dict(probabilities="0123456789"), "sequence of 10"),
    (dict(probabilities=None), "sequence of 10"),
    (dict(true_label=10), "true_label"),
    (dict(image_png=b"not a png"), "not a PNG"),
    (dict(image_png=make_png(size=(27, 28))), "28x28"),
    (dict(raw_png=b"nope"), "raw_png"),
    (dict(source="web"), "source"),
    (dict(uuid="not-a-uuid"), "UUID"),
    (dict(model_version="x" * 201), "model_version"),
]


def bad_record(bad: dict, cls=PredictionRecord) -> PredictionRecord:
    record = make_record(3, 0.9)
    return cls(**{**record.__dict__, **bad})


@pytest.mark.parametrize("bad, message", BAD_FIELDS, ids=[m for _, m in BAD_FIELDS])
def test_validate_names_the_bad_field(bad, message):
    with pytest.raises(ValueError, match=message):
        bad_record(bad).validate()


def test_validate_wants_an_aware_time_and_accepts_numpy_numbers():
    from datetime import datetime

    import numpy as np
    with pytest.raises(ValueError, match="time zone"):
        make_record(created_at=datetime(2026, 1, 1)).validate()
    r = make_record(3, 0.9)
    r.predicted_digit, r.confidence = np.int64(3), np.float32(0.9)
    r.probabilities = np.asarray(r.probabilities, dtype=np.float32)
    r.validate()
    assert type(r.predicted_digit) is int and type(r.confidence) is float
    assert len(r.probabilities) == 10 and type(r.probabilities[0]) is float


def test_bad_values_are_refused_before_anything_is_written(db_url, tmp_path):
    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool")
    for bad, message in BAD_FIELDS:
        with pytest.raises(ValueError, match=message):
            repo.log(bad_record(bad))
    assert repo.accuracy()["total"] == 0
    assert repo.status().pending == 0
    repo.close()


class _Unchecked(PredictionRecord):
    """A record that skips validation, to reach the database's own checks."""

    def validate(self):
        return self


def test_database_checks_refuse_bad_values_and_write_nothing(repo):
    repo.log(make_record(1, 0.9))
    for bad in [dict(predicted_digit=10), dict(confidence=1.5), dict(probabilities=[0.1] * 9),
                dict(probabilities=[0.1] * 11), dict(probabilities=[0.5, -0.1] + [0.075] * 8),
                dict(true_label=11), dict(source="web"), dict(image_png=b"")]:
        with pytest.raises(InvalidRecord, match="refused") as err:
            repo.log(bad_record(bad, _Unchecked))
        assert "Nothing was written" in str(err.value)
        assert repo.accuracy() == {"total": 1, "labelled": 0, "correct": 0, "accuracy": None}
        assert sum(s["predictions"] for s in repo.digit_statistics()) == 1
        assert repo.status().online and repo.status().pending == 0


def test_counts_match_a_full_recount_after_updates_and_deletes(repo, any_db_url):
    uuids = log_known(repo)
    for i, u in enumerate(uuids):
        repo.set_label(u, (i * 3) % 10)
    before = (repo.accuracy(), repo.digit_statistics(), repo.confusion(), repo.accuracy_per_day())
    with psycopg2.connect(any_db_url) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM predictions WHERE uuid = %s", (uuids[0],))
        cur.execute("UPDATE predictions SET predicted_digit = 9, confidence = 0.25 "
                    "WHERE uuid = %s", (uuids[1],))
        cur.execute("SELECT * FROM prediction_accuracy")
        after_acc = cur.fetchone()
        cur.execute("SELECT * FROM digit_statistics")
        after_stats = cur.fetchall()
        cur.execute("SELECT rebuild_prediction_counts()")
        cur.execute("SELECT * FROM prediction_accuracy")
        assert cur.fetchone() == after_acc
        cur.execute("SELECT * FROM digit_statistics")
        assert cur.fetchall() == after_stats
    conn.close()
    assert repo.accuracy()["total"] == before[0]["total"] - 1


CATALOG = {
    "columns": "SELECT table_name, column_name, data_type, column_default, is_nullable "
               "FROM information_schema.columns WHERE table_schema = 'public' "
               "ORDER BY table_name, ordinal_position",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                   "FROM pg_constraint WHERE connamespace = 'public'::regnamespace "
                   "ORDER BY 1, 2",
    "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
               "ORDER BY 1",
    "functions": "SELECT proname, pg_get_functiondef(oid) FROM pg_proc "
                 "WHERE pronamespace = 'public'::regnamespace ORDER BY 1",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public' "
             "ORDER BY 1",
    "triggers": "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE NOT tgisinternal ORDER BY 1",
    "versions": "SELECT version, name FROM schema_version ORDER BY 1",
    "counts": "SELECT * FROM prediction_counts ORDER BY 1, 2, 3",
    "hourly": "SELECT * FROM prediction_counts_hourly ORDER BY 1, 2",
}


def test_schema_scripts_are_idempotent(repo, any_db_url):
    """init.sql and then every migration, run again (twice), change nothing."""
    from app.db import schema
    log_known(repo)
    before_stats = (repo.accuracy(), repo.digit_statistics(), repo.confusion())
    conn = psycopg2.connect(any_db_url)

    def catalog():
        out = {}
        with conn.cursor() as cur:
            for name, query in CATALOG.items():
                cur.execute(query)
                out[name] = cur.fetchall()
        conn.rollback()
        return out

    before = catalog()
    for _ in range(2):
        for step in schema.migrations():
            with conn.cursor() as cur:
                cur.execute(step.path.read_text())
            conn.commit()
    assert catalog() == before
    conn.close()
    assert (repo.accuracy(), repo.digit_statistics(), repo.confusion()) == before_stats
    u = repo.log(make_record(6, 0.5, label=6))  # the triggers still count
    repo.set_label(u, 2)
    assert repo.accuracy()["total"] == len(KNOWN) + 1
    assert repo.confusion()[2][6] == 1


def test_concurrent_threads_share_one_repository(repo):
    errors = []

    def worker(k):
        try:
            for i in range(25):
                u = repo.log(make_record((k + i) % 10, 0.8, seed=i))
                if i % 5 == 0:
                    repo.set_label(u, k)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    acc = repo.accuracy()
    assert (acc["total"], acc["labelled"]) == (100, 20)


FORMULAS = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-2+3", "@SUM(A1:A2)",
            "\t=1", "\r=1"]


def test_export_csv_defuses_formulas_in_text_cells(repo, tmp_path):
    uuids = {repo.log(make_record(3, 0.9, seed=i, model_version=text)): text
             for i, text in enumerate([*FORMULAS, "v1 = ok", "plain"])}
    out = tmp_path / "export.csv"
    repo.export_csv(out)
    with open(out, newline="") as f:
        rows = {r["uuid"]: r for r in csv.DictReader(f)}
    for uuid, text in uuids.items():
        cell = rows[uuid]["model_version"]
        if text in FORMULAS:
            assert cell == "'" + text  # a spreadsheet shows it as text
        else:
            assert cell == text
        float(rows[uuid]["confidence"]), float(rows[uuid]["p0"])  # numbers stay numbers
        assert rows[uuid]["source"] == "canvas"

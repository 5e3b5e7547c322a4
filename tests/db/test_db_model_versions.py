"""Model versions: registration, predictions that name their version, statistics per
version, comparing two versions, the labelled samples to learn from, and spooled
predictions that carry a version id."""

from __future__ import annotations

import hashlib
import json
import socket

import numpy as np
import psycopg2
import pytest
from dbhelpers import Switch, fetch, make_record, utc

from app.db import DatabaseUnavailable, PredictionRepository, UnknownModelVersion
from app.db.spool import Spool

# Version A makes these (the known set of test_db_repository.py: accuracy 4/6) ...
KNOWN_A = [(3, 0.9, 3), (3, 0.8, 5), (3, 0.7, None), (5, 0.6, 5), (5, 0.5, None),
           (7, 1.0, 7), (1, 0.95, 7), (0, 0.4, 0)]
# ... version B these (3 labelled, 1 right), and some predictions have no version.
KNOWN_B = [(3, 0.6, 8), (8, 0.7, 8), (2, 0.9, 7), (4, 0.5, None)]
NO_VERSION = [(9, 0.9, 9), (9, 0.8, 4)]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def register(repo, tag: str, **fields) -> int:
    args = dict(sha256=sha(tag), path=f"/models/{tag}.pth", arch="MnistCNN",
                metrics={"test_accuracy": 0.99})
    args.update(fields)
    return repo.register_model_version(**args)


@pytest.fixture
def repo(db_url, tmp_path):
    r = PredictionRepository(db_url, spool_dir=tmp_path / "spool", time_zone="UTC")
    yield r
    r.close()


def log_rows(repo, rows, version_id, day: int, seed: int = 0) -> list[str]:
    return [repo.log(make_record(d, c, label=t, seed=seed + i, model_version_id=version_id,
                                 created_at=utc(2026, 3, day, 10, i)))
            for i, (d, c, t) in enumerate(rows)]


@pytest.fixture
def two_versions(repo):
    """(repo, a, b, uuids by version): KNOWN_A on Mar 1 by a, KNOWN_B on Mar 2 by b
    (b fine-tuned from a), NO_VERSION on Mar 3 without a version."""
    a = register(repo, "a", kind="shipped", name="shipped weights")
    b = register(repo, "b", kind="fine-tuned", parent_id=a, metrics={"test_accuracy": 0.992})
    uuids = {a: log_rows(repo, KNOWN_A, a, 1),
             b: log_rows(repo, KNOWN_B, b, 2, seed=20),
             None: log_rows(repo, NO_VERSION, None, 3, seed=40)}
    return repo, a, b, uuids


# ---- registering ----------------------------------------------------------------------------
def test_registering_the_same_weights_again_gives_the_same_id(repo):
    a = register(repo, "a", metrics={"test_accuracy": np.float32(0.995), "epochs": np.int64(3),
                                     "history": [0.9, 0.95]}, name="first")
    assert isinstance(a, int)
    # Same weights, moved file, other details: same id, new path, the rest as first given.
    again = register(repo, "a", path="/elsewhere/a.pth", arch="Other", name="second",
                     kind="fine-tuned", sha256=sha("a").upper())
    assert again == a
    v = repo.model_version(a)
    assert (v.id, v.parent_id, v.arch, v.sha256, v.path, v.kind, v.name) == (
        a, None, "MnistCNN", sha("a"), "/elsewhere/a.pth", "trained", "first")
    assert v.metrics == {"test_accuracy": pytest.approx(0.995), "epochs": 3,
                         "history": [0.9, 0.95]}
    assert (v.predictions, v.labelled, v.correct, v.accuracy) == (0, 0, 0, None)
    assert v.created_at.tzinfo is not None
    assert repo.model_version_by_sha(sha("a")) == v
    assert repo.model_version_by_sha(sha("nope")) is None
    assert len(repo.model_versions()) == 1


def test_versions_newest_first_with_parents_and_counts(two_versions):
    repo, a, b, _ = two_versions
    versions = repo.model_versions()
    assert [v.id for v in versions] == [b, a]
    vb, va = versions
    assert (vb.parent_id, vb.kind, vb.name, vb.metrics) == (
        a, "fine-tuned", None, {"test_accuracy": 0.992})
    assert (va.parent_id, va.kind, va.name) == (None, "shipped", "shipped weights")
    assert (va.predictions, va.labelled, va.correct) == (8, 6, 4)
    assert va.accuracy == pytest.approx(4 / 6)
    assert (vb.predictions, vb.labelled, vb.correct) == (4, 3, 1)
    assert vb.accuracy == pytest.approx(1 / 3)
    with pytest.raises(UnknownModelVersion, match="no model version 999"):
        repo.model_version(999)


BAD_REGISTRATIONS = [
    (dict(sha256="abc"), "sha256"),
    (dict(sha256=sha("x")[:-1] + "g"), "sha256"),
    (dict(sha256=None), "sha256"),
    (dict(path=""), "path"),
    (dict(path=None), "path"),
    (dict(arch=""), "arch"),
    (dict(metrics=[1, 2]), "metrics"),
    (dict(metrics={"loss": float("nan")}), "metrics"),
    (dict(metrics={"x": object()}), "metrics"),
    (dict(parent_id=0), "parent_id"),
    (dict(parent_id=True), "parent_id"),
    (dict(kind="retrained"), "kind"),
    (dict(name=""), "name"),
    (dict(name="x" * 201), "name"),
]


def test_bad_registrations_are_refused(repo):
    for bad, message in BAD_REGISTRATIONS:
        with pytest.raises(ValueError, match=message):
            register(repo, "x", **bad)
    with pytest.raises(UnknownModelVersion, match="parent_id 42"):
        register(repo, "x", parent_id=42)
    assert repo.model_versions() == []


def test_registering_offline_raises_unavailable(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    repo = PredictionRepository(f"postgresql://u:p@127.0.0.1:{port}/db",
                                spool_dir=tmp_path / "spool")
    with pytest.raises(DatabaseUnavailable):
        register(repo, "a")
    # Predictions logged meanwhile are spooled, with no version id.
    repo.log(make_record(model_version="shipped"))
    assert repo.status().pending == 1
    repo.close()


# ---- predictions and statistics per version ------------------------------------------------
def test_statistics_per_version(two_versions):
    repo, a, b, uuids = two_versions
    # Version a: as in test_db_repository.py's known set.
    assert repo.accuracy(a) == {"total": 8, "labelled": 6, "correct": 4,
                                "accuracy": pytest.approx(4 / 6)}
    stats = {s["digit"]: s for s in repo.digit_statistics(model_version_id=a)}
    assert (stats[3]["predictions"], stats[3]["labelled"], stats[3]["correct"],
            stats[3]["actual"]) == (3, 2, 1, 1)
    assert stats[3]["mean_confidence"] == pytest.approx(0.8)
    assert stats[8]["predictions"] == 0 and stats[8]["actual"] == 0  # b's 8s are not here
    expected = [[0] * 10 for _ in range(10)]
    for t, p in [(3, 3), (5, 3), (5, 5), (7, 7), (7, 1), (0, 0)]:
        expected[t][p] += 1
    assert repo.confusion(model_version_id=a) == expected
    days = repo.accuracy_per_day(model_version_id=a)
    assert [(d["day"].day, d["predictions"], d["labelled"], d["correct"]) for d in days] == [
        (1, 8, 6, 4)]
    assert {r.uuid for r in repo.recent(100, model_version_id=a)} == set(uuids[a])
    assert {r.model_version_id for r in repo.recent(100, model_version_id=a)} == {a}

    # Version b has none of a's.
    assert repo.accuracy(b) == {"total": 4, "labelled": 3, "correct": 1,
                                "accuracy": pytest.approx(1 / 3)}
    stats_b = {s["digit"]: s for s in repo.digit_statistics(b)}
    assert (stats_b[3]["predictions"], stats_b[3]["correct"], stats_b[8]["correct"],
            stats_b[7]["actual"]) == (1, 0, 1, 1)
    assert repo.confusion(b)[8] == [0, 0, 0, 1, 0, 0, 0, 0, 1, 0]
    assert [d["day"].day for d in repo.accuracy_per_day(model_version_id=b)] == [2]
    assert [r.uuid for r in repo.recent(2, 1, model_version_id=b)] == uuids[b][::-1][1:3]

    # None: every prediction, with or without a version, as before.
    assert repo.accuracy() == {"total": 14, "labelled": 11, "correct": 6,
                               "accuracy": pytest.approx(6 / 11)}
    assert sum(map(sum, repo.confusion())) == 11
    assert [d["day"].day for d in repo.accuracy_per_day()] == [1, 2, 3]
    assert len(repo.recent(100)) == 14
    assert repo.recent(1)[0].model_version_id is None

    # A version with no predictions, and labels that change.
    c = register(repo, "c")
    assert repo.accuracy(c) == {"total": 0, "labelled": 0, "correct": 0, "accuracy": None}
    assert repo.accuracy_per_day(model_version_id=c) == [] and repo.recent(model_version_id=c) == []
    assert all(s["predictions"] == 0 for s in repo.digit_statistics(c))
    repo.set_label(uuids[b][0], 3)  # b's 3 was labelled 8: now right
    assert repo.accuracy(b)["correct"] == 2 and repo.accuracy(a)["correct"] == 4
    with pytest.raises(ValueError, match="model_version_id"):
        repo.accuracy(0)


def test_a_prediction_of_an_unknown_version_is_refused_and_not_written(repo):
    with pytest.raises(UnknownModelVersion, match="no model version 77"):
        repo.log(make_record(model_version_id=77))
    with pytest.raises(ValueError, match="model_version_id"):
        repo.log(make_record(model_version_id="1"))
    assert repo.accuracy()["total"] == 0 and repo.status().pending == 0
    assert repo.status().online


def test_compare_versions(two_versions):
    repo, a, b, _ = two_versions
    cmp = repo.compare_versions(a, b)
    assert {k: cmp["a"][k] for k in ("id", "kind", "name", "predictions", "labelled",
                                     "correct")} == dict(id=a, kind="shipped",
                                                         name="shipped weights", predictions=8,
                                                         labelled=6, correct=4)
    assert cmp["b"]["accuracy"] == pytest.approx(1 / 3)
    assert cmp["accuracy_delta"] == pytest.approx(1 / 3 - 4 / 6)
    digits = {row["digit"]: row for row in cmp["digits"]}
    assert list(digits) == list(range(10))
    # a: true 3 -> 3 right; true 5 -> 3, 5; true 7 -> 7, 1; true 0 -> 0.
    # b: true 8 -> 3, 8; true 7 -> 2.
    assert {d: (r["a_actual"], r["a_correct"], r["b_actual"], r["b_correct"])
            for d, r in digits.items() if r["a_actual"] or r["b_actual"]} == {
        0: (1, 1, 0, 0), 3: (1, 1, 0, 0), 5: (2, 1, 0, 0), 7: (2, 1, 1, 0), 8: (0, 0, 2, 1)}
    assert digits[7]["a_accuracy"] == 0.5 and digits[7]["b_accuracy"] == 0.0
    assert digits[7]["delta"] == -0.5
    assert digits[8]["a_accuracy"] is None and digits[8]["delta"] is None
    assert digits[4] == dict(digit=4, a_actual=0, a_correct=0, a_accuracy=None, b_actual=0,
                             b_correct=0, b_accuracy=None, delta=None)
    assert repo.compare_versions(b, a)["accuracy_delta"] == pytest.approx(4 / 6 - 1 / 3)
    with pytest.raises(UnknownModelVersion, match="999"):
        repo.compare_versions(a, 999)


# ---- learning data ------------------------------------------------------------------------
def test_labelled_samples_oldest_first(two_versions):
    repo, a, b, uuids = two_versions
    samples = repo.labelled_samples()
    expected = [(u, t) for v in (a, b, None) for u, (_, _, t) in zip(uuids[v], KNOWN_A
                if v == a else KNOWN_B if v == b else NO_VERSION) if t is not None]
    assert [(s.uuid, s.true_label) for s in samples] == expected
    assert [s.created_at for s in samples] == sorted(s.created_at for s in samples)
    assert all(s.image_png.startswith(b"\x89PNG") for s in samples)
    assert repo.labelled_count() == len(samples) == 11
    assert [s.uuid for s in repo.labelled_samples(b)] == [u for u, _ in expected
                                                          if u in uuids[b]]
    assert repo.labelled_count(a) == 6

    repo.set_label(uuids[a][2], 1)       # was unlabelled
    repo.set_label(uuids[a][0], None)    # cleared
    by_uuid = {s.uuid: s.true_label for s in repo.labelled_samples(a)}
    assert uuids[a][0] not in by_uuid and by_uuid[uuids[a][2]] == 1
    assert repo.labelled_count() == 11


# ---- running totals stay exact ----------------------------------------------------------------
def counts(url) -> tuple:
    """The running totals (rows that dropped to zero left out, as a rebuild has none)."""
    return (fetch(url, "SELECT model_version_id, predicted_digit, true_label, n, "
                       "confidence_sum FROM prediction_counts "
                       "WHERE n <> 0 OR confidence_sum <> 0 ORDER BY 1, 2, 3"),
            fetch(url, "SELECT model_version_id, hour, predictions, labelled, correct "
                       "FROM prediction_counts_hourly WHERE predictions <> 0 "
                       "OR labelled <> 0 OR correct <> 0 ORDER BY 1, 2"))


def rebuilt(url) -> tuple:
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("SELECT rebuild_prediction_counts()")
    conn.commit()
    conn.close()
    return counts(url)


def test_totals_follow_version_changes_and_deleted_versions(two_versions, db_url):
    repo, a, b, uuids = two_versions
    conn = psycopg2.connect(db_url)
    with conn.cursor() as cur:
        cur.execute("UPDATE predictions SET model_version_id = %s WHERE uuid = %s",
                    (b, uuids[a][0]))
        cur.execute("DELETE FROM model_versions WHERE id = %s", (a,))  # ON DELETE SET NULL
    conn.commit()
    conn.close()
    assert repo.accuracy(a)["total"] == 0
    assert repo.accuracy(b)["total"] == 5
    assert repo.accuracy()["total"] == 14
    assert repo.model_version(b).parent_id is None
    assert fetch(db_url, "SELECT count(*) FROM predictions WHERE model_version_id IS NULL") \
        == [(9,)]
    assert counts(db_url) == rebuilt(db_url)


# ---- the spool ----------------------------------------------------------------------------

def go_offline(switch: Switch) -> None:
    switch.down = True
    conn = psycopg2.connect(switch.url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    conn.close()


def test_offline_predictions_keep_their_version(db_url, tmp_path):
    switch = Switch(db_url)
    repo = PredictionRepository(connect=switch, spool_dir=tmp_path / "spool", retry_interval=0)
    a = register(repo, "a")
    go_offline(switch)
    uuids = [repo.log(make_record(3, 0.9, label=3, seed=i, model_version_id=a))
             for i in range(3)]
    with pytest.raises(DatabaseUnavailable):
        register(repo, "b")
    assert repo.status().pending == 3
    entries = Spool(tmp_path / "spool").entries()
    assert [(e["record"]["model_version_id"], e["model_sha256"]) for e in entries] == \
        [(a, sha("a"))] * 3
    switch.down = False
    assert repo.flush_spool() == 3
    assert repo.accuracy(a) == {"total": 3, "labelled": 3, "correct": 3, "accuracy": 1.0}
    assert {r.uuid for r in repo.recent(model_version_id=a)} == set(uuids)
    repo.close()


def test_replay_of_spooled_versions_old_and_new(db_url, tmp_path):
    """Spool lines written before model versions existed, with an id, with an id and the
    weights' hash, and with an id this database does not know: none is refused."""
    with PredictionRepository(db_url, spool_dir=None) as setup:
        a, b = register(setup, "a"), register(setup, "b")
    spool = Spool(tmp_path / "spool")
    old = make_record(1, seed=1)
    line = {"v": 1, "op": "insert", "record": old.to_json()}
    del line["record"]["model_version_id"]           # as written by the previous release
    with open(spool.path, "a") as f:
        f.write(json.dumps(line) + "\n")
    by_id = make_record(2, seed=2, model_version_id=a)
    by_sha = make_record(3, seed=3, model_version_id=999)   # an id from another database
    unknown = make_record(4, seed=4, model_version_id=998)
    unknown_sha = make_record(5, seed=5, model_version_id=b)
    spool.add_record(by_id)
    spool.add_record(by_sha, sha("b"))
    spool.add_record(unknown)
    spool.add_record(unknown_sha, sha("not registered here"))
    spool.add_label(by_sha.uuid, 3, utc(2030, 1, 1))

    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool")
    assert repo.status().pending == 0
    assert not (tmp_path / "spool" / "rejected.jsonl").exists()
    stored = dict(fetch(db_url, "SELECT uuid::text, model_version_id FROM predictions"))
    assert stored == {old.uuid: None, by_id.uuid: a, by_sha.uuid: b, unknown.uuid: None,
                      unknown_sha.uuid: None}
    assert repo.accuracy(b) == {"total": 1, "labelled": 1, "correct": 1, "accuracy": 1.0}
    repo.close()

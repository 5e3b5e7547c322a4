"""Nothing lost: writes while the server is down go to the spool and arrive exactly once."""

from __future__ import annotations

import shutil
import threading

import psycopg2
import pytest
from dbhelpers import make_record, wait_until

from app.db import PredictionRepository
from app.db.server import EmbeddedServer

N = 1000


def rows_and_labels(url: str) -> tuple[int, int, dict[str, int | None]]:
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), count(DISTINCT uuid) FROM predictions")
        total, distinct = cur.fetchone()
        cur.execute("SELECT uuid::text, true_label FROM predictions")
        labels = dict(cur.fetchall())
    conn.close()
    return total, distinct, labels


def counts_are_exact(url: str) -> bool:
    """The running totals (kept by triggers) equal a recount from the rows."""
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        views = ("SELECT * FROM prediction_accuracy", "SELECT * FROM digit_statistics",
                 "SELECT * FROM confusion_matrix", "SELECT * FROM accuracy_per_day")
        before = []
        for v in views:
            cur.execute(v)
            before.append(cur.fetchall())
        cur.execute("SELECT rebuild_prediction_counts()")
        after = []
        for v in views:
            cur.execute(v)
            after.append(cur.fetchall())
    conn.rollback()
    conn.close()
    return before == after


@pytest.fixture(params=["embedded", "external"])
def restartable(request, scratch_pgdata, tmp_path):
    """(url of a fresh database, stop(), start()) on a server the test may stop."""
    if request.param == "embedded":
        server = EmbeddedServer(scratch_pgdata)
        server.start()
        name = f"fault_{tmp_path.name}".replace("-", "_")
        server.ensure_database(name)
        yield server.url_for(name), server.stop, server.start
        server.stop()
    else:
        external = request.getfixturevalue("external_pg")
        url = request.getfixturevalue("external_db_url")
        # "immediate": like a crash or a pulled cable, no goodbye to the clients.
        yield url, lambda: external.stop("immediate"), external.start
        if not external.running:
            external.start()


def test_stream_through_a_server_restart_loses_and_duplicates_nothing(restartable, tmp_path):
    url, stop, start = restartable
    repo = PredictionRepository(url, spool_dir=tmp_path / "spool", retry_interval=0.02)
    stop_now, stopped, start_now, started = (threading.Event() for _ in range(4))
    problems: list[BaseException] = []

    def operator():
        try:
            stop_now.wait()
            stop()
            stopped.set()
            start_now.wait()
            start()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            problems.append(exc)
        finally:
            stopped.set()
            started.set()

    threading.Thread(target=operator, daemon=True).start()
    uuids: list[str] = []
    expected: dict[str, int | None] = {}
    max_pending = 0
    for i in range(N):
        u = repo.log(make_record(i % 10, 0.5 + (i % 50) / 100, seed=i))
        uuids.append(u)
        expected[u] = None
        if i % 7 == 0:                       # label it now (online or still spooled)
            expected[u] = (i * 3) % 10
            repo.set_label(u, expected[u])
        if i % 50 == 25:                     # correct an older label
            old = uuids[i - 21]
            expected[old] = (i + 1) % 10
            repo.set_label(old, expected[old])
        if i == N * 3 // 10:
            stop_now.set()                   # the server goes down while we keep going
        if i == N * 4 // 10:
            assert stopped.wait(60)          # down for sure from here ...
        if i == N * 6 // 10:
            start_now.set()                  # ... to here; it comes back while we keep going
        max_pending = max(max_pending, repo.status().pending)
    assert started.wait(60) and not problems, problems

    assert wait_until(lambda: repo.flush_spool() >= 0 and repo.status().pending == 0,
                      timeout=30)
    # At least records 400..599 and their labels waited in the spool.
    assert max_pending >= N // 5 + N // 5 // 7, max_pending
    total, distinct, labels = rows_and_labels(url)
    assert (total, distinct) == (N, N)
    assert labels == expected
    assert repo.accuracy()["total"] == N
    assert repo.accuracy()["labelled"] == sum(v is not None for v in expected.values())
    assert counts_are_exact(url)
    assert not (tmp_path / "spool" / "rejected.jsonl").exists()
    repo.close()


def test_labels_of_unsent_records_and_replays_are_idempotent(external_pg, external_db_url,
                                                             tmp_path):
    spool_dir = tmp_path / "spool"
    repo = PredictionRepository(external_db_url, spool_dir=spool_dir, retry_interval=0)
    sent = repo.log(make_record(1, 0.9))
    external_pg.stop("fast")
    try:
        a = repo.log(make_record(2, 0.8))          # offline: spooled
        repo.set_label(a, 5)                       # label of a record not yet sent
        repo.set_label(a, 2)                       # ... corrected, still offline
        repo.set_label(sent, 7)                    # label of a record already sent
        assert not repo.status().online and repo.status().pending == 4
        saved = (spool_dir / "pending.jsonl").read_bytes()
    finally:
        external_pg.start()
    assert repo.flush_spool() == 4
    assert repo.status().online and repo.status().pending == 0
    assert rows_and_labels(external_db_url)[2] == {sent: 7, a: 2}

    # A crash between the commit and emptying the spool replays it all again, after a
    # newer label was set: no second row, and the old label does not come back.
    repo.set_label(a, 9)
    (spool_dir / "pending.jsonl").write_bytes(saved)
    repo2 = PredictionRepository(external_db_url, spool_dir=spool_dir)
    assert repo2.status().pending == 0  # replayed on connect
    total, distinct, labels = rows_and_labels(external_db_url)
    assert (total, distinct) == (2, 2)
    assert labels == {sent: 7, a: 9}
    assert counts_are_exact(external_db_url)
    repo.close()
    repo2.close()


def test_spool_survives_a_restart_of_the_app(external_pg, external_db_url, tmp_path):
    spool_dir = tmp_path / "spool"
    external_pg.stop("fast")
    try:
        repo = PredictionRepository(external_db_url, spool_dir=spool_dir)
        assert not repo.status().online
        uuids = [repo.log(make_record(i, 0.9, seed=i)) for i in range(5)]
        repo.close()                               # the app quits while offline
    finally:
        external_pg.start()
    shutil.copy(spool_dir / "pending.jsonl", tmp_path / "copy.jsonl")
    repo = PredictionRepository(external_db_url, spool_dir=spool_dir)  # next start
    assert repo.status().pending == 0
    assert {r.uuid for r in repo.recent()} == set(uuids)
    repo.close()


def _admin(url: str):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def test_a_server_that_refuses_writes_gets_them_later(db_url, tmp_path):
    """Read-only (like a full disk or a standby): writes wait in the spool, then arrive."""
    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool", retry_interval=0)
    first = repo.log(make_record(1, 0.9))
    dbname = psycopg2.extensions.parse_dsn(db_url)["dbname"]
    admin = _admin(db_url)
    with admin.cursor() as cur:
        cur.execute(f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,))
    second = repo.log(make_record(2, 0.9))
    repo.set_label(first, 1)
    status = repo.status()
    assert (status.online, status.pending) == (False, 2)
    assert "cannot take writes" in status.message and "read-only" in status.message
    with admin.cursor() as cur:
        cur.execute(f'ALTER DATABASE "{dbname}" RESET default_transaction_read_only')
    admin.close()
    assert repo.flush_spool() == 2
    assert rows_and_labels(db_url)[2] == {first: 1, second: None}
    repo.close()


def test_a_spooled_write_the_database_refuses_is_set_aside(db_url, tmp_path):
    from datetime import datetime, timezone

    from app.db.spool import Spool
    spool = Spool(tmp_path / "spool")
    good = make_record(3, 0.9)
    spool.add_record(good)
    spool.add_label("00000000-0000-4000-8000-000000000000", 4, datetime.now(timezone.utc))
    spool.add_label(good.uuid, 3, datetime.now(timezone.utc))
    repo = PredictionRepository(db_url, spool_dir=tmp_path / "spool")
    assert repo.status().online and repo.status().pending == 0
    assert rows_and_labels(db_url)[2] == {good.uuid: 3}
    rejected = (tmp_path / "spool" / "rejected.jsonl").read_text()
    assert "unknown prediction" in rejected
    repo.close()

"""Eight client processes replay their spools while four others write live, against one
real server: nothing is lost or duplicated, nobody deadlocks, nobody goes offline.

(The replay times and the live writers' latencies are measured by bench/db_concurrency.py;
this test checks the outcome, not the speed.)
"""

from __future__ import annotations

import time

import psycopg2
from concurrency_child import SPEC, run_scenario
from dbhelpers import fetch
from test_db_faults import counts_are_exact


def deadlocks(url: str) -> int:
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        # The clients' backends report their counts when they end: wait for them to go.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND pid <> pg_backend_pid()")
            if cur.fetchone()[0] == 0:
                break
            time.sleep(0.1)
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        n = cur.fetchone()[0]
    conn.close()
    return n


def test_replays_and_live_writers_at_once(db_url, tmp_path):
    fetch(db_url, "SELECT 1")
    before = deadlocks(db_url)
    scenario = run_scenario(db_url, tmp_path, replayers=8, writers=4, inserts=300, writes=150)

    # Nobody deadlocked, went offline, or kept anything back.
    assert deadlocks(db_url) - before == 0
    for report in scenario.replayers + scenario.writers:
        assert report["retries"] == 0, report
        assert report["offline_spells"] == [], report["offline_messages"]
        assert report["online"] and report["pending"] == 0, report
    assert sorted(r["drawings_sent"] for r in scenario.replayers) == [300] * 8

    # Every row once, with its last label and its version.
    rows = fetch(db_url, "SELECT uuid::text, true_label, model_version_id FROM predictions")
    assert len(rows) == len({r[0] for r in rows}) == len(scenario.spooled) + scenario.live
    spooled = {uuid: (label, version) for uuid, label, version in rows
               if uuid in scenario.spooled}
    assert {u: label for u, (label, _) in spooled.items()} == scenario.spooled
    [(version_id,)] = fetch(db_url, "SELECT id FROM model_versions WHERE weights_sha256 = %s",
                            (SPEC.sha256,))
    assert {u for u, (_, v) in spooled.items() if v == version_id} == scenario.with_version
    assert {v for u, (_, v) in spooled.items() if u not in scenario.with_version} == {None}
    assert fetch(db_url, "SELECT count(*) FROM model_versions") == [(1,)]
    assert counts_are_exact(db_url)

"""Replays beside live writers: eight clients send their offline spools at once while four
others log predictions live, all against one embedded PostgreSQL server (fsync on).

    .venv/bin/python bench/db_concurrency.py [--replayers 8] [--writers 4]
                                             [--spooled 300] [--writes 150]

Each client is a process of its own (tests/db/concurrency_child.py, shared with
tests/db/test_db_concurrency.py).  A replayer's spool holds ``--spooled`` predictions
(half of them by a model version known only by its weights) and a label for every
fifth; all in the current hour, so every client updates the same running-total rows.
First the writers run alone (the baseline), then beside the replayers.  Printed: each
phase's live-write latency (p50, p99, max), the replay time (slowest and median
client), deadlocks counted by the server, time spent offline, and a check that every
row arrived once.  The last line is
``replay_s=<slowest replay> writer_p99_ms=<live writers' p99 beside the replays> deadlocks=<n>``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "db"))

import psycopg2  # noqa: E402

from app.db.server import EmbeddedServer  # noqa: E402
from concurrency_child import run_scenario  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def query(url: str, sql: str):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()
    finally:
        conn.close()


def deadlocks(url: str) -> int:
    deadline = time.monotonic() + 20  # the clients' backends report when they end
    while time.monotonic() < deadline and query(url, "SELECT count(*) FROM pg_stat_activity "
                                                     "WHERE datname = current_database() "
                                                     "AND pid <> pg_backend_pid()")[0]:
        time.sleep(0.1)
    return query(url, "SELECT deadlocks FROM pg_stat_database "
                      "WHERE datname = current_database()")[0]


def latencies(reports: list[dict]) -> str:
    ms = [t for r in reports for t in r["write_ms"]]
    return (f"p50 {percentile(ms, 50):.2f} ms, p99 {percentile(ms, 99):.2f} ms, "
            f"max {max(ms):.2f} ms (n={len(ms)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replayers", type=int, default=8)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--spooled", type=int, default=300, help="predictions per spool")
    parser.add_argument("--writes", type=int, default=150, help="live predictions per writer")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    folder = Path(tempfile.mkdtemp(prefix="mnist-db-concurrency-"))
    server = EmbeddedServer(folder / "postgres", database="bench", cleanup_mode="delete")
    t = time.perf_counter()
    server.start()
    print(f"embedded server started in {time.perf_counter() - t:.1f} s ({folder})")
    try:
        server.ensure_database("baseline")
        alone = run_scenario(server.url_for("baseline"), folder / "baseline", replayers=0,
                             writers=args.writers, writes=args.writes)
        print(f"{args.writers} live writers alone:        {latencies(alone.writers)}")

        url = server.url
        before = deadlocks(url)
        scenario = run_scenario(url, folder / "clients", replayers=args.replayers,
                                writers=args.writers, inserts=args.spooled, writes=args.writes)
        found = deadlocks(url) - before
        replay = [r["seconds"] for r in scenario.replayers]
        offline = [s for r in scenario.replayers + scenario.writers for s in r["offline_spells"]]
        retries = sum(r["retries"] for r in scenario.replayers + scenario.writers)
        writer_ms = [t for r in scenario.writers for t in r["write_ms"]]
        print(f"{args.writers} live writers beside {args.replayers} replays: "
              f"{latencies(scenario.writers)}")
        print(f"replay of {args.spooled} predictions + {args.spooled // 5 + args.spooled // 10} "
              f"labels per client: slowest {max(replay):.2f} s, median "
              f"{statistics.median(replay):.2f} s")
        print(f"deadlocks: {found} (server), deadlock retries: {retries} (clients); "
              f"offline spells: {len(offline)}"
              + (f", longest {max(offline):.2f} s" if offline else ""))
        total, distinct = query(url, "SELECT count(*), count(DISTINCT uuid) FROM predictions")
        expected = len(scenario.spooled) + scenario.live
        print(f"rows: {total} ({distinct} distinct), expected {expected}: "
              f"{'ok' if total == distinct == expected else 'WRONG'}")
        print(f"replay_s={max(replay):.2f} writer_p99_ms={percentile(writer_ms, 99):.2f} "
              f"deadlocks={found}")
        return 0 if total == distinct == expected else 1
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""Database benchmark: insert latency, and the statistics queries on a million predictions.

    .venv/bin/python bench/db_bench.py [--rows 1000000] [--inserts 500] [--repeats 20]
                                       [--versions 4] [--migrate]

Starts an embedded PostgreSQL server (default settings: fsync on) in a temporary folder,
registers ``--versions`` model versions, generates the predictions in SQL with
generate_series (real 28x28 PNGs, a year of timestamps, 30 % labelled, spread evenly over
the versions and "no version", so that every version has rows in every hour: the most
rows the running totals can have), then times through `PredictionRepository`:

- insert: one `log()` of a prediction with its PNG (a committed transaction), p50 / p99;
- set_label: one label change, p50 / p99;
- each query the GUI runs (accuracy, digit statistics, confusion matrix, recent history
  with images, accuracy per day), over all versions and for one version, and the model
  version list and comparison: the first (cold) run and ``--repeats`` more.
- labelled_samples of one version (bulk data for fine-tuning, not a GUI query: shown, but
  not part of the goal) and, with ``--migrate``, the upgrade of a version-1 database with
  ``--rows`` predictions to the current schema (also not part of the goal).

Goal: every query <= 200 ms.  The last line is ``worst_query_ms=<the slowest single run of
any query, cold runs included>``.
"""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psycopg2  # noqa: E402
from PIL import Image  # noqa: E402

from app.db import PredictionRecord, PredictionRepository, schema  # noqa: E402
from app.db.server import EmbeddedServer  # noqa: E402

GOAL_MS = 200.0
CHUNK = 100_000

# One statement per chunk of rows: i runs from %(start)s to %(stop)s.  Digit i % 10,
# confidence 0.50..0.99, probabilities consistent with it, 30 % labelled (95 % right),
# spread over the last 365 days; model version: %(versions)s[1 + i / 10 % n] (NULL: none).
GENERATE = """
INSERT INTO predictions (uuid, created_at, predicted_digit, confidence, probabilities,
                         true_label, labelled_at, image_png, model_version, model_version_id,
                         source)
SELECT md5('bench' || i)::uuid,
       now() - (i %% 365) * interval '1 day' - (i::bigint * 7919 %% 86400) * interval '1 second',
       d, c,
       array_fill(((1 - c) / 9)::real, ARRAY[d]) || c::real
           || array_fill(((1 - c) / 9)::real, ARRAY[9 - d]),
       CASE WHEN i %% 10 < 3 THEN CASE WHEN i %% 20 = 0 THEN (d + 1) %% 10 ELSE d END END,
       CASE WHEN i %% 10 < 3 THEN now() END,
       %(png)s, 'bench-1',
       (%(versions)s::bigint[])[1 + (i / 10) %% cardinality(%(versions)s::bigint[])],
       (ARRAY['canvas', 'file', 'cli'])[1 + i %% 3]
FROM generate_series(%(start)s, %(stop)s) AS i,
     LATERAL (SELECT (i %% 10)::smallint AS d, (0.5 + (i %% 50) / 100.0)::real AS c) AS v
"""
# The same rows for a version-1 database (no model versions).
GENERATE_V1 = GENERATE.replace(", model_version_id,", ",").replace(
    "(%(versions)s::bigint[])[1 + (i / 10) %% cardinality(%(versions)s::bigint[])],", "")


def make_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[4:24, 8:20] = (rng.random((20, 12)) > 0.4) * 255
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def record(i: int, png: bytes, version_id: int) -> PredictionRecord:
    digit, conf = i % 10, 0.5 + (i % 50) / 100
    probs = [conf if d == digit else (1 - conf) / 9 for d in range(10)]
    return PredictionRecord(predicted_digit=digit, confidence=conf, probabilities=probs,
                            image_png=png, model_version="bench-1", source="canvas",
                            model_version_id=version_id)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--inserts", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--versions", type=int, default=4,
                        help="model versions the rows are spread over (plus 'no version')")
    parser.add_argument("--migrate", action="store_true",
                        help="also time upgrading a version-1 database with --rows rows")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    folder = Path(tempfile.mkdtemp(prefix="mnist-db-bench-"))
    server = EmbeddedServer(folder / "postgres", database="bench", cleanup_mode="delete")
    t = time.perf_counter()
    url = server.start()
    print(f"embedded server started in {time.perf_counter() - t:.1f} s ({folder})")
    try:
        worst = run(url, args)
        if args.migrate:
            server.ensure_database("bench_v1")
            migrate(server.url_for("bench_v1"), args)
        print(f"goal: every query <= {GOAL_MS:.0f} ms: {'met' if worst <= GOAL_MS else 'NOT met'}")
        print(f"worst_query_ms={worst:.2f}")
        return 0
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def generate(cur, sql: str, png: bytes, rows: int, versions: list[int | None]) -> None:
    for start in range(1, rows + 1, CHUNK):
        stop = min(start + CHUNK - 1, rows)
        cur.execute(sql, {"png": psycopg2.Binary(png), "start": start, "stop": stop,
                          "versions": versions})


def migrate(url: str, args) -> None:
    """Time the upgrade of a version-1 database with ``args.rows`` predictions."""
    conn = psycopg2.connect(url)
    schema.apply_schema(conn, up_to=1)
    conn.autocommit = True
    with conn.cursor() as cur:
        generate(cur, GENERATE_V1, make_png(0), args.rows, [None])
        cur.execute("VACUUM ANALYZE")
    conn.autocommit = False
    t = time.perf_counter()
    version = schema.apply_schema(conn)
    print(f"upgrade of a version-1 database with {args.rows} predictions to version "
          f"{version}: {time.perf_counter() - t:.1f} s (once, on the first start)")
    conn.close()


def run(url: str, args) -> float:
    """Fill the database and time the writes and queries; the slowest query run in ms."""
    repo = PredictionRepository(url)  # applies the schema
    png = make_png(0)
    print(f"PNG size: {len(png)} bytes")
    version_ids: list[int] = []
    for k in range(args.versions):
        version_ids.append(repo.register_model_version(
            sha256=f"{k:064x}", path=f"/bench/v{k}.pth", arch="bench",
            metrics={"test_accuracy": 0.99}, parent_id=version_ids[-1] if version_ids else None,
            kind="fine-tuned" if version_ids else "trained", name=f"bench {k}"))

    conn = psycopg2.connect(url)
    conn.autocommit = True
    t = time.perf_counter()
    with conn.cursor() as cur:
        generate(cur, GENERATE, png, args.rows, [*version_ids, None])
        generated = time.perf_counter() - t
        cur.execute("VACUUM ANALYZE")
        cur.execute("SELECT count(*), pg_size_pretty(pg_total_relation_size('predictions')) "
                    "FROM predictions")
        count, size = cur.fetchone()
        cur.execute("SELECT count(*) FROM prediction_counts_hourly")
        hourly = cur.fetchone()[0]
    conn.close()
    print(f"generated {count} predictions in SQL in {generated:.1f} s "
          f"(+ VACUUM ANALYZE {time.perf_counter() - t - generated:.1f} s); table {size}; "
          f"{args.versions} model versions; {hourly} hourly running-total rows")

    newest = version_ids[-1] if version_ids else None
    oldest = version_ids[0] if version_ids else None
    insert_ms, label_ms, uuids = [], [], []
    for i in range(args.inserts):
        rec = record(i, png, newest)
        insert_ms.append(timed(lambda: uuids.append(repo.log(rec))))
    for i, u in enumerate(uuids):
        label_ms.append(timed(lambda: repo.set_label(u, i % 10)))
    print(f"insert (one prediction + PNG, committed): p50 {percentile(insert_ms, 50):.2f} ms, "
          f"p99 {percentile(insert_ms, 99):.2f} ms  (n={len(insert_ms)})")
    print(f"set_label:                                p50 {percentile(label_ms, 50):.2f} ms, "
          f"p99 {percentile(label_ms, 99):.2f} ms  (n={len(label_ms)})")

    queries = {
        "accuracy": repo.accuracy,
        "digit_statistics": repo.digit_statistics,
        "confusion": repo.confusion,
        "recent_50_with_images": lambda: repo.recent(50),
        "accuracy_per_day_all": repo.accuracy_per_day,
        "accuracy_per_day_30": lambda: repo.accuracy_per_day(30),
        "labelled_count": repo.labelled_count,
    }
    if newest is not None:
        queries.update({
            "v:accuracy": lambda: repo.accuracy(newest),
            "v:digit_statistics": lambda: repo.digit_statistics(newest),
            "v:confusion": lambda: repo.confusion(newest),
            "v:recent_50_with_images": lambda: repo.recent(50, model_version_id=newest),
            "v:recent_50_offset_1000": lambda: repo.recent(50, 1000, model_version_id=oldest),
            "v:accuracy_per_day_all": lambda: repo.accuracy_per_day(model_version_id=newest),
            "v:accuracy_per_day_30": lambda: repo.accuracy_per_day(30, newest),
            "v:labelled_count": lambda: repo.labelled_count(newest),
            "model_versions": repo.model_versions,
            "compare_versions": lambda: repo.compare_versions(oldest, newest),
        })
    worst = 0.0
    print(f"{'query':24s} {'cold':>8s} {'p50':>8s} {'p95':>8s} {'max':>8s}   (ms, "
          f"{args.repeats} warm runs)")
    for name, fn in queries.items():
        cold = timed(fn)
        warm = [timed(fn) for _ in range(args.repeats)]
        slowest = max(cold, *warm)
        worst = max(worst, slowest)
        print(f"{name:24s} {cold:8.2f} {statistics.median(warm):8.2f} "
              f"{percentile(warm, 95):8.2f} {max(warm):8.2f}")
    assert repo.accuracy()["total"] == args.rows + args.inserts
    if newest is not None:
        samples: list = []
        ms = timed(lambda: samples.extend(repo.labelled_samples(oldest)))
        print(f"labelled_samples of one version (bulk, not a GUI query): {len(samples)} "
              f"samples in {ms:.0f} ms")
    repo.close()
    return worst


if __name__ == "__main__":
    sys.exit(main())

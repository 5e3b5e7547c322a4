"""Database benchmark: insert latency, and the statistics queries on a million predictions.

    .venv/bin/python bench/db_bench.py [--rows 1000000] [--inserts 500] [--repeats 20]

Starts an embedded PostgreSQL server (default settings: fsync on) in a temporary folder,
generates the predictions in SQL with generate_series (real 28x28 PNGs, a year of
timestamps, 30 % labelled), then times through `PredictionRepository`:

- insert: one `log()` of a prediction with its PNG (a committed transaction), p50 / p99;
- set_label: one label change, p50 / p99;
- each query the GUI runs (accuracy, digit statistics, confusion matrix, recent history
  with images, accuracy per day): the first (cold) run and ``--repeats`` more.

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

from app.db import PredictionRecord, PredictionRepository  # noqa: E402
from app.db.server import EmbeddedServer  # noqa: E402

GOAL_MS = 200.0
CHUNK = 100_000

# One statement per chunk of rows: i runs from %(start)s to %(stop)s.  Digit i % 10,
# confidence 0.50..0.99, probabilities consistent with it, 30 % labelled (95 % right),
# spread over the last 365 days.
GENERATE = """
INSERT INTO predictions (uuid, created_at, predicted_digit, confidence, probabilities,
                         true_label, labelled_at, image_png, model_version, source)
SELECT md5('bench' || i)::uuid,
       now() - (i %% 365) * interval '1 day' - (i::bigint * 7919 %% 86400) * interval '1 second',
       d, c,
       array_fill(((1 - c) / 9)::real, ARRAY[d]) || c::real
           || array_fill(((1 - c) / 9)::real, ARRAY[9 - d]),
       CASE WHEN i %% 10 < 3 THEN CASE WHEN i %% 20 = 0 THEN (d + 1) %% 10 ELSE d END END,
       CASE WHEN i %% 10 < 3 THEN now() END,
       %(png)s, 'bench-1', (ARRAY['canvas', 'file', 'cli'])[1 + i %% 3]
FROM generate_series(%(start)s, %(stop)s) AS i,
     LATERAL (SELECT (i %% 10)::smallint AS d, (0.5 + (i %% 50) / 100.0)::real AS c) AS v
"""


def make_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[4:24, 8:20] = (rng.random((20, 12)) > 0.4) * 255
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def record(i: int, png: bytes) -> PredictionRecord:
    digit, conf = i % 10, 0.5 + (i % 50) / 100
    probs = [conf if d == digit else (1 - conf) / 9 for d in range(10)]
    return PredictionRecord(predicted_digit=digit, confidence=conf, probabilities=probs,
                            image_png=png, model_version="bench-1", source="canvas")


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
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    folder = Path(tempfile.mkdtemp(prefix="mnist-db-bench-"))
    server = EmbeddedServer(folder / "postgres", database="bench", cleanup_mode="delete")
    t = time.perf_counter()
    url = server.start()
    print(f"embedded server started in {time.perf_counter() - t:.1f} s ({folder})")
    try:
        return run(url, args)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def run(url: str, args) -> int:
    repo = PredictionRepository(url)  # applies the schema
    png = make_png(0)
    print(f"PNG size: {len(png)} bytes")

    conn = psycopg2.connect(url)
    conn.autocommit = True
    t = time.perf_counter()
    with conn.cursor() as cur:
        for start in range(1, args.rows + 1, CHUNK):
            stop = min(start + CHUNK - 1, args.rows)
            cur.execute(GENERATE, {"png": psycopg2.Binary(png), "start": start, "stop": stop})
        generated = time.perf_counter() - t
        cur.execute("VACUUM ANALYZE")
        cur.execute("SELECT count(*), pg_size_pretty(pg_total_relation_size('predictions')) "
                    "FROM predictions")
        count, size = cur.fetchone()
    conn.close()
    print(f"generated {count} predictions in SQL in {generated:.1f} s "
          f"(+ VACUUM ANALYZE {time.perf_counter() - t - generated:.1f} s); table {size}")

    insert_ms, label_ms, uuids = [], [], []
    for i in range(args.inserts):
        rec = record(i, png)
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
    }
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
    repo.close()
    print(f"goal: every query <= {GOAL_MS:.0f} ms: {'met' if worst <= GOAL_MS else 'NOT met'}")
    print(f"worst_query_ms={worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

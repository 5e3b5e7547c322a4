"""`PredictionRepository`: everything the app reads from and writes to the database.

Writes (`log`, `set_label`) never get lost: when the server cannot be reached they go to
the durable spool (app/db/spool.py) and are replayed, in order, as soon as a connection
works again: on the next call (at most every ``retry_interval`` seconds) or when the GUI
calls `flush_spool()`.  Replays are idempotent: a prediction is inserted
``ON CONFLICT (uuid) DO NOTHING`` and a label only replaces an older one (``labelled_at``).
While anything waits in the spool, new writes queue behind it, so the order is kept.

Reads (`recent`, `accuracy`, ...) need the server; offline they raise `DatabaseUnavailable`.
So does `register_model_version`: only the database can give a version its id.  The
statistics take ``model_version_id`` (None: all versions) and read running totals kept
per version by triggers (sql/migrations/002_model_versions.sql), so they stay fast.
All SQL is parameterised.  Every public method holds one lock, so the repository may be
shared between threads (the GUI uses it from one worker thread); `status()` never waits.
"""

from __future__ import annotations

import dataclasses
import decimal
import logging
import os
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from app.db import schema
from app.db.errors import (DatabaseError, DatabaseUnavailable, InvalidRecord, SchemaError,
                           Target, UnknownModelVersion, UnknownPrediction,
                           describe_connect_error, redact_url)
from app.db.records import (DbStatus, HistoryRow, LabelledSample, ModelVersion,
                            ModelVersionSpec, PredictionRecord, check_label, check_sha256,
                            check_uuid, check_version_id)
from app.db.spool import Spool

log = logging.getLogger(__name__)

T = TypeVar("T")

APPLICATION_NAME = "mnist-classifier"
# TCP keepalives: a server that vanishes mid-query is noticed in ~15 s, not ~15 min.
_TCP_OPTIONS = dict(keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
                    tcp_user_timeout=15000)

_INSERT = """
INSERT INTO predictions (uuid, created_at, predicted_digit, confidence, probabilities,
                         true_label, labelled_at, image_png, raw_png, model_version,
                         model_version_id, source)
VALUES (%(uuid)s, %(created_at)s, %(predicted_digit)s, %(confidence)s, %(probabilities)s::real[],
        %(true_label)s, %(labelled_at)s, %(image_png)s, %(raw_png)s, %(model_version)s,
        %(model_version_id)s, %(source)s)
ON CONFLICT (uuid) DO NOTHING
"""
# Last writer wins by the client's clock, so replaying an old label never undoes a newer one.
_SET_LABEL = """
UPDATE predictions SET true_label = %(label)s, labelled_at = %(at)s
WHERE uuid = %(uuid)s AND (labelled_at IS NULL OR labelled_at <= %(at)s)
"""
_EXISTS = "SELECT 1 FROM predictions WHERE uuid = %s"
_RECENT = """
SELECT uuid::text, created_at, predicted_digit, confidence, true_label, image_png,
       model_version, source, model_version_id
FROM predictions
{where}
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""
_EXPORT_COLUMNS = (
    "uuid, created_at, predicted_digit, confidence, "
    + ", ".join(f"probabilities[{i + 1}] AS p{i}" for i in range(10))
    + ", true_label, labelled_at, model_version, model_version_id, source"
)
_LABELLED = """
SELECT uuid::text, image_png, true_label, created_at
FROM predictions
WHERE true_label IS NOT NULL {also}
ORDER BY created_at, id
"""
_REGISTER = """
INSERT INTO model_versions (parent_id, arch, metrics, weights_sha256, path, kind, name)
VALUES (%(parent_id)s, %(arch)s, %(metrics_json)s::jsonb, %(sha256)s, %(path)s, %(kind)s,
        %(name)s)
ON CONFLICT (weights_sha256) DO NOTHING
RETURNING id
"""
_MOVE_WEIGHTS = """
UPDATE model_versions SET path = %(path)s
WHERE weights_sha256 = %(sha256)s AND path IS DISTINCT FROM %(path)s
"""
_MODEL_VERSIONS = """
SELECT v.id, v.parent_id, v.created_at, v.arch, v.metrics, v.weights_sha256, v.path, v.kind,
       v.name, a.predictions, a.labelled, a.correct, a.accuracy
FROM model_versions v
JOIN model_version_accuracy a ON a.model_version_id = v.id
{where}
ORDER BY v.created_at DESC, v.id DESC
"""
# Labelled predictions of two versions by true label: (version, label, actual, correct).
_COMPARE = """
SELECT model_version_id, true_label, sum(n)::bigint,
       coalesce(sum(n) FILTER (WHERE true_label = predicted_digit), 0)::bigint
FROM prediction_counts
WHERE model_version_id IN (%s, %s) AND true_label >= 0
GROUP BY 1, 2
"""
# SQLSTATEs that mean the connection is gone (class 08) or the server is going away.
_LOST_STATES = {"57P01", "57P02", "57P03"}
# Classes of errors that are the server's trouble, not the data's: 25 read-only
# transaction, 40 rollback (after retries), 53 resources (disk full, out of memory),
# 55 object not ready, 57 operator intervention, 58 system error, XX internal.
_SERVER_TROUBLE_CLASSES = {"25", "40", "53", "55", "57", "58", "XX"}


class PredictionRepository:
    """The predictions in one PostgreSQL database, with an offline spool.

    url:            a libpq URL (``postgresql://user:pw@host:port/db``); or give ``connect``,
                    a function returning a new psycopg2 connection (it may raise
                    psycopg2.Error or DatabaseError; both mean "offline").
    spool_dir:      folder of the durable spool; None: no spool, offline writes raise.
    where:          what `status()` shows as the place ("embedded", a host, ...); default
                    from the URL.
    via:            which settings named the server, for error messages: "url"
                    (DATABASE_URL), "params" (DB_HOST, ...) or "embedded".
    retry_interval: seconds between automatic reconnection attempts while offline.
    time_zone:      SET TIME ZONE for the session (accuracy_per_day's days); None: server's.
    sql_dir:        where init.sql and migrations/ are (default: the bundled sql/).

    The constructor tries to connect (and applies the schema) but does not raise when the
    server is unreachable: the repository starts offline and spools; see `status()`.
    """

    def __init__(self, url: str | None = None, *,
                 connect: Callable[[], psycopg2.extensions.connection] | None = None,
                 spool_dir: str | os.PathLike | None = None, where: str | None = None,
                 via: str = "url", retry_interval: float = 5.0, connect_timeout: int = 5,
                 time_zone: str | None = None, sql_dir: str | os.PathLike | None = None):
        if (url is None) == (connect is None):
            raise TypeError("give either url or connect")
        self._url = url
        self._connect_fn = connect
        target = Target.from_url(url, via) if url else Target(where="database", via=via)
        if where is not None:
            target = Target(where=where, host=target.host, port=target.port, user=target.user,
                            dbname=target.dbname, via=via)
        self._target = target
        try:
            self._spool = Spool(spool_dir) if spool_dir is not None else None
        except OSError as exc:
            raise DatabaseError(
                f"Cannot use the offline spool folder {spool_dir}: {exc.strerror or exc}. "
                f"Check MNIST_DATA_HOME (the per-user data folder).",
                setting="MNIST_DATA_HOME") from exc
        self._retry_interval = retry_interval
        self._connect_timeout = connect_timeout
        self._time_zone = time_zone
        self._sql_dir = Path(sql_dir) if sql_dir is not None else None
        self._lock = threading.RLock()
        self._conn: psycopg2.extensions.connection | None = None
        self._last_error: DatabaseError | None = None
        self._next_attempt = 0.0
        self._closed = False
        self._sent = 0  # spool entries replayed so far (for flush_spool's count)
        # model version id -> weights sha256, of the versions this repository has seen; an
        # offline write spools the sha with the id (see Spool).  Ids never change meaning
        # within one database.
        self._version_sha: dict[int, str] = {}
        with self._lock:
            self._ensure_online(force=True)

    # ---- writes -----------------------------------------------------------------------
    def log(self, record: PredictionRecord) -> str:
        """Store a prediction (or spool it when offline); return its uuid.

        ValueError (nothing written) when a field is bad; logging the same uuid twice
        keeps the first.
        """
        record.validate()
        params = _record_params(record)

        def online(cur) -> str:
            try:
                cur.execute(_INSERT, params)
            except psycopg2.errors.ForeignKeyViolation:
                raise UnknownModelVersion(
                    f"There is no model version {record.model_version_id} in the database "
                    f"(register_model_version gives the id). Nothing was written.") from None
            return record.uuid

        def offline() -> str:
            sha = self._version_sha.get(record.model_version_id)
            self._spool_write(self._spool.add_record, record, sha)
            log.info("Offline: prediction %s spooled (%d waiting)", record.uuid, len(self._spool))
            return record.uuid

        return self._write(online, offline)

    def set_label(self, uuid: str, label: int | None) -> None:
        """Set, change or (with None) clear the true label of a prediction.

        Works offline too, also for a prediction that is itself still in the spool.
        Raises ValueError for a bad label and `UnknownPrediction` when the database is
        reachable and has no such prediction.
        """
        uuid = check_uuid(uuid)
        label = check_label(label)
        at = datetime.now(timezone.utc)

        def online(cur) -> None:
            cur.execute(_SET_LABEL, {"uuid": uuid, "label": label, "at": at})
            if cur.rowcount == 0:
                cur.execute(_EXISTS, (uuid,))
                if cur.fetchone() is None:
                    raise UnknownPrediction(f"There is no prediction {uuid} in the database.")

        def offline() -> None:
            self._spool_write(self._spool.add_label, uuid, label, at)
            log.info("Offline: label of %s spooled", uuid)

        self._write(online, offline)

    def flush_spool(self) -> int:
        """Reconnect if needed and send what waits in the spool; return how many were sent.

        Also checks that an open connection still works, so calling this from a timer keeps
        `status()` true.  Never raises for an unreachable server.
        """
        with self._lock:
            self._check_open()
            if self._conn is not None and not self._conn.closed:
                try:
                    with self._conn.cursor() as cur:
                        cur.execute("SELECT 1")
                    self._conn.rollback()
                except psycopg2.Error as exc:
                    self._lose_connection(exc)
            before = self._sent
            self._ensure_online(force=True)
            return self._sent - before

    # ---- model versions -------------------------------------------------------------------
    def register_model_version(self, *, sha256: str, path: str | os.PathLike, arch: str,
                               metrics: dict, parent_id: int | None = None,
                               kind: str = "trained", name: str | None = None) -> int:
        """Record a trained, fine-tuned or shipped model; return its id.

        sha256: hex SHA-256 of the weights file, which identifies the version: registering
        the same weights again returns the same id (and records ``path`` when the file
        moved; the other fields stay as first registered).  arch: the network's name.
        metrics: JSON-able dict (numpy numbers are fine).  parent_id: the version it was
        fine-tuned from.  kind: "trained", "fine-tuned" or "shipped".  name: for people.

        Needs the database: offline it raises `DatabaseUnavailable` (register again when
        `status().online`; predictions logged meanwhile carry model_version_id=None).
        ValueError for a bad argument, `UnknownModelVersion` for an unknown parent_id.
        """
        spec = ModelVersionSpec.check(sha256=sha256, path=path, arch=arch, metrics=metrics,
                                      parent_id=parent_id, kind=kind, name=name)
        params = dataclasses.asdict(spec)

        def work(cur) -> int:
            try:
                cur.execute(_REGISTER, params)
            except psycopg2.errors.ForeignKeyViolation:
                raise UnknownModelVersion(
                    f"parent_id {spec.parent_id}: there is no such model version in the "
                    f"database. Nothing was written.") from None
            row = cur.fetchone()
            if row is None:  # known weights
                cur.execute(_MOVE_WEIGHTS, params)
                cur.execute("SELECT id FROM model_versions WHERE weights_sha256 = %s",
                            (spec.sha256,))
                row = cur.fetchone()
            return row[0]

        version_id = self._read(work)
        self._version_sha[version_id] = spec.sha256
        return version_id

    def model_versions(self) -> list[ModelVersion]:
        """Every model version, newest first, with the counts of its predictions."""
        return self._read(lambda cur: self._fetch_versions(cur, "", ()))

    def model_version(self, model_version_id: int) -> ModelVersion:
        """One model version; `UnknownModelVersion` when there is none with this id."""
        version_id = check_version_id(model_version_id)
        if version_id is None:
            raise ValueError("model_version_id must be a model version id, not None")
        found = self._read(lambda cur: self._fetch_versions(cur, "WHERE v.id = %s",
                                                            (version_id,)))
        if not found:
            raise UnknownModelVersion(f"There is no model version {version_id} in the database.")
        return found[0]

    def model_version_by_sha(self, sha256: str) -> ModelVersion | None:
        """The version of these weights (hex SHA-256), or None when not registered."""
        sha = check_sha256(sha256)
        found = self._read(lambda cur: self._fetch_versions(cur, "WHERE v.weights_sha256 = %s",
                                                            (sha,)))
        return found[0] if found else None

    def compare_versions(self, a_id: int, b_id: int) -> dict:
        """Two versions side by side, on their labelled predictions.

        Returns ``{"a": {...}, "b": {...}, "accuracy_delta": b - a, "digits": [...]}``:
        "a" and "b" hold id, name, kind, created_at, predictions, labelled, correct and
        accuracy (correct / labelled); "digits" ten rows, digit 0..9, with a_actual,
        a_correct, a_accuracy, b_actual, b_correct, b_accuracy and delta, where actual is
        the number of labelled predictions whose true label is the digit and accuracy the
        share of those predicted right (the recall of the digit).  An accuracy is None
        where nothing is labelled, a delta None where either accuracy is.
        `UnknownModelVersion` when either id is not a version.
        """
        ids = [check_version_id(a_id, "a_id"), check_version_id(b_id, "b_id")]
        if None in ids:
            raise ValueError("compare_versions needs two model version ids")

        def query(cur):
            versions = self._fetch_versions(cur, "WHERE v.id IN (%s, %s)", ids)
            cur.execute(_COMPARE, ids)
            return versions, cur.fetchall()

        versions, rows = self._read(query)
        by_id = {v.id: v for v in versions}
        for version_id in ids:
            if version_id not in by_id:
                raise UnknownModelVersion(
                    f"There is no model version {version_id} in the database.")
        per_digit = {(v, t): (int(actual), int(correct)) for v, t, actual, correct in rows}
        result: dict[str, Any] = {}
        for side, version_id in zip("ab", ids):
            v = by_id[version_id]
            result[side] = dict(id=v.id, name=v.name, kind=v.kind, created_at=v.created_at,
                                predictions=v.predictions, labelled=v.labelled,
                                correct=v.correct, accuracy=v.accuracy)
        result["accuracy_delta"] = _delta(result["a"]["accuracy"], result["b"]["accuracy"])
        digits = []
        for d in range(10):
            row: dict[str, Any] = {"digit": d}
            for side, version_id in zip("ab", ids):
                actual, correct = per_digit.get((version_id, d), (0, 0))
                row[f"{side}_actual"] = actual
                row[f"{side}_correct"] = correct
                row[f"{side}_accuracy"] = correct / actual if actual else None
            row["delta"] = _delta(row["a_accuracy"], row["b_accuracy"])
            digits.append(row)
        result["digits"] = digits
        return result

    def _fetch_versions(self, cur, where: str, params) -> list[ModelVersion]:
        cur.execute(_MODEL_VERSIONS.format(where=where), params)
        versions = [ModelVersion(id=r[0], parent_id=r[1], created_at=r[2], arch=r[3],
                                 metrics=r[4], sha256=r[5], path=r[6], kind=r[7], name=r[8],
                                 predictions=int(r[9]), labelled=int(r[10]),
                                 correct=int(r[11]), accuracy=r[12])
                    for r in cur.fetchall()]
        self._version_sha.update((v.id, v.sha256) for v in versions)
        return versions

    # ---- learning data ----------------------------------------------------------------------
    def labelled_samples(self, model_version_id: int | None = None) -> list[LabelledSample]:
        """Every labelled prediction (of one model version, or of all with None), oldest
        first: the 28x28 PNG the network saw and the label the user gave."""
        version_id = check_version_id(model_version_id)
        also = "" if version_id is None else "AND model_version_id = %(version)s"

        def query(cur) -> list[LabelledSample]:
            cur.execute(_LABELLED.format(also=also), {"version": version_id})
            return [LabelledSample(uuid=r[0], image_png=bytes(r[1]), true_label=r[2],
                                   created_at=r[3]) for r in cur.fetchall()]

        return self._read(query)

    def labelled_count(self, model_version_id: int | None = None) -> int:
        """How many predictions have a true label (of one model version, or of all)."""
        return self.accuracy(model_version_id)["labelled"]

    # ---- reads --------------------------------------------------------------------------
    def recent(self, limit: int = 50, offset: int = 0,
               model_version_id: int | None = None) -> list[HistoryRow]:
        """The newest predictions first, with their 28x28 PNGs (of one model version, or
        of all with None)."""
        limit, offset = int(limit), int(offset)
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        version_id = check_version_id(model_version_id)
        where = "" if version_id is None else "WHERE model_version_id = %(version)s"
        sql = _RECENT.format(where=where)

        def query(cur) -> list[HistoryRow]:
            cur.execute(sql, {"limit": limit, "offset": offset, "version": version_id})
            return [HistoryRow(uuid=r[0], created_at=r[1], predicted_digit=r[2],
                               confidence=float(r[3]), true_label=r[4], image_png=bytes(r[5]),
                               model_version=r[6], source=r[7], model_version_id=r[8])
                    for r in cur.fetchall()]

        return self._read(query)

    def accuracy(self, model_version_id: int | None = None) -> dict:
        """{"total", "labelled", "correct", "accuracy"} (accuracy None with no labels), of
        the predictions of one model version, or of all with None."""
        version_id = check_version_id(model_version_id)

        def query(cur) -> dict:
            cur.execute("SELECT total, labelled, correct, accuracy "
                        "FROM prediction_accuracy_of(%s)", (version_id,))
            return _as_dict(cur, cur.fetchone())

        return self._read(query)

    def digit_statistics(self, model_version_id: int | None = None) -> list[dict]:
        """Ten dicts, digit 0..9: digit, predictions, labelled, correct, actual, accuracy,
        mean_confidence, precision, recall (None where undefined); see sql/init.sql.
        Of one model version, or of all with None."""
        version_id = check_version_id(model_version_id)

        def query(cur) -> list[dict]:
            cur.execute("SELECT digit, predictions, labelled, correct, actual, accuracy, "
                        "mean_confidence, precision, recall FROM digit_statistics_of(%s) "
                        "ORDER BY digit", (version_id,))
            return [_as_dict(cur, row) for row in cur.fetchall()]

        return self._read(query)

    def confusion(self, model_version_id: int | None = None) -> list[list[int]]:
        """10x10 counts of labelled predictions: ``matrix[true_label][predicted_digit]``;
        of one model version, or of all with None."""
        version_id = check_version_id(model_version_id)

        def query(cur) -> list[list[int]]:
            cur.execute("SELECT true_label, predicted_digit, n FROM confusion_matrix_of(%s)",
                        (version_id,))
            matrix = [[0] * 10 for _ in range(10)]
            for t, p, n in cur.fetchall():
                matrix[t][p] = int(n)
            return matrix

        return self._read(query)

    def accuracy_per_day(self, days: int | None = None,
                         model_version_id: int | None = None) -> list[dict]:
        """Oldest first: {"day": date, "predictions", "labelled", "correct", "accuracy"};
        only days with predictions; ``days``: just the last so many calendar days; of one
        model version, or of all with None."""
        version_id = check_version_id(model_version_id)
        sql = ("SELECT day, predictions, labelled, correct, accuracy "
               "FROM accuracy_per_day_of(%(version)s) ")
        if days is not None:
            sql += "WHERE day > current_date - %(days)s "
        sql += "ORDER BY day"

        def query(cur) -> list[dict]:
            cur.execute(sql, {"version": version_id,
                              "days": None if days is None else int(days)})
            return [_as_dict(cur, row) for row in cur.fetchall()]

        return self._read(query)

    def export_csv(self, path: str | os.PathLike, *, include_images: bool = False) -> int:
        """Write every prediction (oldest first) to a CSV file; return the number of rows.

        Columns: uuid, created_at, predicted_digit, confidence, p0..p9, true_label,
        labelled_at, model_version, model_version_id, source (+ image_png_base64).  The file appears whole
        or not at all.
        """
        path = Path(path)
        columns = _EXPORT_COLUMNS
        if include_images:
            columns += ", translate(encode(image_png, 'base64'), E'\\n', '') AS image_png_base64"
        copy = (f"COPY (SELECT {columns} FROM predictions ORDER BY created_at, id) "
                f"TO STDOUT WITH (FORMAT csv, HEADER)")

        def query(cur) -> int:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                    cur.copy_expert(copy, f)
                    rows = cur.rowcount
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return rows

        return self._read(query)

    # ---- state ----------------------------------------------------------------------------
    def status(self) -> DbStatus:
        """Online or not, how many writes wait in the spool, where.  Never blocks on I/O
        to the server (reads the last known state)."""
        conn = self._conn
        online = conn is not None and not conn.closed and not self._closed
        pending = self._spool.pending_nowait() if self._spool is not None else 0
        error = self._last_error
        message = None if online else (str(error) if error else "Not connected.")
        return DbStatus(online=online, pending=pending, where=self._target.where,
                        message=message)

    @property
    def online(self) -> bool:
        return self.status().online

    @property
    def last_error(self) -> DatabaseError | None:
        """Why the last connection attempt failed (None after a success)."""
        return self._last_error

    def close(self) -> None:
        """Close the connection (what waits in the spool stays there for the next start)."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None and not conn.closed:
                conn.close()

    def __enter__(self) -> "PredictionRepository":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- connection handling ------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseError("The repository is closed.")

    def _new_connection(self) -> psycopg2.extensions.connection:
        if self._connect_fn is not None:
            return self._connect_fn()
        options: dict[str, Any] = dict(connect_timeout=self._connect_timeout,
                                       application_name=APPLICATION_NAME)
        host = self._target.host
        if host and not host.startswith("/"):
            options.update(_TCP_OPTIONS)
        return psycopg2.connect(self._url, **options)

    def _ensure_online(self, force: bool = False) -> bool:
        """Connected, schema applied, spool replayed?  Tries to get there (caller holds lock)."""
        if self._conn is None or self._conn.closed:
            if not force and time.monotonic() < self._next_attempt:
                return False
            if not self._connect():
                return False
        if self._spool is not None and len(self._spool):
            return self._replay()
        return True

    def _connect(self) -> bool:
        was_offline_reason = self._last_error
        try:
            conn = self._new_connection()
        except psycopg2.Error as exc:
            self._go_offline(describe_connect_error(exc, self._target))
            return False
        except DatabaseError as exc:  # from a connect function (e.g. the embedded server)
            self._go_offline(exc)
            return False
        try:
            conn.autocommit = False
            schema.apply_schema(conn, self._sql_dir)
            with conn.cursor() as cur:
                # A commit must mean "on disk": a server set to synchronous_commit=off may
                # lose the last commits in a crash, after we emptied the spool.
                cur.execute("SELECT current_setting('synchronous_commit')")
                if cur.fetchone()[0] == "off":
                    cur.execute("SET synchronous_commit TO on")
                if self._time_zone:
                    cur.execute("SELECT set_config('TimeZone', %s, false)", (self._time_zone,))
            conn.commit()
        except SchemaError as exc:
            conn.close()
            log.error("%s", exc)
            self._go_offline(exc)
            return False
        except psycopg2.Error as exc:
            conn.close()
            self._go_offline(describe_connect_error(exc, self._target))
            return False
        self._conn = conn
        self._last_error = None
        if was_offline_reason is not None:
            log.info("Database at %s is reachable again", self._target.where)
        else:
            log.info("Connected to the database at %s",
                     redact_url(self._url) if self._url else self._target.where)
        return True

    def _go_offline(self, error: DatabaseError) -> None:
        if self._last_error is None or str(self._last_error) != str(error):
            log.warning("Database offline: %s", error)
        self._last_error = error
        self._next_attempt = time.monotonic() + self._retry_interval

    def _lose_connection(self, exc: BaseException) -> None:
        """Drop the connection after ``exc`` and go offline (retrying later)."""
        lost = not isinstance(exc, psycopg2.Error) or self._is_connection_lost(exc)
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                conn.close()
            except psycopg2.Error:
                pass
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if lost:
            message = f"Lost the connection to the database at {self._target.where}: {first_line}"
        else:
            message = f"The database at {self._target.where} cannot take writes now: {first_line}"
        self._go_offline(DatabaseUnavailable(message))

    def _is_connection_lost(self, exc: psycopg2.Error) -> bool:
        if self._conn is None or self._conn.closed:
            return True
        if isinstance(exc, psycopg2.InterfaceError):
            return True
        code = exc.pgcode
        if code is None:
            return isinstance(exc, psycopg2.OperationalError)
        return code.startswith("08") or code in _LOST_STATES

    def _is_server_trouble(self, exc: psycopg2.Error) -> bool:
        """Lost connection, or the server cannot do it now (disk full, read-only, shutting
        down, out of memory, ...): worth spooling and retrying.  Not: a bad value (classes
        22, 23) or a bug in our SQL (42)."""
        if self._is_connection_lost(exc):
            return True
        code = exc.pgcode or ""
        return code[:2] in _SERVER_TROUBLE_CLASSES

    def _run(self, work: Callable[[Any], T]) -> T:
        """Run ``work(cursor)`` in one transaction, retried on deadlock/serialization.

        Raises psycopg2 errors of server trouble as they are; translates the others.
        """
        for attempt in range(1, 4):
            try:
                with self._conn.cursor() as cur:
                    result = work(cur)
                self._conn.commit()
                return result
            except psycopg2.Error as exc:
                if self._is_connection_lost(exc):
                    raise
                self._conn.rollback()
                if isinstance(exc, psycopg2.extensions.TransactionRollbackError) and attempt < 3:
                    log.info("Retrying after %s", type(exc).__name__)
                    continue
                if self._is_server_trouble(exc):
                    raise
                raise _translate(exc) from exc
            except BaseException:
                if self._conn is not None and not self._conn.closed:
                    try:
                        self._conn.rollback()
                    except psycopg2.Error:
                        pass
                raise
        raise AssertionError("unreachable")

    def _try_online(self, work: Callable[[Any], T]) -> tuple[bool, T | None]:
        """Run ``work`` on the server if it can be reached: (True, result), or (False, None).

        Second round: the connection broke (e.g. the server restarted): reconnect now.
        The caller holds the lock.
        """
        for force in (False, True):
            if not self._ensure_online(force=force):
                break
            try:
                return True, self._run(work)
            except psycopg2.Error as exc:
                self._lose_connection(exc)
        return False, None

    def _write(self, online: Callable[[Any], T], offline: Callable[[], T]) -> T:
        with self._lock:
            self._check_open()
            done, result = self._try_online(online)
            if done:
                return result
            if self._spool is None:
                raise self._last_error or DatabaseUnavailable("The database is not reachable.")
            return offline()

    def _read(self, query: Callable[[Any], T]) -> T:
        with self._lock:
            self._check_open()
            done, result = self._try_online(query)
            if done:
                return result
            error = self._last_error
            raise DatabaseUnavailable(
                str(error) if error else f"The database at {self._target.where} is not reachable.",
                setting=error.setting if error else None)

    # ---- spool ------------------------------------------------------------------------------
    def _spool_write(self, method, *args) -> None:
        try:
            method(*args)
        except OSError as exc:
            raise DatabaseError(
                f"The database is offline ({self._last_error}) and the offline spool "
                f"{self._spool.directory} cannot be written: {exc.strerror or exc}. "
                f"Nothing was saved.") from exc

    # ---- spool replay ---------------------------------------------------------------------
    def _replay(self) -> bool:
        """Send the spool; False (and offline) when the connection fails meanwhile."""
        try:
            sent = self._spool.replay(self._apply_entries)
        except psycopg2.Error as exc:
            if self._is_server_trouble(exc):
                self._lose_connection(exc)
                return False
            raise _translate(exc) from exc
        if sent:
            log.info("Sent %d spooled writes to the database", sent)
            self._sent += sent
        return True

    def _apply_entries(self, entries: list[dict]) -> None:
        """All entries in one transaction, in order.

        An entry the database refuses for good (a bad value, a label for a prediction that
        does not exist) is set aside in rejected.jsonl and the rest is applied; any other
        error (lost connection, disk full, ...) leaves the spool untouched for later.
        """
        try:
            with self._conn.cursor() as cur:
                for entry in entries:
                    self._apply_entry(cur, entry)
            self._conn.commit()
            return
        except _Refused:
            self._conn.rollback()
        except psycopg2.Error as exc:
            if self._is_server_trouble(exc):
                raise
            self._conn.rollback()
            log.warning("A spooled write was refused (%s); replaying one by one",
                        str(exc).strip().splitlines()[0])
        # Slow path: one savepoint per entry, refused ones go to rejected.jsonl.
        rejected: list[tuple[dict, str]] = []
        try:
            with self._conn.cursor() as cur:
                for entry in entries:
                    cur.execute("SAVEPOINT entry")
                    try:
                        self._apply_entry(cur, entry)
                        cur.execute("RELEASE SAVEPOINT entry")
                    except _Refused as refused:
                        cur.execute("ROLLBACK TO SAVEPOINT entry")
                        rejected.append((entry, str(refused)))
                    except psycopg2.Error as exc:
                        if self._is_server_trouble(exc):
                            raise
                        cur.execute("ROLLBACK TO SAVEPOINT entry")
                        rejected.append((entry, str(exc).strip().splitlines()[0]))
            self._conn.commit()
        except BaseException:
            if not self._conn.closed:
                self._conn.rollback()
            raise
        for entry, reason in rejected:
            self._spool.reject(entry, reason)

    def _apply_entry(self, cur, entry: dict) -> None:
        op = entry.get("op")
        try:
            if op == "insert":
                record = PredictionRecord.from_json(entry["record"]).validate()
                if record.model_version_id is not None:
                    record.model_version_id = self._replayed_version(
                        cur, record, entry.get("model_sha256"))
                cur.execute(_INSERT, _record_params(record))
            elif op == "label":
                uuid = check_uuid(entry["uuid"])
                at = datetime.fromisoformat(entry["at"])
                cur.execute(_SET_LABEL, {"uuid": uuid, "label": check_label(entry["label"]),
                                         "at": at})
                if cur.rowcount == 0:
                    cur.execute(_EXISTS, (uuid,))
                    if cur.fetchone() is None:
                        raise _Refused(f"label for unknown prediction {uuid}")
            else:
                raise _Refused(f"unknown operation {op!r}")
        except (KeyError, TypeError, ValueError) as exc:
            raise _Refused(f"malformed spool entry: {exc}") from exc


    def _replayed_version(self, cur, record: PredictionRecord, sha: Any) -> int | None:
        """The id in this database of the version that made a spooled prediction.

        By the weights' hash when the entry has one (the id may have come from another
        database), else the id itself if it exists.  None when this database does not know
        the version: the prediction is kept, without it, rather than refused.
        """
        try:
            sha = check_sha256(sha) if sha is not None else None
        except ValueError:
            sha = None
        if sha is not None:
            cur.execute("SELECT id FROM model_versions WHERE weights_sha256 = %s", (sha,))
        else:
            cur.execute("SELECT id FROM model_versions WHERE id = %s",
                        (record.model_version_id,))
        row = cur.fetchone()
        if row is None:
            log.warning("Spooled prediction %s was made by model version %s, which this "
                        "database does not know; storing it without a version",
                        record.uuid, record.model_version_id)
            return None
        if row[0] != record.model_version_id:
            log.info("Spooled prediction %s: model version %s is %s in this database",
                     record.uuid, record.model_version_id, row[0])
        return row[0]


class _Refused(Exception):
    """A spool entry that can never be applied."""


def _record_params(record: PredictionRecord) -> dict:
    return {
        "uuid": record.uuid,
        "created_at": record.created_at,
        "predicted_digit": record.predicted_digit,
        "confidence": record.confidence,
        "probabilities": list(record.probabilities),
        "true_label": record.true_label,
        "labelled_at": record.created_at if record.true_label is not None else None,
        "image_png": psycopg2.Binary(record.image_png),
        "raw_png": psycopg2.Binary(record.raw_png) if record.raw_png is not None else None,
        "model_version": record.model_version,
        "model_version_id": record.model_version_id,
        "source": record.source,
    }


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _as_dict(cur, row) -> dict:
    out = {}
    for column, value in zip(cur.description, row):
        if isinstance(value, decimal.Decimal):
            value = float(value)
        out[column.name] = value
    return out


def _translate(exc: psycopg2.Error) -> DatabaseError:
    """A psycopg2 error (not a lost connection) as a message for people."""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, (psycopg2.errors.CheckViolation, psycopg2.errors.NotNullViolation,
                        psycopg2.DataError)):
        constraint = getattr(exc.diag, "constraint_name", None)
        what = f" ({constraint})" if constraint else ""
        return InvalidRecord(f"The database refused a value{what}: {first_line}. "
                             f"Nothing was written.")
    return DatabaseError(f"Database error: {first_line}")

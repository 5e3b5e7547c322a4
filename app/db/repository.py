"""`PredictionRepository`: everything the app reads from and writes to the database.

One public class, made of four parts that share one connection policy (app/db/session.py:
connect, reconnect, spool-or-raise, retry on deadlock, error translation):

    writes and replay   app/db/writes.py, app/db/replay.py   log, set_label, flush_spool
    statistics reads    app/db/stats.py                      recent, accuracy, ..., export_csv
    model versions      app/db/versions.py                   register_model_version, ...
    learning samples    app/db/samples.py                    labelled_samples, labelled_count

Writes never get lost: offline they go to the durable spool and are replayed, in order,
as soon as a connection works again.  Reads need the server; offline they raise
`DatabaseUnavailable`.  So does `register_model_version`; a prediction whose version may
not be registered yet is logged with ``log(record, version=VersionSpec(...))`` and the
database registers the version when it first sees it (also on replay).  All SQL is
parameterised.  The repository may be shared between threads; `status()` never waits.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import psycopg2.extensions

from app.db.errors import DatabaseConfigError, DatabaseError
from app.db.params import ConnectionParams
from app.db.records import (DbStatus, HistoryRow, LabelledSample, ModelVersion,
                            PredictionRecord, VersionSpec)
from app.db.samples import LearningSamples
from app.db.session import APPLICATION_NAME, DbSession
from app.db.stats import StatisticsReader
from app.db.versions import ModelVersions
from app.db.writes import PredictionWriter

__all__ = ["PredictionRepository", "APPLICATION_NAME"]


class PredictionRepository:
    """The predictions in one PostgreSQL database, with an offline spool.

    url:            a libpq URL (``postgresql://user:pw@host:port/db``); or give ``params``
                    (an app.db.params.ConnectionParams), or ``connect``, a function returning
                    a new psycopg2 connection (it may raise psycopg2.Error or DatabaseError;
                    both mean "offline"; ``params`` then only names the place in messages).
    spool_dir:      folder of the durable spool; None: no spool, offline writes raise.  A
                    folder that cannot be used does not stop the repository: it writes
                    online, and `status().warning` says that offline writes cannot be kept.
    where:          what `status()` shows as the place ("embedded", a host, ...); default
                    from the connection parameters.
    via:            which settings named the server, for error messages: "url"
                    (DATABASE_URL), "params" (DB_HOST, ...) or "embedded".
    retry_interval: seconds between automatic reconnection attempts while offline.
    time_zone:      SET TIME ZONE for the session (accuracy_per_day's days); None: server's.
    sql_dir:        where init.sql and migrations/ are (default: the bundled sql/).

    The constructor tries to connect (and applies the schema, and sends the spool) but
    does not raise when the server is unreachable, nor for a malformed URL: the
    repository starts offline and spools; see `status()`.
    """

    def __init__(self, url: str | None = None, *,
                 connect: Callable[[], psycopg2.extensions.connection] | None = None,
                 spool_dir: str | os.PathLike | None = None, where: str | None = None,
                 via: str = "url", retry_interval: float = 5.0, connect_timeout: int = 5,
                 time_zone: str | None = None, sql_dir: str | os.PathLike | None = None,
                 params: ConnectionParams | None = None):
        if url is not None and (connect is not None or params is not None):
            raise TypeError("give url, or params and/or connect, not both")
        if url is None and connect is None and params is None:
            raise TypeError("give either url, params or connect")
        if url is not None:
            try:
                params = ConnectionParams.from_url(url, via=via)
            except DatabaseConfigError as exc:
                params, connect = ConnectionParams(via=via), _refusing(exc)
                where = where or ("bad DATABASE_URL" if via == "url" else "bad settings")
        elif params is None:
            params = ConnectionParams(via=via)
            where = where or "database"
        self._session = DbSession(params, connect=connect, spool_dir=spool_dir, where=where,
                                  retry_interval=retry_interval,
                                  connect_timeout=connect_timeout, time_zone=time_zone,
                                  sql_dir=sql_dir)
        self._versions = ModelVersions(self._session)
        self._writer = PredictionWriter(self._session, self._versions)
        self._stats = StatisticsReader(self._session)
        self._samples = LearningSamples(self._session, self._stats)
        with self._session.lock:
            self._session.ensure_online(force=True)

    # ---- writes -----------------------------------------------------------------------
    def log(self, record: PredictionRecord, version: VersionSpec | None = None) -> str:
        """Store a prediction (or spool it when offline); return its uuid.

        version: the model version that made it, known by its weights (see VersionSpec),
        when its id may not be known: the database registers it if it does not know it
        yet (online now, or when the spool is replayed) and stores the prediction with
        its id.  Without it, ``record.model_version_id`` (or None) is stored.
        ValueError (nothing written) when a field is bad; logging the same uuid twice
        keeps the first.
        """
        return self._writer.log(record, version)

    def log_reading(self, records: Sequence[PredictionRecord], version: VersionSpec | None = None,
                    reading_id: str | None = None) -> str:
        """Store a number read digit by digit (or spool it when offline); return the
        reading's uuid (``reading_id``, or a new one).

        ``records`` are its digits, left to right, each a prediction with its 28x28 image,
        probabilities and label; each is stored as a prediction row (also counted in the
        digit statistics) with the reading's id and its position (0 = leftmost).  The
        view ``readings`` lists the numbers with the text read and whether it was right;
        `reading_accuracy` counts them.  A digit's label is corrected with `set_label`.
        ValueError (nothing written) when any digit is bad.
        """
        return self._writer.log_reading(records, version, reading_id)

    def set_label(self, uuid: str, label: int | None) -> None:
        """Set, change or (with None) clear the true label of a prediction.

        Works offline too, also for a prediction that is itself still in the spool.
        Raises ValueError for a bad label and `UnknownPrediction` when the database is
        reachable and has no such prediction.
        """
        self._writer.set_label(uuid, label)

    def flush_spool(self) -> int:
        """Reconnect if needed and send what waits in the spool; return how many writes
        (predictions and labels) were sent.  How many of them were drawings:
        ``status().drawings_sent`` grows by that much.

        Also checks that an open connection still works, so calling this from a timer keeps
        `status()` true.  Never raises for an unreachable server.
        """
        return self._writer.flush_spool()

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

        Needs the database: offline it raises `DatabaseUnavailable` (log predictions
        meanwhile with ``log(record, version=VersionSpec(...))``).  ValueError for a bad
        argument, `UnknownModelVersion` for an unknown parent_id.
        """
        return self._versions.register(sha256=sha256, path=path, arch=arch, metrics=metrics,
                                       parent_id=parent_id, kind=kind, name=name)

    def model_versions(self) -> list[ModelVersion]:
        """Every model version, newest first, with the counts of its predictions."""
        return self._versions.all()

    def model_version(self, model_version_id: int) -> ModelVersion:
        """One model version; `UnknownModelVersion` when there is none with this id."""
        return self._versions.get(model_version_id)

    def model_version_by_sha(self, sha256: str) -> ModelVersion | None:
        """The version of these weights (hex SHA-256), or None when not registered."""
        return self._versions.by_sha(sha256)

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
        return self._versions.compare(a_id, b_id)

    # ---- learning data ----------------------------------------------------------------------
    def labelled_samples(self, model_version_id: int | None = None) -> list[LabelledSample]:
        """Every labelled prediction (of one model version, or of all with None), oldest
        first: the 28x28 PNG the network saw and the label the user gave."""
        return self._samples.labelled_samples(model_version_id)

    def labelled_count(self, model_version_id: int | None = None) -> int:
        """How many predictions have a true label (of one model version, or of all)."""
        return self._samples.labelled_count(model_version_id)

    # ---- reads --------------------------------------------------------------------------
    def recent(self, limit: int = 50, offset: int = 0,
               model_version_id: int | None = None) -> list[HistoryRow]:
        """The newest predictions first, with their 28x28 PNGs (of one model version, or
        of all with None)."""
        return self._stats.recent(limit, offset, model_version_id)

    def reading_accuracy(self) -> dict:
        """Numbers read digit by digit: {"total", "labelled" (every digit labelled),
        "correct" (every digit right), "accuracy" (correct / labelled, None if none)}."""
        return self._stats.reading_accuracy()

    def accuracy(self, model_version_id: int | None = None) -> dict:
        """{"total", "labelled", "correct", "accuracy"} (accuracy None with no labels), of
        the predictions of one model version, or of all with None."""
        return self._stats.accuracy(model_version_id)

    def not_a_digit(self, model_version_id: int | None = None) -> dict:
        """{"judged", "not_digit", "share"}: of the predictions judged digit or not (those
        made since the app judges drawings), how many did not look like a digit, and their
        share (None while none was judged); of one model version, or of all with None."""
        return self._stats.not_a_digit(model_version_id)

    def digit_statistics(self, model_version_id: int | None = None) -> list[dict]:
        """Ten dicts, digit 0..9: digit, predictions, labelled, correct, actual, accuracy,
        mean_confidence, precision, recall (None where undefined); see sql/init.sql.
        Of one model version, or of all with None."""
        return self._stats.digit_statistics(model_version_id)

    def confusion(self, model_version_id: int | None = None) -> list[list[int]]:
        """10x10 counts of labelled predictions: ``matrix[true_label][predicted_digit]``;
        of one model version, or of all with None."""
        return self._stats.confusion(model_version_id)

    def accuracy_per_day(self, days: int | None = None,
                         model_version_id: int | None = None) -> list[dict]:
        """Oldest first: {"day": date, "predictions", "labelled", "correct", "accuracy"};
        only days with predictions; ``days``: just the last so many calendar days; of one
        model version, or of all with None."""
        return self._stats.accuracy_per_day(days, model_version_id)

    def export_csv(self, path: str | os.PathLike, *, include_images: bool = False) -> int:
        """Write every prediction (oldest first) to a CSV file; return the number of rows.

        Columns: uuid, created_at, predicted_digit, confidence, p0..p9, true_label,
        labelled_at, model_version, model_version_id, source, is_digit (empty: not judged)
        (+ image_png_base64).  The file appears whole or not at all.  A text cell that a spreadsheet would run as a
        formula (starting with = + - @, tab or CR) gets a leading ' (numbers are left as
        they are).
        """
        return self._stats.export_csv(Path(path), include_images=include_images)

    # ---- state ----------------------------------------------------------------------------
    def status(self) -> DbStatus:
        """Online or not, how many writes wait in the spool, where, how many drawings the
        spool has sent, and a warning when offline writes cannot be kept.  Never blocks
        on I/O to the server (reads the last known state)."""
        return self._session.status()

    @property
    def online(self) -> bool:
        return self.status().online

    @property
    def last_error(self) -> DatabaseError | None:
        """Why the last connection attempt failed (None after a success)."""
        return self._session.last_error

    def close(self) -> None:
        """Close the connection (what waits in the spool stays there for the next start)."""
        self._session.close()

    def __enter__(self) -> "PredictionRepository":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _refusing(error: DatabaseError) -> Callable[[], psycopg2.extensions.connection]:
    """A connect function for settings that cannot work: every attempt fails with ``error``."""
    def connect():
        raise error
    return connect

"""Statistics reads: history, accuracy, per-digit statistics, confusion matrix, accuracy
per day, how often a drawing was not a digit, CSV export.  They read running totals kept per model version by triggers
(sql/migrations/002_model_versions.sql), so they stay fast; ``model_version_id`` None
means all versions.  Offline they raise `DatabaseUnavailable`.
"""

from __future__ import annotations

import decimal
import os
import tempfile
from pathlib import Path

from app.db.records import HistoryRow, check_version_id
from app.db.session import DbSession

_RECENT = """
SELECT uuid::text, created_at, predicted_digit, confidence, true_label, image_png,
       model_version, source, model_version_id, is_digit
FROM predictions
{where}
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s OFFSET %(offset)s
"""
# Spreadsheets run a cell that starts with = + - @ (or tab, CR) as a formula: text columns
# get a leading ' there (OWASP "CSV injection").  Numbers are not text: a negative number
# stays a number.
_FORMULA_START = "'^[=+@\\t\\r-]'"


def _text(column: str) -> str:
    return (f"CASE WHEN {column} ~ E{_FORMULA_START} THEN '''' || {column} "
            f"ELSE {column} END AS {column}")


_EXPORT_COLUMNS = (
    "uuid, created_at, predicted_digit, confidence, "
    + ", ".join(f"probabilities[{i + 1}] AS p{i}" for i in range(10))
    + f", true_label, labelled_at, {_text('model_version')}, model_version_id, {_text('source')}"
    + ", is_digit"
)


class StatisticsReader:
    """The reads of the statistics tab, over the shared session."""

    def __init__(self, session: DbSession):
        self._session = session

    def recent(self, limit: int = 50, offset: int = 0,
               model_version_id: int | None = None) -> list[HistoryRow]:
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
                               model_version=r[6], source=r[7], model_version_id=r[8],
                               is_digit=r[9])
                    for r in cur.fetchall()]

        return self._session.read(query)

    def accuracy(self, model_version_id: int | None = None) -> dict:
        version_id = check_version_id(model_version_id)

        def query(cur) -> dict:
            cur.execute("SELECT total, labelled, correct, accuracy "
                        "FROM prediction_accuracy_of(%s)", (version_id,))
            return _as_dict(cur, cur.fetchone())

        return self._session.read(query)

    def reading_accuracy(self) -> dict:
        def query(cur) -> dict:
            cur.execute("SELECT total, labelled, correct, accuracy FROM reading_accuracy")
            return _as_dict(cur, cur.fetchone())

        return self._session.read(query)

    def not_a_digit(self, model_version_id: int | None = None) -> dict:
        version_id = check_version_id(model_version_id)

        def query(cur) -> dict:
            cur.execute("SELECT judged, not_digit, share FROM not_a_digit_of(%s)", (version_id,))
            return _as_dict(cur, cur.fetchone())

        return self._session.read(query)

    def digit_statistics(self, model_version_id: int | None = None) -> list[dict]:
        version_id = check_version_id(model_version_id)

        def query(cur) -> list[dict]:
            cur.execute("SELECT digit, predictions, labelled, correct, actual, accuracy, "
                        "mean_confidence, precision, recall FROM digit_statistics_of(%s) "
                        "ORDER BY digit", (version_id,))
            return [_as_dict(cur, row) for row in cur.fetchall()]

        return self._session.read(query)

    def confusion(self, model_version_id: int | None = None) -> list[list[int]]:
        version_id = check_version_id(model_version_id)

        def query(cur) -> list[list[int]]:
            cur.execute("SELECT true_label, predicted_digit, n FROM confusion_matrix_of(%s)",
                        (version_id,))
            matrix = [[0] * 10 for _ in range(10)]
            for t, p, n in cur.fetchall():
                matrix[t][p] = int(n)
            return matrix

        return self._session.read(query)

    def accuracy_per_day(self, days: int | None = None,
                         model_version_id: int | None = None) -> list[dict]:
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

        return self._session.read(query)

    def export_csv(self, path: str | os.PathLike, *, include_images: bool = False) -> int:
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
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return rows

        return self._session.read(query)


def _as_dict(cur, row) -> dict:
    out = {}
    for column, value in zip(cur.description, row):
        if isinstance(value, decimal.Decimal):
            value = float(value)
        out[column.name] = value
    return out

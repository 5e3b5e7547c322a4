"""Sending the spool: bounded chunks, one statement each, that never deadlock.

Every prediction updates running totals (sql/: statement-level triggers upsert rows of
``prediction_counts`` and ``prediction_counts_hourly``, keys in sorted order).  A
transaction of one statement therefore locks those rows in one global order, and such
transactions cannot deadlock with each other.  A replay that sends a spool as one
transaction of many statements can (it holds rows from its first statement while its
next one wants rows another client holds: eight clients replaying at once deadlocked
over a hundred times).  So a replay is a series of chunks (app/db/spool.py: runs of one
kind of line, at most 100 lines or 1 MB), each applied as ONE statement in its own short
transaction: all the chunk's inserts as one multi-row ``INSERT ... ON CONFLICT DO
NOTHING``, or all its labels as one ``UPDATE ... FROM (VALUES ...)``.  Each chunk first
takes a transaction-level advisory lock, so replays of several clients take turns and a
live write waits for one chunk at most, not for a queue of them.  The spool keeps the
offset of the first chunk not yet committed, so a crash between chunks neither loses
nor resends anything; replays are idempotent anyway.

A chunk the database refuses (a check constraint) is applied again one line per
transaction, and the refused lines are set aside in rejected.jsonl.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Sequence

import psycopg2
from psycopg2.extras import execute_values

from app.db import schema
from app.db.errors import DatabaseError
from app.db.records import PredictionRecord, VersionSpec, check_label, check_sha256, check_uuid
from app.db.session import DbSession

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key of replay chunks (any constant other than the schema's).
REPLAY_LOCK_KEY = schema.ADVISORY_LOCK_KEY + 1
COLUMNS = ("uuid, created_at, predicted_digit, confidence, probabilities, true_label, "
           "labelled_at, image_png, raw_png, model_version, model_version_id, source, is_digit, "
           "reading_id, reading_position")
_INSERT_MANY = f"INSERT INTO predictions ({COLUMNS}) VALUES %s ON CONFLICT (uuid) DO NOTHING"
_INSERT_ROW = ("(%(uuid)s::uuid, %(created_at)s, %(predicted_digit)s, %(confidence)s, "
               "%(probabilities)s::real[], %(true_label)s, %(labelled_at)s, %(image_png)s, "
               "%(raw_png)s, %(model_version)s, %(model_version_id)s, %(source)s, %(is_digit)s, "
               "%(reading_id)s::uuid, %(reading_position)s)")
# A label only replaces an older one (labelled_at), as in a live set_label.
_SET_LABELS = """
UPDATE predictions AS p SET true_label = v.label, labelled_at = v.at
FROM (VALUES %s) AS v(uuid, label, at)
WHERE p.uuid = v.uuid AND (p.labelled_at IS NULL OR p.labelled_at <= v.at)
"""
_LABEL_ROW = "(%s::uuid, %s::smallint, %s::timestamptz)"
_MISSING = """
SELECT u::text FROM unnest(%s::uuid[]) AS u
WHERE NOT EXISTS (SELECT 1 FROM predictions p WHERE p.uuid = u)
"""


def record_params(record: PredictionRecord) -> dict:
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
        "is_digit": record.is_digit,
        "reading_id": record.reading_id,
        "reading_position": record.reading_position,
    }


class SpoolReplayer:
    """The session's replay hook: sends the spool (the caller holds the session's lock
    and a connection is open).  Returns False when the connection broke meanwhile."""

    def __init__(self, session: DbSession, versions):
        self._session = session
        self._versions = versions

    def __call__(self) -> bool:
        session = self._session
        try:
            result = session.spools.spool.replay(self._apply)
        except psycopg2.Error as exc:
            if session.is_server_trouble(exc):
                session.lose_connection(exc)
                return False
            raise session.translate(exc) from exc
        except OSError as exc:
            raise DatabaseError(f"The offline spool {session.spools.directory} cannot be updated: "
                                f"{exc.strerror or exc}. What it holds stays there.") from exc
        if result.sent or result.rejected:
            log.info("Sent %d spooled writes (%d drawings) to the database%s", result.sent,
                     result.drawings, f"; {result.rejected} set aside" if result.rejected else "")
        return True

    def _apply(self, entries: list[dict]) -> list[tuple[int, str]]:
        """One chunk (all inserts or all labels); the refused ones, by index."""
        if entries[0]["op"] == "insert":
            refused = self._inserts(entries)
            self._session.sent_drawings += len(entries) - len(refused)
        else:
            refused = self._labels(entries)
        self._session.sent_entries += len(entries) - len(refused)
        return refused

    # ---- inserts ---------------------------------------------------------------------
    def _inserts(self, entries: list[dict]) -> list[tuple[int, str]]:
        refused: list[tuple[int, str]] = []
        items: list[tuple[int, PredictionRecord, str | None, VersionSpec | None]] = []
        for index, entry in enumerate(entries):
            try:
                record = PredictionRecord.from_json(entry["record"]).validate()
                spec = None if entry.get("version") is None \
                    else VersionSpec.from_json(entry["version"])
                sha = spec.sha256 if spec is not None else _sha_or_none(entry.get("model_sha256"))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                refused.append((index, f"malformed spool entry: {exc}"))
                continue
            items.append((index, record, sha, spec))
        if not items:
            return refused
        ids = self._versions.resolve_for_replay([(r, sha, spec) for _, r, sha, spec in items])
        for (_, record, _, _), version_id in zip(items, ids):
            record.model_version_id = version_id
        rows = [record_params(record) for _, record, _, _ in items]
        try:
            self._session.run(lambda cur: _insert_rows(cur, rows))
        except DatabaseError as exc:  # refused: find which, one line per transaction
            log.warning("A chunk of spooled predictions was refused (%s); sending them one "
                        "by one", exc)
            for (index, _, _, _), row in zip(items, rows):
                try:
                    self._session.run(lambda cur, row=row: _insert_rows(cur, [row]))
                except DatabaseError as one:
                    refused.append((index, str(one)))
        return sorted(refused)

    # ---- labels --------------------------------------------------------------------------
    def _labels(self, entries: list[dict]) -> list[tuple[int, str]]:
        refused: list[tuple[int, str]] = []
        # The result of applying them in order is, per prediction, the one with the latest
        # time (the last of equal times): one UPDATE can set each row once.
        final: dict[str, tuple[datetime, int | None]] = {}
        indices: dict[str, list[int]] = {}
        for index, entry in enumerate(entries):
            try:
                uuid = check_uuid(entry["uuid"])
                at = datetime.fromisoformat(entry["at"])
                label = check_label(entry["label"])
            except (KeyError, TypeError, ValueError) as exc:
                refused.append((index, f"malformed spool entry: {exc}"))
                continue
            indices.setdefault(uuid, []).append(index)
            if uuid not in final or final[uuid][0] <= at:
                final[uuid] = (at, label)
        if not final:
            return refused

        def work(cur) -> list[str]:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (REPLAY_LOCK_KEY,))
            cur.execute(_MISSING, (list(final),))
            missing = [row[0] for row in cur.fetchall()]
            rows = [(u, label, at) for u, (at, label) in final.items() if u not in missing]
            if rows:
                execute_values(cur, _SET_LABELS, rows, template=_LABEL_ROW, page_size=len(rows))
            return missing

        for uuid in self._session.run(work):
            refused.extend((index, f"label for unknown prediction {uuid}")
                           for index in indices[uuid])
        return sorted(refused)


def _insert_rows(cur, rows: Sequence[dict]) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (REPLAY_LOCK_KEY,))
    execute_values(cur, _INSERT_MANY, rows, template=_INSERT_ROW, page_size=len(rows))


def _sha_or_none(value) -> str | None:
    try:
        return check_sha256(value) if value is not None else None
    except ValueError:
        return None

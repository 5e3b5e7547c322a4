"""Writes: logging a prediction and setting its label, online or into the spool.

Writes never get lost: when the server cannot be reached they go to the durable spool
(app/db/spool.py) and are replayed (app/db/replay.py), in order, as soon as a connection
works again: on the next call (at most every ``retry_interval`` seconds) or when the GUI
calls `flush_spool()`.  While anything waits in the spool, new writes queue behind it, so
the order is kept.
"""

from __future__ import annotations

import logging
import uuid as uuid_module
from datetime import datetime, timezone
from typing import Sequence

import psycopg2
import psycopg2.errors

from app.db.errors import UnknownModelVersion, UnknownPrediction
from app.db.records import (MAX_READING_POSITION, PredictionRecord, VersionSpec, check_label,
                             check_uuid)
from app.db.replay import SpoolReplayer, record_params
from app.db.session import DbSession
from app.db.versions import ModelVersions

log = logging.getLogger(__name__)

INSERT = """
INSERT INTO predictions (uuid, created_at, predicted_digit, confidence, probabilities,
                         true_label, labelled_at, image_png, raw_png, model_version,
                         model_version_id, source, is_digit, reading_id, reading_position)
VALUES (%(uuid)s, %(created_at)s, %(predicted_digit)s, %(confidence)s, %(probabilities)s::real[],
        %(true_label)s, %(labelled_at)s, %(image_png)s, %(raw_png)s, %(model_version)s,
        %(model_version_id)s, %(source)s, %(is_digit)s, %(reading_id)s, %(reading_position)s)
ON CONFLICT (uuid) DO NOTHING
"""
# Last writer wins by the client's clock, so replaying an old label never undoes a newer one.
SET_LABEL = """
UPDATE predictions SET true_label = %(label)s, labelled_at = %(at)s
WHERE uuid = %(uuid)s AND (labelled_at IS NULL OR labelled_at <= %(at)s)
"""
EXISTS = "SELECT 1 FROM predictions WHERE uuid = %s"


class _StaleVersion(Exception):
    """The remembered id of a version is gone from the database (deleted meanwhile)."""


class PredictionWriter:
    """`log`, `set_label` and `flush_spool` over the shared session."""

    def __init__(self, session: DbSession, versions: ModelVersions):
        self._session = session
        self._versions = versions
        session.replay = SpoolReplayer(session, versions)

    def log(self, record: PredictionRecord, version: VersionSpec | None = None) -> str:
        """See `PredictionRepository.log`."""
        record.validate()
        spec = version.checked() if version is not None else None
        if spec is not None and record.model_version_id is None:
            record.model_version_id = self._versions.id_of(spec.sha256)

        def online(cur) -> str:
            if spec is not None:
                record.model_version_id = self._versions.ensure_in(cur, spec)
            try:
                cur.execute(INSERT, record_params(record))
            except psycopg2.errors.ForeignKeyViolation:  # (the transaction is rolled back)
                if spec is not None:
                    raise _StaleVersion() from None
                raise UnknownModelVersion(
                    f"There is no model version {record.model_version_id} in the database "
                    f"(register_model_version gives the id). Nothing was written.") from None
            return record.uuid

        def offline() -> str:
            session = self._session
            spool = session.spools.for_write(session.last_error)
            sha = spec.sha256 if spec is not None else self._versions.sha_of(record.model_version_id)
            session.spools.write(spool.add_record, record, sha, spec, last_error=session.last_error)
            log.info("Offline: prediction %s spooled (%d waiting)", record.uuid, len(spool))
            return record.uuid

        try:
            uuid = self._session.write(online, offline)
        except _StaleVersion:  # a version deleted since we saw it: look it up again
            self._versions.forget(spec.sha256)
            record.model_version_id = None
            uuid = self._session.write(online, offline)
        if spec is not None and record.model_version_id is not None:
            self._versions.remember(record.model_version_id, spec.sha256)
        return uuid

    def log_reading(self, records: Sequence[PredictionRecord], version: VersionSpec | None = None,
                    reading_id: str | None = None) -> str:
        """See `PredictionRepository.log_reading`."""
        records = list(records)
        if not records:
            raise ValueError("a reading has at least one digit; nothing was written")
        if len(records) > MAX_READING_POSITION + 1:
            raise ValueError(f"a reading has at most {MAX_READING_POSITION + 1} digits, not "
                             f"{len(records)}; nothing was written")
        reading_id = check_uuid(reading_id if reading_id is not None else uuid_module.uuid4())
        for position, record in enumerate(records):
            record.reading_id, record.reading_position = reading_id, position
            record.validate()  # every digit checked before any is written
        if version is not None:
            version.checked()
        for record in records:  # each online, or spooled (in order) like a single prediction
            self.log(record, version)
        return reading_id

    def set_label(self, uuid: str, label: int | None) -> None:
        """See `PredictionRepository.set_label`."""
        uuid = check_uuid(uuid)
        label = check_label(label)
        at = datetime.now(timezone.utc)

        def online(cur) -> None:
            cur.execute(SET_LABEL, {"uuid": uuid, "label": label, "at": at})
            if cur.rowcount == 0:
                cur.execute(EXISTS, (uuid,))
                if cur.fetchone() is None:
                    raise UnknownPrediction(f"There is no prediction {uuid} in the database.")

        def offline() -> None:
            session = self._session
            spool = session.spools.for_write(session.last_error)
            session.spools.write(spool.add_label, uuid, label, at, last_error=session.last_error)
            log.info("Offline: label of %s spooled", uuid)

        self._session.write(online, offline)

    def flush_spool(self) -> int:
        """See `PredictionRepository.flush_spool`."""
        session = self._session
        with session.lock:
            session.check_open()
            session.check_alive()
            before = session.sent_entries
            session.ensure_online(force=True)
            return session.sent_entries - before

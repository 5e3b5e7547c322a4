"""The database layer: predictions in PostgreSQL, an offline spool, the embedded server.

No Qt here.  The GUI (or the CLI) does::

    repo, server = open_database(settings)      # server is None for an external database
    version_id = repo.register_model_version(sha256=..., path=..., arch=..., metrics={...})
    repo.log(PredictionRecord(..., model_version_id=version_id)); repo.set_label(uuid, 7)
    repo.log(record, version=VersionSpec(sha256=..., path=..., arch=..., ...))  # id not known
    repo.accuracy(model_version_id=version_id); repo.labelled_samples(); repo.status()
    ...
    repo.close(); server and server.stop()       # on quit
"""

from __future__ import annotations

import logging

import psycopg2

from app.db.errors import (DatabaseConfigError, DatabaseError, DatabaseUnavailable,
                           EmbeddedServerError, InvalidRecord, SchemaError,
                           UnknownModelVersion, UnknownPrediction)
from app.db.params import ConnectionParams
from app.db.records import (MODEL_KINDS, DbStatus, HistoryRow, LabelledSample, ModelVersion,
                            PredictionRecord, VersionSpec)
from app.db.repository import APPLICATION_NAME, PredictionRepository
from app.db.server import EmbeddedServer
from app.db.spool import Spool

__all__ = [
    "open_database", "PredictionRepository", "PredictionRecord", "VersionSpec", "HistoryRow",
    "DbStatus", "ModelVersion", "LabelledSample", "MODEL_KINDS", "ConnectionParams",
    "EmbeddedServer", "Spool", "DatabaseError", "DatabaseConfigError", "DatabaseUnavailable",
    "EmbeddedServerError", "InvalidRecord", "SchemaError", "UnknownModelVersion",
    "UnknownPrediction",
]

log = logging.getLogger(__name__)


def open_database(settings, *, offline_ok: bool = True, time_zone: str | None = None,
                  retry_interval: float = 5.0
                  ) -> tuple[PredictionRepository, EmbeddedServer | None]:
    """The repository for ``settings`` (an app.settings.Settings), and the embedded server
    when it is the one in use (the caller stops it on quit; None for an external server).

    With ``offline_ok`` (the default) an unreachable server, wrong settings or an embedded
    server that will not start still give a working repository: it spools, retries, and
    ``status().message`` says what is wrong and which setting to fix.  With
    ``offline_ok=False`` that message is raised instead, as a `DatabaseError` subclass.
    """
    server: EmbeddedServer | None = None
    if settings.uses_embedded_db:
        server = EmbeddedServer(settings.embedded_pg_dir)
        embedded = server

        def connect():
            # Start the server on first use, and again if its process has died.
            if embedded.running and not embedded.alive:
                log.warning("The embedded database server has stopped; starting it again")
                embedded.stop()
            if not embedded.running:
                embedded.start()
            return psycopg2.connect(embedded.url, connect_timeout=10,
                                    application_name=APPLICATION_NAME)

        repo = PredictionRepository(connect=connect, params=ConnectionParams(via="embedded"),
                                    spool_dir=settings.spool_dir, where="embedded",
                                    retry_interval=retry_interval, time_zone=time_zone)
    else:
        via = "params" if settings.db_params else "url"
        try:
            params = ConnectionParams.from_settings(settings)
        except DatabaseConfigError as exc:  # a malformed URL: offline, saying what to fix
            log.error("%s", exc)
            repo = PredictionRepository(connect=_refusing(exc), params=ConnectionParams(
                via=via, origins=getattr(settings, "sources", {})),
                where="bad DATABASE_URL" if via == "url" else "bad DB_* settings",
                spool_dir=settings.spool_dir, retry_interval=retry_interval,
                time_zone=time_zone)
        else:
            repo = PredictionRepository(params=params, spool_dir=settings.spool_dir,
                                        retry_interval=retry_interval, time_zone=time_zone)
    if not repo.online and not offline_ok:
        error = repo.last_error or DatabaseUnavailable("The database is not reachable.")
        repo.close()
        if server is not None:
            server.stop()
        raise error
    return repo, server


def _refusing(error: DatabaseError):
    def connect():
        raise error
    return connect

"""Applying and migrating the schema.

Version 1 is ``sql/init.sql`` (idempotent; it records itself in ``schema_version``).
Every later change is a file ``sql/migrations/NNN_name.sql`` with NNN > 001, applied once,
in order, each in its own transaction, and recorded in ``schema_version`` (version NNN,
name). A migration may change tables that hold rows (ALTER TABLE ... ADD COLUMN, UPDATE
to fill it, ...): it runs inside a transaction, so it happens entirely or not at all.

`apply_schema` runs on every connect: one cheap query when the database is up to date,
otherwise it takes an advisory lock, so two app instances never migrate at once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from app import paths
from app.db.errors import SchemaError

log = logging.getLogger(__name__)

MIGRATION_NAME = re.compile(r"^(?P<version>\d{3})_(?P<name>[A-Za-z0-9_]+)\.sql$")
# pg_advisory_lock key: any constant unique to this app.
ADVISORY_LOCK_KEY = 0x6D6E697374  # "mnist"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path


def migrations(sql_dir: Path | None = None) -> list[Migration]:
    """init.sql as version 1, then sql/migrations/NNN_name.sql in order."""
    sql_dir = Path(sql_dir) if sql_dir is not None else paths.sql_dir()
    found = [Migration(1, "initial", sql_dir / "init.sql")]
    folder = sql_dir / "migrations"
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            m = MIGRATION_NAME.match(path.name)
            if not m:
                if path.suffix == ".sql":
                    log.warning("Ignoring %s: migrations are named NNN_name.sql", path)
                continue
            version = int(m["version"])
            if version <= 1:
                raise SchemaError(f"{path.name}: version 001 is init.sql; number migrations from 002")
            if version == found[-1].version:
                raise SchemaError(f"Two migrations have the number {version:03d} in {folder}")
            found.append(Migration(version, m["name"], path))
    return found


def latest_version(sql_dir: Path | None = None) -> int:
    return migrations(sql_dir)[-1].version


def current_version(conn) -> int:
    """The highest version recorded in the database, 0 when it has no schema."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_version') IS NOT NULL")
        if not cur.fetchone()[0]:
            version = 0
        else:
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_version")
            version = cur.fetchone()[0]
    conn.rollback()
    return version


def apply_schema(conn, sql_dir: Path | None = None, *, up_to: int | None = None) -> int:
    """Bring the database up to the latest schema; return its version.

    ``conn`` is a psycopg2 connection not in autocommit mode, with no open transaction.
    ``up_to``: stop at this version (tests build an old database this way).
    """
    steps = migrations(sql_dir)
    if up_to is not None:
        steps = [step for step in steps if step.version <= up_to]
        if not steps or steps[-1].version != up_to:
            raise SchemaError(f"There is no schema version {up_to}")
    latest = steps[-1].version
    version = current_version(conn)
    if version == latest:
        return version
    if version > latest:
        log.warning("The database schema is version %d, newer than this app knows (%d); "
                    "carrying on", version, latest)
        return version
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
    conn.commit()
    try:
        version = current_version(conn)  # another process may have done it meanwhile
        for step in steps:
            if step.version <= version:
                continue
            log.info("Applying schema version %d (%s)", step.version, step.path.name)
            try:
                sql = step.path.read_text(encoding="utf-8")
            except OSError as exc:
                raise SchemaError(f"Cannot read {step.path}: {exc}") from exc
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
                    cur.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s) "
                                "ON CONFLICT (version) DO NOTHING", (step.version, step.name))
                conn.commit()
            except psycopg2.Error as exc:
                conn.rollback()
                if conn.closed:
                    raise
                raise SchemaError(f"Schema step {step.path.name} failed: "
                                  f"{str(exc).strip().splitlines()[0]}") from exc
            version = step.version
        return version
    finally:
        if not conn.closed:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
            conn.commit()

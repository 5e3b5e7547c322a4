"""Model versions: registering the weights that made predictions, listing them with the
counts of their predictions, comparing two, and finding a version by its weights'
hash (also for a spooled prediction whose version the database does not know yet).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Sequence

import psycopg2
import psycopg2.errors

from app.db.errors import DatabaseError, UnknownModelVersion
from app.db.records import (ModelVersion, ModelVersionSpec, PredictionRecord, VersionSpec,
                            check_sha256, check_version_id)
from app.db.session import DbSession

log = logging.getLogger(__name__)

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
_ID_BY_SHA = "SELECT id FROM model_versions WHERE weights_sha256 = %s"
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


class ModelVersions:
    """The model versions of one database (through the shared `DbSession`).

    Remembers the id <-> weights hash of the versions it has seen: ids never change
    meaning within one database, and an offline write spools the hash with the id.
    """

    def __init__(self, session: DbSession):
        self._session = session
        self._sha_by_id: dict[int, str] = {}

    # ---- what the cache knows -------------------------------------------------------
    def sha_of(self, version_id: int | None) -> str | None:
        return self._sha_by_id.get(version_id) if version_id is not None else None

    def id_of(self, sha256: str) -> int | None:
        for version_id, sha in self._sha_by_id.items():
            if sha == sha256:
                return version_id
        return None

    def remember(self, version_id: int, sha256: str) -> None:
        self._sha_by_id[version_id] = sha256

    def forget(self, sha256: str) -> None:
        for version_id in [v for v, s in self._sha_by_id.items() if s == sha256]:
            del self._sha_by_id[version_id]

    # ---- registering -------------------------------------------------------------------
    def register(self, *, sha256: str, path: str | os.PathLike, arch: str, metrics: dict,
                 parent_id: int | None = None, kind: str = "trained",
                 name: str | None = None) -> int:
        """See `PredictionRepository.register_model_version`."""
        spec = ModelVersionSpec.check(sha256=sha256, path=path, arch=arch, metrics=metrics,
                                      parent_id=parent_id, kind=kind, name=name)
        version_id = self._session.read(lambda cur: self._register_in(cur, spec))
        self.remember(version_id, spec.sha256)
        return version_id

    def _register_in(self, cur, spec: ModelVersionSpec) -> int:
        params = dataclasses.asdict(spec)
        try:
            cur.execute(_REGISTER, params)
        except psycopg2.errors.ForeignKeyViolation:
            raise UnknownModelVersion(
                f"parent_id {spec.parent_id}: there is no such model version in the "
                f"database. Nothing was written.") from None
        row = cur.fetchone()
        if row is None:  # known weights
            cur.execute(_MOVE_WEIGHTS, params)
            cur.execute(_ID_BY_SHA, (spec.sha256,))
            row = cur.fetchone()
        return row[0]

    def ensure_in(self, cur, spec: VersionSpec) -> int:
        """The id of ``spec``'s weights in this database, registering them (with the parent
        found by its hash, when known) if needed; inside the caller's transaction."""
        cached = self.id_of(spec.sha256)
        if cached is not None:
            return cached
        cur.execute(_ID_BY_SHA, (spec.sha256,))
        row = cur.fetchone()
        if row is not None:
            return row[0]
        parent_id = None
        if spec.parent_sha256 is not None:
            cur.execute(_ID_BY_SHA, (spec.parent_sha256,))
            parent = cur.fetchone()
            parent_id = parent[0] if parent else None
        version_id = self._register_in(cur, spec.registration(parent_id))
        log.info("Registered model version %d (weights %s…)", version_id, spec.sha256[:12])
        return version_id

    def resolve_for_replay(self, items: Sequence[tuple[PredictionRecord, str | None,
                                                        VersionSpec | None]]) -> list[int | None]:
        """The version id in this database for each spooled (record, weights hash, spec).

        By the hash when there is one (the id may come from another database), registering
        the version from its spec when the database does not know it yet; else the
        record's id if it exists here.  None when the version cannot be known: the
        prediction is kept, without it, rather than refused.  Each registration is its own
        short transaction, in the order of the hashes.
        """
        session = self._session
        shas = sorted({sha for _, sha, _ in items if sha})
        known: dict[str, int] = {}
        if shas:
            rows = session.run(lambda cur: _fetch(cur, "SELECT weights_sha256, id FROM "
                                                       "model_versions WHERE weights_sha256 = "
                                                       "ANY(%s)", (shas,)))
            known = dict(rows)
        specs = {spec.sha256: spec for _, _, spec in items if spec is not None}
        for sha in sorted(set(specs) - set(known)):
            try:
                known[sha] = session.run(lambda cur, spec=specs[sha]: self.ensure_in(cur, spec))
            except DatabaseError as exc:  # refused for good: keep the predictions anyway
                log.warning("Could not register model version %s…: %s", sha[:12], exc)
        ids = sorted({r.model_version_id for r, sha, _ in items
                      if not sha and r.model_version_id is not None})
        existing: set[int] = set()
        if ids:
            existing = {row[0] for row in session.run(lambda cur: _fetch(
                cur, "SELECT id FROM model_versions WHERE id = ANY(%s)", (ids,)))}
        resolved: list[int | None] = []
        for record, sha, _ in items:
            if sha:
                version_id = known.get(sha)
            elif record.model_version_id in existing:
                version_id = record.model_version_id
            else:
                version_id = None
            if version_id is None and (sha or record.model_version_id is not None):
                log.warning("Spooled prediction %s was made by model version %s, which this "
                            "database does not know; storing it without a version",
                            record.uuid, sha[:12] + "…" if sha else record.model_version_id)
            elif sha and version_id is not None:
                self.remember(version_id, sha)
            resolved.append(version_id)
        return resolved

    # ---- reading ---------------------------------------------------------------------------
    def all(self) -> list[ModelVersion]:
        return self._session.read(lambda cur: self.fetch(cur, "", ()))

    def get(self, model_version_id: int) -> ModelVersion:
        version_id = check_version_id(model_version_id)
        if version_id is None:
            raise ValueError("model_version_id must be a model version id, not None")
        found = self._session.read(lambda cur: self.fetch(cur, "WHERE v.id = %s", (version_id,)))
        if not found:
            raise UnknownModelVersion(f"There is no model version {version_id} in the database.")
        return found[0]

    def by_sha(self, sha256: str) -> ModelVersion | None:
        sha = check_sha256(sha256)
        found = self._session.read(lambda cur: self.fetch(cur, "WHERE v.weights_sha256 = %s",
                                                          (sha,)))
        return found[0] if found else None

    def compare(self, a_id: int, b_id: int) -> dict:
        """See `PredictionRepository.compare_versions`."""
        ids = [check_version_id(a_id, "a_id"), check_version_id(b_id, "b_id")]
        if None in ids:
            raise ValueError("compare_versions needs two model version ids")

        def query(cur):
            versions = self.fetch(cur, "WHERE v.id IN (%s, %s)", ids)
            cur.execute(_COMPARE, ids)
            return versions, cur.fetchall()

        versions, rows = self._session.read(query)
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

    def fetch(self, cur, where: str, params) -> list[ModelVersion]:
        cur.execute(_MODEL_VERSIONS.format(where=where), params)
        versions = [ModelVersion(id=r[0], parent_id=r[1], created_at=r[2], arch=r[3],
                                 metrics=r[4], sha256=r[5], path=r[6], kind=r[7], name=r[8],
                                 predictions=int(r[9]), labelled=int(r[10]),
                                 correct=int(r[11]), accuracy=r[12])
                    for r in cur.fetchall()]
        for v in versions:
            self.remember(v.id, v.sha256)
        return versions


def _fetch(cur, query: str, params) -> list[tuple]:
    cur.execute(query, params)
    return cur.fetchall()


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a

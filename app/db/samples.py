"""Learning data: the predictions the user labelled, for fine-tuning and export."""

from __future__ import annotations

from app.db.records import LabelledSample, check_version_id
from app.db.session import DbSession
from app.db.stats import StatisticsReader

_LABELLED = """
SELECT uuid::text, image_png, true_label, created_at
FROM predictions
WHERE true_label IS NOT NULL {also}
ORDER BY created_at, id
"""


class LearningSamples:
    """The labelled drawings, over the shared session."""

    def __init__(self, session: DbSession, stats: StatisticsReader):
        self._session = session
        self._stats = stats

    def labelled_samples(self, model_version_id: int | None = None) -> list[LabelledSample]:
        version_id = check_version_id(model_version_id)
        also = "" if version_id is None else "AND model_version_id = %(version)s"

        def query(cur) -> list[LabelledSample]:
            cur.execute(_LABELLED.format(also=also), {"version": version_id})
            return [LabelledSample(uuid=r[0], image_png=bytes(r[1]), true_label=r[2],
                                   created_at=r[3]) for r in cur.fetchall()]

        return self._session.read(query)

    def labelled_count(self, model_version_id: int | None = None) -> int:
        return self._stats.accuracy(model_version_id)["labelled"]

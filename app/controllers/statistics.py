"""The statistics room: what the statistics tab shows, and the exports.

Every read is a job of the database worker and comes back as a ``StatsSnapshot`` (the
history's 28x28 images decoded to arrays there; the widgets make the pictures).  A
request made before the database is open is answered once it is.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from app import exports
from app.controllers import database
from app.controllers.database import DatabaseController, DatabaseSession
from app.controllers.models import version_row
from app.viewmodels import HistoryItem, StatsSnapshot

log = logging.getLogger(__name__)

#: Rows of the history table.
HISTORY_ROWS = 60


# ---- jobs of the database worker -------------------------------------------------------------------
def _decode(png: bytes) -> np.ndarray | None:
    from app.ml.preprocess import open_image

    try:
        return np.asarray(open_image(io.BytesIO(bytes(png))).convert("L"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        log.warning("a stored image could not be read: %s", exc)
        return None


def read_stats(session: DatabaseSession, version_id: int | None = None) -> StatsSnapshot:
    repo = session.repo
    versions = [version_row(v) for v in repo.model_versions()]
    if version_id is not None and all(v.id != version_id for v in versions):
        version_id = None  # (a version that is gone: show all)
    acc = repo.accuracy(version_id)
    not_digit = repo.not_a_digit(version_id)
    numbers = repo.reading_accuracy()
    recent = [HistoryItem(uuid=r.uuid, created_at=r.created_at, predicted=r.predicted_digit, confidence=r.confidence,
                          true_label=r.true_label, image=_decode(r.image_png), source=r.source,
                          model_version=r.model_version, model_version_id=r.model_version_id,
                          is_digit=r.is_digit)
              for r in repo.recent(HISTORY_ROWS, model_version_id=version_id)]
    return StatsSnapshot(total=int(acc["total"]), labelled=int(acc["labelled"]), correct=int(acc["correct"]),
                         accuracy=None if acc["accuracy"] is None else float(acc["accuracy"]),
                         confusion=repo.confusion(version_id),
                         per_day=repo.accuracy_per_day(model_version_id=version_id), recent=recent,
                         versions=versions, version_id=version_id, judged=int(not_digit["judged"]),
                         not_digit=int(not_digit["not_digit"]), readings=int(numbers["total"]),
                         readings_labelled=int(numbers["labelled"]), readings_correct=int(numbers["correct"]))


def export_csv(session: DatabaseSession, path: Path) -> int:
    return session.repo.export_csv(path)


def export_dataset(session: DatabaseSession, path: Path) -> tuple[list[str], int]:
    from app import learn

    repo = session.repo
    if repo.labelled_count() == 0:
        raise ValueError("There are no labelled drawings to export yet: label some with ✓ Correct or "
                         "✗ Wrong… (or a digit key) first.")
    n = learn.export_dataset(repo, path)
    return [str(f) for f in exports.dataset_files(path)], n


# ---- the GUI-thread side ----------------------------------------------------------------------------
class StatisticsController(QObject):
    statsReady = Signal(object)  # StatsSnapshot
    statsFailed = Signal(str)
    exportDone = Signal(str, int)  # the CSV file, its rows
    exportFailed = Signal(str)
    datasetExported = Signal(object, int)  # the files written, the number of drawings
    datasetExportFailed = Signal(str)

    def __init__(self, database: DatabaseController, parent: QObject | None = None):
        super().__init__(parent)
        self.database = database
        self._version: int | None = None  # the statistics' filter (None: all versions)
        self._wanted = False
        database.opened.connect(self._database_opened)

    def refresh_stats(self) -> None:
        if not self.database.enabled:
            self.statsFailed.emit("The database is off.")
            return
        if not self.database.is_open:
            self._wanted = True  # read them as soon as the database is open
            return
        self.database.run(read_stats, self._version, key="stats", on_result=self.statsReady.emit,
                          on_error=lambda e: self.statsFailed.emit(self._failure(e)))

    def _failure(self, exc: BaseException) -> str:
        """Why the statistics could not be read, and what happens to the drawings meanwhile."""
        text = database.message(exc)
        pending = self.database.state.pending
        if pending:
            text += (f"\n\nNothing is lost: {pending} thing{'s' if pending != 1 else ''} you saved (drawings "
                     f"and labels) wait{'s' if pending == 1 else ''} on this computer and "
                     f"{'are' if pending != 1 else 'is'} sent when the database is reachable again; the "
                     f"statistics will count them then.")
        elif not self.database.state.online:
            text += ("\n\nDrawings you save meanwhile wait on this computer and are sent when the database is "
                     "reachable again.")
        return text

    def _database_opened(self) -> None:
        if self._wanted:
            self._wanted = False
            self.refresh_stats()

    def set_stats_version(self, version_id: int | None) -> None:
        """Show the statistics of one model version (None: of all) and read them again."""
        self._version = None if version_id is None else int(version_id)
        self.refresh_stats()

    def export_csv(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if not self.database.enabled:
            self.exportFailed.emit("The database is off.")
            return
        self.database.run(export_csv, path, on_result=lambda n: self.exportDone.emit(str(path), n),
                          on_error=lambda e: self.exportFailed.emit(database.message(e)))

    def export_dataset(self, path: str | os.PathLike) -> None:
        """The labelled drawings as .npz, or as MNIST IDX files (see app.exports);
        datasetExported(files, count) when written."""
        path = Path(path)
        if not self.database.enabled:
            self.datasetExportFailed.emit("The database is off: there are no labelled drawings.")
            return
        self.database.run(export_dataset, path, on_result=lambda r: self.datasetExported.emit(*r),
                          on_error=lambda e: self.datasetExportFailed.emit(database.message(e)))

"""The feedback room: ✓ Correct, ✗ Wrong…, a digit key, a clear; and logging.

A drawing is logged exactly once: with a true label on feedback, or unlabelled when it
is cleared without feedback.  Feedback given while the newest prediction is still on
its way waits for it (the label then is what the user saw confirmed: the newest
prediction).  A later correction (statistics tab) updates the logged row.

Logging is a job of the database worker: the PNGs are encoded there, and the weights'
sha256 becomes the model version's id from the database session, so a prediction
queued after its model's registration carries the id.
"""

from __future__ import annotations

import io
import logging
import uuid as uuid_module
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.controllers.database import DatabaseController, DatabaseSession
from app.controllers.models import ModelController
from app.controllers.prediction import Drawing, PredictionController

log = logging.getLogger(__name__)

#: Largest side of the drawing stored as raw_png.
RAW_PNG_MAX = 280


@dataclass
class LogEntry:
    """One prediction to log (the fields of app.db.PredictionRecord, pictures as arrays:
    they are encoded as PNG in the database worker)."""

    predicted_digit: int
    confidence: float
    probabilities: list[float]
    image: np.ndarray  # the 28x28 uint8 network input
    raw: np.ndarray | None = None  # the drawing (grey, black on white)
    true_label: int | None = None
    source: str = "canvas"
    model_version: str | None = None  # a free text label ("mnist_cnn@<sha>")
    model_sha256: str = ""  # the weights that made it: the database job finds its version id
    uuid: str = field(default_factory=lambda: str(uuid_module.uuid4()))
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass
class _Feedback:
    epoch: int  # the drawing it is for
    label: int | None  # None: "the prediction is right"


# ---- jobs of the database worker -------------------------------------------------------------------
def _png(arr: np.ndarray, max_side: int | None = None) -> bytes:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))
    if max_side is not None and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.BOX)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def log_entry(session: DatabaseSession, entry: LogEntry):
    from app.db import PredictionRecord

    repo = session.repo
    record = PredictionRecord(predicted_digit=entry.predicted_digit, confidence=entry.confidence,
                              probabilities=list(entry.probabilities), image_png=_png(entry.image),
                              raw_png=None if entry.raw is None else _png(entry.raw, RAW_PNG_MAX),
                              model_version=entry.model_version, source=entry.source, uuid=entry.uuid,
                              created_at=entry.created_at, true_label=entry.true_label,
                              model_version_id=session.version_ids.get(entry.model_sha256))
    uid = repo.log(record)
    return uid, entry.true_label, repo.status()


def set_label(session: DatabaseSession, uid: str, label: int | None):
    repo = session.repo
    repo.set_label(uid, label)
    return repo.status()


# ---- the GUI-thread side ----------------------------------------------------------------------------
class FeedbackController(QObject):
    #: The drawing got its feedback and was logged: the canvas may be cleared.
    drawingDone = Signal(str, object)  # uuid, label
    logged = Signal(str, object)  # uuid, label: the database (or its spool) has it
    labelSaved = Signal(str, object)  # uuid, label
    problem = Signal(str, str)

    def __init__(self, prediction: PredictionController, models: ModelController, database: DatabaseController,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.prediction = prediction
        self.models = models
        self.database = database
        self._feedback: _Feedback | None = None
        prediction.answered.connect(self._answered)

    # ---- feedback ---------------------------------------------------------------------------------
    def confirm(self) -> bool:
        """✓ Correct: log the drawing with its prediction as the true label."""
        return self._request(None)

    def correct_to(self, label: int) -> bool:
        """✗ Wrong… (or a digit key): log the drawing with the digit the user picked."""
        return self._request(int(label))

    def _request(self, label: int | None) -> bool:
        d = self.prediction.drawing
        if d.uuid is not None:
            return False
        if self.prediction.waiting:
            self._feedback = _Feedback(d.epoch, label)  # given when the newest prediction arrives
            return True
        if d.prediction is None:
            return False
        self._give(d, label)
        return True

    def _answered(self, ok: bool) -> None:
        fb, self._feedback = self._feedback, None
        d = self.prediction.drawing
        if fb is None or not ok or fb.epoch != d.epoch or d.prediction is None or d.uuid is not None:
            return  # nothing waits, or what it waited for is gone
        self._give(d, fb.label)

    def _give(self, d: Drawing, label: int | None) -> None:
        label = d.prediction.digit if label is None else label
        uid = self._log_drawing(d, label)
        self.drawingDone.emit(uid, label)

    def discard(self) -> None:
        """The drawing is cleared: log it without a label if it had a prediction and no
        feedback yet; then start a new drawing."""
        self.log_open_drawing()
        self._feedback = None
        self.prediction.new_drawing()

    def log_open_drawing(self) -> None:
        """Log the drawing on screen, unlabelled, if it has a prediction and no feedback
        (a clear, or quitting)."""
        d = self.prediction.drawing
        if d.prediction is not None and d.uuid is None:
            self._log_drawing(d, None)

    def _log_drawing(self, d: Drawing, label: int | None) -> str:
        p = d.prediction
        info = self.models.model_info
        entry = LogEntry(predicted_digit=p.digit, confidence=p.confidence, probabilities=list(p.probabilities),
                         image=p.image, raw=d.raw, true_label=label, source=d.source,
                         model_version=info.version if info is not None else None, model_sha256=p.model_sha256)
        d.uuid, d.label = entry.uuid, label
        self.log_prediction(entry)
        return entry.uuid

    # ---- logging ----------------------------------------------------------------------------------
    def log_prediction(self, entry: LogEntry) -> None:
        """Write one prediction (in the database worker).  Without ``model_sha256`` it is
        taken to be the model in use's."""
        if not self.database.enabled:
            return
        if not entry.model_sha256 and self.models.model_info is not None:
            entry = replace(entry, model_sha256=self.models.model_info.sha256)
        self.database.run(log_entry, entry, on_result=self._logged,
                          on_error=lambda e: self._log_failed(e, entry.uuid))

    def _logged(self, result: tuple) -> None:
        uid, label, status = result
        self.database.take_status(status)
        self.logged.emit(uid, label)

    def _log_failed(self, exc: BaseException, uid: str) -> None:
        log.error("logging %s failed", uid, exc_info=exc)
        self.problem.emit("The prediction was not saved", str(exc))

    def set_label(self, uid: str, label: int | None) -> None:
        """Correct the true label of a logged prediction (statistics tab)."""
        if not self.database.enabled:
            return
        d = self.prediction.drawing
        if d.uuid == uid:
            d.label = label

        def saved(status) -> None:
            self.database.take_status(status)
            self.labelSaved.emit(uid, label)

        self.database.run(set_label, uid, label, on_result=saved,
                          on_error=lambda e: self.problem.emit("The label was not saved", str(e)))

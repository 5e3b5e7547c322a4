"""The feedback room: ✓ Correct, ✗ Wrong…, a digit key, a clear; and logging.

A drawing is logged exactly once: with a true label on feedback, or unlabelled when it
is cleared without feedback.  Feedback given while the newest prediction is still on
its way waits for it (the label then is what the user saw confirmed: the newest
prediction).  A later correction (statistics tab) updates the logged row.

Logging is a job of the database worker: the PNGs are encoded there, and each drawing
goes with the model version that predicted it (``WeightsVersion``, from the model room):
the database registers that version if it does not know it yet, also when a drawing
saved while it was away is sent later, so every row carries its version.

A drawing the database refuses (a value it cannot store, a spool that cannot be written)
is not dropped: it is kept as files in ``<data folder>/unsaved/`` and the user is told
where (``problem``).
"""

from __future__ import annotations

import io
import json
import logging
import math
import uuid as uuid_module
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.controllers.database import DatabaseController, DatabaseSession
from app.controllers.models import ModelController
from app.controllers.prediction import Drawing, PredictionController
from app.viewmodels import WeightsVersion

log = logging.getLogger(__name__)

#: Largest side of the drawing stored as raw_png.
RAW_PNG_MAX = 280
#: Where drawings the database refused are kept, in the data folder.
UNSAVED_FOLDER = "unsaved"


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
    #: ... and how they came about: the database registers that version if it must.
    version: WeightsVersion | None = None
    is_digit: bool | None = None  # None: not judged
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


class DrawingNotSaved(Exception):
    """The database refused a drawing; it was kept in ``folder`` instead (None: not even
    that worked)."""

    def __init__(self, reason: str, folder: Path | None):
        super().__init__(reason)
        self.reason = reason
        self.folder = folder


def version_spec(entry: LogEntry):
    """The app.db VersionSpec of the model that made the entry's prediction, or None."""
    from app import learn

    v = entry.version
    if v is None:
        return None
    try:
        return learn.version_spec(v.sha256, v.path, v.arch, v.metadata, kind=v.kind, parent_sha=v.parent_sha256)
    except ValueError as exc:  # (metadata the database cannot hold: the row is still logged)
        log.warning("model version %s cannot be recorded with the drawing: %s", v.sha256[:12], exc)
        return None


def prediction_record(session: DatabaseSession, entry: LogEntry):
    """The app.db PredictionRecord of ``entry``, its pictures encoded as PNG."""
    from app.db import PredictionRecord

    return PredictionRecord(predicted_digit=entry.predicted_digit, confidence=entry.confidence,
                            probabilities=list(entry.probabilities), image_png=_png(entry.image),
                            raw_png=None if entry.raw is None else _png(entry.raw, RAW_PNG_MAX),
                            model_version=entry.model_version, source=entry.source, uuid=entry.uuid,
                            created_at=entry.created_at, true_label=entry.true_label,
                            model_version_id=session.version_ids.get(entry.model_sha256), is_digit=entry.is_digit)


def log_entry(session: DatabaseSession, entry: LogEntry):
    from app.db import DatabaseError

    repo = session.repo
    record = prediction_record(session, entry)
    try:
        uid = repo.log(record, version=version_spec(entry))
    except (ValueError, DatabaseError) as exc:
        folder = Path(session.settings.data_home) / UNSAVED_FOLDER
        try:
            keep_unsaved(folder, entry, record.image_png, record.raw_png, str(exc))
        except OSError as os_exc:
            log.error("the refused drawing %s could not be kept in %s either: %s", entry.uuid, folder, os_exc)
            folder = None
        raise DrawingNotSaved(str(exc), folder) from exc
    return uid, entry.true_label, repo.status()


def keep_unsaved(folder: Path, entry: LogEntry, image_png: bytes, raw_png: bytes | None, reason: str) -> None:
    """Write a drawing the database refused as ``<uuid>.png`` (the drawing; the 28x28
    input when there is none), ``<uuid>-input.png`` and ``<uuid>.json`` (the prediction, its
    label, and why it was refused)."""
    folder.mkdir(parents=True, exist_ok=True)

    def number(x: float) -> float | None:
        return float(x) if math.isfinite(float(x)) else None  # (JSON has no NaN)

    about = {"uuid": entry.uuid, "created_at": entry.created_at.isoformat(),
             "predicted_digit": int(entry.predicted_digit), "confidence": number(entry.confidence),
             "probabilities": [number(p) for p in entry.probabilities], "true_label": entry.true_label,
             "is_digit": entry.is_digit, "source": entry.source, "model_version": entry.model_version,
             "model_sha256": entry.model_sha256, "refused_because": reason}
    (folder / f"{entry.uuid}.png").write_bytes(raw_png if raw_png is not None else image_png)
    (folder / f"{entry.uuid}-input.png").write_bytes(image_png)
    (folder / f"{entry.uuid}.json").write_text(json.dumps(about, indent=1), encoding="utf-8")


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
                         model_version=info.version if info is not None else None, model_sha256=p.model_sha256,
                         version=self.models.version_of(p.model_sha256), is_digit=p.is_digit)
        d.uuid, d.label = entry.uuid, label
        self.log_prediction(entry)
        return entry.uuid

    # ---- logging ----------------------------------------------------------------------------------
    def log_prediction(self, entry: LogEntry) -> None:
        """Write one prediction (in the database worker).  Without ``model_sha256`` it is
        taken to be the model in use's; without ``version``, that of its weights."""
        if not self.database.enabled:
            return
        if not entry.model_sha256 and self.models.model_info is not None:
            entry = replace(entry, model_sha256=self.models.model_info.sha256)
        if entry.version is None and entry.model_sha256:
            entry = replace(entry, version=self.models.version_of(entry.model_sha256))
        self.database.run(log_entry, entry, on_result=self._logged,
                          on_error=lambda e: self._log_failed(e, entry.uuid))

    def _logged(self, result: tuple) -> None:
        uid, label, status = result
        self.database.take_status(status)
        self.logged.emit(uid, label)

    def _log_failed(self, exc: BaseException, uid: str) -> None:
        log.error("logging %s failed", uid, exc_info=exc)
        if isinstance(exc, DrawingNotSaved) and exc.folder is not None:
            text = (f"The database refused this drawing: {exc.reason}\n\nNothing is lost: the drawing, "
                    f"its prediction and its label were kept in {exc.folder} (files named {uid}.*).")
        else:
            reason = exc.reason if isinstance(exc, DrawingNotSaved) else str(exc) or type(exc).__name__
            text = f"The database refused this drawing: {reason}\n\nIt could not be kept on this computer either."
        if isinstance(getattr(exc, "__cause__", None), ValueError):
            text += ("\n\nThe model in use gave numbers that cannot be stored: load other weights "
                     "(Model → Load weights…) or use the shipped model.")
        self.problem.emit("The drawing was not saved in the database", text)

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

"""The number room: Number mode's live reading of a whole number, its corrections and ✓.

While the drawing changes, the canvas picture and its pen strokes are read as a number
(``MNISTPredictor.read_number``) in the inference worker.  As in the live prediction
room, requests share one key there (a request that has not started is dropped for a newer
one), each gets a sequence number and carries the drawing's epoch, and an answer for a
drawing that is gone, or older than the one shown, is dropped.

The user corrects single digits (``set_digit``) or types the whole number
(``set_text``); ✓ (``confirm``) logs the reading in the database worker: every digit as
a prediction row (its 28x28 image, probabilities, and as label the corrected or the read
digit), linked by one reading id and each digit's position (``repo.log_reading``).  A
reading cleared without ✓ is logged too, without labels, like a single drawing.
"""

from __future__ import annotations

import logging
import time
import uuid as uuid_module
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.controllers.database import DatabaseController, DatabaseSession
from app.controllers.feedback import (UNSAVED_FOLDER, DrawingNotSaved, LogEntry, keep_unsaved,
                                      prediction_record, version_spec)
from app.controllers.models import ModelController
from app.controllers.requests import Requests
from app.ml.errors import NothingDrawn
from app.workers import WorkerThread

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadDigit:
    """One digit of a reading, as the network read it."""

    digit: int
    confidence: float
    probabilities: tuple[float, ...]
    image: np.ndarray  # the 28x28 uint8 network input
    is_digit: bool = True


@dataclass
class ReadingResult:
    """A number read from the drawing of ``epoch``; ``seq`` orders requests."""

    text: str
    digits: list[ReadDigit]
    #: Each digit's box (x, y, w, h) as fractions of the picture's size (the canvas's).
    boxes: list[tuple[float, float, float, float]]
    confidence: float
    seq: int
    epoch: int
    picture: np.ndarray  # the grey picture read (black ink on white)
    seconds: float
    model_sha256: str = ""
    source: str = "canvas"  # or "file": an opened image


@dataclass
class Reading:
    """The number on the canvas: its reading, the user's corrections and, once logged,
    its reading id."""

    epoch: int
    result: ReadingResult | None = None
    corrections: dict[int, int] = field(default_factory=dict)  # position -> digit
    reading_id: str | None = None

    @property
    def labels(self) -> list[int]:
        """Each digit as the user confirms it: corrected, or as read."""
        if self.result is None:
            return []
        return [self.corrections.get(i, d.digit) for i, d in enumerate(self.result.digits)]

    @property
    def text(self) -> str:
        return "".join(map(str, self.labels))


@dataclass
class _Pending:
    epoch: int
    labelled: bool  # ✓ (True) or a clear (False) waiting for the newest reading


# ---- jobs of the inference worker ----------------------------------------------------------------
def read(predictor, picture: np.ndarray, strokes, seq: int, epoch: int, source: str = "canvas") -> ReadingResult:
    """Read ``picture`` (H x W uint8, black on white; ``strokes`` in its pixels) as a number."""
    started = time.perf_counter()
    r = predictor.read_number(picture, strokes=strokes)
    h, w = picture.shape[:2]
    digits = [ReadDigit(int(p.digit), float(p.confidence), tuple(float(v) for v in p.probabilities), p.image,
                        bool(p.is_digit)) for p in r.digits]
    boxes = [(x / w, y / h, bw / w, bh / h) for x, y, bw, bh in r.boxes]
    return ReadingResult(text=r.text, digits=digits, boxes=boxes, confidence=float(r.confidence), seq=seq,
                         epoch=epoch, picture=picture, seconds=time.perf_counter() - started,
                         model_sha256=predictor.loaded.sha256 or "", source=source)


# ---- jobs of the database worker -------------------------------------------------------------------
def log_reading(session: DatabaseSession, reading_id: str, entries: list[LogEntry]):
    """Write the digits of a reading, left to right, as prediction rows of one reading."""
    from app.db import DatabaseError

    records = [prediction_record(session, e) for e in entries]
    try:
        session.repo.log_reading(records, version=version_spec(entries[0]), reading_id=reading_id)
    except (ValueError, DatabaseError) as exc:
        folder = Path(session.settings.data_home) / UNSAVED_FOLDER
        try:
            for e, r in zip(entries, records):
                keep_unsaved(folder, e, r.image_png, r.raw_png, str(exc))
        except OSError as os_exc:
            log.error("the refused reading %s could not be kept in %s either: %s", reading_id, folder, os_exc)
            folder = None
        raise DrawingNotSaved(str(exc), folder) from exc
    return reading_id, session.repo.status()


# ---- the GUI-thread side ----------------------------------------------------------------------------
class ReadingController(QObject):
    readingReady = Signal(object)  # ReadingResult
    readingCleared = Signal()
    readingFailed = Signal(str)
    #: A correction changed the number the user confirms: the reading and its labels.
    correctionsChanged = Signal(object)  # Reading
    #: ✓: the reading was handed to the database: its id and the number saved.
    readingDone = Signal(str, str)
    #: The database (or its spool) has the reading: its id.
    logged = Signal(str)
    problem = Signal(str, str)

    def __init__(self, inference: WorkerThread, models: ModelController, database: DatabaseController,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.inference = inference
        self.models = models
        self.database = database
        self._requests = Requests()
        self._reading = Reading(epoch=0)
        self._pending: _Pending | None = None

    # ---- what the widgets read --------------------------------------------------------------------
    @property
    def reading(self) -> Reading:
        return self._reading

    @property
    def waiting(self) -> bool:
        """A request has been made whose answer has not arrived yet."""
        return self._requests.waiting

    @property
    def has_reading(self) -> bool:
        """A number is read and not logged yet."""
        return self._reading.result is not None and self._reading.reading_id is None

    # ---- requests ---------------------------------------------------------------------------------
    def request(self, picture: np.ndarray, strokes=None, source: str = "canvas") -> int | None:
        """Read ``picture`` (its pen strokes in its pixels, when known; ``source``: "canvas"
        or "file") in the worker.  Returns the request's sequence number, or None when no
        model is loaded yet."""
        predictor = self.models.predictor
        if predictor is None or self._reading.reading_id is not None:
            return None
        seq, epoch = self._requests.start()
        self.inference.submit(read, predictor, picture, strokes, seq, epoch, source, key="read", on_result=self._read,
                              on_error=lambda e: self._failed(e, seq, epoch))
        return seq

    def _read(self, r: ReadingResult) -> None:
        self._requests.arrived(r.seq)
        d = self._reading
        if r.epoch != self._requests.epoch or d.reading_id is not None or (d.result is not None and d.result.seq > r.seq):
            return
        if d.result is None or d.result.text != r.text:
            d.corrections.clear()  # (corrections were of other digits)
        d.result = r
        self.readingReady.emit(r)
        if r.seq == self._requests.latest:
            self._answered(True)

    def _failed(self, exc: BaseException, seq: int, epoch: int) -> None:
        self._requests.arrived(seq)
        if not self._requests.is_newest(seq, epoch):
            return
        if isinstance(exc, NothingDrawn):
            self._reading.result = None
            self.readingCleared.emit()
        else:
            log.error("reading the number failed", exc_info=exc)
            self.readingFailed.emit(str(exc))
        self._answered(False)

    # ---- corrections --------------------------------------------------------------------------------
    def set_digit(self, position: int, digit: int) -> None:
        """The digit at ``position`` (0 = leftmost) is ``digit``."""
        d = self._reading
        if not self.has_reading or not 0 <= position < len(d.result.digits) or not 0 <= int(digit) <= 9:
            return
        if int(digit) == d.result.digits[position].digit:
            d.corrections.pop(position, None)
        else:
            d.corrections[position] = int(digit)
        self.correctionsChanged.emit(d)

    def set_text(self, text: str) -> str | None:
        """The whole number as the user types it.  Returns None when taken, else what is
        wrong with it (for people)."""
        if not self.has_reading:
            return "There is no number to correct: draw one first."
        text = "".join(str(text).split())
        n = len(self._reading.result.digits)
        if not text.isdigit() or not text.isascii():
            return f"Type digits only (0–9); “{text}” is not a number."
        if len(text) != n:
            return (f"The drawing was read as {n} digit{'s' if n != 1 else ''}, and “{text}” has {len(text)}: "
                    f"each digit is saved with its own picture, so the counts must match. Clear the canvas and "
                    f"write the number again with a little space between the digits.")
        for i, ch in enumerate(text):
            self.set_digit(i, int(ch))
        return None

    # ---- ✓ and clearing ------------------------------------------------------------------------------
    def confirm(self) -> bool:
        """✓: log the reading with its (corrected) digits as labels."""
        return self._request(labelled=True)

    def discard(self) -> None:
        """The drawing is cleared: log the reading without labels if it was not logged;
        then start a new drawing."""
        self.log_open_reading()
        self.new_drawing()

    def log_open_reading(self) -> None:
        if self.has_reading:
            self._log(labelled=False)

    def _request(self, labelled: bool) -> bool:
        d = self._reading
        if d.reading_id is not None:
            return False
        if self.waiting:
            self._pending = _Pending(d.epoch, labelled)  # given when the newest reading arrives
            return True
        if d.result is None:
            return False
        self._give(labelled)
        return True

    def _answered(self, ok: bool) -> None:
        pending, self._pending = self._pending, None
        if pending is None or not ok or pending.epoch != self._requests.epoch or not self.has_reading:
            return
        self._give(pending.labelled)

    def _give(self, labelled: bool) -> None:
        text = self._reading.text
        reading_id = self._log(labelled)
        self.readingDone.emit(reading_id, text)

    def new_drawing(self) -> None:
        """Forget the reading: a new drawing starts."""
        self._reading = Reading(epoch=self._requests.next_epoch())
        self._pending = None
        self.readingCleared.emit()

    def _log(self, labelled: bool) -> str:
        d = self._reading
        r = d.result
        reading_id = d.reading_id = str(uuid_module.uuid4())
        if not self.database.enabled:
            return reading_id
        info = self.models.model_info
        version = self.models.version_of(r.model_sha256) if r.model_sha256 else None
        labels = d.labels if labelled else [None] * len(r.digits)
        entries = [LogEntry(predicted_digit=p.digit, confidence=p.confidence, probabilities=list(p.probabilities),
                            image=p.image, raw=r.picture, true_label=label, source=r.source,
                            model_version=info.version if info is not None else None,
                            model_sha256=r.model_sha256, version=version, is_digit=p.is_digit)
                   for p, label in zip(r.digits, labels)]
        if not r.model_sha256 and info is not None:
            entries = [replace(e, model_sha256=info.sha256, version=self.models.version_of(info.sha256))
                       for e in entries]
        self.database.run(log_reading, reading_id, entries, on_result=self._logged,
                          on_error=lambda e: self._log_failed(e, reading_id))
        return reading_id

    def _logged(self, result: tuple) -> None:
        reading_id, status = result
        self.database.take_status(status)
        self.logged.emit(reading_id)

    def _log_failed(self, exc: BaseException, reading_id: str) -> None:
        log.error("logging the reading %s failed", reading_id, exc_info=exc)
        reason = exc.reason if isinstance(exc, DrawingNotSaved) else str(exc) or type(exc).__name__
        folder = exc.folder if isinstance(exc, DrawingNotSaved) else None
        text = f"The database refused this number: {reason}\n\n"
        text += (f"Nothing is lost: its digits, their predictions and labels were kept in {folder}."
                 if folder is not None else "It could not be kept on this computer either.")
        self.problem.emit("The number was not saved in the database", text)


__all__ = ["Reading", "ReadingController", "ReadingResult", "ReadDigit", "log_reading", "read"]

"""The live prediction room: the drawing on the canvas and its predictions.

A *drawing* is what is on the canvas between two clears (or an opened image file).
While it changes, the canvas picture is predicted in the inference worker.  Live
requests share one key there, so a request that has not started is dropped for a newer
one: stale requests never queue up.  Each request gets a sequence number and carries
the drawing's epoch; an answer for a drawing that is gone, or older than the one shown,
is dropped.  ``answered`` tells the feedback room when the newest request has its
answer (or its error).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal

from app.controllers.models import ModelController
from app.controllers.requests import Requests
from app.ml.errors import NothingDrawn
from app.viewmodels import PredictionResult
from app.workers import WorkerThread

log = logging.getLogger(__name__)

#: Largest side of an opened image kept as the drawing's picture (and logged as raw_png).
PICTURE_MAX = 280
#: Explanation method of "Why this digit?" (MNISTPredictor.explain).
EXPLAIN_METHOD = "gradient"


@dataclass
class Drawing:
    epoch: int
    source: str = "canvas"
    raw: np.ndarray | None = None  # the picture the last prediction was made from
    prediction: PredictionResult | None = None
    uuid: str | None = None  # set once logged
    label: int | None = None


@dataclass
class OpenedImage:
    """An image file, read in the inference worker: its pixels and, if it could be
    read as a digit, the prediction."""

    rgba: np.ndarray  # (H, W, 4) uint8, to show on the canvas
    caption: str
    result: PredictionResult | None
    picture: np.ndarray | None  # grey, at most PICTURE_MAX on a side: the drawing's picture
    error: str | None


# ---- jobs of the inference worker ----------------------------------------------------------------
def _as_result(p, seq: int, epoch: int, source: str, started: float, requested_at: float,
               predictor, heat=None, heat_rect=None) -> PredictionResult:
    return PredictionResult(digit=p.digit, confidence=p.confidence, probabilities=tuple(p.probabilities),
                            image=p.image, runner_up=p.runner_up, seq=seq, epoch=epoch, source=source,
                            seconds=time.perf_counter() - started, requested_at=requested_at,
                            model_sha256=predictor.loaded.sha256 or "", heat=heat, heat_rect=heat_rect,
                            is_digit=bool(p.is_digit), digit_score=float(p.digit_score))


def predict(predictor, picture: np.ndarray, seq: int, epoch: int, source: str, requested_at: float,
            explain: bool = False) -> tuple[PredictionResult, np.ndarray]:
    started = time.perf_counter()
    if explain:
        p, heat = predictor.explain(picture, EXPLAIN_METHOD)
        rect = field_rect(picture, p.image) if source == "canvas" else None
        return _as_result(p, seq, epoch, source, started, requested_at, predictor, heat, rect), picture
    p = predictor.predict(picture)
    return _as_result(p, seq, epoch, source, started, requested_at, predictor), picture


def field_rect(picture: np.ndarray, field: np.ndarray) -> tuple[float, float, float, float] | None:
    """Where the network's 28x28 field lies on ``picture`` (dark ink on light paper), as
    (x, y, w, h) fractions of the picture's size.

    Preprocessing crops the ink, scales it by one factor and centres it: so the ink's box
    on the picture and on the field match, which gives the factor and the offset.
    """
    ink = 255.0 - np.asarray(picture, dtype=np.float32)
    if ink.ndim != 2 or ink.max() <= 0:
        return None
    mask = ink > 0.12 * float(ink.max())
    seen = np.asarray(field) > 0
    if not mask.any() or not seen.any():
        return None
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    frows, fcols = np.flatnonzero(seen.any(axis=1)), np.flatnonzero(seen.any(axis=0))
    side = max(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0])
    field_side = max(frows[-1] + 1 - frows[0], fcols[-1] + 1 - fcols[0])
    scale = side / field_side
    cy, cx = (rows[0] + rows[-1] + 1) / 2, (cols[0] + cols[-1] + 1) / 2
    fcy, fcx = (frows[0] + frows[-1] + 1) / 2, (fcols[0] + fcols[-1] + 1) / 2
    h, w = ink.shape
    n = field.shape[0]
    return ((cx - fcx * scale) / w, (cy - fcy * scale) / h, n * scale / w, n * scale / h)


def open_image(predictor, path: Path, seq: int, epoch: int, requested_at: float,
               explain: bool = False) -> OpenedImage:
    """Read an image file and predict it.  Pixels only: the GUI thread makes the QImage."""
    from app.ml.preprocess import open_image as read_image

    pil = read_image(path)  # size-guarded; a ValueError says what is wrong with the file
    rgba = np.asarray(pil.convert("RGBA"), dtype=np.uint8)
    caption = f"{path.name} — draw to start a new digit"
    preview = pil.convert("L")
    preview.thumbnail((PICTURE_MAX, PICTURE_MAX))
    picture = np.asarray(preview)
    if predictor is None:
        return OpenedImage(rgba, caption, None, None, "The model is not loaded yet.")
    started = time.perf_counter()
    heat = None
    try:
        if explain:
            p, heat = predictor.explain(pil, EXPLAIN_METHOD)
        else:
            p = predictor.predict(pil)
    except ValueError as exc:  # NothingDrawn or an unreadable mode
        return OpenedImage(rgba, caption, None, None, f"Nothing to recognise in {path.name}: {exc}")
    return OpenedImage(rgba, caption, _as_result(p, seq, epoch, "file", started, requested_at, predictor, heat),
                       picture, None)


# ---- the GUI-thread side ----------------------------------------------------------------------------
class PredictionController(QObject):
    predictionReady = Signal(object)  # PredictionResult
    predictionCleared = Signal()
    predictionFailed = Signal(str)
    imageOpened = Signal(object, str)  # (H, W, 4) RGBA uint8 pixels, a caption for the canvas
    #: The newest request has its answer (True) or its error (False): feedback waiting
    #: for it may go on (or is void).
    answered = Signal(bool)
    problem = Signal(str, str)

    def __init__(self, inference: WorkerThread, models: ModelController, parent: QObject | None = None):
        super().__init__(parent)
        self.inference = inference
        self.models = models
        self._explain = False
        self._requests = Requests()
        self._drawing = Drawing(epoch=0)

    # ---- what the other rooms and the widgets read ----------------------------------------------
    @property
    def drawing(self) -> Drawing:
        return self._drawing

    @property
    def latest_seq(self) -> int:
        """The sequence number of the newest request."""
        return self._requests.latest

    @property
    def waiting(self) -> bool:
        """A request has been made whose answer has not arrived yet."""
        return self._requests.waiting

    @property
    def has_prediction(self) -> bool:
        """The drawing has a prediction and no feedback yet."""
        return self._drawing.prediction is not None and self._drawing.uuid is None

    @property
    def current_prediction(self) -> PredictionResult | None:
        return self._drawing.prediction

    # ---- requests ---------------------------------------------------------------------------
    def request_prediction(self, picture: np.ndarray) -> int | None:
        """Predict the canvas picture (H x W uint8, black on white) in the worker.

        A request still waiting is replaced by this one.  Returns its sequence number, or
        None when no model is loaded yet."""
        return self._submit(picture, "canvas", self._explain)

    def _submit(self, picture: np.ndarray, source: str, explain: bool) -> int | None:
        predictor = self.models.predictor
        if predictor is None:
            return None
        seq, epoch = self._requests.start()
        self.inference.submit(predict, predictor, picture, seq, epoch, source, time.perf_counter(), explain,
                              key="predict", on_result=self._predicted,
                              on_error=lambda e: self._predict_failed(e, seq, epoch))
        return seq

    def set_explain(self, on: bool) -> None:
        """Compute the saliency map with each prediction (or stop).  Turned on, the drawing
        on screen is predicted again, with its map."""
        self._explain = bool(on)
        d = self._drawing
        if on and d.raw is not None and d.prediction is not None and d.uuid is None:
            self._submit(d.raw, d.source, True)

    def _predicted(self, result: tuple) -> None:
        r, picture = result
        self._requests.arrived(r.seq)
        d = self._drawing
        if r.epoch != self._requests.epoch or (d.prediction is not None and d.prediction.seq > r.seq) \
                or d.uuid is not None:
            return  # the drawing was cleared, a newer answer is shown, or it is logged already
        d.prediction, d.raw, d.source = r, picture, r.source
        self.predictionReady.emit(r)
        if r.seq == self._requests.latest:
            self.answered.emit(True)

    def _predict_failed(self, exc: BaseException, seq: int, epoch: int) -> None:
        self._requests.arrived(seq)
        if not self._requests.is_newest(seq, epoch):
            return
        if isinstance(exc, NothingDrawn):
            self._drawing.prediction = None
            self.predictionCleared.emit()
        else:
            log.error("prediction failed", exc_info=exc)
            self.predictionFailed.emit(str(exc))
        self.answered.emit(False)

    # ---- drawings -----------------------------------------------------------------------------
    def new_drawing(self) -> None:
        """Forget the drawing (whatever was to be done with it is done): a new one starts."""
        self._drawing = Drawing(epoch=self._requests.next_epoch())
        self.predictionCleared.emit()

    def canvas_emptied(self) -> None:
        """The canvas became empty without a clear (e.g. everything undone): nothing to log."""
        self.new_drawing()

    def open_image(self, path: str | os.PathLike) -> None:
        """Read an image file and predict it (both in the worker).  Call it once the
        drawing on screen is done with (app.controllers.FeedbackController.discard)."""
        path = Path(path)
        seq, epoch = self._requests.start()
        self.inference.submit(open_image, self.models.predictor, path, seq, epoch, time.perf_counter(),
                              self._explain, key="predict", on_result=lambda r: self._image_opened(r, seq, epoch),
                              on_error=lambda e: self._image_failed(e, path, seq))

    def _image_opened(self, opened: OpenedImage, seq: int, epoch: int) -> None:
        if epoch != self._requests.epoch:
            self._requests.arrived(seq)
            return
        self.imageOpened.emit(opened.rgba, opened.caption)
        if opened.result is not None:
            self._drawing = Drawing(epoch=self._requests.epoch, source="file")
            self._predicted((opened.result, opened.picture))
        else:
            self._requests.arrived(seq)
            if opened.error:
                self.predictionFailed.emit(opened.error)
            self.answered.emit(False)

    def _image_failed(self, exc: BaseException, path: Path, seq: int) -> None:
        self._requests.arrived(seq)
        self.problem.emit("Cannot open the image", f"{path}: {exc}")
        self.answered.emit(False)

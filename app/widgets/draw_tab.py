"""The Draw tab: the canvas, the live prediction panel, and the feedback on a drawing.

It sends the canvas picture to the controller's prediction room while a stroke is drawn
(at most every ``LIVE_INTERVAL_MS``) and when the drawing changes, shows what comes back,
and passes ✓ Correct / ✗ Wrong… / a digit / a clear to the feedback room.  Messages for
the status bar go out as ``message(text, ms)``; ``changed`` says that what can be done
(feedback, undo) may have changed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer, Qt, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QSpinBox, QWidget

from app.controllers import Controller
from app.viewmodels import ModelInfo, PredictionResult
from app.widgets import theme
from app.widgets.canvas import MAX_BRUSH, MIN_BRUSH, DrawingCanvas, SquareFrame
from app.widgets.cards import card
from app.widgets.charts import heat_overlay, rgba_image
from app.widgets.correction import CorrectionDialog
from app.widgets.prediction import PredictionPanel

log = logging.getLogger(__name__)


def panel_text(problem: str) -> str:
    """A model problem as the prediction panel says it: the file by its name (a long path
    does not wrap and would widen the panel; the message box names it in full), the
    technical details left to the message box."""
    path = getattr(problem, "path", None)
    text = str(problem)
    if path is not None:
        text = text.replace(str(path), Path(path).name)
    return text

#: While a stroke is drawn, predict at most this often (ms).
LIVE_INTERVAL_MS = 60


class DrawTab(QWidget):
    #: A prediction is on screen (bars updated): the result, and perf_counter() then.
    predictionShown = Signal(object, float)
    #: A passing message for the status bar, and how long it stays (ms).
    message = Signal(str, int)
    #: What can be done may have changed (feedback, undo, redo).
    changed = Signal()

    def __init__(self, controller: Controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.prediction = controller.prediction
        self.feedback = controller.feedback
        self.models = controller.models
        self.correction_dialog: CorrectionDialog | None = None
        #: Number mode (app.widgets.number_mode.NumberMode), set by the window that has one.
        self.number_mode = None
        self._explain = False
        self._opening: str | None = None  # the name of the image file being read
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 12, 12, 12)
        row.setSpacing(12)
        canvas_card, canvas_lay = card("Your drawing")
        self.canvas = DrawingCanvas()
        self.canvas.set_placeholder("Draw a digit here\n(loading model…)")
        canvas_lay.addWidget(SquareFrame(self.canvas), 1)
        self.hint = QLabel("")
        self.hint.setObjectName("hint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        canvas_lay.addWidget(self.hint)
        row.addWidget(canvas_card, 5)
        self.panel = PredictionPanel()
        self.panel.setMinimumWidth(330)
        row.addWidget(self.panel, 4)
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_INTERVAL_MS)
        self._live_timer.timeout.connect(self._live_predict)
        self._connect()

    def _connect(self) -> None:
        cv, p = self.canvas, self.prediction
        cv.strokeMoved.connect(self._stroke_moved)
        cv.contentChanged.connect(self._content_changed)
        cv.cleared.connect(self.feedback.discard)
        self.panel.correctClicked.connect(self.confirm)
        self.panel.wrongClicked.connect(self.wrong)
        p.predictionReady.connect(self._show_prediction)
        p.predictionCleared.connect(self._prediction_cleared)
        p.predictionFailed.connect(self._prediction_failed)
        p.imageOpened.connect(self._image_opened)
        self.feedback.drawingDone.connect(self._drawing_done)
        self.models.modelLoading.connect(self._model_loading)
        self.models.modelReady.connect(self._model_ready)
        self.models.modelFailed.connect(self._model_failed)

    @property
    def feedback_possible(self) -> bool:
        n = self._number()
        return n.can_confirm if n is not None else self.prediction.has_prediction

    def _number(self):
        """Number mode, when it is on (else None)."""
        n = self.number_mode
        return n if n is not None and n.active else None

    def request_prediction(self) -> None:
        """Predict the drawing: one digit, or (Number mode) a number."""
        n = self._number()
        if n is not None:
            n.request()
        else:
            self.prediction.request_prediction(self.canvas.snapshot())  # None: no model yet

    # ---- drawing and prediction ---------------------------------------------------------------
    @Slot()
    def _stroke_moved(self) -> None:
        if not self._live_timer.isActive():
            self._live_timer.start()

    def _live_predict(self) -> None:
        if self.canvas.drawing and self.canvas.has_ink():
            self.request_prediction()

    @Slot(int)
    def _content_changed(self, revision: int) -> None:
        self._live_timer.stop()
        if self.canvas.has_ink():
            self.request_prediction()
        elif not self.canvas.has_image():
            self.prediction.canvas_emptied()
        self.changed.emit()

    def _show_prediction(self, r: PredictionResult) -> None:
        heat = r.heat if self._explain else None
        self._show_result(r, heat)
        if heat is not None and r.heat_rect is not None:
            self.canvas.set_overlay(heat_overlay(heat), r.heat_rect)
        else:
            self.canvas.set_overlay(None)
        self.predictionShown.emit(r, time.perf_counter())
        self.changed.emit()

    def _show_result(self, r: PredictionResult, heat) -> None:
        """A digit, or "this doesn't look like a digit" with the best guess."""
        if r.is_digit:
            self.panel.show_prediction(r.digit, r.confidence, r.probabilities, r.image, r.runner_up, heat)
        else:
            self.panel.show_not_a_digit(r.digit, r.probabilities, r.image, heat)

    def set_explain(self, on: bool) -> None:
        """Why this digit? on or off."""
        self._explain = bool(on)
        self.prediction.set_explain(on)
        if not on:
            self.canvas.set_overlay(None)
            r = self.prediction.current_prediction
            if r is not None and self.prediction.has_prediction:
                self._show_result(r, None)
                self.changed.emit()
        self.message.emit("Why this digit? on: warm pixels pushed the network towards its answer, blue ones "
                          "against it." if on else "Why this digit? off.", theme.NOTE_MS)

    def _prediction_cleared(self) -> None:
        self.canvas.set_overlay(None)
        if self.models.model_ready:
            self.panel.show_idle()
        elif self.panel.state != "error":
            self.panel.show_loading()
        self.changed.emit()

    def _prediction_failed(self, text: str) -> None:
        self.panel.show_error("Cannot read this", text)
        self.changed.emit()

    def open_image(self, path: str) -> None:
        self._opening = Path(path).name
        self.message.emit(f"Reading {self._opening}…", theme.ECHO_MS)
        self.controller.open_image(path)

    def _image_opened(self, rgba: np.ndarray, caption: str) -> None:
        self.canvas.show_image(rgba_image(rgba), caption)
        # (replaces "Reading …"; a file that cannot be read gets its own message)
        self.message.emit(f"Read {self._opening or caption}.", theme.NOTE_MS)

    # ---- feedback -------------------------------------------------------------------------------
    def clear(self) -> None:
        self.canvas.clear()

    def confirm(self) -> None:
        if self._number() is not None:
            return self.number_mode.confirm()
        if self.feedback.confirm():
            self.panel.set_feedback_enabled(False)

    def label_as(self, digit: int) -> None:
        if self._number() is not None:
            return self.number_mode.type_number(str(digit))
        if self.feedback.correct_to(digit):
            self.panel.set_feedback_enabled(False)

    def wrong(self) -> None:
        if self._number() is not None:
            return self.number_mode.type_number()
        r = self.prediction.current_prediction
        if r is None or not self.prediction.has_prediction:
            return
        dialog = CorrectionDialog(self.canvas.display_image(), r.probabilities, r.digit, self.window())
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.digitChosen.connect(self.feedback.correct_to)
        self.correction_dialog = dialog
        dialog.open()

    def _drawing_done(self, uid: str, label) -> None:
        self.message.emit(f"Saved as a {label}. Draw the next digit.", theme.NOTE_MS)
        self.canvas.clear()

    def nudge_brush(self, step: int) -> None:
        self.canvas.set_brush_size(self.canvas.brush_size() + step)

    def brush_controls(self) -> list[QWidget]:
        """The brush size's icon, slider and box, for the toolbar (kept in step with the canvas)."""
        icon = QLabel()
        icon.setPixmap(theme.icon("brush").pixmap(18, 18))
        icon.setToolTip("Brush size")
        self.brush_slider = QSlider(Qt.Orientation.Horizontal)
        self.brush_slider.setFixedWidth(120)
        self.brush_slider.setToolTip("Brush size in pixels ([ smaller, ] larger)")
        self.brush_spin = QSpinBox()
        self.brush_spin.setSuffix(" px")
        self.brush_spin.setToolTip("Brush size in pixels")
        self.brush_spin.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        for w in (self.brush_slider, self.brush_spin):
            w.setRange(MIN_BRUSH, MAX_BRUSH)
            w.valueChanged.connect(self.canvas.set_brush_size)
        self.canvas.brushSizeChanged.connect(self._brush_changed)
        self._brush_changed(self.canvas.brush_size())
        return [icon, self.brush_slider, self.brush_spin]

    def _brush_changed(self, size: int) -> None:
        for w in (self.brush_slider, self.brush_spin):
            w.blockSignals(True)
            w.setValue(size)
            w.blockSignals(False)

    # ---- the model --------------------------------------------------------------------------------
    def _model_loading(self, path: str) -> None:
        if not self.models.model_ready:
            self.canvas.set_placeholder("Draw a digit here\n(loading model…)")
            self.panel.show_loading()

    def _model_ready(self, info: ModelInfo) -> None:
        self.canvas.set_placeholder("Draw a digit here")
        if self.canvas.has_ink():
            self.request_prediction()
        elif self.panel.state in ("loading", "error"):
            self.panel.show_idle()
        self.changed.emit()

    def _model_failed(self, text: str) -> None:
        if not self.models.model_ready:
            self.canvas.set_placeholder("Draw a digit here\n(no model: Model → Train… or Load weights…)")
            self.panel.show_error("No model", panel_text(text))
        self.changed.emit()

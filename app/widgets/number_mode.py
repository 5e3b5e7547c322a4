"""Number mode: the Draw tab reads a whole number, digit by digit.

The View menu's and the toolbar's "Number mode" (Ctrl+N, remembered in QSettings) switches
the Draw tab between one digit and a number.  In Number mode the drawing is read by the
controller's number room (app/controllers/reading.py) live, as a single digit is (while a
stroke is drawn and each time the drawing changes), from the canvas picture at one pixel
a logical pixel with the canvas's own strokes; the number panel
(app/widgets/number_panel.py) takes the place of the prediction panel, and a light box is
laid over the canvas around each digit.

✓ (Enter) saves the number as shown; a chip corrects one digit; ✗ Wrong… (W) or a digit
key opens "Type the number".
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QRectF, QSize, Qt
from PySide6.QtGui import QAction, QColor, QImage, QKeySequence, QPainter, QPen

from app.controllers.reading import Reading, ReadingResult
from app.widgets import help, theme
from app.widgets.ink import Stroke
from app.widgets.number_panel import NumberPanel, TypeNumberDialog

log = logging.getLogger(__name__)

SETTING = "view/number_mode"
SHORTCUT = "Ctrl+N"
#: The boxes' overlay is drawn this many pixels on its longer side.
OVERLAY_SIDE = 400
HINT = "Enter: save the number · click a digit to correct it · W or 0–9: type the number · Esc: clear"


def boxes_overlay(boxes: list[tuple[float, float, float, float]], side: int = OVERLAY_SIDE) -> QImage:
    """A transparent picture with a light box around each digit (boxes as fractions)."""
    img = QImage(side, side, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    accent = QColor(theme.ACCENT)
    fill = QColor(accent)
    fill.setAlpha(70)
    p.setPen(QPen(accent, 3))
    p.setBrush(fill)
    pad = 0.012 * side
    for x, y, w, h in boxes:
        p.drawRoundedRect(QRectF(x * side - pad, y * side - pad, w * side + 2 * pad, h * side + 2 * pad), 6, 6)
    p.end()
    return img


def on_paper(boxes, shape: tuple[int, ...], canvas: QSize) -> list[tuple[float, float, float, float]]:
    """Boxes given as fractions of a picture of ``shape`` (h, w) -> fractions of the canvas
    that shows the picture centred and scaled to fit (``DrawingCanvas.show_image``)."""
    h, w = shape[:2]
    cw, ch = max(1, canvas.width()), max(1, canvas.height())
    s = min(cw / w, ch / h)
    fw, fh = w * s / cw, h * s / ch
    ox, oy = (1 - fw) / 2, (1 - fh) / 2
    return [(ox + x * fw, oy + y * fh, bw * fw, bh * fh) for x, y, bw, bh in boxes]


class NumberMode(QObject):
    """Number mode of a MainWindow's Draw tab: its action, its panel, and the wiring."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.draw, self.canvas = window.draw, window.draw.canvas
        self.reading = window.controller.reading
        self.models = window.controller.models
        self.qsettings = window.qsettings
        self.active = False
        self.boxes: list[tuple[float, float, float, float]] = []  # the boxes on the canvas
        self.dialog: TypeNumberDialog | None = None
        self._digit_hint = ""
        self.panel = NumberPanel()
        self.panel.setMinimumWidth(330)
        self.panel.hide()
        self.draw.layout().addWidget(self.panel, 4)
        self.action = self._make_action()
        window.view_menu.insertAction(window.act_explain, self.action)
        window.toolbar.insertAction(window.act_open, self.action)
        window.toolbar.insertSeparator(window.act_open)
        self._connect()
        self.draw.number_mode = self
        self.action.setChecked(self.qsettings.value(SETTING, False, type=bool))

    def _make_action(self) -> QAction:
        a = QAction(theme.icon("number"), "&Number mode", self.window)
        a.setIconText("Number")
        a.setCheckable(True)
        a.setShortcut(QKeySequence(SHORTCUT))
        tip = "Read a whole number, digit by digit, instead of one digit"
        a.setToolTip(f"{tip} ({help.keys_of(a)})")
        a.setStatusTip(tip)
        a.toggled.connect(self.set_active)
        self.window.addAction(a)  # its shortcut works wherever the focus is in the window
        return a

    def _connect(self) -> None:
        r = self.reading
        r.readingReady.connect(self._show)
        r.correctionsChanged.connect(self._corrected)
        r.readingCleared.connect(self._cleared)
        r.readingFailed.connect(lambda text: self._when_active(self.panel.show_error, "Cannot read this", text))
        r.readingDone.connect(self._done)
        r.logged.connect(self._logged)
        self.canvas.cleared.connect(r.discard)
        p = self.draw.controller.prediction
        p.imageOpened.connect(lambda *_: self._when_active(r.discard))  # (a new drawing: the file)
        p.predictionReady.connect(lambda result: self._when_active(self._file_predicted, result))
        p.predictionFailed.connect(lambda text: self._when_active(self.panel.show_error, "Cannot read this", text))
        self.canvas.contentChanged.connect(self._content_changed)
        self.panel.correctClicked.connect(self.confirm)
        self.panel.typeClicked.connect(lambda: self.type_number())
        self.panel.digitPicked.connect(r.set_digit)
        self.models.modelReady.connect(self._model_ready)
        self.models.modelLoading.connect(
            lambda _path: self._when_active(lambda: self.canvas.set_placeholder(self._placeholder())))
        self.models.modelFailed.connect(lambda text: self._when_active(self._model_failed, text))

    def _when_active(self, fn, *args) -> None:
        if self.active:
            fn(*args)

    # ---- the switch ----------------------------------------------------------------------------
    def set_active(self, on: bool) -> None:
        on = bool(on)
        self.qsettings.setValue(SETTING, on)
        if on == self.active:
            return
        self.active = on
        d, w = self.draw, self.window
        w.act_explain.setEnabled(not on)  # ("Why this digit?" explains one digit)
        if on:
            self._digit_hint = d.hint.text()
            d.hint.setText(HINT)
            d.controller.prediction.new_drawing()  # the drawing is read as a number from now on
        else:
            d.hint.setText(self._digit_hint)
            self.reading.new_drawing()
        d.panel.setVisible(not on)
        self.panel.setVisible(on)
        self.canvas.set_placeholder(self._placeholder())
        self._set_boxes([])
        if not self.models.model_ready:
            self.panel.show_loading()
        elif self.canvas.has_ink():
            d.request_prediction()
        else:
            self.panel.show_idle()
        d.changed.emit()
        d.message.emit("Number mode: write a number, it is read digit by digit." if on else
                       "Digit mode: draw one digit.", theme.NOTE_MS)

    def _placeholder(self) -> str:
        text = "Write a number here" if self.active else "Draw a digit here"
        return text if self.models.model_ready else text + "\n(loading model…)"

    # ---- reading --------------------------------------------------------------------------------
    def request(self) -> None:
        """Read the drawing, with the stroke being drawn, if any (the Draw tab asks while a
        stroke is drawn, at most every LIVE_INTERVAL_MS, and when the drawing changes)."""
        cv = self.canvas
        if not cv.has_ink():
            return
        strokes = cv.strokes
        current = cv.current_stroke
        if current is not None:
            strokes.append(Stroke(list(current.points), list(current.widths)))  # (a copy: it grows meanwhile)
        side = max(cv.width(), cv.height())
        self.reading.request(cv.snapshot(max_side=side), strokes)  # one pixel a logical pixel

    @property
    def can_confirm(self) -> bool:
        return self.reading.has_reading

    def _file_predicted(self, result) -> None:
        """An opened image was read as one digit (File → Open image…): read it as a number."""
        prediction = self.draw.controller.prediction
        picture = prediction.drawing.raw
        if result.source != "file" or picture is None:
            return
        prediction.new_drawing()  # (read one way: as a number)
        self.reading.request(picture, None, source="file")

    def _content_changed(self, _revision: int) -> None:
        if self.active and not self.canvas.has_ink() and not self.canvas.has_image():
            self.reading.new_drawing()  # (e.g. every stroke undone: nothing to save)

    def _show(self, r: ReadingResult) -> None:
        if not self.active:
            return
        self._show_reading(self.reading.reading)
        self._set_boxes(r.boxes if r.source != "file" else on_paper(r.boxes, r.picture.shape, self.canvas.size()))
        self.draw.changed.emit()

    def _show_reading(self, reading: Reading) -> None:
        r = reading.result
        self.panel.show_reading([(p.digit, p.confidence) for p in r.digits], r.confidence, reading.corrections,
                                feedback=reading.reading_id is None)

    def _corrected(self, reading: Reading) -> None:
        if self.active and reading.result is not None:
            self._show_reading(reading)

    def _cleared(self) -> None:
        if not self.active:
            return
        self._set_boxes([])
        if self.models.model_ready:
            self.panel.show_idle()
        self.draw.changed.emit()

    def _set_boxes(self, boxes) -> None:
        self.boxes = list(boxes)
        self.canvas.set_overlay(boxes_overlay(self.boxes) if self.boxes else None, (0.0, 0.0, 1.0, 1.0))

    def _model_ready(self, _info) -> None:
        if self.active:
            self.canvas.set_placeholder(self._placeholder())
            if not self.canvas.has_ink():
                self.panel.show_idle()

    def _model_failed(self, text: str) -> None:
        if not self.models.model_ready:
            self.panel.show_error("No model", str(text))

    # ---- feedback ---------------------------------------------------------------------------------
    def confirm(self) -> None:
        if self.reading.confirm():
            self.panel.set_feedback_enabled(False)

    def type_number(self, start: str = "") -> None:
        """"Type the number" (✗ Wrong…, a digit key): the typed number is saved."""
        if not self.reading.has_reading:
            return
        dialog = TypeNumberDialog(self.reading.reading.result.text, self.reading.set_text, start, self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.accepted.connect(self.confirm)
        self.dialog = dialog
        dialog.open()

    def _done(self, _reading_id: str, text: str) -> None:
        self.draw.message.emit(f"Saved the number {text}. Write the next one.", theme.NOTE_MS)
        self.canvas.clear()

    def _logged(self, _reading_id: str) -> None:
        page = self.window.stats_page
        if page.isVisible():
            page.refresh_soon()


__all__ = ["NumberMode", "boxes_overlay"]

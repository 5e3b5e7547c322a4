"""Drive the canvas as a person does: QTest mouse drags along the strokes of a digit."""

from __future__ import annotations

import math

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QPointingDevice, QTabletEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from tests.ml.drawing import STROKES  # the same strokes the ML tests draw with PIL

STEP = 6  # pixels between mouse samples


def _points(stroke, size: int, margin: float = 0.0):
    """Stroke points given on a 280x280 field -> widget coordinates, densely interpolated."""
    scale = (size - 2 * margin) / 280.0
    pts = [QPointF(margin + x * scale, margin + y * scale) for x, y in stroke]
    out = [pts[0]]
    for a, b in zip(pts, pts[1:]):
        n = max(1, int(math.hypot(b.x() - a.x(), b.y() - a.y()) / STEP))
        out += [a + (b - a) * (i / n) for i in range(1, n + 1)]
    return [QPoint(round(p.x()), round(p.y())) for p in out]


def drag(widget, points, button=Qt.MouseButton.LeftButton) -> None:
    QTest.mousePress(widget, button, Qt.KeyboardModifier.NoModifier, points[0])
    for p in points[1:]:
        QTest.mouseMove(widget, p)
    QTest.mouseRelease(widget, button, Qt.KeyboardModifier.NoModifier, points[-1])


def draw_digit(canvas, digit: int) -> None:
    size = min(canvas.width(), canvas.height())
    for stroke in STROKES[digit]:
        drag(canvas, _points(stroke, size))


def draw_and_wait(qtbot, window, digit: int):
    """Draw ``digit`` on the window's canvas; wait until the prediction of the finished
    drawing is on screen; return the digit shown."""
    with qtbot.waitSignal(window.predictionShown, timeout=10000):
        draw_digit(window.canvas, digit)
    prediction = window.controller.prediction
    qtbot.waitUntil(lambda: not prediction.waiting, timeout=10000)
    return window.panel.digit


def tablet_stroke(widget, points, pressure, eraser: bool = False) -> None:
    """A stylus stroke made of synthetic QTabletEvents (xdotool cannot make them);
    ``pressure``: one value, or one per point."""
    pressures = list(pressure) if hasattr(pressure, "__len__") else [pressure] * len(points)
    kind = QPointingDevice.PointerType.Eraser if eraser else QPointingDevice.PointerType.Pen
    device = QPointingDevice("test stylus", 1, QPointingDevice.DeviceType.Stylus, kind,
                             QPointingDevice.Capability.Position | QPointingDevice.Capability.Pressure,
                             1, 3)
    types = [QTabletEvent.Type.TabletPress] + [QTabletEvent.Type.TabletMove] * (len(points) - 2) \
        + [QTabletEvent.Type.TabletRelease]
    for t, p, pressure in zip(types, points, pressures):
        pos = QPointF(p)
        glob = QPointF(widget.mapToGlobal(p))
        buttons = Qt.MouseButton.NoButton if t == QTabletEvent.Type.TabletRelease else Qt.MouseButton.LeftButton
        ev = QTabletEvent(t, device, pos, glob, pressure, 0.0, 0.0, 0.0, 0.0, 0.0,
                          Qt.KeyboardModifier.NoModifier, Qt.MouseButton.LeftButton, buttons)
        QApplication.sendEvent(widget, ev)


def line(x0, y0, x1, y1, step: int = STEP):
    n = max(1, int(math.hypot(x1 - x0, y1 - y0) / step))
    return [QPoint(round(x0 + (x1 - x0) * i / n), round(y0 + (y1 - y0) * i / n)) for i in range(n + 1)]


def log_labelled(controller, images, labels, prefix: str) -> None:
    """Log drawings with true labels through the controller, as feedback would: the model
    in use predicts each 28x28 image; the uuids are fixed by ``prefix`` and the index, so
    the held-out fifth of a fine-tuning is the same on every run."""
    import uuid
    from datetime import datetime, timedelta, timezone

    from app.controllers.feedback import LogEntry

    predictions = controller.models.predictor.predict_batch(images)
    t0 = datetime.now(timezone.utc)
    for i, (p, label) in enumerate(zip(predictions, labels)):
        controller.feedback.log_prediction(LogEntry(
            uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{prefix}-{i}")), created_at=t0 + timedelta(milliseconds=i),
            predicted_digit=p.digit, confidence=p.confidence, probabilities=list(p.probabilities),
            true_label=int(label), image=p.image, raw=None, source="canvas"))
    assert controller.database.worker.wait_idle(60)

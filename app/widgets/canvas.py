"""The drawing canvas: the widget a digit is drawn on with the mouse or a stylus.

It turns pointer events into strokes (``app.widgets.ink.Stroke``: points in logical pixels
with a width each) and keeps the list with undo/redo and clear; how strokes look and the
rasters they are painted into (the screen's, the network's ``snapshot()``) live in
``app.widgets.ink``.

Mouse: the left button draws, the right button erases.  Stylus (``QTabletEvent``):
pressure scales the width (``MIN_PRESSURE_WIDTH`` .. 1 x the brush size); the eraser end
erases.

The widget knows nothing of models: it emits signals and hands out a grey ``snapshot()``.
It can lay a faint picture over the drawing (``set_overlay``: "Why this digit?") and show
an opened image instead of a drawing (``show_image``).
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPointingDevice, QResizeEvent,
                           QTabletEvent)
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.widgets.ink import SNAPSHOT_SIDE, DrawingRasters, Stroke, paint_stroke, paint_tint, picture_on_paper

__all__ = ["DEFAULT_BRUSH", "MAX_BRUSH", "MIN_BRUSH", "MIN_PRESSURE_WIDTH", "DrawingCanvas", "SquareFrame", "Stroke"]

log = logging.getLogger(__name__)

MIN_BRUSH, MAX_BRUSH, DEFAULT_BRUSH = 4, 60, 22
#: The width at zero pressure, as a fraction of the brush size.
MIN_PRESSURE_WIDTH = 0.25
#: The eraser (right button, the stylus's other end) is this much wider than the brush.
ERASER_SCALE = 1.5


def pressure_width(brush: float, pressure: float, erase: bool = False) -> float:
    """A stylus's stroke width at ``pressure`` (0..1) with a brush of ``brush`` px."""
    pressure = max(0.0, min(1.0, float(pressure)))
    scale = ERASER_SCALE if erase else 1.0
    return brush * scale * (MIN_PRESSURE_WIDTH + (1 - MIN_PRESSURE_WIDTH) * pressure)


def paint_frame(p: QPainter, rect: QRect, placeholder: str, caption: str) -> None:
    """What the canvas draws around the ink: a placeholder on empty paper, a thin frame
    where the drawing area ends, and an opened image's caption."""
    if placeholder:
        p.setPen(QColor(150, 150, 160))
        font = p.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        p.setFont(font)
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, placeholder)
    p.setPen(QColor(195, 202, 216))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawRect(QRectF(0.5, 0.5, rect.width() - 1, rect.height() - 1))
    if caption:
        p.setPen(QColor(90, 90, 100))
        p.drawText(rect.adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignHCenter, caption)


class DrawingCanvas(QWidget):
    """A white square to draw a digit on."""

    strokeStarted = Signal()
    #: While a stroke is drawn, after each new sample (the receiver throttles).
    strokeMoved = Signal()
    strokeFinished = Signal()
    #: The canvas was emptied by the user (Clear) or by ``clear()``.
    cleared = Signal()
    #: Anything changed the content (stroke, undo, redo, clear, image): the revision.
    contentChanged = Signal(int)
    undoAvailable = Signal(bool)
    redoAvailable = Signal(bool)
    brushSizeChanged = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("canvas")
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAttribute(Qt.WidgetAttribute.WA_TabletTracking, False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(220, 220)
        self.setToolTip("Draw one digit (0-9) here with the mouse or a stylus.\n"
                        "Ctrl+Z undo, Ctrl+Shift+Z redo, Esc clear")
        self._strokes: list[Stroke] = []
        self._redo: list[Stroke] = []
        self._current: Stroke | None = None
        self._brush = DEFAULT_BRUSH
        self._revision = 0
        size = self._logical_size()
        #: The screen's and the network's rasters, kept in step with the strokes.
        self.rasters = DrawingRasters(size.width(), size.height(), self._dpr())
        self._backdrop: QImage | None = None
        self._backdrop_view = QImage()  # the opened image on white paper, at device resolution
        self._backdrop_caption = ""
        self._placeholder = "Draw a digit here"
        self._tablet_down = False
        self._overlay: QImage | None = None
        self._overlay_rect: QRectF | None = None  # fractions of the canvas (x, y, w, h)

    # ---- properties ----------------------------------------------------------------------
    def sizeHint(self) -> QSize:
        return QSize(360, 360)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, w: int) -> int:
        return w

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def strokes(self) -> list[Stroke]:
        return list(self._strokes)

    @property
    def drawing(self) -> bool:
        """A stroke is in progress."""
        return self._current is not None

    @property
    def current_stroke(self) -> Stroke | None:
        """The stroke being drawn (None between strokes); it grows until it ends."""
        return self._current

    def brush_size(self) -> int:
        return self._brush

    def set_brush_size(self, size: int) -> None:
        size = max(MIN_BRUSH, min(MAX_BRUSH, int(size)))
        if size != self._brush:
            self._brush = size
            self.brushSizeChanged.emit(size)

    def is_empty(self) -> bool:
        return not self._strokes and self._current is None and self._backdrop is None

    def has_ink(self) -> bool:
        return bool(self._strokes) or self._current is not None

    def can_undo(self) -> bool:
        return bool(self._strokes)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def set_overlay(self, image: QImage | None, rect: tuple[float, float, float, float] | None = None) -> None:
        """Lay ``image`` (transparent where nothing is to show) faintly over the drawing,
        stretched over ``rect`` (x, y, w, h as fractions of the canvas): the paper under it
        takes a light tint of its colours, the ink a hint and stays dark.  None removes
        it; so does clearing the canvas."""
        if image is None or rect is None:
            if self._overlay is not None:
                self._overlay = self._overlay_rect = None
                self.update()
            return
        self._overlay = image
        self._overlay_rect = QRectF(*rect)
        self.update()

    def overlay(self) -> QImage | None:
        return self._overlay

    def set_placeholder(self, text: str) -> None:
        """The hint shown on an empty canvas (e.g. "Draw a digit — loading model…")."""
        self._placeholder = text
        self.update()

    # ---- editing ---------------------------------------------------------------------------
    def undo(self) -> None:
        if self._current is not None or not self._strokes:
            return
        self._redo.append(self._strokes.pop())
        self.rasters.truncate(self._strokes)
        self._changed()

    def redo(self) -> None:
        if self._current is not None or not self._redo:
            return
        stroke = self._redo.pop()
        self._strokes.append(stroke)
        self.rasters.push(stroke)
        self._changed()

    def clear(self) -> None:
        """Empty the canvas (not undoable: the drawing has been handed over)."""
        had = not self.is_empty()
        self._strokes.clear()
        self._redo.clear()
        self._current = None
        self._backdrop = None
        self._overlay = self._overlay_rect = None
        self.rasters.reset()
        if had:
            self.cleared.emit()  # first: receivers may still hand the old drawing on
        self._changed()

    def show_image(self, image: QImage, caption: str = "") -> None:
        """Show an opened image file instead of a drawing (drawing on it starts afresh)."""
        self._strokes.clear()
        self._redo.clear()
        self._current = None
        self._overlay = self._overlay_rect = None
        self.rasters.reset()
        self._backdrop = image.copy()
        self._backdrop_caption = caption
        self._render_backdrop()
        self._changed()

    def has_image(self) -> bool:
        return self._backdrop is not None

    def add_stroke(self, stroke: Stroke) -> None:
        """Add a finished stroke programmatically (tests, benchmarks), as if drawn."""
        if self._backdrop is not None:
            self.clear()  # drawing on an opened image starts a new drawing
        self._commit(stroke)

    # ---- the picture ---------------------------------------------------------------------
    def snapshot(self, max_side: int = SNAPSHOT_SIDE) -> np.ndarray:
        """The drawing as a grey uint8 array (black ink on white), scaled down so that its
        longer side is at most ``max_side`` pixels (the network sees 20x20 of it anyway;
        a smaller picture keeps preprocessing fast).  The same as
        ``ink.render_strokes(strokes, width, height, max_side)``, kept up to date stroke by
        stroke (an opened image is not part of it)."""
        return self.rasters.snapshot(self._strokes, self._current, max_side)

    def display_image(self) -> QImage:
        """What the canvas shows (at device resolution), e.g. for the correction dialog."""
        if self._backdrop is not None:
            return self._backdrop_view.copy()
        return self.rasters.screen.with_stroke(self._current)  # a copy

    def _logical_size(self) -> QSize:
        s = self.size()
        return QSize(max(1, s.width()), max(1, s.height()))

    def _dpr(self) -> float:
        return max(1.0, self.devicePixelRatioF())

    def _resized(self) -> None:
        """A new size or device pixel ratio: the rasters are painted afresh."""
        size = self._logical_size()
        self.rasters.resize(size.width(), size.height(), self._dpr(), self._strokes)
        if self._backdrop is not None:
            self._render_backdrop()

    def _render_backdrop(self) -> None:
        size = self._logical_size()
        self._backdrop_view = picture_on_paper(self._backdrop, size.width(), size.height(), self._dpr())

    def _changed(self) -> None:
        self._revision += 1
        self.update()
        self.undoAvailable.emit(self.can_undo())
        self.redoAvailable.emit(self.can_redo())
        self.contentChanged.emit(self._revision)

    # ---- Qt events -------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        if self._backdrop is not None:
            p.drawImage(QPointF(0, 0), self._backdrop_view)
        else:
            p.drawImage(QPointF(0, 0), self.rasters.screen.image)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self._current is not None:
            paint_stroke(p, self._current, within=QRectF(event.rect()))
        if self._overlay is not None and self._overlay_rect is not None:
            r = self._overlay_rect
            paint_tint(p, self._overlay, QRectF(r.x() * self.width(), r.y() * self.height(),
                                                r.width() * self.width(), r.height() * self.height()))
        paint_frame(p, self.rect(), self._placeholder if self.is_empty() else "",
                    self._backdrop_caption if self._backdrop is not None else "")
        p.end()

    def resizeEvent(self, event: QResizeEvent) -> None:
        self._resized()
        super().resizeEvent(event)

    def changeEvent(self, event) -> None:
        if event.type() in (event.Type.DevicePixelRatioChange, event.Type.ScreenChangeInternal):
            self._resized()
            self.update()
        super().changeEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and not self._tablet_down:
            self._begin(event.position(), self._brush, erase=False)
        elif event.button() == Qt.MouseButton.RightButton and not self._tablet_down:
            self._begin(event.position(), self._brush * ERASER_SCALE, erase=True)  # right button erases

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._current is not None and not self._tablet_down:
            width = self._brush * (ERASER_SCALE if self._current.erase else 1.0)
            self._extend(event.position(), width)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._current is not None and not self._tablet_down:
            self._extend(event.position(), self._current.widths[-1])
            self._end()

    def tabletEvent(self, event: QTabletEvent) -> None:
        kind = event.type()
        erase = event.pointerType() == QPointingDevice.PointerType.Eraser
        width = pressure_width(self._brush, event.pressure(), erase)
        if kind == QTabletEvent.Type.TabletPress:
            self._tablet_down = True
            self._begin(event.position(), width, erase)
        elif kind == QTabletEvent.Type.TabletMove:
            if self._current is not None:
                self._extend(event.position(), width)
        elif kind == QTabletEvent.Type.TabletRelease:
            if self._current is not None:
                self._end()
            self._tablet_down = False
        event.accept()  # no synthesized mouse events

    def _begin(self, pos: QPointF, width: float, erase: bool) -> None:
        if self._backdrop is not None:
            self.clear()  # drawing on an opened image starts a new drawing
        self._current = Stroke(erase=erase)
        self._current.add(pos, width)
        self.strokeStarted.emit()
        self._update_around(self._current)

    def _extend(self, pos: QPointF, width: float) -> None:
        if self._current.add(pos, width):
            self._update_around(self._current, tail=True)
            self.strokeMoved.emit()

    def _end(self) -> None:
        stroke, self._current = self._current, None
        if stroke.erase and not self._strokes:
            self.update()  # erasing an empty canvas changes nothing
            return
        self._commit(stroke)

    def _commit(self, stroke: Stroke) -> None:
        self._strokes.append(stroke)
        self._redo.clear()
        self.rasters.push(stroke)
        self._changed()
        self.strokeFinished.emit()

    def _update_around(self, stroke: Stroke, tail: bool = False) -> None:
        part = Stroke(stroke.points[-3:], stroke.widths[-3:]) if tail else stroke  # what a new sample changes
        self.update(part.bounds().toAlignedRect().adjusted(-2, -2, 2, 2))


class SquareFrame(QWidget):
    """Holds one child widget as the largest centred square that fits (the canvas)."""

    def __init__(self, child: QWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.child = child
        child.setParent(self)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(child.minimumSize())

    def sizeHint(self) -> QSize:
        return self.child.sizeHint()

    def resizeEvent(self, event: QResizeEvent) -> None:
        side = min(self.width(), self.height())
        self.child.setGeometry((self.width() - side) // 2, (self.height() - side) // 2, side, side)
        super().resizeEvent(event)

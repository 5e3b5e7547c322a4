"""Small charts shared by the panels: the probability bars, the 28x28 view, and the
"Why this digit?" heat map (as an image over the 28x28 view and over the canvas)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

from app.widgets import theme

pg.setConfigOptions(antialias=True, foreground=theme.TEXT, background=theme.PLOT_BG)


def plain_plot(parent: QWidget | None = None, **kwargs) -> pg.PlotWidget:
    """A PlotWidget without pan/zoom/menu (charts, not data explorers)."""
    w = pg.PlotWidget(parent=parent, **kwargs)
    w.setMenuEnabled(False)
    w.setMouseEnabled(x=False, y=False)
    w.hideButtons()
    w.getPlotItem().getViewBox().setDefaultPadding(0.02)
    w.setBackground(theme.PLOT_BG)
    w.setAntialiasing(True)
    return w


class ProbabilityChart(pg.PlotWidget):
    """Ten bars, one per digit; the winner highlighted.  Click a bar: ``digitClicked``."""

    digitClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None, compact: bool = False):
        super().__init__(parent=parent)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setBackground(theme.PLOT_BG)
        self.setMinimumHeight(120 if compact else 160)
        item = self.getPlotItem()
        item.setXRange(-0.6, 9.6, padding=0)
        item.setYRange(0, 112, padding=0.02)  # room for the winner's label above 100 %
        item.getAxis("bottom").setTicks([[(i, str(i)) for i in range(10)]])
        item.getAxis("left").setTicks([[(0, "0"), (50, "50"), (100, "100 %")]])
        item.getAxis("left").setWidth(44)
        item.showGrid(x=False, y=True, alpha=0.15)
        self.bars = pg.BarGraphItem(x=np.arange(10), height=np.zeros(10), width=0.72,
                                    brushes=[pg.mkBrush(theme.BAR)] * 10, pen=pg.mkPen(None))
        self.addItem(self.bars)
        self._label = pg.TextItem("", color=theme.ACCENT_DARK, anchor=(0.5, 1.0))
        self.addItem(self._label)
        self._heights = np.zeros(10)
        self._winner: int | None = None
        self.setToolTip("Probability of each digit (the winner in blue)")

    def set_probabilities(self, probs, winner: int | None = None) -> None:
        heights = np.asarray(probs, dtype=float) * 100.0
        if winner is None:
            winner = int(np.argmax(heights))
        brushes = [pg.mkBrush(theme.ACCENT if i == winner else theme.BAR) for i in range(10)]
        self.bars.setOpts(height=heights, brushes=brushes)
        self._heights, self._winner = heights, winner
        self._label.setText(f"{heights[winner]:.0f} %" if heights[winner] < 99.5 else "100 %")
        self._label.setPos(winner, heights[winner] + 1)

    def clear_bars(self) -> None:
        self.bars.setOpts(height=np.zeros(10), brushes=[pg.mkBrush(theme.BAR)] * 10)
        self._label.setText("")
        self._heights, self._winner = np.zeros(10), None

    def heights(self) -> np.ndarray:
        """Bar heights in percent (for tests)."""
        return np.array(self._heights)

    def winner(self) -> int | None:
        return self._winner

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            pos = self.getPlotItem().getViewBox().mapSceneToView(event.position())
            digit = int(round(pos.x()))
            if 0 <= digit <= 9 and abs(pos.x() - digit) <= 0.45:
                self.digitClicked.emit(digit)
                event.accept()
                return
        super().mousePressEvent(event)


#: Attributions weaker than this (of the strongest) are not coloured: background stays clean.
HEAT_FLOOR = 0.06


def _heat_alpha(heat: np.ndarray) -> np.ndarray:
    """|heat| in 0..1 -> an opacity: a gamma lifts the weaker evidence into sight."""
    a = np.abs(np.nan_to_num(np.asarray(heat, dtype=np.float32)))
    a = np.clip(a, 0.0, 1.0) ** 0.7
    a[np.abs(heat) < HEAT_FLOOR] = 0.0
    return a


def _rgb(heat: np.ndarray) -> np.ndarray:
    pos = np.asarray(theme.EVIDENCE_FOR, np.float32)
    neg = np.asarray(theme.EVIDENCE_AGAINST, np.float32)
    return np.where((np.asarray(heat) >= 0)[..., None], pos, neg)


def heat_overlay(heat: np.ndarray) -> QImage:
    """A heat map (H x W in [-1, 1]) as a transparent colour image: warm where the pixel
    pushed the network towards its answer, blue where it pushed against it."""
    alpha = _heat_alpha(heat)
    rgba = np.empty(alpha.shape + (4,), np.uint8)
    rgba[..., :3] = _rgb(heat).astype(np.uint8)
    rgba[..., 3] = (alpha * 255).astype(np.uint8)
    return rgba_image(rgba)


def heat_on_image(image: np.ndarray, heat: np.ndarray) -> QImage:
    """The 28x28 input (white on black), dimmed, with the heat map blended over it."""
    grey = np.asarray(image, np.float32)[..., None] * 0.5
    alpha = (_heat_alpha(heat) * 0.95)[..., None]
    rgb = grey * (1 - alpha) + _rgb(heat) * alpha
    rgba = np.empty(np.asarray(image).shape + (4,), np.uint8)
    rgba[..., :3] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    rgba[..., 3] = 255
    return rgba_image(rgba)


def rgba_image(rgba: np.ndarray) -> QImage:
    """(H, W, 4) uint8 RGBA pixels -> a QImage that owns its pixels."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w = rgba.shape[:2]
    return QImage(rgba.data, w, h, w * 4, QImage.Format.Format_RGBA8888).copy()


def grey_image(arr: np.ndarray) -> QImage:
    """(H, W) uint8 grey pixels -> a QImage that owns its pixels."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    h, w = arr.shape
    return QImage(arr.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


class PixelImage(QLabel):
    """A small grey image (28x28) shown enlarged with square pixels and a thin frame;
    optionally with a "Why this digit?" heat map over it."""

    def __init__(self, size: int = 140, parent: QWidget | None = None):
        super().__init__(parent)
        self._size = size
        self.setFixedSize(QSize(size + 2, size + 2))
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setObjectName("pixelImage")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.heat: np.ndarray | None = None  # the heat map shown, if any
        self.clear_image()

    def set_array(self, arr: np.ndarray | None, heat: np.ndarray | None = None) -> None:
        self.heat = None
        if arr is None:
            self.clear_image()
            return
        arr = np.ascontiguousarray(arr, dtype=np.uint8)
        h, w = arr.shape
        if heat is not None and np.shape(heat) == (h, w):
            self.heat = np.asarray(heat, dtype=np.float32)
            self.set_qimage(heat_on_image(arr, self.heat))
            return
        self.set_qimage(grey_image(arr))

    def set_qimage(self, img: QImage) -> None:
        dpr = self.devicePixelRatioF()
        side = int(self._size * dpr)
        scaled = img.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                            Qt.TransformationMode.FastTransformation)  # show the real pixels
        pix = QPixmap.fromImage(scaled)
        pix.setDevicePixelRatio(dpr)
        self.setPixmap(pix)

    def clear_image(self) -> None:
        self.heat = None
        dpr = self.devicePixelRatioF()
        pix = QPixmap(int(self._size * dpr), int(self._size * dpr))
        pix.setDevicePixelRatio(dpr)
        pix.fill(QColor(0, 0, 0))
        p = QPainter(pix)
        p.setPen(QColor(110, 110, 120))
        p.drawText(QRect(0, 0, self._size, self._size), Qt.AlignmentFlag.AlignCenter, "28 × 28")
        p.end()
        self.setPixmap(pix)

"""Ink: strokes as vectors, painted as solid shapes, into rasters kept up to date stroke by stroke.

A stroke is a list of samples (points in logical pixels, a width each).  Its centre line
runs through the midpoints of the samples with quadratic curves (the samples are the
control points), so it stays smooth however fast the pointer moves; the width follows
the same curve.  The ink is the *envelope* of that line: the union of discs of the
stroke's width along it, with round ends and round turns by construction.

It is painted with round pens along the centre line flattened into short straight
parts (where the width varies, one pen per run of parts of one width).  Qt strokes a
straight part exactly; a wide pen along the *curve* is what left white crescents, seams
and flat cuts when a stroke turned more tightly than the pen is wide (doubling back,
jitter, a sharp turn).

``InkLayer`` keeps one raster of a drawing (the screen's, at the device pixel ratio; the
network's, 280 px): a new stroke is painted on top; undo puts back the pixels kept from
under the stroke, or restores the nearest checkpoint (one every ``CHECKPOINT_EVERY``
strokes) and repaints the few strokes after it; so the cost of a stroke, a snapshot or
an undo does not grow with the number of strokes.
``render_strokes`` pushes a list of strokes through the same code to a grey array, as
``DrawingCanvas.snapshot()`` does, without a widget.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen

log = logging.getLogger(__name__)

INK = QColor(0, 0, 0)
PAPER = QColor(255, 255, 255)
#: The longer side of the picture handed to the network's preprocessing (MNIST's own
#: digits were scanned at about this ratio: 20 px of digit from ~200-300 px of drawing).
SNAPSHOT_SIDE = 280
#: Samples closer than this (logical px) to the previous one are skipped.
MIN_STEP = 0.75
#: How far (logical px) the flattened centre line may stray from the curve.
TOLERANCE = 0.1
#: Where the width varies (pressure), the pens' radii go in steps of this (logical px).
RADIUS_STEP = 0.5
#: A raster keeps a copy of itself every this many strokes: an undo repaints fewer.
CHECKPOINT_EVERY = 16
#: A picture laid over the drawing ("Why this digit?") tints it faintly: the paper under
#: it takes a light tint of its colours (multiplied: black ink stays black) ...
TINT_PAPER = 0.45
#: ... and the ink only a hint of them (screened: the ink stays dark and readable).
TINT_INK = 0.2
#: The rasters' format: Qt paints into it about twice as fast as into a grey image
#: (the ink is grey all the same: red = green = blue).
RASTER = QImage.Format.Format_RGB32
GREY = QImage.Format.Format_Grayscale8


@dataclass
class Stroke:
    """One stroke: its samples (points in logical px, a width each) and whether it erases."""

    points: list[QPointF] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)
    erase: bool = False
    _xy: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), init=False, repr=False, compare=False)

    def add(self, p: QPointF, width: float) -> bool:
        """Append a sample; False (and only the width kept) if it is too close to the last."""
        if self.points:
            last = self.points[-1]
            if abs(p.x() - last.x()) + abs(p.y() - last.y()) < MIN_STEP:
                self.widths[-1] = max(self.widths[-1], width) if len(self.points) == 1 else width
                return False
        self.points.append(QPointF(p))
        self.widths.append(width)
        return True

    def samples(self) -> np.ndarray:
        """The samples as an (n, 3) array of x, y, width (the points' part is kept and only
        grows as points are added: a stroke being drawn is painted again and again)."""
        n, known = len(self.points), len(self._xy)
        stale = known > n or (known and (self._xy[-1, 0] != self.points[known - 1].x()
                                         or self._xy[-1, 1] != self.points[known - 1].y()))
        if stale:
            self._xy, known = np.empty((0, 2)), 0
        if known < n:
            new = np.array([(p.x(), p.y()) for p in self.points[known:]], float).reshape(-1, 2)
            self._xy = np.vstack([self._xy, new])
        return np.column_stack([self._xy, np.asarray(self.widths[:n], float)])

    def bounds(self) -> QRectF:
        """A rectangle holding all the ink of the stroke (logical px)."""
        xs = [p.x() for p in self.points]
        ys = [p.y() for p in self.points]
        w = max(self.widths)
        return QRectF(min(xs) - w, min(ys) - w, max(xs) - min(xs) + 2 * w, max(ys) - min(ys) + 2 * w)


# ---- geometry ------------------------------------------------------------------------------------
def centre_line(stroke: Stroke, tolerance: float = TOLERANCE, radius_step: float = RADIUS_STEP) -> np.ndarray:
    """The stroke's centre line flattened to an (M, 3) array of x, y, radius: straight
    from the first sample to the first midpoint, quadratic from midpoint to midpoint with
    the samples as control points, straight to the last sample.  Each piece is cut into
    enough straight parts that none strays more than ``tolerance`` from the curve and the
    radius changes by about ``radius_step`` at most along each."""
    a = stroke.samples() * (1.0, 1.0, 0.5)  # x, y, radius
    if len(a) <= 1:
        return a
    mids = (a[:-1] + a[1:]) / 2
    starts = np.vstack([a[:1], mids])
    ends = np.vstack([mids, a[-1:]])
    controls = np.vstack([(a[:1] + mids[:1]) / 2, a[1:-1], (mids[-1:] + a[-1:]) / 2])
    # A quadratic's chord error with k parts is |p0 - 2 p1 + p2| / (4 k^2).
    bend = np.hypot(*(starts - 2 * controls + ends)[:, :2].T)
    swing = np.abs(controls[:, 2] - starts[:, 2]) + np.abs(ends[:, 2] - controls[:, 2])
    parts = np.maximum(np.ceil(np.sqrt(bend / (4 * tolerance))), np.ceil(swing / radius_step - 1e-9))
    parts = np.clip(parts, 1, 512).astype(int)
    piece = np.repeat(np.arange(len(parts)), parts)
    t = ((np.arange(parts.sum()) - np.repeat(np.cumsum(parts) - parts, parts)) / parts[piece])[:, None]
    line = np.vstack([(1 - t) ** 2 * starts[piece] + 2 * (1 - t) * t * controls[piece] + t ** 2 * ends[piece],
                      ends[-1:]])
    # Points that coincide are one point, as wide as the widest of them.
    keep = np.concatenate([[True], np.hypot(*np.diff(line[:, :2], axis=0).T) > 1e-4])
    out = line[keep]
    out[:, 2] = np.maximum.reduceat(line[:, 2], np.flatnonzero(keep))
    return out


def pen_runs(line: np.ndarray, radius_step: float = RADIUS_STEP) -> list[tuple[float, np.ndarray]]:
    """Cut a flattened centre line into runs to paint each with one round pen: (pen
    width, (k, 2) points).  A line of one width is one run; where the width varies, a run
    goes on while its radii differ by at most ``radius_step`` and its pen has the largest,
    so the pens cover the envelope and overshoot it by at most one step."""
    if len(line) < 2:
        return []
    r = line[:, 2].tolist()
    if max(r) - min(r) < 1e-9:
        return [(2 * r[0], line[:, :2])]
    runs = []
    start, lo, hi = 0, r[0], r[0]
    for i in range(1, len(r)):
        if max(hi, r[i]) - min(lo, r[i]) > radius_step and i - 1 > start:
            runs.append((2 * hi, line[start:i, :2]))
            start, lo, hi = i - 1, min(r[i - 1], r[i]), max(r[i - 1], r[i])
        else:
            lo, hi = min(lo, r[i]), max(hi, r[i])
    runs.append((2 * hi, line[start:, :2]))
    return runs


def _parts_near(points: np.ndarray, reach: float, rect: QRectF) -> list[np.ndarray]:
    """The runs of consecutive segments of a polyline that come within ``reach`` of ``rect``."""
    lo = np.minimum(points[:-1], points[1:]) - reach
    hi = np.maximum(points[:-1], points[1:]) + reach
    near = np.flatnonzero((hi[:, 0] >= rect.left()) & (lo[:, 0] <= rect.right())
                          & (hi[:, 1] >= rect.top()) & (lo[:, 1] <= rect.bottom()))
    if len(near) == 0:
        return []
    breaks = np.flatnonzero(np.diff(near) > 1)
    firsts = np.concatenate([near[:1], near[breaks + 1]])
    lasts = np.concatenate([near[breaks], near[-1:]])
    return [points[a:b + 2] for a, b in zip(firsts, lasts)]


def paint_stroke(painter: QPainter, stroke: Stroke, within: QRectF | None = None) -> None:
    """Paint one stroke (ink, or paper for an erasing stroke) as the envelope of its centre
    line: round pens along the flattened line, never along the curve itself (Qt offsets a
    curve that turns more tightly than the pen is wide wrongly: crescents, flat cuts).
    ``within`` (logical px): only the parts that reach into it are painted (a widget's
    paint event, while a long stroke is drawn).  The painter should be antialiased."""
    if not stroke.points:
        return
    colour = PAPER if stroke.erase else INK
    line = centre_line(stroke)
    if len(line) == 1:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        x, y, r = line[0]
        painter.drawEllipse(QPointF(x, y), r, r)
        return
    painter.setBrush(Qt.BrushStyle.NoBrush)
    pen = QPen(colour, 1.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin)
    for width, points in pen_runs(line):
        parts = [points] if within is None else _parts_near(points, width / 2 + 2, within)
        if not parts:
            continue
        path = QPainterPath()  # the parts of one run as one path: one fill, no seams
        for part in parts:
            xy = part.tolist()
            path.moveTo(*xy[0])
            for x, y in xy[1:]:
                path.lineTo(x, y)
        pen.setWidthF(width)
        painter.setPen(pen)
        painter.drawPath(path)


def paint_tint(painter: QPainter, image: QImage, target: QRectF) -> None:
    """Lay ``image`` (transparent where it has nothing to show) faintly over what the
    painter has painted, stretched over ``target``: a light tint on the paper, a hint on
    the ink."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Multiply)
    painter.setOpacity(TINT_PAPER)
    painter.drawImage(target, image)
    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Screen)
    painter.setOpacity(TINT_INK)
    painter.drawImage(target, image)
    painter.restore()


def picture_on_paper(image: QImage, width: int, height: int, dpr: float = 1.0) -> QImage:
    """``image`` scaled to fit a ``width`` x ``height`` (logical px) sheet of white paper,
    centred, keeping its aspect ratio; at the device pixel ratio ``dpr``."""
    out = QImage(round(width * dpr), round(height * dpr), QImage.Format.Format_RGB32)
    out.setDevicePixelRatio(dpr)
    out.fill(PAPER)
    p = QPainter(out)
    p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    target = QRectF(0, 0, width, height)
    scaled = image.size().scaled(QSize(width, height), Qt.AspectRatioMode.KeepAspectRatio)
    rect = QRectF(0, 0, scaled.width(), scaled.height())
    rect.moveCenter(target.center())
    p.drawImage(rect, image)
    p.end()
    return out


# ---- rasters -------------------------------------------------------------------------------------
def snapshot_size(width: float, height: float, max_side: int = SNAPSHOT_SIDE) -> tuple[int, int, float]:
    """The network's picture of a ``width`` x ``height`` drawing (logical px): its pixel
    size and the scale from logical pixels (never enlarged)."""
    width, height = max(1.0, float(width)), max(1.0, float(height))
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale)), scale


class InkLayer:
    """One raster of a drawing, kept up to date stroke by stroke (black ink on white).

    ``scale`` maps logical pixels to the image's pixels; ``dpr`` is the image's device
    pixel ratio (a painter on it applies it).  Going back (undo) costs little however many
    strokes there are: before painting a stroke the layer keeps the pixels under it (for
    the last ``checkpoint_every`` strokes), so undoing one of those puts them back; and
    every ``checkpoint_every`` strokes it keeps a compressed copy of itself, so going back
    further repaints fewer than ``checkpoint_every`` strokes.  ``painted`` counts the
    strokes painted since the layer was made, copies included: the work done, which tests
    and benchmarks read.
    """

    def __init__(self, width: int, height: int, scale: float = 1.0, dpr: float = 1.0,
                 checkpoint_every: int = CHECKPOINT_EVERY):
        self.scale = scale
        self.dpr = dpr
        self.checkpoint_every = checkpoint_every
        self.painted = 0
        self._size = (max(1, int(width)), max(1, int(height)))
        self._image = self._blank()
        self._count = 0
        self._checkpoints: dict[int, bytes] = {}  # stroke count -> the raster then, grey, zlib
        self._patches: list[tuple[int, int, np.ndarray]] = []  # (x, y, grey pixels) under the last strokes

    def _blank(self) -> QImage:
        img = QImage(*self._size, RASTER)
        img.setDevicePixelRatio(self.dpr)
        img.fill(PAPER)
        return img

    @property
    def image(self) -> QImage:
        """The raster itself (do not paint on it: it would go out of step)."""
        return self._image

    @property
    def count(self) -> int:
        """How many strokes the raster shows."""
        return self._count

    def _paint(self, target: QImage, strokes: Sequence[Stroke]) -> None:
        if not strokes:
            return
        p = QPainter(target)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        if self.scale != 1.0:
            p.scale(self.scale, self.scale)
        for s in strokes:
            paint_stroke(p, s)
        p.end()
        self.painted += len(strokes)

    def _pixels(self) -> np.ndarray:
        """The raster's pixels as an (H, W, 4) view (blue, green, red, 255)."""
        w, h = self._size
        return np.frombuffer(self._image.bits(), np.uint8, count=h * self._image.bytesPerLine()) \
            .reshape(h, -1)[:, :4 * w].reshape(h, w, 4)

    def _keep_patch(self, stroke: Stroke) -> None:
        if not self.checkpoint_every or not stroke.points:
            return
        box = stroke.bounds()
        k = self.scale * self.dpr
        w, h = self._size
        x0, y0 = max(0, int(box.left() * k) - 2), max(0, int(box.top() * k) - 2)
        x1, y1 = min(w, int(box.right() * k) + 3), min(h, int(box.bottom() * k) + 3)
        patch = self._pixels()[y0:max(y0, y1), x0:max(x0, x1), 1].copy()  # green: the ink is grey
        self._patches.append((x0, y0, patch))
        del self._patches[:-self.checkpoint_every]

    def _keep_checkpoint(self) -> None:
        if self.checkpoint_every and self._count and self._count % self.checkpoint_every == 0:
            grey = self._image.convertToFormat(GREY)  # lossless: the ink is grey
            self._checkpoints[self._count] = zlib.compress(grey.constBits(), 1)

    def _restore(self, count: int) -> None:
        self._patches.clear()
        if count == 0:
            self._image = self._blank()
            return
        data = zlib.decompress(self._checkpoints[count])
        w, h = self._size
        img = QImage(data, w, h, len(data) // h, GREY).convertToFormat(RASTER)  # a copy that owns its pixels
        img.setDevicePixelRatio(self.dpr)
        self._image = img

    def push(self, stroke: Stroke) -> None:
        """Paint one more stroke on top."""
        self._keep_patch(stroke)
        self._paint(self._image, [stroke])
        self._count += 1
        self._keep_checkpoint()

    def truncate(self, strokes: Sequence[Stroke]) -> None:
        """Go back to ``strokes``, the first ``len(strokes)`` of the strokes painted (undo):
        put back the pixels kept under the last strokes, or restore the last checkpoint
        at or before them and repaint the strokes after it (keeping their pixels, so the
        next undos only put pixels back)."""
        n = len(strokes)
        if n > self._count:
            raise ValueError(f"cannot go back to {n} strokes: the layer shows {self._count}")
        self._checkpoints = {k: v for k, v in self._checkpoints.items() if k <= n}
        if self._count - n <= len(self._patches):
            pixels = self._pixels()
            while self._count > n:
                x, y, patch = self._patches.pop()
                pixels[y:y + patch.shape[0], x:x + patch.shape[1], :3] = patch[..., None]
                self._count -= 1
            return
        start = max(self._checkpoints, default=0)
        self._restore(start)
        for stroke in strokes[start:n]:  # keeping their patches: the next undos are cheap
            self._keep_patch(stroke)
            self._paint(self._image, [stroke])
        self._count = n

    def reset(self, strokes: Sequence[Stroke] = ()) -> None:
        """Paint ``strokes`` afresh on white paper (clear, resize)."""
        self._image = self._blank()
        self._checkpoints.clear()
        self._patches.clear()
        self._count = 0
        step = self.checkpoint_every or max(1, len(strokes))
        for i in range(0, len(strokes), step):  # one painter per run between checkpoints
            chunk = strokes[i:i + step]
            self._paint(self._image, chunk)
            self._count += len(chunk)
            self._keep_checkpoint()

    def with_stroke(self, stroke: Stroke | None) -> QImage:
        """A copy of the raster with ``stroke`` (one being drawn) painted on it."""
        img = self._image.copy()
        if stroke is not None:
            self._paint(img, [stroke])
        return img

    def memory_bytes(self) -> int:
        """Bytes held by the raster, its checkpoints and the pixels kept for undo."""
        return (self._image.sizeInBytes() + sum(len(v) for v in self._checkpoints.values())
                + sum(patch.nbytes for _, _, patch in self._patches))


class DrawingRasters:
    """The rasters of one drawing, kept in step with its strokes: the screen's (logical
    size times the device pixel ratio) and the network's (``snapshot``: longer side
    ``SNAPSHOT_SIDE``, or another ``max_side`` asked for, made on first use)."""

    def __init__(self, width: int, height: int, dpr: float = 1.0):
        self._logical = (max(1, int(width)), max(1, int(height)))
        self._dpr = max(1.0, float(dpr))
        self.screen = self._screen_layer()
        self._snapshots: dict[int, InkLayer] = {SNAPSHOT_SIDE: self._snapshot_layer(SNAPSHOT_SIDE)}
        self._painted_by_dropped = 0  # strokes painted by rasters since replaced

    def _screen_layer(self) -> InkLayer:
        w, h = self._logical
        return InkLayer(round(w * self._dpr), round(h * self._dpr), 1.0, self._dpr)

    def _snapshot_layer(self, max_side: int) -> InkLayer:
        return InkLayer(*snapshot_size(*self._logical, max_side))

    def layers(self) -> list[InkLayer]:
        return [self.screen, *self._snapshots.values()]

    @property
    def painted(self) -> int:
        """Strokes painted by all the rasters so far (the work done)."""
        return self._painted_by_dropped + sum(layer.painted for layer in self.layers())

    def resize(self, width: int, height: int, dpr: float, strokes: Sequence[Stroke]) -> None:
        """A new logical size or device pixel ratio: every raster is painted afresh."""
        logical, dpr = (max(1, int(width)), max(1, int(height))), max(1.0, float(dpr))
        if (logical, dpr) == (self._logical, self._dpr):
            return
        self._painted_by_dropped = self.painted
        self._logical, self._dpr = logical, dpr
        self.screen = self._screen_layer()
        self._snapshots = {side: self._snapshot_layer(side) for side in self._snapshots}
        self.reset(strokes)
        log.debug("rasters repainted at %dx%d (ratio %.2f): %d strokes", *logical, dpr, len(strokes))

    def push(self, stroke: Stroke) -> None:
        for layer in self.layers():
            layer.push(stroke)

    def truncate(self, strokes: Sequence[Stroke]) -> None:
        for layer in self.layers():
            layer.truncate(strokes)

    def reset(self, strokes: Sequence[Stroke] = ()) -> None:
        for layer in self.layers():
            layer.reset(strokes)

    def snapshot(self, strokes: Sequence[Stroke], current: Stroke | None = None,
                 max_side: int = SNAPSHOT_SIDE) -> np.ndarray:
        """The network's grey picture of ``strokes`` (those painted) and ``current``."""
        layer = self._snapshots.get(max_side)
        if layer is None:
            for side in [side for side in self._snapshots if side != SNAPSHOT_SIDE]:
                self._painted_by_dropped += self._snapshots.pop(side).painted  # one extra size at most
            layer = self._snapshots[max_side] = self._snapshot_layer(max_side)
            layer.reset(strokes)
        return _grey_of_raster(layer.with_stroke(current) if current is not None else layer.image)

    def memory_bytes(self) -> int:
        return sum(layer.memory_bytes() for layer in self.layers())


def render_strokes(strokes: Sequence[Stroke], width: float, height: float,
                   max_side: int = SNAPSHOT_SIDE) -> np.ndarray:
    """``strokes`` drawn on a ``width`` x ``height`` canvas (logical px) as the grey uint8
    array ``DrawingCanvas.snapshot(max_side)`` hands the network (black ink on white,
    longer side at most ``max_side``), through the same code, without a widget."""
    w, h, scale = snapshot_size(width, height, max_side)
    layer = InkLayer(w, h, scale, checkpoint_every=0)
    layer.reset(strokes)
    return _grey_of_raster(layer.image)


def _grey_of_raster(img: QImage) -> np.ndarray:
    """A raster's pixels as an (H, W) uint8 copy: its green channel (the ink is grey:
    red = green = blue), several times faster than Qt's conversion."""
    w, h = img.width(), img.height()
    rows = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, -1)
    return rows[:, 1:4 * w:4].copy()

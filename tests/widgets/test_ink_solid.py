"""Solid ink: whatever path a stroke takes, every pixel inside its envelope is painted.

The envelope of a stroke is the union of discs of the stroke's width along its centre
line, the midpoint-quadratic curve through its samples (computed here independently of
the canvas code, by dense sampling).  Shrunk by a pixel for antialiasing, every pixel in
it must be ink, in the three pictures the canvas hands out: the screen (``grab()``), the
``snapshot()`` the network gets, and ``display_image()``; grown by a pixel and a half,
nothing outside it may be.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtTest import QTest

from app.widgets.canvas import MAX_BRUSH, MIN_BRUSH, DrawingCanvas, Stroke
from tests.widgets.conftest import save_artifact
from tests.widgets.helpers import drag, tablet_stroke

SIDE = 300
#: A pixel whose centre lies this far inside the envelope must be (almost) black...
SHRINK = 1.0
#: ... and one this far outside it must stay white.
GROW = 1.5
SOLID = 24  # grey level at most: ink (0 = black)
PAPER = 250  # grey level at least: paper


# ---- the envelope, computed independently of the canvas ------------------------------------
def centre_samples(points, widths, step: float = 1.0) -> np.ndarray:
    """Dense (x, y, width) samples of the stroke's centre line: a straight piece from the
    first sample to the first midpoint, quadratic pieces through the samples from midpoint
    to midpoint, a straight piece to the last sample; the width follows the same curve."""
    a = np.column_stack([np.asarray(points, float), np.asarray(widths, float)])
    if len(a) == 1:
        return a
    if len(a) == 2:
        pieces = [(a[0], (a[0] + a[1]) / 2, a[1])]
    else:
        mids = (a[:-1] + a[1:]) / 2
        pieces = [(a[0], (a[0] + mids[0]) / 2, mids[0])]
        pieces += [(mids[i - 1], a[i], mids[i]) for i in range(1, len(a) - 1)]
        pieces.append((mids[-1], (mids[-1] + a[-1]) / 2, a[-1]))
    out = []
    for p0, p1, p2 in pieces:
        length = np.hypot(*(p1[:2] - p0[:2])) + np.hypot(*(p2[:2] - p1[:2]))
        t = np.linspace(0.0, 1.0, max(2, int(math.ceil(length / step)) + 1))[:, None]
        out.append((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2)
    return np.concatenate(out)


def outside_distance(samples: np.ndarray, shape, scale: float = 1.0) -> np.ndarray:
    """For each pixel of an image ``shape`` showing logical coordinates times ``scale``:
    how far its centre lies outside the union of the discs (negative: inside), in pixels."""
    xy, r = samples[:, :2] * scale, samples[:, 2] * scale / 2
    h, w = shape
    out = np.full(shape, np.inf, np.float32)
    x0, y0 = (np.floor(xy.min(axis=0) - r.max()) - 3).astype(int).clip(0)
    x1, y1 = np.minimum(np.ceil(xy.max(axis=0) + r.max()).astype(int) + 3, (w, h))
    if x0 >= x1 or y0 >= y1:
        return out
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5
    best = np.full((len(ys), len(xs)), np.inf, np.float32)
    for i in range(0, len(xy), 48):
        c, rr = xy[i:i + 48].astype(np.float32), r[i:i + 48].astype(np.float32)
        dx2 = (xs[None, None, :] - c[:, 0, None, None]) ** 2
        dy2 = (ys[None, :, None] - c[:, 1, None, None]) ** 2
        best = np.minimum(best, (np.sqrt(dx2 + dy2) - rr[:, None, None]).min(axis=0))
    out[y0:y1, x0:x1] = best
    return out


def grey(image) -> np.ndarray:
    """A QImage or QPixmap of grey ink on white as an (H, W) uint8 array (its green channel)."""
    if isinstance(image, QPixmap):
        image = image.toImage()
    if image.format() not in (QImage.Format.Format_RGB32, QImage.Format.Format_ARGB32_Premultiplied,
                              QImage.Format.Format_ARGB32):
        image = image.convertToFormat(QImage.Format.Format_RGB32)
    w, h = image.width(), image.height()
    rows = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h).reshape(h, -1)
    return rows[:, 1:4 * w:4].copy()


def pictures(canvas) -> dict[str, tuple[np.ndarray, float, np.ndarray]]:
    """The canvas's three pictures, each with the scale from logical pixels to its pixels
    and the pixels to judge (all but the thin frame drawn around the screen)."""
    screen = grey(canvas.grab())
    dpr = screen.shape[1] / canvas.width()
    inner = np.zeros(screen.shape, bool)
    frame = math.ceil(dpr)  # one logical pixel
    inner[frame:-frame, frame:-frame] = True
    small = canvas.snapshot()
    full = canvas.snapshot(max_side=10_000)
    return {"screen": (screen, dpr, inner),
            "display_image": (grey(canvas.display_image()), dpr, np.ones(screen.shape, bool)),
            "snapshot": (small, small.shape[1] / canvas.width(), np.ones(small.shape, bool)),
            "snapshot full size": (full, 1.0, np.ones(full.shape, bool))}


def defects(canvas, stroke: Stroke, erase: bool = False) -> dict[str, tuple[int, int]]:
    """Per picture: (pixels inside the envelope that are not ink, pixels well outside it that
    are not paper); for an erasing stroke, (pixels inside that are not paper, 0)."""
    samples = centre_samples([(p.x(), p.y()) for p in stroke.points], stroke.widths)
    found, distances = {}, {}
    for name, (img, scale, judged) in pictures(canvas).items():
        key = (scale, img.shape)
        if key not in distances:
            distances[key] = outside_distance(samples, img.shape, scale)
        dist = distances[key]
        inside = judged & (dist <= -SHRINK)
        if erase:
            holes, stray = int((inside & (img < PAPER)).sum()), 0
        else:
            holes = int((inside & (img > SOLID)).sum())
            stray = int((judged & (dist > GROW) & (img < PAPER)).sum())
        if holes or stray:
            found[name] = (holes, stray)
    return found


# ---- the hard paths --------------------------------------------------------------------------
def hard_paths() -> dict[str, list[tuple[float, float]]]:
    c = SIDE / 2
    paths = {
        # doubles back over a short distance (the crescents of the report)
        "reverse": [(c - 20, c), (c, c), (c + 12, c + 1), (c + 4, c), (c - 8, c + 1), (c - 14, c)],
        "reverse twice": [(c, c), (c + 9, c - 2), (c + 1, c), (c + 10, c + 2), (c + 2, c + 1)],
        # a shaky hand: one pixel back and forth while moving slowly
        "jitter": [(c + (i % 2), c - 12 + i * 1.5) for i in range(16)],
        "jitter in place": [(c + (i % 2), c + (i // 2) % 2) for i in range(12)],
        # sharp turns: a V, and a turn of almost 180 degrees in one sample
        "sharp V": [(c - 50, c + 50), (c, c - 50), (c + 50, c + 50)],
        "hairpin": [(c - 60, c), (c + 50, c), (c - 40, c + 6)],
        # a loop smaller than the brush
        "small loop": [(c + 8 * math.cos(a), c + 8 * math.sin(a)) for a in np.linspace(0, 2.5 * math.pi, 14)],
        # a small "1" in the corner (read as an 8 because of a hole)
        "tiny 1 in the corner": [(16, 14), (17, 20), (16, 27), (17, 33), (16, 38)],
        "dot": [(c, c)],
        "two samples": [(c, c), (c + 3, c + 1)],
    }
    rng = np.random.default_rng(13)
    for i in range(4):  # random short scribbles with reversals
        steps = rng.normal(0, rng.choice([1.5, 4.0, 10.0]), size=(int(rng.integers(3, 9)), 2))
        paths[f"scribble {i}"] = [(c + x, c + y) for x, y in np.cumsum(steps, axis=0).round()]
    return paths


PRESSURES = [0.1, 1.0, 0.3, 0.9, 0.05, 0.6, 1.0, 0.2]


def make_stroke(path, size: float, pressure: bool, erase: bool = False) -> Stroke:
    widths = [size * (0.25 + 0.75 * PRESSURES[i % len(PRESSURES)]) if pressure else float(size)
              for i in range(len(path))]
    return Stroke([QPointF(x, y) for x, y in path], widths, erase=erase)


@pytest.fixture
def canvas(qtbot):
    c = DrawingCanvas()
    c.resize(SIDE, SIDE)
    qtbot.addWidget(c)
    c.show()
    qtbot.waitExposed(c)
    return c


@pytest.mark.parametrize("pressure", [False, True], ids=["uniform", "pressure"])
def test_ink_is_solid_at_every_brush_size(canvas, pressure):
    failures = []
    for size in range(MIN_BRUSH, MAX_BRUSH + 1):
        for name, path in hard_paths().items():
            canvas.clear()
            stroke = make_stroke(path, size, pressure)
            canvas.add_stroke(stroke)
            found = defects(canvas, stroke)
            if found:
                failures.append(f"{name} at {size} px: {found}")
    assert not failures, f"{len(failures)} strokes with holes or stray ink, e.g.\n" + "\n".join(failures[:15])


def test_wide_reversing_stroke_drawn_with_the_mouse_is_solid(canvas):
    canvas.set_brush_size(MAX_BRUSH)
    # Before, Qt's wide pen along this curve left a white crescent inside the ink.
    drag(canvas, [QPoint(x, y) for x, y in [(130, 150), (150, 150), (160, 152), (150, 150), (140, 152),
                                            (150, 151), (158, 150)]])
    save_artifact(canvas, "ink_reversing_60px.png")
    assert defects(canvas, canvas.strokes[-1]) == {}


def test_tiny_one_in_the_corner_is_solid(canvas):
    # A quick down-up-down: before, it was painted as a ring (an 0 or an 8 to the network).
    canvas.set_brush_size(22)
    drag(canvas, [QPoint(20, 20), QPoint(20, 15), QPoint(19, 25), QPoint(20, 20)])
    save_artifact(canvas, "ink_tiny_one.png")
    assert defects(canvas, canvas.strokes[-1]) == {}


def test_small_one_with_a_shaky_retrace_is_solid(canvas):
    # Before, holes inside this small 1 made the network read it as an 8 (99 %).
    canvas.set_brush_size(18)
    drag(canvas, [QPoint(x, y) for x, y in [(30, 20), (31, 16), (31, 25), (29, 34), (29, 28), (29, 38), (30, 48),
                                            (31, 58), (30, 52), (30, 61)]])
    save_artifact(canvas, "ink_small_one.png")
    assert defects(canvas, canvas.strokes[-1]) == {}


def test_stylus_stroke_with_changing_pressure_is_solid(canvas):
    canvas.set_brush_size(50)
    points = [QPoint(100, 150), QPoint(140, 150), QPoint(150, 152), QPoint(138, 150), QPoint(120, 153),
              QPoint(126, 150), QPoint(160, 150), QPoint(200, 160)]
    tablet_stroke(canvas, points, [0.2, 1.0, 0.1, 0.9, 0.3, 1.0, 0.05, 0.7])
    assert defects(canvas, canvas.strokes[-1]) == {}


def test_stroke_in_progress_is_solid(canvas):
    """While the button is held the stroke is painted by another path: solid too."""
    canvas.set_brush_size(MAX_BRUSH)
    points = [QPoint(120, 150), QPoint(150, 150), QPoint(162, 151), QPoint(150, 150), QPoint(130, 151)]
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[0])
    for p in points[1:]:
        QTest.mouseMove(canvas, p)
    assert canvas.drawing and not canvas.strokes
    found = defects(canvas, canvas._current)
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[-1])
    assert found == {}


@pytest.mark.parametrize("size", [MIN_BRUSH, 13, 22, 41, MAX_BRUSH])
def test_erasing_along_hard_paths_leaves_clean_paper(canvas, size):
    failures = []
    for name, path in hard_paths().items():
        canvas.clear()
        canvas.add_stroke(Stroke([QPointF(SIDE / 2, SIDE / 2)], [3.0 * SIDE]))  # all black
        stroke = make_stroke(path, size * 1.5, pressure=False, erase=True)
        canvas.add_stroke(stroke)
        found = defects(canvas, stroke, erase=True)
        if found:
            failures.append(f"{name}: {found}")
    assert not failures, "\n".join(failures)

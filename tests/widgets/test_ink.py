"""The rasteriser (app.widgets.ink) and the canvas's incremental rasters: the picture the
network gets is exactly ``render_strokes`` of the strokes, whatever was drawn, undone or
redone; and the work of a stroke, a snapshot or an undo does not grow with the stroke count
(counted in strokes painted, not timed)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from app.widgets import ink
from app.widgets.canvas import Stroke
from app.widgets.ink import CHECKPOINT_EVERY, SNAPSHOT_SIDE, DrawingRasters, render_strokes
from tests.widgets.helpers import drag, line, tablet_stroke
from tests.widgets.test_ink_solid import SIDE, canvas, grey  # noqa: F401 - canvas: the same fixture


def random_strokes(count: int, seed: int = 0) -> list[Stroke]:
    rng = np.random.default_rng(seed)
    strokes = []
    for _ in range(count):
        n = int(rng.integers(1, 12))
        pts = rng.uniform(10, SIDE - 10, 2) + np.cumsum(rng.normal(0, 12, (n, 2)), axis=0)
        size = float(rng.integers(4, 61))
        widths = size * rng.uniform(0.25, 1.0, n) if rng.random() < 0.3 else np.full(n, size)
        strokes.append(Stroke([QPointF(x, y) for x, y in pts], widths.tolist(), erase=rng.random() < 0.15))
    return strokes


def screen_pixels(canvas) -> np.ndarray:
    return grey(canvas.rasters.screen.image)


def fresh_screen(canvas) -> np.ndarray:
    """The screen raster painted from scratch from the canvas's strokes."""
    fresh = DrawingRasters(canvas.width(), canvas.height(), canvas.devicePixelRatioF())
    fresh.reset(canvas.strokes)
    return grey(fresh.screen.image)


def test_render_strokes_is_the_snapshot(canvas):
    drag(canvas, line(40, 60, 260, 220))
    tablet_stroke(canvas, line(60, 240, 250, 40), np.linspace(0.1, 1.0, len(line(60, 240, 250, 40))))
    drag(canvas, line(150, 20, 150, 280), button=Qt.MouseButton.RightButton)
    for s in random_strokes(5, seed=1):
        canvas.add_stroke(s)
    strokes = canvas.strokes
    assert len(strokes) == 8
    small = canvas.snapshot()
    assert small.shape == (SNAPSHOT_SIDE, SNAPSHOT_SIDE) and small.dtype == np.uint8
    assert np.array_equal(small, render_strokes(strokes, SIDE, SIDE))
    assert np.array_equal(canvas.snapshot(max_side=10_000), render_strokes(strokes, SIDE, SIDE, max_side=10_000))
    assert (small < 128).any() and (small > 128).any()


def test_render_strokes_without_a_widget():
    """Synthetic strokes through the canvas's own code path: any size, never enlarged."""
    strokes = [Stroke([QPointF(100, 100), QPointF(400, 300)], [30.0, 30.0])]
    wide = render_strokes(strokes, 560, 420)
    assert wide.shape == (210, 280)  # the longer side is SNAPSHOT_SIDE
    assert wide[round(200 * 0.5), round(250 * 0.5)] < 30  # the middle of the line, at half scale
    assert render_strokes(strokes, 200, 100).shape == (100, 200)
    assert render_strokes([], 300, 300).min() == 255


def test_snapshot_while_drawing_has_the_stroke_in_progress(canvas):
    drag(canvas, line(40, 100, 260, 100))
    points = line(40, 200, 260, 200)
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[0])
    for p in points[1:]:
        QTest.mouseMove(canvas, p)
    current = canvas._current
    assert canvas.drawing and len(canvas.strokes) == 1
    assert np.array_equal(canvas.snapshot(), render_strokes([*canvas.strokes, current], SIDE, SIDE))
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[-1])
    assert np.array_equal(canvas.snapshot(), render_strokes(canvas.strokes, SIDE, SIDE))


def test_undo_redo_and_new_strokes_keep_every_raster_exact(canvas):
    """A long random session crossing many checkpoints: after every step the rasters are
    exactly what painting the remaining strokes from scratch gives."""
    rng = np.random.default_rng(7)
    pool = iter(random_strokes(1000, seed=2))
    deepest = 0
    for step in range(100):
        action = rng.choice(["add", "adds", "adds", "undo", "undos", "redo", "redos"])
        burst = int(rng.integers(2, 3 * CHECKPOINT_EVERY))
        if action == "add" or not canvas.strokes:
            canvas.add_stroke(next(pool))
        elif action == "adds":
            for _ in range(burst):
                canvas.add_stroke(next(pool))
        elif action == "undo":
            canvas.undo()
        elif action == "undos":
            for _ in range(burst):
                canvas.undo()
        elif action == "redo":
            canvas.redo()
        else:
            for _ in range(burst):
                canvas.redo()
        deepest = max(deepest, len(canvas.strokes))
        if step % 10 == 0 or step >= 97:
            assert np.array_equal(canvas.snapshot(), render_strokes(canvas.strokes, SIDE, SIDE)), step
            assert np.array_equal(screen_pixels(canvas), fresh_screen(canvas)), step
    assert deepest > 4 * CHECKPOINT_EVERY, deepest
    canvas.clear()
    assert canvas.snapshot().min() == 255 and screen_pixels(canvas).min() == 255


def add_many(canvas, count: int, seed: int) -> None:
    for s in random_strokes(count, seed):
        canvas.add_stroke(s)


@pytest.mark.parametrize("count", [40, 600])
def test_work_per_stroke_snapshot_and_undo_does_not_grow_with_the_strokes(canvas, count):
    layers = len(canvas.rasters.layers())  # the screen's and the network's
    add_many(canvas, count, seed=count)
    r = canvas.rasters

    before = r.painted
    canvas.add_stroke(random_strokes(1, seed=99)[0])
    assert r.painted - before == layers  # one stroke, once per raster

    before = r.painted
    for _ in range(5):
        canvas.snapshot()
    assert r.painted == before  # a copy of a raster, nothing repainted

    # Undo after undo: a few strokes repainted at most per undo, about one on average.
    work = []
    undos = min(3 * CHECKPOINT_EVERY, count)
    for _ in range(undos):
        before = r.painted
        canvas.undo()
        work.append(r.painted - before)
    assert max(work) <= layers * (CHECKPOINT_EVERY - 1)
    assert sum(work) <= layers * len(work)
    for _ in range(undos):
        before = r.painted
        canvas.redo()
        assert r.painted - before == layers
    assert len(canvas.strokes) == count + 1
    assert np.array_equal(canvas.snapshot(), render_strokes(canvas.strokes, SIDE, SIDE))


def test_memory_of_the_rasters_is_bounded(canvas):
    add_many(canvas, 300, seed=3)
    # The rasters themselves, a compressed grey copy every CHECKPOINT_EVERY strokes and the
    # pixels under the last strokes: far less than a full copy per stroke.
    full_copies = 300 * (canvas.rasters.screen.image.sizeInBytes() + SNAPSHOT_SIDE ** 2 * 4)
    assert canvas.rasters.memory_bytes() < 0.05 * full_copies


def test_resize_repaints_at_the_new_size(canvas):
    add_many(canvas, 30, seed=4)
    canvas.resize(420, 420)
    assert canvas.rasters.screen.image.width() == round(420 * canvas.devicePixelRatioF())
    assert np.array_equal(canvas.snapshot(), render_strokes(canvas.strokes, 420, 420))
    canvas.undo()
    assert np.array_equal(canvas.snapshot(), render_strokes(canvas.strokes, 420, 420))
    assert np.array_equal(screen_pixels(canvas), fresh_screen(canvas))


def test_an_opened_image_is_shown_but_not_in_the_snapshot(canvas):
    from PySide6.QtGui import QColor, QImage

    picture = QImage(100, 50, QImage.Format.Format_RGB32)
    picture.fill(QColor(20, 20, 20))
    canvas.show_image(picture, "seven.png")
    shown = grey(canvas.display_image())
    assert shown[SIDE // 2, SIDE // 2] < 40 and shown[10, SIDE // 2] == 255  # scaled to the width, centred
    assert canvas.snapshot().min() == 255 and not canvas.has_ink()
    drag(canvas, [QPoint(50, 50), QPoint(80, 80)])  # drawing on it starts afresh
    assert not canvas.has_image() and len(canvas.strokes) == 1
    assert grey(canvas.display_image())[SIDE // 2, SIDE // 2] == 255


def test_stroke_geometry_helpers():
    s = Stroke([QPointF(0, 0), QPointF(10, 0), QPointF(20, 0)], [10.0, 10.0, 10.0])
    centre = ink.centre_line(s)
    assert centre[0].tolist() == [0, 0, 5] and centre[-1].tolist() == [20, 0, 5]
    [(width, points)] = ink.pen_runs(centre)  # one width: one pen along the whole line
    assert width == 10.0 and np.array_equal(points, centre[:, :2])
    varying = Stroke([QPointF(0, 0), QPointF(40, 0)], [4.0, 40.0])
    runs = ink.pen_runs(ink.centre_line(varying))
    widths = [w for w, _ in runs]
    assert len(runs) > 10 and widths == sorted(widths) and widths[-1] == pytest.approx(40.0)
    # consecutive runs share their end point: no gap between pens
    assert all(np.allclose(a[-1], b[0]) for (_, a), (_, b) in zip(runs, runs[1:]))

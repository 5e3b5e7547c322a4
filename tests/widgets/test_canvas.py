"""The drawing canvas on its own: mouse and stylus strokes, undo/redo/clear, smoothness."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from app.widgets.canvas import DrawingCanvas
from tests.widgets.helpers import drag, line, tablet_stroke


@pytest.fixture
def canvas(qtbot):
    c = DrawingCanvas()
    c.resize(300, 300)
    qtbot.addWidget(c)
    c.show()
    qtbot.waitExposed(c)
    return c


def ink(canvas) -> np.ndarray:
    return canvas.snapshot(max_side=10_000) < 128  # full size: pixel coordinates as drawn


def test_mouse_stroke_draws_and_emits(qtbot, canvas):
    assert canvas.is_empty() and not ink(canvas).any()
    with qtbot.waitSignals([canvas.strokeStarted, canvas.strokeFinished, canvas.contentChanged], timeout=1000):
        drag(canvas, line(50, 150, 250, 150))
    assert len(canvas.strokes) == 1
    dark = ink(canvas)
    assert dark[150, 60:240].all()  # a continuous line
    thickness = dark[:, 150].sum()
    assert abs(thickness - canvas.brush_size()) <= 3


def connected_parts(mask: np.ndarray) -> int:
    """Number of 8-connected ink regions (a small flood fill; no scipy needed)."""
    seen = np.zeros_like(mask, dtype=bool)
    parts = 0
    h, w = mask.shape
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        parts += 1
        stack = [(y, x)]
        seen[y, x] = True
        while stack:
            cy, cx = stack.pop()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = cy + dy, cx + dx
                    if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
    return parts


def test_fast_pointer_leaves_no_gaps_and_stays_smooth(canvas):
    # Three samples only, far apart, as a very fast move gives: still one unbroken stroke,
    # drawn as a curve that rounds the corner instead of a sharp polyline.
    drag(canvas, [QPoint(40, 40), QPoint(260, 60), QPoint(150, 260)])
    dark = ink(canvas)
    assert connected_parts(dark) == 1
    assert dark[50, 150] and dark[160, 205] and dark[82, 218]  # on the curve
    assert not dark[60, 255]  # the corner of the polyline is cut: smooth


def test_antialiased_edges(canvas):
    drag(canvas, line(40, 60, 260, 200))
    grey = canvas.snapshot(max_side=10_000)
    partial = ((grey > 20) & (grey < 235)).sum()
    assert partial > 100  # soft edge pixels, not a jagged black/white line


def test_undo_redo_clear(qtbot, canvas):
    drag(canvas, line(50, 100, 250, 100))
    drag(canvas, line(50, 200, 250, 200))
    assert len(canvas.strokes) == 2 and canvas.can_undo() and not canvas.can_redo()
    canvas.undo()
    assert len(canvas.strokes) == 1 and ink(canvas)[100, 150] and not ink(canvas)[200, 150]
    assert canvas.can_redo()
    canvas.redo()
    assert len(canvas.strokes) == 2 and ink(canvas)[200, 150]
    canvas.undo()
    drag(canvas, line(150, 20, 150, 280))
    assert not canvas.can_redo()  # a new stroke forgets what was undone
    with qtbot.waitSignal(canvas.cleared, timeout=1000):
        canvas.clear()
    assert canvas.is_empty() and not ink(canvas).any() and not canvas.can_undo()


def test_tablet_pressure_changes_the_width(canvas):
    tablet_stroke(canvas, line(40, 80, 260, 80), pressure=0.15)
    tablet_stroke(canvas, line(40, 200, 260, 200), pressure=1.0)
    light, heavy = canvas.strokes
    assert max(light.widths) < 0.5 * min(heavy.widths)
    assert heavy.widths[0] == pytest.approx(canvas.brush_size(), rel=0.01)
    dark = ink(canvas)
    assert dark[:140, 150].sum() < 0.5 * dark[140:, 150].sum()
    assert not light.erase and not heavy.erase


def test_tablet_pressure_varies_within_a_stroke(canvas):
    points = line(40, 150, 260, 150)
    pressures = np.linspace(0.05, 1.0, len(points))  # pressing harder and harder
    tablet_stroke(canvas, points, pressures)
    [stroke] = canvas.strokes
    assert stroke.widths[-1] > 3 * stroke.widths[0]
    dark = ink(canvas)
    assert dark[:, 60].sum() < 0.6 * dark[:, 240].sum()


def test_stylus_eraser_end_erases(canvas):
    drag(canvas, line(40, 150, 260, 150))
    assert ink(canvas)[150, 150]
    tablet_stroke(canvas, line(150, 100, 150, 200), pressure=1.0, eraser=True)
    assert canvas.strokes[-1].erase
    dark = ink(canvas)
    assert not dark[150, 150] and dark[150, 60] and dark[150, 240]


def test_tablet_events_are_not_doubled_as_mouse_events(canvas):
    tablet_stroke(canvas, line(40, 150, 260, 150), pressure=0.5)
    assert len(canvas.strokes) == 1


def test_brush_size_and_backing_store_resolution(canvas):
    canvas.set_brush_size(8)
    drag(canvas, line(50, 100, 250, 100))
    canvas.set_brush_size(40)
    drag(canvas, line(50, 200, 250, 200))
    dark = ink(canvas)
    assert dark[:150, 150].sum() < dark[150:, 150].sum()
    canvas.set_brush_size(1000)
    assert canvas.brush_size() == 60
    # The backing image follows the device pixel ratio (sharp on HiDPI screens).
    assert canvas.rasters.screen.image.devicePixelRatio() == pytest.approx(canvas.devicePixelRatioF())
    assert canvas.rasters.screen.image.width() == round(canvas.width() * canvas.devicePixelRatioF())


def test_right_button_erases(canvas):
    drag(canvas, line(40, 150, 260, 150))
    drag(canvas, line(150, 100, 150, 200), button=Qt.MouseButton.RightButton)
    assert not ink(canvas)[150, 150]


def test_snapshot_for_the_network_is_small_and_keeps_the_drawing(canvas):
    canvas.resize(520, 520)
    drag(canvas, line(100, 260, 420, 260))
    small = canvas.snapshot()
    assert small.shape == (280, 280) and small.dtype == np.uint8
    assert (small < 128)[140, 60:220].all()


HIDPI_CHILD = """
import sys
from PySide6.QtCore import QPointF
from PySide6.QtWidgets import QApplication
app = QApplication([])
from app.widgets.canvas import DrawingCanvas, Stroke
from tests.widgets.test_ink_solid import defects
c = DrawingCanvas(); c.resize(300, 300); c.show(); app.processEvents()
s = Stroke([QPointF(x, y) for x, y in [(130, 150), (150, 150), (160, 152), (150, 150), (140, 152), (158, 150)]],
           [60.0] * 6)
c.add_stroke(s)
print(c.devicePixelRatioF(), c.rasters.screen.image.width(), c.grab().width(), len(defects(c, s)))
"""


def test_sharp_on_hidpi_screens(tmp_path):
    """At a device pixel ratio of 2 the strokes are painted into a 2x backing image, as
    solid as at 1x (the screen and display_image() at 2x, the snapshot at 280 px)."""
    import os
    import subprocess
    import sys

    from tests.widgets.conftest import REPO

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR="2",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-c", HIDPI_CHILD], env=env, capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    dpr, backing, grabbed, pictures_with_defects = out.stdout.split()
    assert float(dpr) == 2.0 and int(backing) == 600 and int(grabbed) == 600
    assert pictures_with_defects == "0"


def rgb(image) -> np.ndarray:
    """A QImage/QPixmap as an (H, W, 3) int array."""
    from PySide6.QtGui import QImage, QPixmap

    if isinstance(image, QPixmap):
        image = image.toImage()
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    w, h = image.width(), image.height()
    rows = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h).reshape(h, -1)
    return rows[:, :4 * w].reshape(h, w, 4)[..., 2::-1].astype(int)  # B, G, R, A -> R, G, B


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["for", "against"])
def test_why_overlay_is_a_faint_tint_and_the_ink_stays_dark(canvas, sign):
    """'Why this digit?' at full strength over a thick stroke: the ink stays dark and
    readable, the paper under the map takes a light tint of its colour."""
    from tests.widgets.conftest import save_artifact

    from app.widgets.charts import heat_overlay

    canvas.set_brush_size(40)
    drag(canvas, line(40, 150, 260, 150))
    solid_ink = canvas.snapshot(max_side=10_000) < 8
    paper = canvas.snapshot(max_side=10_000) == 255
    paper[:5] = paper[-5:] = paper[:, :5] = paper[:, -5:] = False  # not the frame
    before = rgb(canvas.grab())
    canvas.set_overlay(heat_overlay(np.full((28, 28), sign)), (0.0, 0.0, 1.0, 1.0))
    after = rgb(canvas.grab())
    save_artifact(canvas, f"canvas_why_overlay_{'for' if sign > 0 else 'against'}.png")
    luminance = after @ np.array([0.299, 0.587, 0.114])
    assert luminance[solid_ink].max() < 60, "the ink under the map must stay dark"
    spread = after.max(axis=2) - after.min(axis=2)
    assert spread[solid_ink].mean() > 8  # ... with a hint of the colour
    assert luminance[paper].min() > 180, "the paper must stay light"
    assert spread[paper].mean() > 30  # ... and visibly tinted
    assert np.array_equal(before[paper], np.full_like(before[paper], 255))
    canvas.set_overlay(None)
    assert np.array_equal(rgb(canvas.grab()), before)

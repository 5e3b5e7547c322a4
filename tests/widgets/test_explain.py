"""Why this digit?: the toggle (View menu, the button by the prediction, key X) lays the
gradient x input map over the 28x28 input and faintly over the canvas; the second-best
guess is always shown."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.widgets.conftest import save_artifact
from tests.widgets.helpers import draw_and_wait


def pixels(image) -> np.ndarray:
    """A grab's pixels, (H, W, 3) ints."""
    img = image.toImage().convertToFormat(image.toImage().Format.Format_RGB32)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, -1)[:, :w * 4]
    return arr.reshape(h, w, 4)[..., :3].astype(int)


def coloured_share(image, spread: int = 60) -> float:
    """Share of the pixels of a grab that are coloured (not grey: their channels differ by
    more than ``spread``)."""
    img = image.toImage().convertToFormat(image.toImage().Format.Format_RGB32)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, -1)[:, :w * 4]
    rgb = arr.reshape(h, w, 4)[..., :3].astype(int)
    return float(((rgb.max(axis=2) - rgb.min(axis=2)) > spread).mean())


def test_why_this_digit_overlay(qtbot, window, qsettings):
    panel, canvas, c = window.panel, window.canvas, window.controller
    assert not window.act_explain.isChecked() and panel.explain_button.defaultAction() is window.act_explain
    assert "X" in window.act_explain.toolTip() and window.act_explain in window.view_menu.actions()
    assert draw_and_wait(qtbot, window, 7) == 7
    assert panel.input_view.heat is None and canvas.overlay() is None and c.prediction.current_prediction.heat is None
    second, p = c.prediction.current_prediction.runner_up
    assert panel.runner_up_label.isVisible() and f"<b>{second}</b>" in panel.runner_up_label.text()
    assert second != 7 and "%" in panel.runner_up_label.text()
    before = coloured_share(canvas.grab(), spread=20)
    plain = pixels(canvas.grab())

    with qtbot.waitSignal(window.predictionShown, timeout=10000):  # the drawing is predicted again, with its map
        qtbot.mouseClick(panel.explain_button, Qt.MouseButton.LeftButton)
    assert window.act_explain.isChecked() and panel.explain_button.isChecked()
    r = c.prediction.current_prediction
    assert r.digit == 7 and r.heat.shape == r.image.shape == (28, 28)
    assert np.all(np.isfinite(r.heat)) and float(np.abs(r.heat).max()) == pytest.approx(1.0)
    assert panel.input_view.heat is not None and np.array_equal(panel.input_view.heat, r.heat)
    assert "for 7" in panel.seen_caption.text()
    # Faintly on the canvas too: the 28x28 field placed over the drawing.
    x, y, w, h = r.heat_rect
    assert 0.2 < w < 2.5 and w == pytest.approx(h) and -1 < x < 1 and -1 < y < 1
    assert canvas.overlay() is not None and canvas.overlay().size().width() == 28
    assert coloured_share(canvas.grab(), spread=20) > before + 0.01  # a light tint
    # Faint, not a recolouring of the stroke: the ink stays dark, the paper stays light.
    tinted = pixels(canvas.grab())
    ink, paper = plain.max(axis=2) < 40, plain.min(axis=2) > 240
    assert ink.mean() > 0.02 and tinted[ink].max(axis=1).mean() < 40 and tinted[ink].max() < 80
    assert tinted[paper].min(axis=1).mean() > 200
    save_artifact(window, "main_window_why_this_digit.png")
    save_artifact(panel.input_view, "why_this_digit_28x28.png")

    # Live predictions while it is on bring their own maps; key X turns it off.
    draw_and_wait(qtbot, window, 7)
    assert c.prediction.current_prediction.heat is not None
    QTest.keyClick(window, Qt.Key.Key_X)
    assert not window.act_explain.isChecked()
    assert panel.input_view.heat is None and canvas.overlay() is None and "for 7" not in panel.seen_caption.text()
    assert panel.digit == 7 and panel.runner_up_label.isVisible()
    QTest.keyClick(window, Qt.Key.Key_X)
    window.close()
    assert qsettings.value("view/explain", type=bool) is True  # remembered

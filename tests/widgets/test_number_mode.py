"""Number mode end to end (offscreen): switch it on, write "25" with mouse drags, see the
number, its chips and boxes, correct a digit, save with Enter, and find the reading in the
real database and in the statistics tab."""

from __future__ import annotations

import psycopg2
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.widgets.help import keys_of
from app.widgets.number_mode import SETTING
from tests.widgets.conftest import save_artifact
from tests.widgets.helpers import _points, drag, draw_and_wait

#: Digits on a 280 x 280 field, as a person writes them (the 5's flag a stroke of its own).
NUMBER_STROKES = {
    2: [[(70, 95), (100, 50), (165, 40), (205, 80), (195, 130), (70, 240), (215, 240)]],
    5: [[(95, 50), (85, 135), (125, 118), (170, 130), (190, 180), (160, 230), (110, 238), (75, 215)],
        [(100, 48), (200, 45)]],
}


def write_number(canvas, digits) -> None:
    """Write ``digits`` side by side across the canvas, each in its own part of it."""
    n = len(digits)
    side = min(canvas.width(), canvas.height())
    cell = side / n
    for i, d in enumerate(digits):
        for stroke in NUMBER_STROKES[d]:
            pts = [(i * cell + 0.05 * cell + x * 0.9 * cell / 280, side / 2 + (y - 140) * 0.9 * cell / 280)
                   for x, y in stroke]
            drag(canvas, _points(pts, 280))


def write_and_wait(qtbot, window, digits) -> str:
    """Write ``digits``; wait until the reading of the finished drawing is on screen."""
    reading = window.controller.reading
    with qtbot.waitSignal(reading.readingReady, timeout=15000):
        write_number(window.canvas, digits)
    qtbot.waitUntil(lambda: not reading.waiting, timeout=15000)
    return window.number_mode.panel.text


def readings(db_url):
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT reading_id::text, reading_position, predicted_digit, true_label, "
                        "octet_length(image_png), array_length(probabilities, 1) FROM predictions "
                        "ORDER BY reading_position")
            digits = cur.fetchall()
            cur.execute("SELECT reading_id::text, text, true_text, correct FROM readings")
            return digits, cur.fetchall()
    finally:
        conn.close()


def number_on(qtbot, window) -> None:
    """Ctrl+N, as a person presses it (the window active: shortcuts go to it)."""
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
    QTest.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.number_mode.active and window.number_mode.panel.isVisible()
    assert not window.panel.isVisible()


def test_the_switch_has_its_shortcut_and_is_remembered(qtbot, make_window, settings, qsettings):
    w = make_window(settings, wait_model=False, wait_db=False)
    action = w.number_mode.action
    assert keys_of(action) == "Ctrl+N" and "Ctrl+N" in action.toolTip()
    others = [a for a in w.actions() if a is not action]
    assert all("Ctrl+N" not in [k.toString() for k in a.shortcuts()] for a in others)  # the key is free
    assert action in w.view_menu.actions() and action in w.toolbar.actions()
    assert not action.isChecked() and not w.number_mode.active
    number_on(qtbot, w)
    assert qsettings.value(SETTING, type=bool) is True
    w.close()
    w2 = make_window(settings, wait_model=False, wait_db=False)
    assert w2.number_mode.action.isChecked() and w2.number_mode.active
    assert w2.number_mode.panel.isVisible() and not w2.panel.isVisible()
    w2.number_mode.action.trigger()  # off again
    assert not w2.number_mode.active and w2.panel.isVisible()
    assert qsettings.value(SETTING, type=bool) is False


def test_a_number_is_read_corrected_and_saved_with_its_digits(qtbot, window, db_url):
    number_on(qtbot, window)
    mode = window.number_mode
    assert write_and_wait(qtbot, window, [2, 5]) == "25"
    assert [c.text().split("\n")[0] for c in mode.panel.chips] == ["2", "5"]
    assert all("%" in c.text() for c in mode.panel.chips)  # each with its confidence
    assert len(mode.boxes) == 2 and window.canvas.overlay() is not None
    (x0, _, w0, _), (x1, _, w1, _) = mode.boxes
    assert x0 + w0 / 2 < 0.5 < x1 + w1 / 2 and x0 + w0 <= x1  # the 2's box on the left, the 5's on the right
    save_artifact(window, "number_mode_25.png")

    # The 5 was a 6: click its chip, type 6 in the menu that opens.
    chip = mode.panel.chips[1]
    assert chip.isEnabled()
    typed = []

    def type_six() -> None:
        menu = QApplication.activePopupWidget()
        typed.append(menu is chip.menu())
        QTest.keyClick(menu, Qt.Key.Key_6)
        if menu.isVisible():  # (not picked: close it, the test fails below rather than hang)
            menu.close()

    QTimer.singleShot(200, type_six)
    QTest.mouseClick(chip, Qt.MouseButton.LeftButton)  # (the menu runs until a digit is picked)
    qtbot.waitUntil(lambda: bool(typed), timeout=5000)
    assert typed == [True]
    assert mode.panel.text == "26" and "was 5" in chip.text()
    save_artifact(window, "number_mode_corrected.png")
    with qtbot.waitSignal(window.controller.reading.logged, timeout=15000):
        QTest.keyClick(window, Qt.Key.Key_Return)
    assert window.canvas.is_empty() and mode.panel.state == "idle" and mode.boxes == []

    digits, numbers = readings(db_url)
    assert [(pos, predicted, label) for _id, pos, predicted, label, *_ in digits] == [(0, 2, 2), (1, 5, 6)]
    assert len({d[0] for d in digits}) == 1  # one reading id
    assert all(png > 0 and n == 10 for *_, png, n in digits)  # the 28x28 image, ten probabilities
    assert numbers == [(digits[0][0], "25", "26", False)]

    # A second number, right as read, and the statistics tile counts both.
    assert write_and_wait(qtbot, window, [5, 2]) == "52"
    with qtbot.waitSignal(window.controller.reading.logged, timeout=15000):
        QTest.keyClick(window, Qt.Key.Key_Return)
    _, numbers = readings(db_url)
    assert sorted((t, ok) for _id, t, _true, ok in numbers) == [("25", False), ("52", True)]
    with qtbot.waitSignal(window.controller.statistics.statsReady, timeout=10000):
        window.tabs.setCurrentIndex(1)
    tab = window.stats_page.tab
    assert tab.numbers_value.text() == "50.0 %"
    assert tab.numbers_caption.text() == "1 of 2 labelled numbers read right"
    save_artifact(window, "number_mode_statistics.png")
    assert tab.total_value.text() == "4"  # the digits count as predictions, as before


def test_the_number_is_read_while_a_stroke_is_drawn(qtbot, window):
    number_on(qtbot, window)
    write_and_wait(qtbot, window, [2, 5])
    canvas, reading = window.canvas, window.controller.reading
    side = min(canvas.width(), canvas.height())
    one = _points([(0.9 * side, 0.2 * side), (0.9 * side, 0.8 * side)], 280)  # a third digit, a 1
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, one[0])
    for p in one[1:]:
        QTest.mouseMove(canvas, p)
    with qtbot.waitSignal(reading.readingReady, timeout=15000) as got:
        pass  # (the Draw tab's live timer asks while the button is still down)
    assert canvas.drawing and got.args[0].text == "251"
    assert window.number_mode.panel.text == "251" and len(window.number_mode.boxes) == 3
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, one[-1])


def test_typing_the_whole_number(qtbot, window, db_url):
    number_on(qtbot, window)
    assert write_and_wait(qtbot, window, [2, 5]) == "25"
    QTest.keyClick(window, Qt.Key.Key_7)  # a digit key: "Type the number", starting with it
    dialog = window.number_mode.dialog
    assert dialog is not None and dialog.isVisible() and dialog.line.text() == "7"
    dialog.submit()  # one digit for a number of two: said, nothing saved, the dialog stays
    assert dialog.isVisible() and "2 digits" in dialog.problem_label.text()
    dialog.line.setText("35")
    with qtbot.waitSignal(window.controller.reading.logged, timeout=15000):
        dialog.submit()
    digits, numbers = readings(db_url)
    assert [(pos, label) for _id, pos, _p, label, *_ in digits] == [(0, 3), (1, 5)]
    assert [(t, true, ok) for _id, t, true, ok in numbers] == [("25", "35", False)]


def test_clearing_a_number_logs_it_once_without_labels(qtbot, window, db_url):
    number_on(qtbot, window)
    assert write_and_wait(qtbot, window, [5, 2]) == "52"
    with qtbot.waitSignal(window.controller.reading.logged, timeout=15000):
        QTest.keyClick(window, Qt.Key.Key_Escape)
    digits, numbers = readings(db_url)
    assert [(pos, label) for _id, pos, _p, label, *_ in digits] == [(0, None), (1, None)]
    assert [(t, ok) for _id, t, _true, ok in numbers] == [("52", None)]


def test_digit_mode_is_unchanged_after_number_mode(qtbot, window, db_url):
    number_on(qtbot, window)
    QTest.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # back to Digit mode
    assert not window.number_mode.active and window.panel.isVisible()
    assert draw_and_wait(qtbot, window, 7) == 7
    assert window.number_mode.boxes == [] and window.controller.reading.reading.result is None
    with qtbot.waitSignal(window.controller.feedback.logged, timeout=10000):
        QTest.keyClick(window, Qt.Key.Key_Return)
    digits, numbers = readings(db_url)
    assert [(pos, p, label) for _id, pos, p, label, *_ in digits] == [(None, 7, 7)] and numbers == []


@pytest.mark.parametrize("on", [False, True])
def test_switching_with_a_drawing_reads_it_the_other_way(qtbot, window, on):
    if on:
        number_on(qtbot, window)
        write_and_wait(qtbot, window, [2, 5])
        with qtbot.waitSignal(window.predictionShown, timeout=15000):
            window.number_mode.action.trigger()  # to Digit mode: the drawing is read as one digit
        assert window.panel.state in ("result", "notdigit") and window.number_mode.boxes == []
    else:
        draw_and_wait(qtbot, window, 7)
        with qtbot.waitSignal(window.controller.reading.readingReady, timeout=15000):
            window.number_mode.action.trigger()
        assert window.number_mode.panel.text == "7"
        assert not window.controller.prediction.has_prediction  # one drawing, read one way


def test_an_opened_image_is_read_as_a_number(qtbot, window, db_url, tmp_path):
    import numpy as np
    from PIL import Image

    from tests.ml.drawing import draw_digit as pil_digit

    number_on(qtbot, window)
    path = tmp_path / "forty-seven.png"
    Image.fromarray(np.hstack([np.asarray(pil_digit(d)) for d in (4, 7)])).save(path)  # 560 x 280
    with qtbot.waitSignal(window.controller.reading.readingReady, timeout=15000):
        window.open_image(str(path))
    mode = window.number_mode
    assert window.canvas.has_image() and mode.panel.text == "47" and len(mode.panel.chips) == 2
    # The boxes lie on the picture as the canvas shows it: centred, as wide as the canvas, half as high.
    (x0, y0, _w0, h0), (x1, y1, w1, h1) = mode.boxes
    assert 0 <= x0 < 0.5 < x1 and x1 + w1 <= 1 and 0.25 <= min(y0, y1) and max(y0 + h0, y1 + h1) <= 0.75
    with qtbot.waitSignal(window.controller.reading.logged, timeout=15000):
        QTest.keyClick(window, Qt.Key.Key_Return)
    digits, numbers = readings(db_url)
    assert [(pos, p, label) for _id, pos, p, label, *_ in digits] == [(0, 4, 4), (1, 7, 7)]
    assert [(t, ok) for _id, t, _true, ok in numbers] == [("47", True)]
    from tests.db.dbhelpers import fetch

    assert fetch(db_url, "SELECT DISTINCT source FROM predictions") == [("file",)]

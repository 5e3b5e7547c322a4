"""The main window end to end (offscreen): draw with QTest, see the prediction, give
feedback, find it in the real database, see it in the statistics tab."""

from __future__ import annotations

import numpy as np
import psycopg2
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.widgets.about_model import AboutModelDialog
from app.widgets.help import keys_of
from tests.widgets.conftest import save_artifact
from tests.widgets.helpers import draw_and_wait


def rows(db_url):
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT uuid::text, predicted_digit, true_label, source, octet_length(image_png), "
                        "octet_length(raw_png), model_version FROM predictions ORDER BY id")
            return cur.fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("digit", [1, 7, 0])
def test_drawn_digit_is_recognised_and_bars_update(qtbot, window, digit):
    assert window.panel.state == "idle"
    assert window.panel.chart.heights().sum() == 0
    got = draw_and_wait(qtbot, window, digit)
    assert got == digit
    heights = window.panel.chart.heights()
    assert heights.sum() == pytest.approx(100, abs=0.5)
    assert int(np.argmax(heights)) == digit == window.panel.chart.winner()
    assert window.panel.digit_label.text() == str(digit)
    assert window.panel.input_view.pixmap() is not None
    if digit == 7:
        save_artifact(window, "main_window_drawn_7.png")


def test_enter_logs_the_drawing_with_its_prediction_as_label(qtbot, window, db_url, model_arch):
    assert draw_and_wait(qtbot, window, 7) == 7
    with qtbot.waitSignal(window.controller.feedback.logged, timeout=10000):
        QTest.keyClick(window, Qt.Key.Key_Return)
    assert window.canvas.is_empty()
    assert window.panel.state == "idle"
    [(uid, predicted, label, source, png_len, raw_len, version)] = rows(db_url)
    assert (predicted, label, source) == (7, 7, "canvas")
    assert png_len > 0 and raw_len > 0 and version.startswith(f"{model_arch}@")


def test_statistics_tab(qtbot, window, db_url):
    for d in (1, 7):
        draw_and_wait(qtbot, window, d)
        with qtbot.waitSignal(window.controller.feedback.logged, timeout=10000):
            QTest.keyClick(window, Qt.Key.Key_Return)
    draw_and_wait(qtbot, window, 0)
    with qtbot.waitSignal(window.controller.feedback.logged, timeout=10000):
        QTest.keyClick(window, Qt.Key.Key_3)  # "it is a 3": a wrong prediction
    with qtbot.waitSignal(window.controller.statistics.statsReady, timeout=10000):
        window.tabs.setCurrentIndex(1)
    assert window.stats_page.tab.row_count() == 3
    assert window.stats_page.tab.accuracy_value.text() == "66.7 %"
    save_artifact(window, "main_window_statistics.png")


def test_wrong_dialog_writes_the_true_label_to_the_database(qtbot, window, db_url):
    assert draw_and_wait(qtbot, window, 0) == 0
    qtbot.mouseClick(window.panel.wrong_button, Qt.MouseButton.LeftButton)
    dialog = window.draw.correction_dialog
    qtbot.waitExposed(dialog)
    assert dialog.chart.winner() == 0
    save_artifact(dialog, "correction_dialog.png")
    with qtbot.waitSignal(window.controller.feedback.logged, timeout=10000) as logged:
        QTest.keyClick(dialog, Qt.Key.Key_6)
    assert logged.args[1] == 6
    [(uid, predicted, label, *_)] = rows(db_url)
    assert (uid, predicted, label) == (logged.args[0], 0, 6)
    assert window.canvas.is_empty()


def test_wrong_dialog_click_picks_the_digit(qtbot, window, db_url):
    draw_and_wait(qtbot, window, 1)
    window.act_wrong.trigger()
    dialog = window.draw.correction_dialog
    with qtbot.waitSignal(window.controller.feedback.logged, timeout=10000):
        qtbot.mouseClick(dialog.buttons[4], Qt.MouseButton.LeftButton)
    assert [(r[1], r[2]) for r in rows(db_url)] == [(1, 4)]


def test_cancelled_dialog_logs_nothing_and_keeps_the_drawing(qtbot, window, db_url):
    draw_and_wait(qtbot, window, 1)
    window.act_wrong.trigger()
    window.draw.correction_dialog.reject()
    assert not window.canvas.is_empty() and window.controller.prediction.has_prediction
    window.controller.database.worker.wait_idle(5)
    assert rows(db_url) == []


def test_clearing_without_feedback_logs_once_unlabelled(qtbot, window, db_url):
    draw_and_wait(qtbot, window, 7)
    with qtbot.waitSignal(window.controller.feedback.logged, timeout=10000):
        QTest.keyClick(window, Qt.Key.Key_Escape)
    assert window.canvas.is_empty() and window.panel.state == "idle"
    QTest.keyClick(window, Qt.Key.Key_Delete)  # clearing an empty canvas logs nothing more
    window.controller.database.worker.wait_idle(5)
    qtbot.wait(50)
    [(uid, predicted, label, source, *_)] = rows(db_url)
    assert (predicted, label, source) == (7, None, "canvas")


def test_undo_redo_shortcuts_repredict_and_empty_canvas_shows_nothing(qtbot, window, db_url):
    draw_and_wait(qtbot, window, 7)
    with qtbot.waitSignal(window.predictionShown, timeout=5000):
        window.canvas.add_stroke(window.canvas.strokes[0])  # a second, identical stroke
        window.draw._content_changed(window.canvas.revision)
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.canvas.is_empty()
    qtbot.waitUntil(lambda: window.panel.state == "idle", timeout=5000)
    assert window.panel.chart.heights().sum() == 0 and not window.act_correct.isEnabled()
    with qtbot.waitSignal(window.predictionShown, timeout=5000):
        QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(window.canvas.strokes) == 1 and window.panel.digit == 7
    window.controller.database.worker.wait_idle(5)
    assert rows(db_url) == []  # undoing everything withdraws the drawing: nothing logged


def test_history_label_can_be_corrected(qtbot, window, db_url):
    draw_and_wait(qtbot, window, 7)
    with qtbot.waitSignal(window.controller.feedback.logged, timeout=10000):
        QTest.keyClick(window, Qt.Key.Key_Return)
    with qtbot.waitSignal(window.controller.statistics.statsReady, timeout=10000):
        window.tabs.setCurrentIndex(1)
    assert window.stats_page.tab.model.rows()[0].true_label == 7
    with qtbot.waitSignal(window.controller.feedback.labelSaved, timeout=10000):
        window.stats_page.tab.edit_label(0, 1)
    assert [(r[1], r[2]) for r in rows(db_url)] == [(7, 1)]
    with qtbot.waitSignal(window.controller.statistics.statsReady, timeout=10000):
        pass  # the tab refreshes itself after the change
    assert window.stats_page.tab.model.rows()[0].true_label == 1
    assert window.stats_page.tab.accuracy_value.text() == "0.0 %"


def test_open_image_predicts_the_file(qtbot, window, db_url, tmp_path):
    from tests.ml.drawing import draw_digit as pil_digit

    path = tmp_path / "four.png"
    pil_digit(4, size=200, width=14).save(path)
    with qtbot.waitSignal(window.controller.prediction.predictionReady, timeout=10000) as got:
        window.open_image(str(path))
    assert got.args[0].source == "file" and got.args[0].digit == 4
    assert window.canvas.has_image() and window.panel.digit == 4
    assert window.statusBar().currentMessage() == "Read four.png."  # not "Reading four.png…" any more
    with qtbot.waitSignal(window.controller.feedback.logged, timeout=10000):
        QTest.keyClick(window, Qt.Key.Key_Return)
    assert [(r[1], r[2], r[3]) for r in rows(db_url)] == [(4, 4, "file")]


def test_open_a_file_that_is_not_an_image(qtbot, window, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with qtbot.waitSignal(window.controller.problem, timeout=10000) as problem:
        window.open_image(str(path))
    assert "not an image" in problem.args[1]


def test_window_state_and_brush_are_remembered(qtbot, make_window, settings, qsettings):
    w = make_window(settings, wait_model=False, wait_db=False)
    w.tabs.setCurrentIndex(1)  # (builds the statistics tab, which sets the minimum size)
    qtbot.wait(50)  # the layouts take it into account
    # A size inside the (small, 800 x 600) offscreen screen: restoreGeometry clamps to it.
    screen = w.screen().availableGeometry()
    size = (min(screen.width() - 10, w.minimumSizeHint().width() + 40), w.minimumSizeHint().height())
    assert size[1] <= screen.height()
    w.resize(*size)
    w.canvas.set_brush_size(31)
    w.close()
    w2 = make_window(settings, wait_model=False, wait_db=False)
    assert w2.canvas.brush_size() == 31 and w2.brush_spin.value() == 31
    assert (w2.width(), w2.height()) == size
    assert w2.tabs.currentIndex() == 1


def test_export_csv_and_about_this_model(qtbot, window, db_url, tmp_path, model_arch):
    draw_and_wait(qtbot, window, 1)
    with qtbot.waitSignal(window.controller.feedback.logged, timeout=10000):
        QTest.keyClick(window, Qt.Key.Key_Return)
    out = tmp_path / "predictions.csv"
    with qtbot.waitSignal(window.controller.statistics.exportDone, timeout=10000) as done:
        window.controller.statistics.export_csv(out)  # what File > Export... does after its file dialog
    assert done.args == [str(out), 1]
    lines = out.read_text().splitlines()
    assert lines[0].startswith("uuid,created_at,predicted_digit") and len(lines) == 2
    window.act_about_model.trigger()
    about = window.dialogs.get(AboutModelDialog)
    text = about.text.text()
    assert about.isVisible() and model_arch in text and "Test accuracy" in text and "%" in text
    calibrated = "calibration" in window.controller.models.model_info.metadata  # (the shipped files are)
    assert about.calibrated == calibrated and about.diagram.isVisible() == calibrated
    assert ("Not calibrated" in about.calibration_label.text()) != calibrated
    window.act_shortcuts.trigger()
    assert "Ctrl+Z" in window.last_message.text()


def test_statistics_tab_restored_at_start_is_filled_once_the_database_opens(qtbot, make_window, settings,
                                                                           qsettings):
    qsettings.setValue("window/tab", 1)
    w = make_window(settings, wait_model=False, wait_db=False)
    assert w.tabs.currentIndex() == 1
    qtbot.waitUntil(lambda: w.stats_page.tab.snapshot is not None, timeout=30000)
    assert w.stats_page.tab.snapshot.total == 0 and w.stats_page.tab.accuracy_value.text() == "–"


def test_the_shortcut_help_is_made_from_the_actions(qtbot, make_window, settings):
    import html

    w = make_window(settings, wait_model=False, wait_db=False)
    w._action("Zoom in", lambda: None, "Ctrl+K", None, "Look closer")  # one more action, in no menu
    w.act_shortcuts.trigger()
    text = w.last_message.text()
    keyed = [a for a in w.actions() if a.shortcuts() and not a.text().startswith("It is a ")]
    assert len(keyed) > 20
    for a in keyed:
        assert html.escape(keys_of(a)) in text and html.escape(a.statusTip()) in text, a.text()
    assert "Ctrl+K" in text and "Look closer" in text
    assert "0 – 9" in text and "Save the drawing as that digit" in text
    assert keys_of(w.act_correct) in w.draw.hint.text()  # the canvas hint names the same keys


def test_a_clear_digit_is_never_said_to_be_100_percent_sure(qtbot, window):
    """Calibrated or not, no answer is certain: the panel says "> 99.9 %" where rounding
    would say 100.0 %."""
    draw_and_wait(qtbot, window, 7)
    text = window.panel.confidence_label.text()
    assert text.endswith(" sure") and "100.0" not in text
    window.panel.show_prediction(7, 0.99996, [0.0] * 7 + [0.99996, 0.00004, 0.0], None)
    assert window.panel.confidence_label.text() == "> 99.9 % sure"
    window.panel.show_prediction(7, 0.873, [0.0] * 7 + [0.873, 0.127, 0.0], None)
    assert window.panel.confidence_label.text() == "87.3 % sure"

"""A missing or corrupt model file, or an unreachable database: a clear message, and the
app opens and works as far as it can."""

from __future__ import annotations

import psycopg2
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.widgets.helpers import draw_and_wait, draw_digit


def dismiss_message(qtbot, w) -> str:
    """Close the warning box the window shows; give the window the focus back; its title."""
    qtbot.waitUntil(lambda: hasattr(w, "last_message") and w.last_message.isVisible(), timeout=10000)
    title = w.last_message.windowTitle()
    w.last_message.close()
    w.activateWindow()  # the shortcuts (Enter) work in the active window
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    return title


def count(db_url) -> int:
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM predictions")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_missing_model_file(qtbot, make_window, settings, tmp_path):
    w = make_window(settings.with_(model_path=tmp_path / "nowhere.pth"), wait_model=False, wait_db=False)
    qtbot.waitUntil(lambda: w.panel.state == "error", timeout=30000)
    assert "not found" in w.panel.detail_label.text() and "nowhere.pth" in w.panel.detail_label.text()
    assert "Train" in w.panel.detail_label.text()  # what to do next
    assert w.model_label.text() == "Model: none"
    assert dismiss_message(qtbot, w) == "The model could not be loaded"
    draw_digit(w.canvas, 7)  # the canvas still works
    assert len(w.canvas.strokes) == 1 and w.panel.state == "error"
    qtbot.waitUntil(w.act_train.isEnabled, timeout=30000)  # and training is offered


def test_corrupt_model_file_then_load_weights(qtbot, make_window, settings, tmp_path, model_path, qsettings):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"PK\x03\x04 this is not a weights file")
    w = make_window(settings.with_(model_path=bad), wait_model=False, wait_db=False)
    qtbot.waitUntil(lambda: w.panel.state == "error", timeout=30000)
    assert "corrupt" in w.panel.detail_label.text()
    dismiss_message(qtbot, w)
    with qtbot.waitSignal(w.controller.models.modelReady, timeout=30000):
        w.controller.models.load_model(model_path)  # what Model > Load weights... does
    assert w.panel.state == "idle"
    assert qsettings.value("model/path") == str(model_path)
    assert draw_and_wait(qtbot, w, 1) == 1


def test_canvas_works_while_the_model_loads(qtbot, make_window, settings):
    w = make_window(settings, wait_model=False, wait_db=False)
    if not w.controller.models.model_ready:  # (it may already be, torch being loaded in this process)
        assert "loading model" in w.canvas._placeholder
        assert w.panel.state == "loading"
    draw_digit(w.canvas, 7)
    qtbot.waitUntil(lambda: w.panel.digit == 7, timeout=30000)  # predicted once the model is there


def test_unreachable_database_spools_and_says_so(qtbot, make_window, settings):
    s = settings.with_(database_url="postgresql://postgres@127.0.0.1:1/mnist")
    w = make_window(s, wait_db=False)
    qtbot.waitUntil(lambda: not w.controller.database.state.starting, timeout=30000)
    assert w.db_label.text() == "Database: offline (127.0.0.1:1)"
    assert "connection refused" in w.db_label.toolTip()
    assert "not reachable" in dismiss_message(qtbot, w)
    draw_and_wait(qtbot, w, 7)
    with qtbot.waitSignal(w.controller.feedback.logged, timeout=10000):
        QTest.keyClick(w, Qt.Key.Key_Return)
    assert w.db_label.text() == "Database: offline (127.0.0.1:1) · 1 waiting"
    assert s.spool_dir.is_dir()
    with qtbot.waitSignal(w.controller.statistics.statsFailed, timeout=10000):
        w.tabs.setCurrentIndex(1)  # the statistics say why there are none
    assert w.stats_page.tab.state_label.text()


def test_database_comes_back_and_spool_is_sent(qtbot, make_window, settings, db_url):
    """Offline first (a wrong URL): nothing is lost once the right database is used again."""
    w = make_window(settings.with_(database_url=db_url.replace("/test_", "/missing_")), wait_db=False)
    qtbot.waitUntil(lambda: not w.controller.database.state.starting, timeout=30000)
    dismiss_message(qtbot, w)
    draw_and_wait(qtbot, w, 1)
    with qtbot.waitSignal(w.controller.feedback.logged, timeout=10000):
        QTest.keyClick(w, Qt.Key.Key_Return)
    w.close()
    make_window(settings)  # same spool folder, the real database
    qtbot.waitUntil(lambda: count(db_url) == 1, timeout=20000)

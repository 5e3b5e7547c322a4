"""The statistics tab's layout and words: the history shows many rows at the window's
default size, accuracy over time names the month, a database that cannot be read is
said in full (with what waits on this computer), and how often a drawing was not a digit."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.viewmodels import HistoryItem, StatsSnapshot
from app.widgets.statistics import StatisticsTab
from tests.widgets.conftest import save_artifact
from tests.widgets.helpers import draw_and_wait

MONTH = re.compile(r"^\d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)( \d{4})?$")


def history(n: int) -> list[HistoryItem]:
    now = dt.datetime.now(dt.timezone.utc)
    return [HistoryItem(uuid=f"{i:032x}", created_at=now - dt.timedelta(minutes=i), predicted=i % 10,
                        confidence=0.9, true_label=None, image=np.zeros((28, 28), np.uint8)) for i in range(n)]


def axis_labels(tab: StatisticsTab) -> list[str]:
    axis = tab.day_axis
    lo, hi = tab.time_plot.getViewBox().viewRange()[0]
    ticks = axis.tickValues(lo, hi, axis.width() or tab.time_plot.width())
    return axis.tickStrings(ticks[0][1], 1, 1) if ticks else []


def test_the_history_shows_many_rows_at_the_default_window_size(qtbot, make_window, settings):
    w = make_window(settings, wait_model=False, wait_db=False)
    assert (w.width(), w.height()) == (1080, 720)  # the default size (nothing remembered)
    w.tabs.setCurrentIndex(1)
    tab = w.stats_page.tab
    tab.show_stats(StatsSnapshot(total=60, recent=history(60)))
    qtbot.wait(50)
    table = tab.table
    visible = table.rowAt(table.viewport().height() - 1)
    assert visible >= 6, f"only {visible} rows of the history are visible"
    save_artifact(w, "statistics_default_size.png")


def test_accuracy_over_time_names_the_month(qtbot):
    tab = StatisticsTab()
    qtbot.addWidget(tab)
    tab.resize(1000, 600)
    tab.show()
    qtbot.waitExposed(tab)
    # No day yet: a week around today, labelled with days and months (never "00.250").
    labels = axis_labels(tab)
    assert labels and all(MONTH.match(label) for label in labels), labels
    assert tab.time_empty.isVisible()
    days = [dt.date(2026, 3, 3), dt.date(2026, 3, 4), dt.date(2026, 4, 2)]
    per_day = [{"day": d, "predictions": 4, "labelled": 4, "correct": 3, "accuracy": 0.75} for d in days]
    tab.show_stats(StatsSnapshot(total=12, labelled=12, correct=9, accuracy=0.75, per_day=per_day))
    qtbot.wait(20)
    labels = axis_labels(tab)
    assert labels and all(MONTH.match(label) for label in labels), labels
    assert any("Mar" in label for label in labels) and not tab.time_empty.isVisible()


def test_statistics_while_offline_say_everything_and_what_waits(qtbot, make_window, settings):
    offline = settings.with_(database_url="postgresql://nobody@127.0.0.1:1/mnist")
    w = make_window(offline, wait_db=False)
    qtbot.waitUntil(lambda: w.controller.database.is_open, timeout=30000)
    qtbot.waitUntil(lambda: getattr(w, "last_message", None) is not None, timeout=10000)
    w.last_message.close()  # "The database is not reachable…": read, and closed
    w.activateWindow()
    assert draw_and_wait(qtbot, w, 7) == 7
    with qtbot.waitSignal(w.controller.feedback.logged, timeout=10000):
        QTest.keyClick(w, Qt.Key.Key_Return)  # saved in the spool
    qtbot.waitUntil(lambda: w.controller.database.state.pending == 1, timeout=10000)
    with qtbot.waitSignal(w.controller.statistics.statsFailed, timeout=10000) as failed:
        w.tabs.setCurrentIndex(1)
    banner = w.stats_page.tab.problem_label
    qtbot.waitUntil(banner.isVisible, timeout=5000)
    text = banner.text()
    assert text == failed.args[0]
    assert text.startswith("Nothing accepts connections at 127.0.0.1:1")  # from its start...
    assert "fix DATABASE_URL" in text  # ... with the setting to fix ...
    assert "1 thing you saved (drawings and labels) waits on this computer" in text  # ... and what waits
    assert banner.wordWrap() and banner.height() >= banner.heightForWidth(banner.width())  # every line shown
    assert banner.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    save_artifact(w, "statistics_offline.png")

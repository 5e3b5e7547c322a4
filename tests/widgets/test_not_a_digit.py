"""The prediction panel's "This doesn't look like a digit" state, driven through the real
canvas with a weights file that has calibration data (tests/widgets/conftest.py:
calibrated_model_path): a scribble gets the state, with the best guess small; ✓ saves the
drawing as the guess shown, ✗ Wrong… as another digit; the database keeps the verdict.
An uncalibrated file (the shipped one) takes every drawing for a digit."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.widgets.prediction import CORRECT_TEXT, format_share
from tests.db.dbhelpers import fetch
from tests.widgets.conftest import CALIBRATED_THRESHOLD, save_artifact
from tests.widgets.helpers import _points, drag, draw_and_wait

#: A wavy line across the box (on a 280 x 280 field): not a digit.
WAVE = [(20, 140), (60, 100), (100, 180), (140, 100), (180, 180), (220, 100), (260, 140)]


def draw_scribble(qtbot, window):
    canvas = window.canvas
    with qtbot.waitSignal(window.predictionShown, timeout=10000):
        drag(canvas, _points(WAVE, min(canvas.width(), canvas.height())))
    qtbot.waitUntil(lambda: not window.controller.prediction.waiting, timeout=10000)
    return window.controller.prediction.current_prediction


@pytest.fixture
def calibrated_window(make_window, settings, calibrated_model_path):
    return make_window(settings.with_(model_path=calibrated_model_path))


def test_a_scribble_is_not_a_digit_and_check_saves_the_guess(qtbot, calibrated_window, db_url):
    w = calibrated_window
    panel = w.panel
    assert draw_and_wait(qtbot, w, 7) == 7 and panel.state == "result"
    assert panel.correct_button.text() == CORRECT_TEXT
    with qtbot.waitSignal(w.controller.feedback.logged, timeout=10000):
        QTest.keyClick(w, Qt.Key.Key_Escape)  # (logged unlabelled)

    r = draw_scribble(qtbot, w)
    assert not r.is_digit and r.digit_score < CALIBRATED_THRESHOLD  # the predictor's own verdict
    guess = r.digit
    assert panel.state == "notdigit" and panel.digit == guess
    assert panel.confidence_label.text() == "This doesn't look like a digit"
    assert panel.digit_label.text() == str(guess) and panel.digit_label.property("state") == "guess"
    assert f"Best guess: <b>{guess}</b>" in panel.runner_up_label.text()
    assert format_share(r.probabilities[guess]) in panel.runner_up_label.text()
    assert panel.correct_button.text() == f"✓ It is a {guess}" and panel.correct_button.isEnabled()
    assert panel.chart.winner() == guess
    save_artifact(w, "not_a_digit.png")

    # ✓ on this reading means "it is the digit shown".
    with qtbot.waitSignal(w.controller.feedback.logged, timeout=10000) as logged:
        QTest.keyClick(w, Qt.Key.Key_Return)
    assert logged.args[1] == guess and w.canvas.is_empty()
    assert panel.correct_button.text() == CORRECT_TEXT  # back for the next drawing
    assert fetch(db_url, "SELECT predicted_digit, true_label, is_digit FROM predictions ORDER BY id") == [
        (7, None, True), (guess, guess, False)]
    # The statistics count how often a drawing was not a digit.
    with qtbot.waitSignal(w.controller.statistics.statsReady, timeout=10000):
        w.tabs.setCurrentIndex(1)
    tab = w.stats_page.tab
    assert tab.not_digit_value.text() == "50.0 %"
    assert tab.not_digit_caption.text() == "1 of 2 drawings did not look like a digit"
    assert tab.model.rows()[0].is_digit is False and tab.model.index(0, 1).data() == f"{guess}?"
    save_artifact(w, "statistics_not_a_digit.png")


def test_wrong_on_a_scribble_saves_the_digit_picked(qtbot, calibrated_window, db_url):
    w = calibrated_window
    r = draw_scribble(qtbot, w)
    assert not r.is_digit
    other = (r.digit + 1) % 10
    w.act_wrong.trigger()
    dialog = w.draw.correction_dialog
    with qtbot.waitSignal(w.controller.feedback.logged, timeout=10000):
        QTest.keyClick(dialog, getattr(Qt.Key, f"Key_{other}"))
    assert fetch(db_url, "SELECT predicted_digit, true_label, is_digit FROM predictions") == [(r.digit, other, False)]


def test_an_uncalibrated_file_takes_every_drawing_for_a_digit(qtbot, make_window, settings, model_path, tmp_path):
    """A weights file without calibration data (an older one, or one saved elsewhere)."""
    from app.ml import checkpoint

    loaded = checkpoint.load(model_path)
    plain = tmp_path / "uncalibrated.pth"
    checkpoint.save(plain, loaded.model, loaded.arch, loaded.arch_kwargs,
                    {k: v for k, v in loaded.metadata.items() if k != "calibration"})
    window = make_window(settings.with_(model_path=plain))
    assert window.controller.models.model_info.calibration is None
    r = draw_scribble(qtbot, window)
    assert r.is_digit and window.panel.state == "result"


def test_about_this_model_shows_the_reliability_diagram_and_the_threshold(qtbot, calibrated_window,
                                                                          calibrated_model_path):
    from app.ml import checkpoint
    from app.widgets.about_model import AboutModelDialog

    w = calibrated_window
    calibration = checkpoint.load(calibrated_model_path).metadata["calibration"]
    w.act_about_model.trigger()
    about = w.dialogs.get(AboutModelDialog)
    qtbot.waitExposed(about)
    text = about.calibration_label.text()
    assert about.calibrated and "Calibrated" in text
    assert f"{100 * calibration['test_ece']:.2f} %" in text  # the calibration error
    assert f"{CALIBRATED_THRESHOLD:.3f}" in text and "not a digit" in text.lower()
    assert about.diagram.isVisible()
    reliability = calibration["test_reliability"]
    heights = about.diagram.bar_heights()
    assert len(heights) == len(reliability["counts"]) == 15
    assert heights == pytest.approx([a or 0.0 for a in reliability["accuracy"]])
    save_artifact(about, "about_this_model_calibrated.png")

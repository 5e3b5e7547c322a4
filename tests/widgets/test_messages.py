"""Messages for people: whole, selectable, with the technical part behind "Details…";
a model that does not load offers the shipped one; quitting while training runs asks."""

from __future__ import annotations

import psutil
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app import paths
from app.controllers.problems import problem_from
from app.widgets.cards import JobProgress
from app.widgets.prediction import PredictionPanel
from app.widgets.training import TrainingDialog

#: A training run long enough to be running when the window is closed.
LONG = {"epochs": 3, "batch_size": 128, "learning_rate": 0.006, "arch": "mnist_cnn", "augment": True,
        "train_limit": 20000}

PK_NOT_WEIGHTS = b"PK\x03\x04 this is not a weights file"


def shown_box(qtbot, w) -> QMessageBox:
    qtbot.waitUntil(lambda: hasattr(w, "last_message") and w.last_message.isVisible(), timeout=30000)
    return w.last_message


def test_a_corrupt_model_file_is_said_whole_without_pytorchs_words(qtbot, make_window, settings, tmp_path):
    bad = tmp_path / "a-folder-with-a-rather-long-name-as-people-have-them" / "broken.pth"
    bad.parent.mkdir()
    bad.write_bytes(PK_NOT_WEIGHTS)
    w = make_window(settings.with_(model_path=bad), wait_model=False, wait_db=False)
    qtbot.waitUntil(lambda: w.panel.state == "error", timeout=30000)
    box = shown_box(qtbot, w)
    text = box.text()
    # What happened, about which file, and what to do; PyTorch's own words only in the details.
    assert f"Model file {bad} is corrupt or not a weights file. Train a new model" in text
    assert "PytorchStreamReader" not in text and "high..." not in text
    assert "PytorchStreamReader failed reading zip archive" in box.detailedText()
    assert box.detailedText().endswith("or the file was modified after saving.")  # whole, not cut
    label = box.findChild(object, "qt_msgbox_label")
    assert label.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    # The panel says it by the file's name: the path does not widen it.
    assert "broken.pth is corrupt" in w.panel.detail_label.text() and str(bad.parent) not in w.panel.detail_label.text()
    # ... nor squeeze its chart: beside an idle panel of the same size, the chart keeps its height.
    panels = []
    for text in (None, w.panel.detail_label.text()):
        panel = PredictionPanel()
        qtbot.addWidget(panel)
        panel.show_idle() if text is None else panel.show_error("No model", text)
        panel.resize(420, 600)
        panel.show()
        qtbot.waitExposed(panel)
        panels.append(panel)
    idle, failed = panels
    assert failed.minimumSizeHint().width() <= idle.minimumSizeHint().width() + 40
    assert failed.chart.height() == idle.chart.height()


def test_a_model_that_does_not_load_offers_the_shipped_one(qtbot, make_window, settings, tmp_path, qsettings):
    shipped = paths.bundled_model_path()
    if not shipped.is_file():
        pytest.skip(f"{shipped} is not in this checkout")
    bad = tmp_path / "broken.pth"
    bad.write_bytes(PK_NOT_WEIGHTS)
    w = make_window(settings.with_(model_path=bad), wait_model=False, wait_db=False)
    box = shown_box(qtbot, w)
    assert box.windowTitle() == "The model could not be loaded"
    assert [b.text() for b in box.buttons()].count("Use the shipped model") == 1
    use = box.defaultButton()
    assert use.text() == "Use the shipped model"
    with qtbot.waitSignal(w.controller.models.modelReady, timeout=30000) as ready:
        qtbot.mouseClick(use, Qt.MouseButton.LeftButton)
    assert ready.args[0].path.resolve() == shipped.resolve()
    assert qsettings.value("model/path") == str(shipped)  # remembered for the next start
    qtbot.waitUntil(lambda: w.panel.state == "idle", timeout=5000)


def test_the_way_back_is_another_shipped_file_than_the_one_that_failed(qtbot, make_window, settings):
    w = make_window(settings, wait_db=False)
    models = w.controller.models
    shipped = [p for p in paths.shipped_model_paths() if p.is_file()]
    assert models.shipped_model_for(None) == (shipped[0] if shipped else None)
    assert models.shipped_model_for(paths.bundled_model_path().with_name("other.pth")) == \
        (shipped[0] if shipped else None)
    # The default failed: the other shipped file, if there is one; never the same file.
    assert models.shipped_model_for(shipped[0] if shipped else None) == (shipped[1] if len(shipped) > 1 else None)


def test_a_failed_job_is_shown_whole_with_its_details(qtbot):
    """A long error in the training dialog: every line shown (the lines grow), selectable,
    PyTorch's words behind "Details…"; a new run gets the fixed lines back."""
    try:
        try:
            raise RuntimeError("PytorchStreamReader failed reading zip archive: failed finding central directory. "
                               "This is an internal miniz error. If you are seeing this error, there is a high "
                               "likelihood that your checkpoint file is corrupted.")
        except RuntimeError as cause:
            raise ValueError("Model file /tmp/x.pth is corrupt or not a weights file (PytorchStreamReader failed "
                             "reading zip archive: failed finding central directory. This is an internal miniz "
                             "error. If you are seeing this error, there is a high...). Train a new model or "
                             "choose another weights file.") from cause
    except ValueError as exc:
        problem = problem_from(exc)
    long = (f"Training failed: {problem} The training images could not be read either: the folder "
            f"/home/someone/.local/share/mnist-classifier/mnist is empty, and this computer seems to be "
            f"offline. Connect it to the internet, or copy the four MNIST files into that folder, then "
            f"train again.\nThe current model stays in use.")
    from app.viewmodels import Problem

    dialog = TrainingDialog({"mnist_cnn": "the network"}, {"quick": {"epochs": 2, "batch_size": 128,
                                                                     "learning_rate": 0.01, "augment": False,
                                                                     "arch": "mnist_cnn"}})
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.training_started()
    fixed = dialog.status.height()
    plot_height, dialog_height = dialog.loss_plot.height(), dialog.height()
    dialog.training_failed(Problem(long, problem.details))
    qtbot.waitUntil(lambda: dialog.status.height() > fixed, timeout=5000)
    # The window grows by what the text and the button need; the plots keep their size.
    grown = dialog.status.height() - fixed + dialog.job.details_button.height() + 20
    assert dialog_height < dialog.height() <= dialog_height + grown
    assert abs(dialog.loss_plot.height() - plot_height) <= 4
    status = dialog.status
    assert status.text() == long and "PytorchStreamReader" not in status.text()
    assert status.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    # Every line of it fits: the label is as tall as the text needs at its width.
    assert status.height() >= status.heightForWidth(status.width())
    job: JobProgress = dialog.job
    assert job.details_button.isVisible()
    job.details_button.click()
    details = next(b for b in dialog.findChildren(QMessageBox) if b.windowTitle() == "Details")
    assert "If you are seeing this error, there is a high likelihood" in details.text()
    dialog.training_started()
    assert not job.details_button.isVisible() and dialog.status.height() == fixed


def test_quitting_while_training_runs_asks_first(qtbot, make_window, settings):
    w = make_window(settings, wait_db=False)
    learning = w.controller.learning
    qtbot.waitUntil(lambda: w.controller.models.ml_info is not None, timeout=60000)
    progress = []
    learning.trainingProgress.connect(progress.append)
    assert learning.start_training(LONG)
    qtbot.waitUntil(lambda: bool(progress), timeout=180000)
    pid = learning.child_pid
    assert not w.close()  # not closed: asked
    question = w.quit_question
    qtbot.waitExposed(question)
    assert w.isVisible() and learning.busy
    assert "A training run is still running" in question.text() and "it is lost" in question.text()
    stay = question.defaultButton()
    assert stay.text() == "Keep running" and question.escapeButton() is stay
    qtbot.mouseClick(stay, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.quit_question is None, timeout=5000)
    assert w.isVisible() and learning.busy and psutil.pid_exists(pid)
    # Asked again; this time the answer is quit.
    w.close()
    question = w.quit_question
    qtbot.waitExposed(question)
    quit_button = next(b for b in question.buttons() if b.text() == "Quit and lose the training")
    qtbot.mouseClick(quit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=10000)
    qtbot.waitUntil(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                    timeout=30000)


def test_quitting_without_a_run_asks_nothing(qtbot, make_window, settings):
    w = make_window(settings, wait_db=False)
    assert w.close() and w.quit_question is None

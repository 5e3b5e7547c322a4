"""Model → Train…: a tiny run from the dialog finishes, asks whether to use the new model
or keep the current one (measured on the same test images) and swaps it in when told;
Cancel leaves the old one."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.widgets.training import TrainingDialog
from tests.widgets.conftest import save_artifact
from tests.widgets.test_main_window import draw_and_wait


def open_dialog(qtbot, window):
    qtbot.waitUntil(window.act_train.isEnabled, timeout=30000)
    window.act_train.trigger()
    dialog = window.dialogs.get(TrainingDialog)
    qtbot.waitExposed(dialog)
    return dialog


def test_tiny_training_run_swaps_the_model(qtbot, window, settings, qsettings, model_path):
    old = window.controller.models.model_info
    dialog = open_dialog(qtbot, window)
    dialog.preset.setCurrentIndex(dialog.preset.findData("quick"))
    dialog.epochs.setValue(2)
    dialog.batch_size.setValue(100)
    dialog.learning_rate.setValue(0.01)
    dialog.arch.setCurrentIndex(dialog.arch.findData("mnist_cnn"))
    dialog.train_images.setValue(3000)
    assert dialog.config() == dict(window.controller.models.ml_info.presets["quick"], epochs=2, batch_size=100,
                                   learning_rate=0.01, arch="mnist_cnn", augment=False, train_limit=3000)
    progress = []
    window.controller.learning.trainingProgress.connect(progress.append)
    with qtbot.waitSignal(window.controller.learning.trainingChoice, timeout=180000) as asked:
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.running, timeout=5000)
        assert not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()
    # Nothing is swapped before the user answers; both models were measured alike.
    choice = asked.args[0]
    assert window.controller.models.model_info is old and not dialog.running
    assert choice.test_images == 10000 and choice.current_accuracy > choice.new_accuracy  # 3000 images, 2 epochs
    question = window.dialogs.training_question
    qtbot.waitExposed(question)
    assert question.text().startswith(f"Use the new model ({choice.new_accuracy:.2f} %) or keep the current "
                                      f"one ({choice.current_accuracy:.2f} %)?")
    assert question.defaultButton().text() == f"Keep the current one ({choice.current_accuracy:.2f} %)"
    use = next(b for b in question.buttons() if b.text().startswith("Use the new model"))
    assert "Choose which model to use" in dialog.status.text()
    with qtbot.waitSignal(window.controller.learning.trainingFinished, timeout=60000) as done:
        qtbot.mouseClick(use, Qt.MouseButton.LeftButton)
    outcome = done.args[0]
    new = window.controller.models.model_info
    assert new is outcome.info and new.sha256 != old.sha256
    assert new.path.parent == Path(settings.models_dir) and new.path.is_file()
    assert model_path.is_file() and new.path != model_path  # the shipped file is untouched
    assert new.metadata["train_samples"] == 3000 and new.metadata["epochs"] == 2
    assert qsettings.value("model/path") == str(new.path)  # remembered for the next start
    assert [p.epoch for p in progress if p.epoch_stats] == [1, 2]
    assert dialog.progress.value() == 1000 and "in use" in dialog.status.text()
    assert len(dialog.test_acc_curve.getData()[0]) == 2
    version = window.controller.models.model_version_id  # recorded before the run is reported finished
    assert version is not None and window.model_label.text().startswith(f"Model #{version}: mnist_cnn")
    save_artifact(dialog, "training_dialog.png")
    dialog.hide()
    # The new model predicts at once, without a restart.
    window.activateWindow()
    assert draw_and_wait(qtbot, window, 1) == 1


def test_cancel_leaves_the_old_model(qtbot, window, settings, qsettings):
    old = window.controller.models.model_info
    dialog = open_dialog(qtbot, window)
    dialog.preset.setCurrentIndex(dialog.preset.findData("quick"))
    dialog.epochs.setValue(15)  # long
    with qtbot.waitSignal(window.controller.learning.trainingProgress, timeout=120000):
        dialog.start_button.click()
    with qtbot.waitSignal(window.controller.learning.trainingCancelled, timeout=30000):
        dialog.cancel_button.click()
    assert window.controller.models.model_info is old
    assert not dialog.running and dialog.start_button.isEnabled()
    assert "current model stays" in dialog.status.text()
    assert not Path(settings.models_dir).exists() or not any(Path(settings.models_dir).iterdir())
    assert qsettings.value("model/path") is None
    assert not window.training_bar.isVisible()


def test_the_recipes_fill_every_field_from_the_command_lines_presets(qtbot):
    """Standard is the shipped recipe (15 epochs with augmentation), Quick the 2-epoch one:
    every value comes from app.ml.train.PRESETS as the controller hands them over."""
    from app.controllers.models import import_ml
    from app.ml import train

    info = import_ml()
    dialog = TrainingDialog(info.architectures, info.presets)
    qtbot.addWidget(dialog)
    assert [dialog.preset.itemData(i) for i in range(dialog.preset.count())] == ["quick", "standard", "robust"]
    assert dialog.preset.currentData() == "quick"
    for name in ("standard", "quick", "robust"):
        dialog.preset.setCurrentIndex(dialog.preset.findData(name))
        recipe = train.preset(name)
        got = train.TrainConfig(**dialog.config())
        assert got == recipe, name  # every field, the synthetic data and calibration too
    dialog.preset.setCurrentIndex(dialog.preset.findData("robust"))
    dialog.epochs.setValue(3)  # a value changed by hand wins over the recipe's
    assert dialog.config()["epochs"] == 3 and dialog.config()["outliers"] == train.preset("robust").outliers
    dialog.preset.setCurrentIndex(dialog.preset.findData("standard"))
    assert dialog.epochs.value() == train.TrainConfig().epochs == 15
    assert dialog.preset.currentText().startswith("Standard: 15 epochs, with augmentation")


def test_the_train_curves_do_not_jump_at_an_epoch_boundary(qtbot):
    """Training reports running means that restart each epoch; the curves show the last
    batches' means, so a steadily learning network draws a steady curve across epochs."""
    import numpy as np

    from app.ml.train import TrainProgress

    dialog = TrainingDialog({"mnist_cnn": "the network"}, {"quick": {"epochs": 2, "batch_size": 128,
                                                                     "learning_rate": 0.01, "augment": False,
                                                                     "arch": "mnist_cnn"}})
    qtbot.addWidget(dialog)
    dialog.training_started()
    batches, every = 100, 10
    acc = 50 + 0.2 * np.arange(2 * batches)  # per batch: the network gets steadily better
    loss = 2.0 - 0.008 * np.arange(2 * batches)
    for epoch in (1, 2):
        first = (epoch - 1) * batches
        for b in range(every, batches + 1, every):  # as app.ml.train reports: means over the epoch so far
            dialog.show_progress(TrainProgress(epoch=epoch, epochs=2, batch=b, batches=batches,
                                               loss=float(loss[first:first + b].mean()),
                                               accuracy=float(acc[first:first + b].mean()), elapsed=1.0, eta=1.0))
    for curve in (dialog.acc_curve, dialog.loss_curve):
        steps = np.abs(np.diff(curve.getData()[1]))
        assert len(steps) == 19 and steps.max() <= 1.5 * np.median(steps), steps
    # The last point: the accuracy of the last fifth of the batches.
    assert dialog.acc_curve.getData()[1][-1] == pytest.approx(acc[-20:].mean())

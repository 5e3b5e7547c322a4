"""The learning room without a window: training runs in a child process; a child killed
mid-epoch, a cancelled run or bad settings leave the app running and the old model in
use; the recipes offered are app.ml.train.PRESETS."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from tests.controllers.conftest import Record, picture, wait_until

#: The shipped recipe on a third of the images: long enough to be stopped mid-epoch.
LONG = {"epochs": 3, "batch_size": 128, "learning_rate": 0.006, "arch": "mnist_cnn", "augment": True,
        "train_limit": 20000}
#: A short, plain run (a few seconds).
SHORT = {"epochs": 1, "batch_size": 256, "learning_rate": 0.01, "arch": "mnist_cnn", "augment": False,
         "train_limit": 3000}


def no_weights_written(settings) -> bool:
    folder = Path(settings.models_dir)
    return not folder.exists() or not any(folder.iterdir())


def mid_epoch(got) -> bool:
    return any(p.batch < p.batches for (p,) in got["progress"])


def test_a_training_process_killed_mid_epoch(make_controller, settings):
    c = make_controller(settings)
    old_info, old_predictor = c.models.model_info, c.models.predictor
    got = Record(progress=c.learning.trainingProgress, failed=c.learning.trainingFailed,
                 finished=c.learning.trainingFinished, ready=c.prediction.predictionReady)
    assert c.learning.start_training(LONG) and c.learning.busy
    wait_until(lambda: mid_epoch(got), 180, "the first progress report")
    pid = c.learning.child_pid
    assert pid is not None and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)  # as the out-of-memory killer would
    wait_until(lambda: got["failed"], 60, "the failure")
    [(text,)] = got["failed"]
    assert "killed" in text and "stays in use" in text
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    # The app runs on with the old model.
    assert c.models.model_info is old_info and c.models.predictor is old_predictor
    assert not c.learning.busy and c.learning.child_pid is None and got["finished"] == []
    assert no_weights_written(settings) and c.models.qsettings.value("model/path") is None
    c.prediction.request_prediction(picture(7))
    wait_until(lambda: got["ready"], what="a prediction after the crash")
    assert got["ready"][0][0].digit == 7 and got["ready"][0][0].model_sha256 == old_info.sha256
    # ... and trains again; the new model is used once the user says so.
    choices = Record(choice=c.learning.trainingChoice)
    assert c.learning.start_training(SHORT)
    wait_until(lambda: choices["choice"], 300, "the second training run")
    assert c.models.model_info is old_info and got["finished"] == []
    c.learning.choose(True)
    wait_until(lambda: got["finished"], 60, "the new model in use")
    [(outcome,)] = got["finished"]
    assert c.models.model_info is outcome.info and outcome.info.sha256 != old_info.sha256
    assert outcome.info.path.parent == Path(settings.models_dir)


def test_a_finished_training_asks_before_replacing_the_model(make_controller, settings):
    """The new model and the one in use are measured on the same test images; the answer
    decides; keeping the current one leaves it in use and the new weights in their file."""
    from app.ml import checkpoint, data, train

    c = make_controller(settings)
    old_info = c.models.model_info
    got = Record(choice=c.learning.trainingChoice, finished=c.learning.trainingFinished,
                 declined=c.learning.trainingDeclined, ready=c.models.modelReady)
    assert c.learning.start_training(SHORT)
    wait_until(lambda: got["choice"], 300, "the training run")
    [(choice,)] = got["choice"]
    assert not c.learning.busy and c.learning.pending_choice is choice
    assert c.models.model_info is old_info and got["ready"] == []  # nothing swapped yet
    # The model in use, measured as training measures: on the same 10 000 test images.
    loaded = checkpoint.load(old_info.path)
    test = data.load(settings.mnist_dir).test
    x, y = train.to_tensors(test.images, test.labels, "cpu")
    _, correct, n = train.evaluate(loaded.model, x, y)
    assert choice.test_images == n == 10000 and choice.current_accuracy == 100.0 * correct / n
    assert choice.new_accuracy < choice.current_accuracy and not choice.new_is_better  # 3000 images, 1 epoch
    assert choice.path.is_file() and checkpoint.load(choice.path).metadata["train_samples"] == 3000
    c.learning.choose(False)
    assert got["declined"] == [(choice,)] and c.learning.pending_choice is None
    assert c.models.model_info is old_info and got["finished"] == [] and c.models.qsettings.value("model/path") is None
    c.learning.choose(True)  # (answered already: nothing happens)
    assert got["finished"] == [] and c.models.model_info is old_info


def test_a_model_trained_from_scratch_has_no_parent_version(make_controller, settings):
    c = make_controller(settings)
    wait_until(lambda: c.models.model_version_id is not None, 30, "the version in use")
    got = Record(choice=c.learning.trainingChoice, finished=c.learning.trainingFinished,
                 versions=c.models.versionsReady)
    assert c.learning.start_training(SHORT)
    wait_until(lambda: got["choice"], 300, "the training run")
    c.learning.choose(True)
    wait_until(lambda: got["finished"], 60, "the new model in use")
    new_version = c.models.model_version_id
    c.models.refresh_versions()
    wait_until(lambda: got["versions"], 30, "the versions")
    rows = {v.id: v for v in got["versions"][-1][0]}
    assert rows[new_version].kind == "trained" and rows[new_version].parent_id is None


def test_cancel_stops_the_training_process(make_controller, settings):
    c = make_controller(settings)
    old_info = c.models.model_info
    got = Record(progress=c.learning.trainingProgress, cancelled=c.learning.trainingCancelled,
                 failed=c.learning.trainingFailed)
    c.learning.start_training(LONG)
    wait_until(lambda: got["progress"], 180, "the first progress report")
    pid = c.learning.child_pid
    c.learning.cancel_training()
    wait_until(lambda: got["cancelled"], 30, "the cancel")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert c.models.model_info is old_info and got["failed"] == [] and no_weights_written(settings)


def test_bad_settings_are_reported_by_the_child(make_controller, settings):
    c = make_controller(settings, wait_db=False)
    got = Record(failed=c.learning.trainingFailed, started=c.learning.trainingStarted)
    assert c.learning.start_training(dict(SHORT, epochs=0))
    wait_until(lambda: got["failed"], 60, "the failure")
    assert "epochs must be at least 1" in got["failed"][0][0] and "stays in use" in got["failed"][0][0]
    assert not c.learning.busy


def test_one_learning_run_at_a_time(make_controller, settings):
    c = make_controller(settings)
    got = Record(failed=c.learning.improveFailed, cancelled=c.learning.trainingCancelled)
    assert c.learning.start_training(LONG)
    assert not c.learning.start_improve() and "training run is in progress" in got["failed"][0][0]
    assert not c.learning.start_training(SHORT)
    c.learning.cancel_training()
    wait_until(lambda: got["cancelled"], 60, "the cancel")


@pytest.mark.parametrize("name", ["standard", "quick", "robust"])
def test_the_recipes_offered_are_the_command_lines(make_controller, settings, name):
    from app.ml import train

    c = make_controller(settings, wait_db=False)
    wait_until(lambda: c.models.ml_info is not None, 60, "torch")
    recipe = train.preset(name)
    from app.controllers.models import PRESET_FIELDS

    assert c.models.ml_info.presets[name] == {k: getattr(recipe, k) for k in PRESET_FIELDS}
    assert train.TrainConfig(**c.models.ml_info.presets[name]) == recipe
    assert set(c.models.ml_info.presets) == set(train.PRESETS)

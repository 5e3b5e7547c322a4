"""Training in a child process (app.trainer): results, progress and errors come back
over the pipe; Cancel asks, then kills; a child that dies is reported in words.  No Qt."""

from __future__ import annotations

import os
import signal

import numpy as np
import psutil
import pytest

from app import trainer
from app.ml import checkpoint
from app.ml.data import MNIST
from app.ml.errors import TrainingCancelled
from tests import children
from tests.ml.conftest import mnist, mnist_dir  # noqa: F401 - fixtures


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def small(mnist):  # noqa: F811
    """2 000 training and 500 test images: a few seconds of training."""
    return MNIST(train=mnist.train.subset(2000), test=mnist.test.subset(500), md5s=dict(mnist.md5s))


def test_a_model_trained_in_a_child_process(small, tmp_path):
    said = []
    out = tmp_path / "child.pth"
    request = trainer.TrainRequest(config={"epochs": 2, "batch_size": 100, "augment": False}, out=out, mnist=small)
    result = trainer.run_in_child(trainer.train_model, request, report=lambda kind, value: said.append((kind, value)))
    assert isinstance(result, trainer.TrainedModel) and result.path == out and result.epochs == 2
    loaded = checkpoint.load(out)
    assert loaded.sha256 == result.sha256 and loaded.metadata["train_samples"] == 2000
    assert 50 < result.test_accuracy <= 100
    kinds = [k for k, _ in said]
    assert kinds[0] == "started" and said[0][1] != os.getpid()  # another process trained it
    assert gone(said[0][1])
    progress = [v for k, v in said if k == "progress"]
    assert [p.epoch for p in progress if p.epoch_stats] == [1, 2]
    assert progress[-1].fraction == pytest.approx(1.0)
    assert ("status", "Saving the weights…") in said


def test_an_error_in_the_child_comes_back_as_itself(small, tmp_path):
    request = trainer.TrainRequest(config={"epochs": 0}, out=tmp_path / "x.pth", mnist=small)
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        trainer.run_in_child(trainer.train_model, request)
    with pytest.raises(RuntimeError, match="Unpicklable: a lock cannot travel"):
        trainer.run_in_child(children.raises_unpicklable, None)
    assert not (tmp_path / "x.pth").exists()


def test_missing_mnist_files_are_an_mnist_error(tmp_path):
    from app.ml.errors import MNISTError

    request = trainer.TrainRequest(config={"epochs": 1}, out=tmp_path / "x.pth", mnist_dir=tmp_path / "empty",
                                   allow_download=False)
    with pytest.raises(MNISTError, match="missing"):
        trainer.run_in_child(trainer.train_model, request)


def test_a_child_that_dies_is_reported_in_words():
    with pytest.raises(trainer.TrainingCrashed, match=r"killed \(SIGKILL\).*out of memory"):
        trainer.run_in_child(children.killed, None)
    with pytest.raises(trainer.TrainingCrashed, match="exit code 7"):
        trainer.run_in_child(children.exits, None)


def test_a_child_killed_mid_epoch(small, tmp_path):
    out = tmp_path / "never.pth"
    pid = []

    def report(kind, value):
        if kind == "started":
            pid.append(value)
        elif kind == "progress" and value.batch < value.batches:  # in the middle of an epoch
            os.kill(pid[0], signal.SIGKILL)

    request = trainer.TrainRequest(config={"epochs": 3, "batch_size": 50}, out=out, mnist=small)
    with pytest.raises(trainer.TrainingCrashed, match="killed"):
        trainer.run_in_child(trainer.train_model, request, report=report)
    assert not out.exists() and not list(tmp_path.iterdir())  # no weights, not even half written


def test_cancel_asks_first(tmp_path):
    seen = tmp_path / "seen"
    calls = []

    def should_cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(TrainingCancelled):
        trainer.run_in_child(children.stops_when_asked, seen, should_cancel=should_cancel)
    assert seen.read_text() == "cancel seen"  # it stopped by itself


def test_cancel_kills_a_child_that_does_not_stop(tmp_path):
    done = tmp_path / "done"
    pid = []
    with pytest.raises(TrainingCancelled):
        trainer.run_in_child(children.ignores_cancel, done,
                             report=lambda kind, value: pid.append(value) if kind == "started" else None,
                             should_cancel=lambda: bool(pid))
    assert pid and gone(pid[0])
    assert not done.exists()  # it never got to the end: it was killed


def test_improve_in_a_child_checks_the_base_weights(tmp_path, mnist_dir):  # noqa: F811
    from app.learn import UserDataset
    from app.ml.errors import ModelFileError
    from app.paths import bundled_model_path

    data = UserDataset(np.zeros((25, 28, 28), np.uint8), np.zeros(25, np.int64), [str(i) for i in range(25)])
    request = trainer.ImproveRequest(base_path=bundled_model_path(), base_sha256="0" * 64, dataset=data,
                                     models_dir=tmp_path, mnist_dir=mnist_dir)
    with pytest.raises(ModelFileError, match="has changed since"):
        trainer.run_in_child(trainer.improve_model, request)


def test_cancel_while_the_synthetic_images_are_drawn(small, tmp_path, caplog):
    """The standard recipe first draws synthetic digits (minutes, the first time): Cancel
    stops that too, and no half-made set is cached."""
    said = []
    asked = []

    def report(kind, value):
        said.append((kind, value))

    def should_cancel():
        drawing = any(kind == "status" and "Drawing synthetic digits:" in str(value) for kind, value in said)
        if drawing:
            asked.append(1)
        return drawing

    request = trainer.TrainRequest(config={"epochs": 1, "synthetic": 30000, "validation": 100}, out=tmp_path / "x.pth",
                                   mnist=small, cache_dir=tmp_path / "cache")
    with pytest.raises(TrainingCancelled):
        trainer.run_in_child(trainer.train_model, request, report=report, should_cancel=should_cancel)
    assert asked and not (tmp_path / "x.pth").exists()
    assert not list((tmp_path / "cache").glob("*.npz"))
    # It stopped by itself, between two chunks: no kill was needed.
    assert not [r for r in caplog.records if "did not stop" in r.getMessage()]

"""Headless tests of the controllers: a QCoreApplication (no widgets), the real model,
the real database (tests/conftest.py's servers) and real training processes.

The QCoreApplication lives while this folder's tests run and is deleted after them, so
that the widget tests (later in a run) can make their QApplication.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import shiboken6  # noqa: E402
from PySide6.QtCore import QCoreApplication, QEventLoop, QSettings  # noqa: E402

from app import paths  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.ml.conftest import mnist_dir  # noqa: E402,F401 - fixture


@pytest.fixture(scope="package", autouse=True)
def core_application():
    app = QCoreApplication.instance()
    if app is not None:  # (a QApplication from tests that ran before: use it)
        yield app
        return
    app = QCoreApplication(["controller-tests"])
    yield app
    shiboken6.delete(app)


def wait_until(condition, timeout: float = 30.0, what: str = "the condition") -> None:
    """Run the event loop until ``condition()`` is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.002)


def settle(seconds: float) -> None:
    """Let the event loop run for a while (to see that nothing more happens)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.002)


class Record:
    """Every emission of some signals: ``record.got["name"]`` is a list of argument tuples."""

    def __init__(self, **signals):
        self.got: dict[str, list[tuple]] = defaultdict(list)
        for name, signal in signals.items():
            signal.connect(lambda *args, name=name: self.got[name].append(args))

    def __getitem__(self, name: str) -> list[tuple]:
        return self.got[name]


def picture(digit: int) -> np.ndarray:
    """A drawn digit as the canvas hands it over: 280x280 grey, black ink on white."""
    from tests.ml.drawing import draw_digit

    return np.asarray(draw_digit(digit))


@pytest.fixture
def model_path():
    path = paths.bundled_model_path()
    assert path.is_file(), f"{path} is missing: run `make train`"
    return path


@pytest.fixture
def settings(tmp_path, mnist_dir, model_path, db_url) -> Settings:  # noqa: F811
    return Settings(data_home=tmp_path / "home", mnist_dir=mnist_dir, model_path=model_path, database_url=db_url)


@pytest.fixture
def make_controller(tmp_path):
    """make_controller(settings, **options) -> a started Controller (model loaded, database
    online unless told not to wait); shut down after the test."""
    from app.controllers import Controller

    made = []

    def make(settings: Settings, wait_model: bool = True, wait_db: bool = True, **options):
        qsettings = QSettings(str(tmp_path / f"settings-{len(made)}.ini"), QSettings.Format.IniFormat)
        controller = Controller(settings, qsettings, **options)
        made.append(controller)
        controller.start()
        if wait_model:
            wait_until(lambda: controller.models.model_ready, 60, "the model")
        if wait_db:
            wait_until(lambda: controller.database.state.online, 60, "the database")
        return controller

    yield make
    for controller in made:
        controller.shutdown()
        shiboken6.delete(controller)

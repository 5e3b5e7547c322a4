"""GUI test fixtures: offscreen Qt, QSettings per test, a model, the real database.

The database fixtures (db_url: a fresh database on the embedded test server) and the
MNIST folder (mnist_dir) come from tests/conftest.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QCoreApplication, QSettings  # noqa: E402

from app import paths  # noqa: E402
from app.ml import data  # noqa: E402 (no torch: data.py reads files with numpy)
from app.settings import Settings  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"


@pytest.fixture(scope="session")
def model_path(tmp_path_factory, mnist_dir) -> Path:
    """The shipped weights; without them (a fresh checkout), a quick model trained here."""
    shipped = paths.bundled_model_path()
    if shipped.is_file():
        return shipped
    from app.ml import train

    path = tmp_path_factory.mktemp("model") / "quick.pth"
    mnist = data.load(mnist_dir)
    result = train.train(train.preset("quick", epochs=2, train_limit=30000), mnist)
    train.save_result(result, mnist, path)
    return path


@pytest.fixture(scope="session")
def model_arch(model_path) -> str:
    """The architecture of the weights the app starts with ("wide" for the shipped default)."""
    from app.ml import checkpoint

    return checkpoint.load(model_path).arch


#: The "is a digit" threshold written into the calibrated copy of the weights (see below).
CALIBRATED_THRESHOLD = 0.9


@pytest.fixture(scope="session")
def calibrated_model_path(tmp_path_factory, model_path, mnist_dir) -> Path:
    """The same network as ``model_path`` with calibration data in its file, as training
    writes it (app.ml.train.calibrate): temperature 1 (the confidences stay the network's),
    the reliability diagram and calibration error measured on the MNIST test set, and a
    digit-score threshold of CALIBRATED_THRESHOLD.

    Measured, not trained: a few seconds instead of a training run, and the network reads
    drawn digits as well as the shipped one, so the tests' contrast (a drawn digit
    accepted, a scribble refused) depends on the drawing, not on a weak network.  The
    threshold is the test's choice, not a tuned value: at 0.9 this network accepts about
    99 % of the MNIST test digits (``test_digit_accept`` records the share)."""
    from app.ml import calibration as cal
    from app.ml import checkpoint, train

    loaded = checkpoint.load(model_path)
    test = data.load(mnist_dir).test
    probs = cal.softmax(train.logits_of(loaded.model, test.images), 1.0)
    reliability = cal.reliability(probs.max(1), probs.argmax(1) == test.labels)
    calibration = {"temperature": 1.0, "digit_threshold": CALIBRATED_THRESHOLD, "score": "msp",
                   "test_ece": round(reliability.ece, 6), "test_reliability": reliability.to_dict(),
                   "test_digit_accept": round(float((probs.max(1) >= CALIBRATED_THRESHOLD).mean()), 6)}
    out = tmp_path_factory.mktemp("calibrated") / "calibrated.pth"
    checkpoint.save(out, loaded.model, loaded.arch, loaded.arch_kwargs,
                    dict(loaded.metadata, calibration=calibration))
    return out


@pytest.fixture(scope="session", autouse=True)
def _qt_application(qapp):
    from app.application import make_application

    make_application([])  # style sheet and names, as the app has them
    QCoreApplication.setOrganizationName("mnist-classifier-tests")  # never the user's settings
    return qapp


@pytest.fixture
def qsettings(tmp_path) -> QSettings:
    """A QSettings of its own for each test (nothing leaks into the user's settings)."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def settings(tmp_path, mnist_dir, model_path, db_url) -> Settings:
    return Settings(data_home=tmp_path / "home", mnist_dir=mnist_dir, model_path=model_path,
                    database_url=db_url)


@pytest.fixture
def make_window(qtbot, qsettings):
    """make_window(settings) -> a shown MainWindow; closed (workers and DB stopped) after."""
    from app.controllers import Controller
    from app.widgets.main_window import MainWindow

    made = []

    def make(settings: Settings, wait_model: bool = True, wait_db: bool = True, qs: QSettings | None = None,
             **options):
        """``options``: the Controller's keyword arguments (finetune=, db_poll_ms=, ...)."""
        qs = qs or qsettings
        controller = Controller(settings, qs, **options)
        window = MainWindow(controller, qs)
        qtbot.addWidget(window)
        made.append(window)
        window.show()
        qtbot.waitExposed(window)
        if wait_model:
            qtbot.waitUntil(lambda: controller.models.model_ready, timeout=30000)
        if wait_db and settings is not None:
            qtbot.waitUntil(lambda: controller.database.state.online, timeout=30000)
        return window

    yield make
    for w in made:
        w.quit_without_asking()  # (a run a test left going would otherwise ask first)


@pytest.fixture
def window(make_window, settings):
    return make_window(settings)


def save_artifact(widget, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    widget.grab().save(str(path))
    return path

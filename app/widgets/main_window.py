"""The main window: the Draw tab (app/widgets/draw_tab.py), the Statistics tab
(stats_page.py), the menus, toolbar and status bar, and the Model menu's windows
(model_dialogs.py).  It wires widgets to the controller's rooms and keeps no logic of
its own beyond "what to show"."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import QDialog, QFileDialog, QMainWindow, QMessageBox, QTabWidget, QWidget

from app import paths
from app.controllers import Controller
from app.widgets import help, menus, theme
from app.widgets.canvas import DEFAULT_BRUSH
from app.widgets.draw_tab import DrawTab
from app.widgets.menus import DRAW, STATS, TITLE
from app.widgets.messages import message_box
from app.widgets.model_dialogs import ModelDialogs
from app.widgets.number_mode import NumberMode
from app.widgets.stats_page import StatsPage
from app.widgets.status_bar import StatusBar

log = logging.getLogger(__name__)

#: Start the slow work (torch, model, database) this long after construction at the latest.
FIRST_PAINT_FALLBACK_MS = 3000
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp);;All files (*)"
WEIGHTS_FILTER = "PyTorch weights (*.pth *.pt);;All files (*)"


def make_action(parent: QObject, text: str, slot, shortcut=None, icon: str | None = None, tip: str = "") -> QAction:
    """An action with its shortcut(s) (one, or a list), icon and tip; the tooltip names the keys."""
    a = QAction(text, parent)
    if icon:
        a.setIcon(theme.icon(icon))
    if shortcut is not None:
        if isinstance(shortcut, (list, tuple)):
            a.setShortcuts([QKeySequence(s) for s in shortcut])
        else:
            a.setShortcut(QKeySequence(shortcut))
    if tip:
        keys = help.keys_of(a)
        a.setToolTip(f"{tip} ({keys})" if keys else tip)
        a.setStatusTip(tip)
    a.triggered.connect(slot)
    return a


class _FirstPaint(QObject):
    """Calls ``callback`` once, after the watched widget's first paint."""

    def __init__(self, widget: QWidget, callback):
        super().__init__(widget)
        self._callback = callback
        widget.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Paint and self._callback is not None:
            callback, self._callback = self._callback, None
            obj.removeEventFilter(self)
            QTimer.singleShot(0, callback)
        return False


class MainWindow(QMainWindow):
    #: A prediction is on screen (bars updated): the result, and perf_counter() then.
    predictionShown = Signal(object, float)
    firstPainted = Signal()

    def __init__(self, controller: Controller, qsettings: QSettings | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.qsettings = qsettings if qsettings is not None else QSettings()
        self.setWindowTitle(TITLE)
        self.setWindowIcon(QIcon(str(paths.resources_dir() / "icons" / "app.svg")))
        self.setObjectName("mainWindow")
        self._closing = False
        self._quit_confirmed = False
        #: The "Quit while training runs?" question while it is open.
        self.quit_question: QMessageBox | None = None
        self._first_paint_done = False
        self.draw = DrawTab(controller)
        self.canvas, self.panel = self.draw.canvas, self.draw.panel
        self.stats_page = StatsPage(controller, self.qsettings)
        self.dialogs = ModelDialogs(controller, self)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.draw, theme.icon("draw"), "Draw")
        self.tabs.addTab(self.stats_page, theme.icon("stats"), "Statistics")
        self.setCentralWidget(self.tabs)
        menus.build_actions(self)
        menus.build_menus(self)
        menus.build_toolbar(self)
        self._build_status_bar()
        self._connect()
        self.number_mode = NumberMode(self)  # View → Number mode (app/widgets/number_mode.py)
        self._restore_state()
        self._update_actions()
        # The tab bar is painted whichever tab is restored; the timer covers a window that
        # starts minimised (never painted).
        _FirstPaint(self.tabs.tabBar(), self._first_paint)
        QTimer.singleShot(FIRST_PAINT_FALLBACK_MS, self, self._first_paint)

    # ==== building ===============================================================================
    def _action(self, text: str, slot, shortcut=None, icon: str | None = None, tip: str = "") -> QAction:
        a = make_action(self, text, slot, shortcut, icon, tip)
        self.addAction(a)  # its shortcut works wherever the focus is in the window
        return a

    def _on_draw(self, slot):
        """``slot``, run only while the Draw tab is shown (its keys mean nothing elsewhere)."""
        return lambda *_: slot() if self.tabs.currentIndex() == DRAW else None

    def _build_status_bar(self) -> None:
        bar = StatusBar(self.controller, self.dialogs.progress_bar)
        self.setStatusBar(bar)
        self.training_bar, self.model_label, self.db_label = bar.training_bar, bar.model_label, bar.db_label

    def _connect(self) -> None:
        c, cv, say = self.controller, self.canvas, self.say
        cv.undoAvailable.connect(self.act_undo.setEnabled)
        cv.redoAvailable.connect(self.act_redo.setEnabled)
        self.panel.explain_button.setDefaultAction(self.act_explain)
        self.act_explain.toggled.connect(self.draw.set_explain)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.draw.changed.connect(self._update_actions)
        self.draw.predictionShown.connect(self.predictionShown)
        for part in (self.draw, self.stats_page, self.dialogs):
            part.message.connect(say)
        self.stats_page.warning.connect(self._warn)
        self.stats_page.compareRequested.connect(self.dialogs.compare_in_use)
        c.models.mlReady.connect(lambda _info: self._update_actions())
        c.models.modelFailed.connect(self._model_failed)
        c.models.versionSwitchFailed.connect(lambda text: self._warn("Cannot switch the model version", text))
        c.notify.connect(lambda text: say(text, theme.NOTE_MS))
        c.problem.connect(self._warn)

    def say(self, text: str, ms: int) -> None:
        """A passing message in the status bar (``ms``: how long it stays; see app.widgets.theme)."""
        self.statusBar().showMessage(text, ms)

    # ==== state =================================================================================
    def _restore_state(self) -> None:
        s = self.qsettings
        geometry = s.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1080, 720)
        state = s.value("window/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        self.canvas.set_brush_size(s.value("canvas/brush", DEFAULT_BRUSH, type=int))
        tab = s.value("window/tab", DRAW, type=int)
        self.tabs.setCurrentIndex(tab if 0 <= tab < self.tabs.count() else DRAW)
        self.act_explain.setChecked(s.value("view/explain", False, type=bool))

    def _save_state(self) -> None:
        s = self.qsettings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("canvas/brush", self.canvas.brush_size())
        s.setValue("window/tab", self.tabs.currentIndex())
        s.setValue("view/explain", self.act_explain.isChecked())
        s.sync()

    def _update_actions(self) -> None:
        possible = self.draw.feedback_possible
        for a in [self.act_correct, self.act_wrong, *self._digit_actions]:
            a.setEnabled(possible and self.tabs.currentIndex() == DRAW)
        self.panel.set_feedback_enabled(possible)
        self.act_undo.setEnabled(self.canvas.can_undo())
        self.act_redo.setEnabled(self.canvas.can_redo())
        for a in (self.act_train, self.act_improve):
            a.setEnabled(self.controller.models.ml_info is not None)

    def _first_paint(self) -> None:
        if self._first_paint_done:
            return
        self._first_paint_done = True
        top_left = self.canvas.mapToGlobal(self.canvas.rect().topLeft())
        log.info("canvas at x=%d y=%d, %dx%d (screen coordinates)", top_left.x(), top_left.y(),
                 self.canvas.width(), self.canvas.height())
        self.firstPainted.emit()
        self.controller.start()

    def _tab_changed(self, index: int) -> None:
        if index == STATS:
            self.stats_page.shown()
        self._update_actions()

    # ==== files ===================================================================================
    def _open_image(self) -> None:
        start = self.qsettings.value("files/image_dir", str(Path.home()), type=str)
        path, _ = QFileDialog.getOpenFileName(self, "Open an image of a digit", start, IMAGE_FILTER)
        if path:
            self.qsettings.setValue("files/image_dir", str(Path(path).parent))
            self.open_image(path)

    def open_image(self, path: str) -> None:
        """What File → Open image… does after its file dialog."""
        self.tabs.setCurrentIndex(DRAW)
        self.draw.open_image(path)

    def _load_weights(self) -> None:
        start = str(Path(self.controller.models.model_path).parent)
        path, _ = QFileDialog.getOpenFileName(self, "Load weights", start, WEIGHTS_FILTER)
        if path:
            self.controller.models.load_model(path)

    # ==== messages ===================================================================================
    def _box(self, title: str, text: str, icon=QMessageBox.Icon.NoIcon, icon_pixmap: bool = False) -> None:
        """A rich-text message that does not block the window."""
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        if icon_pixmap:
            box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        self._open_box(box)

    def _open_box(self, box: QMessageBox) -> None:
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.NonModal)  # never blocks the drawing
        box.show()
        self.last_message = box

    def show_problem(self, title: str, text: str) -> None:
        """A warning box that does not block the window."""
        self._warn(title, text)

    def _warn(self, title: str, text: str) -> None:
        log.warning("%s: %s", title, text)
        self.say(f"{title}.", theme.RESULT_MS)
        if self._closing:
            return
        self._open_box(message_box(self, title, text))

    def _model_failed(self, problem) -> None:
        """The weights did not load: say why, whole, and offer the ways back: the shipped
        model, another file."""
        title = "The model could not be loaded"
        log.warning("%s: %s", title, problem)
        self.say(f"{title}.", theme.RESULT_MS)
        if self._closing:
            return
        box = message_box(self, title, problem)
        models = self.controller.models
        shipped_path = models.shipped_model_for(getattr(problem, "path", None))
        if shipped_path is not None:
            shipped = box.addButton("Use the shipped model", QMessageBox.ButtonRole.AcceptRole)
            shipped.setToolTip(str(shipped_path))
            shipped.clicked.connect(lambda: models.use_shipped_model(shipped_path))
            box.setDefaultButton(shipped)
        other = box.addButton("Load weights…", QMessageBox.ButtonRole.ActionRole)
        other.clicked.connect(self._load_weights)
        close = box.button(QMessageBox.StandardButton.Ok)
        close.setText("Close")
        box.setEscapeButton(close)
        self._open_box(box)

    def _show_shortcuts(self) -> None:
        sections = [(menu.title(), menu.actions()) for menu in (a.menu() for a in self.menuBar().actions()) if menu]
        listed = {a for _, actions in sections for a in actions} | set(self._digit_actions)
        sections.append(("Other", [a for a in self.actions() if a not in listed]))
        self._box("Keyboard shortcuts", help.shortcuts_html(
            sections, self._digit_actions, mouse="Right mouse button or the stylus's eraser: erase."))

    # ==== closing ===================================================================================
    def quit_without_asking(self) -> None:
        """Close now, whatever runs (a signal to stop, the application quitting)."""
        self._quit_confirmed = True
        self.close()

    def _ask_before_quitting(self) -> bool:
        """While training or improving runs, ask first (it would be lost).  True: the
        question is open, the window stays."""
        learning = self.controller.learning
        if not learning.busy or self._quit_confirmed or self._closing:
            return False
        if self.quit_question is not None:
            self.quit_question.raise_()
            return True
        what = "Improving the model" if learning.improve_running else "A training run"
        box = message_box(self, "Quit while training runs?",
                          f"{what} is still running. If you quit now, it is lost: nothing it has learnt is "
                          f"kept, and the model in use stays as it is.\n\nQuit anyway, or keep the app open "
                          f"until it has finished?", QMessageBox.Icon.Question,
                          buttons=QMessageBox.StandardButton.NoButton)
        quit_button = box.addButton("Quit and lose the training", QMessageBox.ButtonRole.DestructiveRole)
        stay = box.addButton("Keep running", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(stay)
        box.setEscapeButton(stay)
        quit_button.clicked.connect(self.quit_without_asking)
        box.destroyed.connect(self._quit_question_closed)
        self.quit_question = box
        self._open_box(box)
        return True

    def _quit_question_closed(self) -> None:
        self.quit_question = None

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._ask_before_quitting():
            event.ignore()
            return
        if not self._closing:
            self._closing = True
            self._save_state()
            # Our other windows (dialogs, message boxes) must not keep the app running.
            for dialog in self.findChildren(QDialog):
                dialog.close()
            self.controller.shutdown()
        event.accept()

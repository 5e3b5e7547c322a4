"""The main window: the Draw tab (canvas + live prediction), the Statistics tab, menus,
toolbar and status bar, and the dialogs they open (training, improving with the user's
corrections, model versions, comparing versions).  It wires widgets to the controller and
keeps no logic of its own beyond "what to show"."""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QImage, QKeySequence
from PySide6.QtWidgets import (QDialog, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QSizePolicy, QSlider, QSpinBox, QTabWidget, QToolBar,
                               QVBoxLayout, QWidget)

from app import paths
from app.controller import (Controller, DatabaseState, ImproveResult, ModelInfo, PredictionResult,
                            TrainingOutcome, settle_heap)
from app.widgets import theme
from app.widgets.canvas import DEFAULT_BRUSH, MAX_BRUSH, MIN_BRUSH, DrawingCanvas, SquareFrame
from app.widgets.cards import card
from app.widgets.charts import heat_overlay
from app.widgets.compare import CompareDialog
from app.widgets.correction import CorrectionDialog
from app.widgets.improve import ImproveDialog
from app.widgets.prediction import PredictionPanel
from app.widgets.statistics import StatisticsTab
from app.widgets.training import TrainingDialog, format_duration
from app.widgets.versions import VersionsDialog

log = logging.getLogger(__name__)

TITLE = "MNIST Digit Classifier"
#: While a stroke is drawn, predict at most this often (ms).
LIVE_INTERVAL_MS = 60
#: Start the slow work (torch, model, database) this long after construction at the latest.
FIRST_PAINT_FALLBACK_MS = 3000
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp);;All files (*)"
NPZ_FILTER = "NumPy archive (*.npz)"
IDX_GZ_FILTER = "MNIST IDX files, gzipped (*.gz)"
IDX_FILTER = "MNIST IDX files (*.idx)"
DATASET_FILTERS = ";;".join((NPZ_FILTER, IDX_GZ_FILTER, IDX_FILTER))


def dataset_export_path(path: str, chosen_filter: str) -> Path:
    """The name app.learn.export_dataset needs for the chosen format: ``x.npz`` for NumPy,
    ``x.gz`` / ``x.idx`` for IDX files (written as x-images-idx3-ubyte[.gz] and
    x-labels-idx1-ubyte[.gz]).  A name with a known ending keeps its format."""
    p = Path(path)
    if p.name.endswith((".npz", ".gz", ".idx")):
        return p
    suffix = {NPZ_FILTER: ".npz", IDX_GZ_FILTER: ".gz", IDX_FILTER: ".idx"}.get(chosen_filter, ".npz")
    return p.with_name(p.name + suffix)


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
        self._training_dialog: TrainingDialog | None = None
        self._improve_dialog: ImproveDialog | None = None
        self._versions_dialog: VersionsDialog | None = None
        self._compare_dialog: CompareDialog | None = None
        self._compare_wanted: tuple | None = None  # the pair to compare once the versions are read
        self._closing = False
        self._first_paint_done = False

        self._build_central()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status_bar()
        self._connect()
        self._restore_state()
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_INTERVAL_MS)
        self._live_timer.timeout.connect(self._live_predict)
        self._update_actions()
        # The tab bar is painted whichever tab is restored; the timer covers a window that
        # starts minimised (never painted).
        _FirstPaint(self.tabs.tabBar(), self._first_paint)
        QTimer.singleShot(FIRST_PAINT_FALLBACK_MS, self, self._first_paint)

    # ==== building ===============================================================================
    def _build_central(self) -> None:
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        draw = QWidget()
        row = QHBoxLayout(draw)
        row.setContentsMargins(12, 12, 12, 12)
        row.setSpacing(12)
        canvas_card, canvas_lay = card("Your drawing")
        self.canvas = DrawingCanvas()
        self.canvas.set_placeholder("Draw a digit here\n(loading model…)")
        canvas_lay.addWidget(SquareFrame(self.canvas), 1)
        self.canvas_hint = QLabel("Enter: correct · W: wrong · 0–9: it is that digit · Esc: clear · "
                                  "Ctrl+Z: undo")
        self.canvas_hint.setObjectName("hint")
        self.canvas_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.canvas_hint.setWordWrap(True)
        canvas_lay.addWidget(self.canvas_hint)
        row.addWidget(canvas_card, 5)
        self.panel = PredictionPanel()
        self.panel.setMinimumWidth(330)
        row.addWidget(self.panel, 4)
        self.tabs.addTab(draw, theme.icon("draw"), "Draw")
        # The statistics tab is built when first shown (its charts cost ~130 ms: not worth
        # delaying the window for).
        self._stats: StatisticsTab | None = None
        self._stats_page = QWidget()
        QVBoxLayout(self._stats_page).setContentsMargins(0, 0, 0, 0)
        self.tabs.addTab(self._stats_page, theme.icon("stats"), "Statistics")
        self.setCentralWidget(self.tabs)

    def _action(self, text: str, slot, shortcut=None, icon: str | None = None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if icon:
            a.setIcon(theme.icon(icon))
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                a.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                a.setShortcut(QKeySequence(shortcut))
        if tip:
            keys = ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in a.shortcuts())
            a.setToolTip(f"{tip} ({keys})" if keys else tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        K = QKeySequence.StandardKey
        self.act_open = self._action("&Open image…", self._open_image, K.Open, "open",
                                     "Predict the digit in an image file")
        self.act_export = self._action("&Export predictions to CSV…", self._export_csv, "Ctrl+E", "export",
                                       "Save every logged prediction to a CSV file")
        self.act_export_dataset = self._action("Export &dataset…", self._export_dataset, "Ctrl+Shift+E",
                                               "dataset", "Save your labelled drawings as a dataset "
                                               "(NumPy .npz or MNIST IDX files)")
        self.act_quit = self._action("&Quit", self.close, K.Quit, None, "Quit the application")
        self.act_undo = self._action("&Undo stroke", self.canvas.undo, K.Undo, "undo", "Undo the last stroke")
        self.act_redo = self._action("&Redo stroke", self.canvas.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "redo",
                                     "Redo the stroke you undid")
        self.act_clear = self._action("&Clear", self._clear, ["Esc", "Delete"], "clear",
                                      "Clear the canvas (an unconfirmed drawing is saved without a label)")
        self.act_bigger = self._action("Larger brush", lambda: self._nudge_brush(+2), "]", None,
                                       "Make the brush larger")
        self.act_smaller = self._action("Smaller brush", lambda: self._nudge_brush(-2), "[", None,
                                        "Make the brush smaller")
        self.act_correct = self._action("✓ &Correct", self._confirm, ["Return", "Enter"], "check",
                                        "The prediction is right: save it and start a new drawing")
        self.act_wrong = self._action("✗ &Wrong…", self._wrong, "W", "cross",
                                      "The prediction is wrong: pick the digit you drew")
        self.act_train = self._action("&Train…", self._show_training, "Ctrl+T", "train",
                                      "Train a new model on MNIST")
        self.act_load = self._action("&Load weights…", self._load_weights, "Ctrl+L", "model",
                                     "Use another weights file (.pth)")
        self.act_about_model = self._action("&About this model", self._about_model, "Ctrl+I", "info",
                                            "Architecture, accuracy and date of the model in use")
        self.act_improve = self._action("&Improve with my corrections…", self._show_improve, "Ctrl+Shift+I",
                                        "improve", "Fine-tune the model on the drawings you labelled; "
                                        "it is kept only if it gets better")
        self.act_improve.setIconText("Improve")
        self.act_versions = self._action("&Versions…", self._show_versions, "Ctrl+Shift+V", "versions",
                                         "Every model version, and a way back to an earlier one")
        self.act_explain = self._action("&Why this digit?", lambda: None, "X", "explain",
                                        "Colour the pixels that pushed the network towards its answer "
                                        "(warm) or against it (blue)")
        self.act_explain.setCheckable(True)
        self.act_explain.setIconText("Why?")
        self.act_draw_tab = self._action("&Draw", lambda: self.tabs.setCurrentIndex(0), "Ctrl+1", "draw",
                                         "Show the drawing tab")
        self.act_stats_tab = self._action("&Statistics", lambda: self.tabs.setCurrentIndex(1), "Ctrl+2",
                                          "stats", "Show the statistics tab")
        self.act_refresh = self._action("&Refresh statistics", self.controller.refresh_stats, "F5",
                                        "refresh", "Read the statistics again")
        self.act_shortcuts = self._action("&Keyboard shortcuts", self._show_shortcuts, K.HelpContents, None,
                                          "List the keyboard shortcuts")
        self.act_about = self._action("&About", self._about, None, None, "About this application")
        # Digit keys on the Draw tab: "it is that digit".
        self._digit_actions = []
        for d in range(10):
            a = self._action(f"It is a {d}", lambda _=False, d=d: self._label_as(d), str(d), None,
                             f"Save the drawing as a {d}")
            self._digit_actions.append(a)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addActions([self.act_open, self.act_export, self.act_export_dataset])
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Edit")
        m.addActions([self.act_undo, self.act_redo, self.act_clear])
        m.addSeparator()
        m.addActions([self.act_correct, self.act_wrong])
        m.addSeparator()
        m.addActions([self.act_bigger, self.act_smaller])
        m = mb.addMenu("&Model")
        m.addActions([self.act_train, self.act_improve])
        m.addSeparator()
        m.addActions([self.act_versions, self.act_load])
        m.addSeparator()
        m.addAction(self.act_about_model)
        self.model_menu = m
        m = mb.addMenu("&View")
        m.addAction(self.act_explain)
        m.addSeparator()
        m.addActions([self.act_draw_tab, self.act_stats_tab])
        m.addSeparator()
        m.addAction(self.act_refresh)
        self.view_menu = m
        m = mb.addMenu("&Help")
        m.addActions([self.act_shortcuts, self.act_about])

    def _build_toolbar(self) -> None:
        tb = QToolBar("Tools")
        tb.setObjectName("toolbar")
        tb.setMovable(False)
        tb.setIconSize(QSize(20, 20))
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        tb.addActions([self.act_undo, self.act_redo, self.act_clear])
        tb.addSeparator()
        brush_icon = QLabel()
        brush_icon.setPixmap(theme.icon("brush").pixmap(18, 18))
        brush_icon.setToolTip("Brush size")
        tb.addWidget(brush_icon)
        self.brush_slider = QSlider(Qt.Orientation.Horizontal)
        self.brush_slider.setRange(MIN_BRUSH, MAX_BRUSH)
        self.brush_slider.setFixedWidth(120)
        self.brush_slider.setToolTip("Brush size in pixels ([ smaller, ] larger)")
        tb.addWidget(self.brush_slider)
        self.brush_spin = QSpinBox()
        self.brush_spin.setRange(MIN_BRUSH, MAX_BRUSH)
        self.brush_spin.setSuffix(" px")
        self.brush_spin.setToolTip("Brush size in pixels")
        self.brush_spin.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        tb.addWidget(self.brush_spin)
        tb.addSeparator()
        tb.addActions([self.act_open, self.act_train, self.act_improve])
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        tb.addWidget(spacer)
        self.addToolBar(tb)
        self.toolbar = tb

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.training_bar = QProgressBar()
        self.training_bar.setRange(0, 1000)
        self.training_bar.setFixedWidth(160)
        self.training_bar.setFormat("training %p %")
        self.training_bar.setToolTip("Training runs; Model → Train… shows it")
        self.training_bar.hide()
        self.model_label = QLabel("Model: loading…")
        self.model_label.setToolTip("The model in use")
        self.db_label = QLabel("Database: starting…")
        self.db_label.setObjectName("dbStatus")
        sb.addPermanentWidget(self.training_bar)
        sb.addPermanentWidget(self.model_label)
        sb.addPermanentWidget(self.db_label)

    def _connect(self) -> None:
        c, cv = self.controller, self.canvas
        cv.strokeMoved.connect(self._stroke_moved)
        cv.contentChanged.connect(self._content_changed)
        cv.cleared.connect(c.discard)
        cv.undoAvailable.connect(self.act_undo.setEnabled)
        cv.redoAvailable.connect(self.act_redo.setEnabled)
        cv.brushSizeChanged.connect(self._brush_changed)
        self.brush_slider.valueChanged.connect(cv.set_brush_size)
        self.brush_spin.valueChanged.connect(cv.set_brush_size)
        self.panel.correctClicked.connect(self._confirm)
        self.panel.wrongClicked.connect(self._wrong)
        self.panel.explain_button.setDefaultAction(self.act_explain)
        self.act_explain.toggled.connect(self._explain_toggled)
        self.tabs.currentChanged.connect(self._tab_changed)

        c.mlReady.connect(self._ml_ready)
        c.modelLoading.connect(self._model_loading)
        c.modelReady.connect(self._model_ready)
        c.modelFailed.connect(self._model_failed)
        c.modelVersion.connect(self._model_version)
        c.versionsReady.connect(self._versions_ready)
        c.versionsFailed.connect(lambda t: self.versions_dialog().show_error(t))
        c.versionSwitchFailed.connect(self._version_switch_failed)
        c.comparisonReady.connect(lambda r: self.compare_dialog().show_comparison(r))
        c.comparisonFailed.connect(lambda t: self.compare_dialog().show_error(t))
        c.datasetExported.connect(self._dataset_exported)
        c.datasetExportFailed.connect(lambda t: self._warn("Export failed", t))
        c.labelledCount.connect(lambda n, needed: self.improve_dialog().set_count(n, needed))
        c.improveStarted.connect(self._improve_started)
        c.improveStatus.connect(self._improve_status)
        c.improveProgress.connect(self._improve_progress)
        c.improveFinished.connect(self._improve_finished)
        c.improveFailed.connect(self._improve_failed)
        c.improveCancelled.connect(self._improve_cancelled)
        c.predictionReady.connect(self._show_prediction)
        c.predictionCleared.connect(self._prediction_cleared)
        c.predictionFailed.connect(self._prediction_failed)
        c.imageOpened.connect(self._image_opened)
        c.drawingDone.connect(self._drawing_done)
        c.databaseState.connect(self._db_state)
        c.logged.connect(self._logged)
        c.labelSaved.connect(self._label_saved)
        c.statsReady.connect(lambda snapshot: self.stats.show_stats(snapshot))
        c.statsFailed.connect(lambda text: self.stats.show_error(text))
        c.exportDone.connect(self._export_done)
        c.exportFailed.connect(lambda t: self._warn("Export failed", t))
        c.trainingStarted.connect(self._training_started)
        c.trainingStatus.connect(self._training_status)
        c.trainingProgress.connect(self._training_progress)
        c.trainingFinished.connect(self._training_finished)
        c.trainingFailed.connect(self._training_failed)
        c.trainingCancelled.connect(self._training_cancelled)
        c.notify.connect(lambda t: self.statusBar().showMessage(t, 6000))
        c.problem.connect(self._warn)

    @property
    def stats(self) -> StatisticsTab:
        """The statistics tab (built on first use)."""
        if self._stats is None:
            self._stats = StatisticsTab()
            self._stats.refreshRequested.connect(self.controller.refresh_stats)
            self._stats.labelEdited.connect(self.controller.set_label)
            self._stats.versionChosen.connect(self._stats_version_chosen)
            self._stats.compareRequested.connect(self._compare_from_stats)
            self._stats_page.layout().addWidget(self._stats)
        return self._stats

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
        brush = s.value("canvas/brush", DEFAULT_BRUSH, type=int)
        self.canvas.set_brush_size(brush)
        self._brush_changed(self.canvas.brush_size())
        tab = s.value("window/tab", 0, type=int)
        self.tabs.setCurrentIndex(tab if 0 <= tab < self.tabs.count() else 0)
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
        on_draw = self.tabs.currentIndex() == 0
        feedback = on_draw and self.controller.has_prediction
        self.act_correct.setEnabled(feedback)
        self.act_wrong.setEnabled(feedback)
        for a in self._digit_actions:
            a.setEnabled(feedback)
        self.panel.set_feedback_enabled(self.controller.has_prediction)
        self.act_undo.setEnabled(self.canvas.can_undo())
        self.act_redo.setEnabled(self.canvas.can_redo())
        self.act_train.setEnabled(self.controller.ml_info is not None)
        self.act_improve.setEnabled(self.controller.ml_info is not None)

    # ==== start-up ===============================================================================
    def _first_paint(self) -> None:
        if self._first_paint_done:
            return
        self._first_paint_done = True
        top_left = self.canvas.mapToGlobal(self.canvas.rect().topLeft())
        log.info("canvas at x=%d y=%d, %dx%d (screen coordinates)", top_left.x(), top_left.y(),
                 self.canvas.width(), self.canvas.height())
        self.firstPainted.emit()
        settle_heap()  # the window's objects live as long as the app
        self.controller.start()

    # ==== drawing and prediction ===================================================================
    @Slot()
    def _stroke_moved(self) -> None:
        if not self._live_timer.isActive():
            self._live_timer.start()

    def _live_predict(self) -> None:
        if self.canvas.drawing and self.canvas.has_ink():
            self.controller.request_prediction(self.canvas.snapshot())

    @Slot(int)
    def _content_changed(self, revision: int) -> None:
        self._live_timer.stop()
        if self.canvas.has_ink():
            self.controller.request_prediction(self.canvas.snapshot())  # None: no model yet
        elif not self.canvas.has_image():
            self.controller.canvas_emptied()
        self._update_actions()

    def _show_prediction(self, r: PredictionResult) -> None:
        heat = r.heat if self.act_explain.isChecked() else None
        self.panel.show_prediction(r.digit, r.confidence, r.probabilities, r.image, r.runner_up, heat)
        if heat is not None and r.heat_rect is not None:
            self.canvas.set_overlay(heat_overlay(heat), r.heat_rect)
        else:
            self.canvas.set_overlay(None)
        self._update_actions()
        self.predictionShown.emit(r, time.perf_counter())

    def _explain_toggled(self, on: bool) -> None:
        self.controller.set_explain(on)
        if not on:
            self.canvas.set_overlay(None)
            r = self.controller.current_prediction
            if r is not None and self.controller.has_prediction:
                self.panel.show_prediction(r.digit, r.confidence, r.probabilities, r.image, r.runner_up)
                self._update_actions()
        self.statusBar().showMessage("Why this digit? on: warm pixels pushed the network towards its answer, "
                                     "blue ones against it." if on else "Why this digit? off.", 5000)

    def _prediction_cleared(self) -> None:
        self.canvas.set_overlay(None)
        if self.controller.model_ready:
            self.panel.show_idle()
        elif self.panel.state != "error":
            self.panel.show_loading()
        self._update_actions()

    def _prediction_failed(self, text: str) -> None:
        self.panel.show_error("Cannot read this", text)
        self._update_actions()

    def _open_image(self) -> None:
        start = self.qsettings.value("files/image_dir", str(Path.home()), type=str)
        path, _ = QFileDialog.getOpenFileName(self, "Open an image of a digit", start, IMAGE_FILTER)
        if path:
            self.qsettings.setValue("files/image_dir", str(Path(path).parent))
            self.open_image(path)

    def open_image(self, path: str) -> None:
        self.statusBar().showMessage(f"Reading {Path(path).name}…", 3000)
        self.controller.open_image(path)

    def _image_opened(self, image: QImage, caption: str) -> None:
        self.tabs.setCurrentIndex(0)
        self.canvas.show_image(image, caption)

    def _clear(self) -> None:
        if self.tabs.currentIndex() != 0:
            return
        self.canvas.clear()

    def _confirm(self) -> None:
        if self.tabs.currentIndex() == 0 and self.controller.confirm():
            self.panel.set_feedback_enabled(False)

    def _label_as(self, digit: int) -> None:
        if self.tabs.currentIndex() == 0 and self.controller.correct_to(digit):
            self.panel.set_feedback_enabled(False)

    def _wrong(self) -> None:
        r = self.controller.current_prediction
        if self.tabs.currentIndex() != 0 or r is None or not self.controller.has_prediction:
            return
        dialog = CorrectionDialog(self.canvas.display_image(), r.probabilities, r.digit, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.digitChosen.connect(self._corrected)
        self.correction_dialog = dialog
        dialog.open()

    def _corrected(self, digit: int) -> None:
        self.controller.correct_to(digit)

    def _drawing_done(self, uid: str, label) -> None:
        self.statusBar().showMessage(f"Saved as a {label}. Draw the next digit.", 4000)
        self.canvas.clear()

    def _nudge_brush(self, step: int) -> None:
        self.canvas.set_brush_size(self.canvas.brush_size() + step)

    def _brush_changed(self, size: int) -> None:
        for w in (self.brush_slider, self.brush_spin):
            w.blockSignals(True)
            w.setValue(size)
            w.blockSignals(False)

    # ==== model ====================================================================================
    def _ml_ready(self, info: dict) -> None:
        self._update_actions()

    def _model_loading(self, path: str) -> None:
        self.model_label.setText("Model: loading…")
        self.model_label.setToolTip(path)
        if not self.controller.model_ready:
            self.canvas.set_placeholder("Draw a digit here\n(loading model…)")
            self.panel.show_loading()

    def _show_model_label(self) -> None:
        info = self.controller.model_info
        if info is None:
            return
        version = self.controller.model_version_id
        name = f"Model #{version}" if version is not None else "Model"
        self.model_label.setText(f"{name}: {info.summary()}")
        recorded = f"version #{version} ({info.kind})" if version is not None else \
            f"{info.kind}; not recorded as a version yet (database offline?)"
        self.model_label.setToolTip(f"{info.path}\n{info.description}\ntrained {info.created_at or '?'}\n"
                                    f"{recorded}")

    def _model_version(self, version_id) -> None:
        self._show_model_label()
        if self._versions_dialog is not None and self._versions_dialog.isVisible():
            self.controller.refresh_versions()

    def _model_ready(self, info: ModelInfo) -> None:
        self._show_model_label()
        self.canvas.set_placeholder("Draw a digit here")
        if self.canvas.has_ink():
            self.controller.request_prediction(self.canvas.snapshot())
        elif self.panel.state in ("loading", "error"):
            self.panel.show_idle()
        self._update_actions()

    def _model_failed(self, text: str) -> None:
        if not self.controller.model_ready:
            self.model_label.setText("Model: none")
            self.model_label.setToolTip(text)
            self.canvas.set_placeholder("Draw a digit here\n(no model: Model → Train… or Load weights…)")
            self.panel.show_error("No model", text)
        self._warn("The model could not be loaded", text)
        self._update_actions()

    def _load_weights(self) -> None:
        start = str(Path(self.controller.model_path).parent)
        path, _ = QFileDialog.getOpenFileName(self, "Load weights", start,
                                              "PyTorch weights (*.pth *.pt);;All files (*)")
        if path:
            self.controller.load_model(path)

    def _about_model(self) -> None:
        info = self.controller.model_info
        if info is None:
            text = "No model is loaded yet."
        else:
            m = info.metadata
            version = self.controller.model_version_id
            rows = [("Version", f"#{version} ({info.kind})" if version is not None
                     else f"{info.kind}, not recorded in the database yet"),
                    ("Architecture", f"{info.arch}<br><small>{html.escape(info.description)}</small>"),
                    ("Test accuracy", f"{info.test_accuracy:.2f} %" if info.test_accuracy is not None else "unknown"),
                    ("Trained", html.escape(str(info.created_at or "unknown"))),
                    ("Epochs", html.escape(str(m.get("epochs", "?")))),
                    ("Training images", html.escape(str(m.get("train_samples", "?")))),
                    ("File", html.escape(str(info.path))),
                    ("SHA-256", f"<small>{info.sha256}</small>")]
            text = "<table cellspacing=4>" + "".join(
                f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows) + "</table>"
        box = QMessageBox(QMessageBox.Icon.Information, "About this model", text, QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        self._open_box(box)

    # ==== training =================================================================================
    def training_dialog(self) -> TrainingDialog:
        if self._training_dialog is None:
            info = self.controller.ml_info or {}
            dialog = TrainingDialog(info.get("architectures", {"mnist_cnn": ""}), info.get("presets", {}), self)
            dialog.startRequested.connect(self.controller.start_training)
            dialog.cancelRequested.connect(self.controller.cancel_training)
            self._training_dialog = dialog
        return self._training_dialog

    def _show_training(self) -> None:
        if self.controller.ml_info is None:
            self.statusBar().showMessage("PyTorch is still loading; try again in a moment.", 4000)
            return
        d = self.training_dialog()
        d.show()
        d.raise_()
        d.activateWindow()

    def _training_started(self) -> None:
        self.training_dialog().training_started()
        self.training_bar.setValue(0)
        self.training_bar.show()

    def _training_status(self, text: str) -> None:
        self.training_dialog().show_status(text)
        self.statusBar().showMessage(text, 3000)

    def _training_progress(self, p) -> None:
        self.training_dialog().show_progress(p)
        self.training_bar.setValue(int(p.fraction * 1000))
        self.training_bar.setToolTip(f"Training: epoch {p.epoch}/{p.epochs}, about "
                                     f"{format_duration(p.eta)} left")

    def _training_finished(self, outcome: TrainingOutcome) -> None:
        self.training_bar.hide()
        self.training_dialog().training_finished(
            f"Done in {format_duration(outcome.seconds)}: test accuracy {outcome.test_accuracy:.2f} %. "
            f"The new model is in use.\nSaved to {outcome.info.path}")

    def _training_failed(self, text: str) -> None:
        self.training_bar.hide()
        self.training_dialog().training_failed(text)

    def _training_cancelled(self) -> None:
        self.training_bar.hide()
        self.training_dialog().training_cancelled()
        self.statusBar().showMessage("Training cancelled; the model is unchanged.", 5000)

    # ==== improving with the user's corrections ==========================================================
    def improve_dialog(self) -> ImproveDialog:
        if self._improve_dialog is None:
            dialog = ImproveDialog(self)
            dialog.startRequested.connect(self.controller.start_improve)
            dialog.cancelRequested.connect(self.controller.cancel_improve)
            self._improve_dialog = dialog
        return self._improve_dialog

    def _show_improve(self) -> None:
        if self.controller.ml_info is None:
            self.statusBar().showMessage("PyTorch is still loading; try again in a moment.", 4000)
            return
        d = self.improve_dialog()
        if not d.running:
            self.controller.count_labelled()
        d.show()
        d.raise_()
        d.activateWindow()

    def _improve_started(self) -> None:
        self.improve_dialog().improve_started()
        self.training_bar.setFormat("improving %p %")
        self.training_bar.setToolTip("Improving the model; Model → Improve with my corrections… shows it")
        self.training_bar.setValue(0)
        self.training_bar.show()

    def _improve_status(self, text: str) -> None:
        self.improve_dialog().show_status(text)
        self.statusBar().showMessage(text, 3000)

    def _improve_progress(self, p) -> None:
        self.improve_dialog().show_progress(p)
        self.training_bar.setValue(int(p.fraction * 1000))

    def _improve_finished(self, result: ImproveResult) -> None:
        self._training_bar_done()
        self.improve_dialog().show_result(result)
        self.controller.count_labelled()
        if self.tabs.currentIndex() == 1:
            self._refresh_soon()

    def _improve_failed(self, text: str) -> None:
        self._training_bar_done()
        self.improve_dialog().improve_failed(text)

    def _improve_cancelled(self) -> None:
        self._training_bar_done()
        self.improve_dialog().improve_cancelled()
        self.statusBar().showMessage("Improving cancelled; the model is unchanged.", 5000)

    def _training_bar_done(self) -> None:
        self.training_bar.hide()
        self.training_bar.setFormat("training %p %")
        self.training_bar.setToolTip("Training runs; Model → Train… shows it")

    # ==== model versions ===========================================================================
    def versions_dialog(self) -> VersionsDialog:
        if self._versions_dialog is None:
            dialog = VersionsDialog(self)
            dialog.useRequested.connect(self.controller.use_version)
            dialog.refreshRequested.connect(self.controller.refresh_versions)
            dialog.compareRequested.connect(self._compare_pair)
            self._versions_dialog = dialog
        return self._versions_dialog

    def _show_versions(self) -> None:
        d = self.versions_dialog()
        d.show_error("Reading the versions…")
        self.controller.refresh_versions()
        d.show()
        d.raise_()
        d.activateWindow()

    def _versions_ready(self, rows: list) -> None:
        if self._versions_dialog is not None:
            self._versions_dialog.show_versions(rows, self.controller.model_version_id)
        if self._compare_dialog is not None and self._compare_wanted is not None:
            a, b = self._compare_wanted
            self._compare_wanted = None
            self._compare_dialog.set_versions(rows, a, b)

    def _version_switch_failed(self, text: str) -> None:
        self._show_model_label()
        if self._versions_dialog is not None:
            self._versions_dialog.show_error(text.split("\n\n")[0])
        self._warn("Cannot switch the model version", text)

    def compare_dialog(self) -> CompareDialog:
        if self._compare_dialog is None:
            dialog = CompareDialog(self)
            dialog.compareRequested.connect(self.controller.compare_versions)
            self._compare_dialog = dialog
        return self._compare_dialog

    def _compare_pair(self, a_id: int | None, b_id: int | None) -> None:
        """Open the comparison of versions a and b (the versions list is read first)."""
        d = self.compare_dialog()
        self._compare_wanted = (a_id, b_id)
        self.controller.refresh_versions()
        d.show()
        d.raise_()
        d.activateWindow()

    def _compare_from_stats(self) -> None:
        """Compare the version in use with its parent (or the one before it)."""
        versions = self.stats.snapshot.versions if self.stats.snapshot else []
        current = self.controller.model_version_id
        by_id = {v.id: v for v in versions}
        b = current if current in by_id else (versions[0].id if versions else None)
        a = by_id[b].parent_id if b in by_id else None
        if a not in by_id:
            older = [v.id for v in versions if v.id != b]
            a = older[0] if older else None
        self._compare_pair(a, b)

    def _stats_version_chosen(self, version_id) -> None:
        self.stats.set_busy(True)
        self.controller.set_stats_version(version_id)

    # ==== database and statistics ====================================================================
    def _db_state(self, state: DatabaseState) -> None:
        self.db_label.setText(state.text)
        self.db_label.setToolTip(state.tooltip)
        self.db_label.setProperty("problem", not (state.online or state.starting))
        self.db_label.style().unpolish(self.db_label)
        self.db_label.style().polish(self.db_label)

    def _logged(self, uid: str, label) -> None:
        if self.tabs.currentIndex() == 1:
            self._refresh_soon()

    def _label_saved(self, uid: str, label) -> None:
        self.statusBar().showMessage("Label saved.", 3000)
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        if not hasattr(self, "_refresh_timer"):
            self._refresh_timer = QTimer(self)
            self._refresh_timer.setSingleShot(True)
            self._refresh_timer.setInterval(250)
            self._refresh_timer.timeout.connect(self.controller.refresh_stats)
        self._refresh_timer.start()

    def _tab_changed(self, index: int) -> None:
        if index == 1:
            self.stats.set_busy(True)
            self.controller.refresh_stats()
        self._update_actions()

    def _export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export predictions", str(Path.home() / "predictions.csv"),
                                              "CSV files (*.csv)")
        if path:
            self.statusBar().showMessage("Exporting…")
            self.controller.export_csv(path)

    def _export_done(self, path: str, rows: int) -> None:
        self.statusBar().showMessage(f"Exported {rows} prediction{'s' if rows != 1 else ''} to {path}", 6000)

    def _export_dataset(self) -> None:
        start = self.qsettings.value("files/dataset_dir", str(Path.home()), type=str)
        path, chosen = QFileDialog.getSaveFileName(self, "Export your labelled drawings",
                                                   str(Path(start) / "my-digits.npz"), DATASET_FILTERS)
        if path:
            target = dataset_export_path(path, chosen)
            self.qsettings.setValue("files/dataset_dir", str(target.parent))
            self.export_dataset(target)

    def export_dataset(self, path: str | Path) -> None:
        """What File → Export dataset… does after its file dialog."""
        self.statusBar().showMessage("Exporting your labelled drawings…")
        self.controller.export_dataset(path)

    def _dataset_exported(self, files: list, n: int) -> None:
        names = " and ".join(Path(f).name for f in files)
        folder = Path(files[0]).parent if files else ""
        self.statusBar().showMessage(f"Exported {n} labelled drawing{'s' if n != 1 else ''} to {names} "
                                     f"(in {folder})", 8000)

    # ==== messages ===================================================================================
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
        self.statusBar().showMessage(f"{title}.", 8000)
        if self._closing:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        self._open_box(box)

    def _show_shortcuts(self) -> None:
        rows = [("Enter", "✓ Correct: save with the predicted digit"),
                ("W", "✗ Wrong…: pick the digit you drew"),
                ("0 – 9", "Save the drawing as that digit"),
                ("Esc, Delete", "Clear the canvas"),
                ("Ctrl+Z / Ctrl+Shift+Z", "Undo / redo a stroke"),
                ("[ / ]", "Smaller / larger brush"),
                ("Right mouse button, stylus eraser", "Erase"),
                ("Ctrl+O", "Open an image file"),
                ("X", "Why this digit? (colour the pixels that decided)"),
                ("Ctrl+E / Ctrl+Shift+E", "Export predictions to CSV / export your labelled drawings"),
                ("Ctrl+T / Ctrl+L / Ctrl+I", "Train / load weights / about the model"),
                ("Ctrl+Shift+I / Ctrl+Shift+V", "Improve with my corrections / model versions"),
                ("Ctrl+1 / Ctrl+2, F5", "Draw tab / statistics tab, refresh"),
                ("Ctrl+Q", "Quit")]
        text = "<table cellspacing=4>" + "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>"
                                                 for k, v in rows) + "</table>"
        box = QMessageBox(QMessageBox.Icon.NoIcon, "Keyboard shortcuts", text, QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        self._open_box(box)

    def _about(self) -> None:
        import app

        box = QMessageBox(QMessageBox.Icon.NoIcon, f"About {TITLE}",
                          f"<h3>{TITLE} {app.__version__}</h3>"
                          "<p>Draw a digit; a convolutional network trained on MNIST reads it. "
                          "Your feedback is stored in PostgreSQL and shown as statistics.</p>"
                          "<p>PySide6 · pyqtgraph · PyTorch · PostgreSQL</p>",
                          QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setIconPixmap(self.windowIcon().pixmap(64, 64))
        self._open_box(box)

    # ==== closing ===================================================================================
    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._closing:
            self._closing = True
            self._save_state()
            self._live_timer.stop()
            # Our other windows (dialogs, message boxes) must not keep the app running.
            for dialog in self.findChildren(QDialog):
                dialog.close()
            self.controller.shutdown()
        event.accept()

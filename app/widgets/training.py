"""Model → Train…: the settings of a training run, its progress and live curves.

The dialog only shows and asks: ``startRequested(dict)`` with the chosen settings (the
keyword arguments of ``app.ml.train.TrainConfig``) and ``cancelRequested``; the
controller runs the training and calls ``training_started`` / ``show_progress`` /
``training_choice`` (the run finished: which model to keep is asked) /
``training_finished`` / ``training_declined`` / ``training_failed`` /
``training_cancelled``.  Closing the dialog
while training runs only hides it; the run goes on (the status bar shows it).

The recipes are ``app.ml.train.PRESETS`` as the controller hands them over
(``MLInfo.presets``, every value filled in): choosing one sets every field from it.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDoubleSpinBox, QFormLayout,
                               QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget)

from app.widgets import theme
from app.widgets.cards import JobProgress, job_buttons
from app.widgets.charts import plain_plot

TRAIN_IMAGES = 60000
#: Width of the plots' value axes (px), room for "100" and "2.5".
AXIS_WIDTH = 36
#: A few words on a recipe beside its numbers (which come from the recipe itself).
PRESET_NOTES = {"quick": "about 99 %", "standard": "the shipped product network",
                "robust": "the app's default: reads more hands, says 'not a digit'; slow"}


def preset_label(name: str, values: dict) -> str:
    """"Quick: 2 epochs, no augmentation (about 99 %)"."""
    epochs = values["epochs"]
    text = (f"{name.capitalize()}: {epochs} epoch{'s' if epochs != 1 else ''}, "
            f"{'with' if values['augment'] else 'no'} augmentation")
    note = PRESET_NOTES.get(name)
    return f"{text} ({note})" if note else text


def format_duration(seconds: float) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


def _step_up(value: float) -> float:
    """The smallest of ..., 0.1, 0.25, 0.5, 1, 2.5, 5, 10, ... at or above ``value``."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    exp = math.floor(math.log10(value))
    for e in (exp, exp + 1):
        for m in (1, 2.5, 5):
            if m * 10.0 ** e >= value * (1 - 1e-9):
                return m * 10.0 ** e
    return 10.0 ** (exp + 1)


#: The train curves' window: the last fifth of an epoch's batches.
RECENT_SHARE = 0.2


class RecentMeans:
    """The loss and accuracy over the last batches, from the running means of an epoch
    that training reports (``TrainProgress.loss``/``accuracy``, restarting each epoch):
    the running mean times the batches seen is the sum so far, and two sums give the
    mean of the batches between two reports.  The window spans epoch boundaries."""

    def __init__(self, share: float = RECENT_SHARE):
        self.share = share
        self._last: tuple[int, int, float, float] | None = None  # epoch, batch, loss sum, accuracy sum
        self._parts: list[tuple[int, float, float]] = []  # (batches, loss sum, accuracy sum), oldest first

    def add(self, p) -> tuple[float, float]:
        """The means over the window after report ``p``."""
        seen, loss_sum, acc_sum = 0, 0.0, 0.0
        if self._last is not None and self._last[0] == p.epoch and self._last[1] < p.batch:
            _, seen, loss_sum, acc_sum = self._last
        n = p.batch - seen
        if n <= 0:  # (a repeated report)
            n, seen, loss_sum, acc_sum = p.batch, 0, 0.0, 0.0
        self._parts.append((n, p.loss * p.batch - loss_sum, p.accuracy * p.batch - acc_sum))
        self._last = (p.epoch, p.batch, p.loss * p.batch, p.accuracy * p.batch)
        window = max(1, round(self.share * p.batches))
        while len(self._parts) > 1 and sum(part[0] for part in self._parts[1:]) >= window:
            self._parts.pop(0)
        total = sum(part[0] for part in self._parts)
        return (sum(part[1] for part in self._parts) / total, sum(part[2] for part in self._parts) / total)


class TrainingDialog(QDialog):
    startRequested = Signal(dict)
    cancelRequested = Signal()

    def __init__(self, architectures: dict[str, str], presets: dict[str, dict],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Train a model")
        self.setMinimumWidth(560)
        self._presets = presets
        self._running = False
        lay = QVBoxLayout(self)
        lay.setSpacing(10)

        intro = QLabel("Train the network on the 60 000 MNIST training images. When it "
                       "finishes, both models are measured on the same test images and you "
                       "choose which to use; cancel and the current one stays.")
        intro.setWordWrap(True)
        intro.setObjectName("hint")
        lay.addWidget(intro)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        self.preset = QComboBox()
        for name in sorted(presets, key=lambda n: presets[n]["epochs"]):  # the quickest first
            self.preset.addItem(preset_label(name, presets[name]), name)
        self.preset.setToolTip("A starting point; change any value below")
        form.addRow("Recipe:", self.preset)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 200)
        self.epochs.setToolTip("Passes over the training images")
        form.addRow("Epochs:", self.epochs)
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 8192)
        self.batch_size.setToolTip("Images per optimisation step")
        form.addRow("Batch size:", self.batch_size)
        self.learning_rate = QDoubleSpinBox()
        self.learning_rate.setDecimals(5)
        self.learning_rate.setRange(0.00001, 1.0)
        self.learning_rate.setSingleStep(0.001)
        self.learning_rate.setToolTip("Peak learning rate of Adam's one-cycle schedule")
        form.addRow("Learning rate:", self.learning_rate)
        self.arch = QComboBox()
        for name, description in architectures.items():
            self.arch.addItem(name, name)
            self.arch.setItemData(self.arch.count() - 1, description, Qt.ItemDataRole.ToolTipRole)
        self.arch.setToolTip("\n".join(f"{k}: {v}" for k, v in architectures.items()))
        form.addRow("Architecture:", self.arch)
        self.train_images = QSpinBox()
        self.train_images.setRange(100, TRAIN_IMAGES)
        self.train_images.setSingleStep(1000)
        self.train_images.setValue(TRAIN_IMAGES)
        self.train_images.setToolTip("Use only the first N training images (a quicker, "
                                     "weaker model for a try-out)")
        form.addRow("Training images:", self.train_images)
        self.augment = QCheckBox("Augment the images (slower; reads drawings better)")
        self.augment.setToolTip("Small random shifts, turns, shears and stroke-width changes "
                                "of each batch, so the network also reads digits people draw")
        form.addRow("", self.augment)
        lay.addLayout(form)
        self.preset.currentIndexChanged.connect(self._apply_preset)
        self._apply_preset()

        self.job = JobProgress()
        self.progress, self.status = self.job.bar, self.job.status
        lay.addWidget(self.job)

        plots = QHBoxLayout()
        self.loss_plot = plain_plot()
        self.loss_plot.setTitle("Loss", color=theme.MUTED, size="9pt")
        self.loss_plot.setLabel("bottom", "epoch")
        self.acc_plot = plain_plot()
        self.acc_plot.setTitle("Accuracy %", color=theme.MUTED, size="9pt")
        self.acc_plot.setLabel("bottom", "epoch")
        # Legends where the curves are not: loss falls (top right free), accuracy rises.
        # The ranges are set with the data (show_progress), never by auto-range: one
        # repaint per update instead of two (pyqtgraph repaints after an auto-range).
        for p, offset in ((self.loss_plot, (-6, 6)), (self.acc_plot, (-6, -6))):
            p.setMinimumHeight(170)
            p.addLegend(offset=offset, labelTextSize="8pt")
            p.disableAutoRange()
            # A fixed width: new tick labels never resize the plot (a re-layout of the
            # whole plot is the costly part of a repaint).
            p.getAxis("left").setWidth(AXIS_WIDTH)
            plots.addWidget(p)
        self.loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen(theme.ACCENT, width=2), name="train")
        self.test_loss_curve = self.loss_plot.plot([], [], pen=pg.mkPen(theme.GOOD, width=2),
                                                   symbol="o", symbolSize=6, symbolBrush=theme.GOOD,
                                                   name="test")
        self.acc_curve = self.acc_plot.plot([], [], pen=pg.mkPen(theme.ACCENT, width=2), name="train")
        self.test_acc_curve = self.acc_plot.plot([], [], pen=pg.mkPen(theme.GOOD, width=2),
                                                 symbol="o", symbolSize=6, symbolBrush=theme.GOOD,
                                                 name="test")
        lay.addLayout(plots)

        buttons, self.start_button, self.cancel_button, self.close_button = job_buttons(
            "Start training", "Train with these settings (the app stays usable)", "Cancel training",
            "Hide this window; a running training goes on")
        lay.addLayout(buttons)
        self.start_button.clicked.connect(self._start)
        self.cancel_button.clicked.connect(self._cancel)
        self.close_button.clicked.connect(self.hide)
        self._ranges: dict = {}
        self._reset_curves()
        self._fresh_ranges()
        self.epochs.valueChanged.connect(self._fresh_ranges)

    # ---- settings --------------------------------------------------------------------------
    def _apply_preset(self) -> None:
        name = self.preset.currentData()
        if name is None:
            return
        values = self._presets[name]
        self.epochs.setValue(int(values["epochs"]))
        self.batch_size.setValue(int(values["batch_size"]))
        self.learning_rate.setValue(float(values["learning_rate"]))
        self.augment.setChecked(bool(values["augment"]))
        self.arch.setCurrentIndex(max(0, self.arch.findData(values["arch"])))

    def config(self) -> dict:
        """The chosen settings as TrainConfig keyword arguments: the recipe's, with the
        values shown here as the user set them."""
        cfg = dict(self._presets.get(self.preset.currentData()) or {})
        cfg.update({
            "epochs": self.epochs.value(),
            "batch_size": self.batch_size.value(),
            "learning_rate": self.learning_rate.value(),
            "arch": self.arch.currentData(),
            "augment": self.augment.isChecked(),
        })
        if self.train_images.value() < TRAIN_IMAGES:
            cfg["train_limit"] = self.train_images.value()
        return cfg

    # ---- actions ---------------------------------------------------------------------------
    def _start(self) -> None:
        if not self._running:
            self.startRequested.emit(self.config())

    def _cancel(self) -> None:
        if self._running:
            self.cancel_button.setEnabled(False)
            self.job.show_text("Cancelling…")
            self.cancelRequested.emit()

    def _set_running(self, running: bool) -> None:
        self._running = running
        for w in (self.preset, self.epochs, self.batch_size, self.learning_rate, self.arch,
                  self.train_images, self.augment, self.start_button):
            w.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    @property
    def running(self) -> bool:
        return self._running

    def _reset_curves(self) -> None:
        self._recent = RecentMeans()
        self._x, self._loss, self._acc = [], [], []
        self._ex, self._test_loss, self._test_acc = [], [], []
        for c in (self.loss_curve, self.test_loss_curve, self.acc_curve, self.test_acc_curve):
            c.setData([], [])

    # ---- told by the controller ------------------------------------------------------------
    def training_started(self, text: str = "Loading the MNIST images…") -> None:
        self._set_running(True)
        self._reset_curves()
        self._fresh_ranges()
        self.job.reset(text)

    def _fresh_ranges(self) -> None:
        """The ranges a fresh network's curves start in (loss ~2.3) over the epochs chosen:
        shown before Start, so that neither Start nor the first point re-lays the axes out."""
        if not self._running or not self._x:
            self._set_range(self.loss_plot, self.epochs.value(), 0.0, 2.5)
            self._set_range(self.acc_plot, self.epochs.value(), 0.0, 100.0)

    def _set_range(self, plot, epochs: int, lo: float, hi: float) -> None:
        if self._ranges.get(plot) != (epochs, lo, hi):
            self._ranges[plot] = (epochs, lo, hi)
            plot.setRange(xRange=(0, epochs), yRange=(lo, hi), padding=0.03)

    def show_status(self, text: str) -> None:
        self.job.show_text(text)

    def show_progress(self, p) -> None:
        """``p``: an app.ml.train.TrainProgress.  The train curves show the loss and the
        accuracy over the last RECENT_SHARE of an epoch's batches, epoch boundaries or not
        (the running means ``p`` carries restart at each epoch: plotted as they are, the
        curves jump there)."""
        x = p.epoch - 1 + p.batch / p.batches
        loss, acc = self._recent.add(p)
        self._x.append(x)
        self._loss.append(loss)
        self._acc.append(acc)
        self.loss_curve.setData(self._x, self._loss)
        self.acc_curve.setData(self._x, self._acc)
        if p.epoch_stats is not None:
            s = p.epoch_stats
            self._ex.append(float(s.epoch))
            self._test_loss.append(s.test_loss)
            self._test_acc.append(s.test_accuracy)
            self.test_loss_curve.setData(self._ex, self._test_loss)
            self.test_acc_curve.setData(self._ex, self._test_acc)
        self._set_ranges(p.epochs)
        text = (f"Epoch {p.epoch}/{p.epochs} · batch {p.batch}/{p.batches} · loss {p.loss:.3f} · "
                f"accuracy {p.accuracy:.1f} % · {format_duration(p.elapsed)} elapsed, "
                f"about {format_duration(p.eta)} left")
        if self._test_acc:
            text += f"\nTest accuracy after epoch {int(self._ex[-1])}: {self._test_acc[-1]:.2f} %"
        self.job.show_fraction(p.fraction, text)

    def _set_ranges(self, epochs: int) -> None:
        """Change a plot's range only when the data leave it, in round steps: a new range
        makes pyqtgraph lay out its axes again, the costly part of a repaint."""
        loss = self._loss + self._test_loss
        wanted = {
            self.loss_plot: (0.0, _step_up(max(loss))),
            self.acc_plot: (0.0, 100.0),
        }
        for plot, (lo, hi) in wanted.items():
            self._set_range(plot, epochs, lo, hi)

    def training_finished(self, text: str) -> None:
        self._set_running(False)
        self.job.finish(text)

    def training_choice(self, text: str) -> None:
        """The run finished; the question of which model to use is open."""
        self._set_running(False)
        self.job.finish(text)

    def training_declined(self, text: str) -> None:
        self.job.finish(text)

    def training_failed(self, text: str) -> None:
        """``text`` whole (an app.viewmodels.Problem's details behind "Details…")."""
        self._set_running(False)
        self.job.show_problem(text)

    def training_cancelled(self, text: str = "Cancelled. The current model stays in use.") -> None:
        self._set_running(False)
        self.job.reset(text)

    def closeEvent(self, event) -> None:
        self.hide()
        event.ignore()

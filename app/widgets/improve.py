"""Model → Improve with my corrections…: fine-tune the model on the drawings the user
labelled, then show before → after and whether the new model was kept.

The dialog only shows and asks: ``startRequested`` and ``cancelRequested``; the controller
runs the work and calls ``set_count`` / ``improve_started`` / ``show_status`` /
``show_progress`` / ``show_result`` / ``improve_failed`` / ``improve_cancelled``.
Closing the dialog while it runs only hides it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QGridLayout, QLabel, QVBoxLayout, QWidget

from app.viewmodels import ImproveResult
from app.widgets import theme
from app.widgets.cards import JobProgress, card, job_buttons
from app.widgets.training import format_duration

#: The keep rule, as app.ml.finetune.FinetuneConfig states it (shown to the user).
MAX_MNIST_DROP = 0.2


def _points(delta: float) -> str:
    if abs(delta) < 0.005:
        return "±0.00 points"
    text = f"{delta:+.2f}" if abs(delta) < 1 else f"{delta:+.1f}"
    return text.replace("-", "−") + " points"


def delta_colour(delta: float, allowed: float) -> str:
    """Green only for a gain; a loss the keep rule tolerates (``allowed``: the largest
    drop it accepts, ≤ 0) in neutral grey; a loss beyond it (or no gain where one is
    required, ``allowed`` 0) in red."""
    if delta >= 0.005:
        return theme.GOOD
    if delta > -0.005 and allowed < 0:
        return theme.MUTED  # (shown as ±0.00)
    return theme.MUTED if allowed < 0 and delta >= allowed else theme.BAD


class ImproveDialog(QDialog):
    startRequested = Signal()
    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Improve the model with your corrections")
        self.setMinimumWidth(580)
        self._running = False
        self._count: int | None = None
        self._needed = 20
        lay = QVBoxLayout(self)
        lay.setSpacing(10)

        intro = QLabel(
            "Fine-tune the model in use on the drawings you labelled (✓ Correct, ✗ Wrong…, or a "
            "digit key), mixed with MNIST images so that it does not forget them. A fifth of your "
            "drawings is held out to check the result. The new model is kept only if it reads those "
            f"better <i>and</i> loses at most {MAX_MNIST_DROP} points on the MNIST test set; "
            "otherwise, or if you cancel, the current model stays.")
        intro.setObjectName("hint")
        intro.setWordWrap(True)
        lay.addWidget(intro)

        self.count_label = QLabel("Counting your labelled drawings…")
        self.count_label.setObjectName("countLabel")
        self.count_label.setWordWrap(True)
        lay.addWidget(self.count_label)

        self.job = JobProgress()
        self.progress, self.status = self.job.bar, self.job.status
        lay.addWidget(self.job)

        result_card, result_lay = card("Before → after")
        grid = QGridLayout()
        grid.setHorizontalSpacing(18)
        grid.setVerticalSpacing(6)
        for c, text in enumerate(("", "Before", "After", "Change")):
            h = QLabel(text)
            h.setObjectName("cardTitle")
            h.setAlignment(Qt.AlignmentFlag.AlignRight if c else Qt.AlignmentFlag.AlignLeft)
            grid.addWidget(h, 0, c)
        self.mnist_name = QLabel("MNIST test set")
        self.user_name = QLabel("Your held-out drawings")
        self.mnist_name.setToolTip("The 10 000 MNIST test images: the model must not forget them")
        self.user_name.setToolTip("A fifth of your labelled drawings, never trained on")
        self.cells: dict[str, list[QLabel]] = {}
        for r, (key, name) in enumerate((("mnist", self.mnist_name), ("user", self.user_name)), start=1):
            grid.addWidget(name, r, 0)
            row = []
            for c in range(1, 4):
                cell = QLabel("–")
                cell.setObjectName("resultValue")
                cell.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                grid.addWidget(cell, r, c)
                row.append(cell)
            self.cells[key] = row
        grid.setColumnStretch(0, 1)
        result_lay.addLayout(grid)
        self.verdict = QLabel("")
        self.verdict.setObjectName("verdict")
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.TextFormat.RichText)
        self.verdict.hide()
        result_lay.addWidget(self.verdict)
        lay.addWidget(result_card)

        buttons, self.start_button, self.cancel_button, self.close_button = job_buttons(
            "Start", "Fine-tune on your labelled drawings (the app stays usable)", "Cancel",
            "Hide this window; a running fine-tuning goes on")
        lay.addLayout(buttons)
        self.start_button.clicked.connect(self._start)
        self.cancel_button.clicked.connect(self._cancel)
        self.close_button.clicked.connect(self.hide)

    def _fit(self) -> None:
        """Grow (never shrink) to show what was added: the verdict, a longer text."""
        lay = self.layout()
        lay.activate()
        w = max(self.width(), self.minimumWidth())
        h = lay.totalHeightForWidth(w) if lay.hasHeightForWidth() else lay.totalSizeHint().height()
        if h > self.height():
            self.resize(w, h)

    # ---- state ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    def _set_running(self, running: bool) -> None:
        self._running = running
        self.start_button.setEnabled(not running and self._enough())
        self.cancel_button.setEnabled(running)

    def _enough(self) -> bool:
        return self._count is None or self._count >= self._needed

    def set_count(self, n: int, needed: int) -> None:
        """How many labelled drawings there are, and how many are needed."""
        self._count, self._needed = n, needed
        if needed <= 0:
            self.count_label.setText("The database is off: there are no labelled drawings to learn from.")
            self._count, self._needed = 0, 1
        elif n >= needed:
            held = max(1, round(n / 5))
            self.count_label.setText(f"You have labelled <b>{n}</b> drawings: about {n - held} to learn "
                                     f"from and {held} to check the result with.")
        else:
            self.count_label.setText(f"You have labelled <b>{n}</b> drawing{'s' if n != 1 else ''}; at least "
                                     f"<b>{needed}</b> are needed. Draw {needed - n} more and label "
                                     f"them, then come back.")
        self.count_label.setProperty("problem", n < needed)
        self.count_label.style().unpolish(self.count_label)
        self.count_label.style().polish(self.count_label)
        if not self._running:
            self.start_button.setEnabled(self._enough())
        self._fit()

    def _start(self) -> None:
        if not self._running:
            self.startRequested.emit()

    def _cancel(self) -> None:
        if self._running:
            self.cancel_button.setEnabled(False)
            self.job.show_text("Cancelling…")
            self.cancelRequested.emit()

    def _clear_result(self) -> None:
        for row in self.cells.values():
            for cell in row:
                cell.setText("–")
                cell.setStyleSheet("")
        self.verdict.hide()

    # ---- told by the controller -------------------------------------------------------------
    def improve_started(self) -> None:
        self._set_running(True)
        self._clear_result()
        self.job.reset("Starting…")

    def show_status(self, text: str) -> None:
        self.job.show_text(text)

    def show_progress(self, p) -> None:
        """``p``: an app.ml.train.TrainProgress."""
        self.job.show_fraction(p.fraction, f"Epoch {p.epoch}/{p.epochs} · batch {p.batch}/{p.batches} · "
                                           f"loss {p.loss:.3f} · about {format_duration(p.eta)} left")

    def show_result(self, r: ImproveResult) -> None:
        self._set_running(False)
        self.user_name.setText(f"Your held-out drawings ({r.n_holdout})")
        for key, before, after, allowed in (("mnist", r.mnist_before, r.mnist_after, -MAX_MNIST_DROP),
                                            ("user", r.user_before, r.user_after, 0.0)):
            b, a, d = self.cells[key]
            b.setText(f"{before:.2f} %" if key == "mnist" else f"{before:.1f} %")
            a.setText(f"{after:.2f} %" if key == "mnist" else f"{after:.1f} %")
            delta = after - before
            d.setText(_points(delta))
            d.setStyleSheet(f"color: {delta_colour(delta, allowed)}; font-weight: 600;")
        if r.kept:
            version = f" (version #{r.version_id})" if r.version_id is not None else ""
            text = (f"<b>✓ Kept.</b> The improved model{version} is in use now; "
                    f"fine-tuned on {r.n_train} drawings in {format_duration(r.seconds)}.")
        else:
            why = r.reason.removeprefix("not kept: ").replace("->", "→")
            text = f"<b>✗ Not kept:</b> {why}. The current model stays in use."
        self.verdict.setText(text)
        self.verdict.setProperty("kept", bool(r.kept))
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)
        self.verdict.show()
        self.job.finish("Done.")
        self._fit()

    def improve_failed(self, text: str) -> None:
        self._set_running(False)
        self.job.show_problem(text)

    def improve_cancelled(self, text: str = "Cancelled. The current model stays in use.") -> None:
        self._set_running(False)
        self.job.reset(text)

    def closeEvent(self, event) -> None:
        self.hide()
        event.ignore()

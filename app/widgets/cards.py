"""The white rounded panels ("cards") the windows are made of, and the parts the dialogs
that run a long job share (their button row, their progress)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from app.widgets.messages import message_box


def card(title: str | None = None) -> tuple[QFrame, QVBoxLayout]:
    """A white rounded panel with an optional small title."""
    frame = QFrame()
    frame.setObjectName("card")
    lay = QVBoxLayout(frame)
    lay.setContentsMargins(14, 10, 14, 12)
    lay.setSpacing(6)
    if title:
        label = QLabel(title.upper())
        label.setObjectName("cardTitle")
        lay.addWidget(label)
    return frame, lay


def stat_tile(title: str) -> tuple[QFrame, QLabel, QLabel]:
    """A card with a big number and a caption (statistics tab)."""
    frame, lay = card(title)
    value = QLabel("–")
    value.setObjectName("statValue")
    caption = QLabel("")
    caption.setObjectName("hint")
    caption.setWordWrap(True)
    lay.addWidget(value)
    lay.addWidget(caption)
    lay.addStretch(1)
    frame.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
    return frame, value, caption


def answer_buttons(correct: QPushButton, other: QPushButton) -> QHBoxLayout:
    """The ✓ Correct / other answer row under a prediction or a number: two wide buttons
    that never take the keyboard focus from the canvas (their shortcuts do the job)."""
    row = QHBoxLayout()
    for b in (correct, other):
        b.setMinimumHeight(34)
        b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        row.addWidget(b, 1)
    return row


def centred_label(name: str, wrap: bool = True) -> QLabel:
    """An empty label styled ``name`` (the .qss object name), centred."""
    label = QLabel("")
    label.setObjectName(name)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(wrap)
    return label


def job_buttons(start: str, start_tip: str, cancel: str, close_tip: str
                ) -> tuple[QHBoxLayout, QPushButton, QPushButton, QPushButton]:
    """The Start / Cancel / Close row of a dialog that runs a long job in a worker."""
    row = QHBoxLayout()
    row.addStretch(1)
    start_button = QPushButton(start)
    start_button.setObjectName("primary")
    start_button.setDefault(True)
    start_button.setToolTip(start_tip)
    cancel_button = QPushButton(cancel)
    cancel_button.setEnabled(False)
    cancel_button.setToolTip("Stop; the current model stays in use")
    close_button = QPushButton("Close")
    close_button.setToolTip(close_tip)
    for b in (start_button, cancel_button, close_button):
        row.addWidget(b)
    return row, start_button, cancel_button, close_button


class JobProgress(QWidget):
    """A long job's progress bar and the lines that say what it does (Model → Train…,
    Improve with my corrections…).  While the job runs the lines keep a fixed height (new
    text never re-lays the dialog and its plots out); a problem is shown whole, selectable,
    with its details behind "Details…" (``show_problem``)."""

    STEPS = 1000
    LINES = 3

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(10)
        self.bar = QProgressBar()
        self.bar.setRange(0, self.STEPS)
        self.bar.setValue(0)
        self.bar.setFormat("%p %")
        lay.addWidget(self.bar)
        self.status = QLabel("Ready.")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._fixed_height()
        lay.addWidget(self.status)
        self.details_button = QPushButton("Details…")
        self.details_button.setToolTip("The technical details of the problem")
        self.details_button.hide()
        self.details_button.clicked.connect(self._show_details)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.details_button)
        row.addStretch(1)
        lay.addLayout(row)
        self._details: str | None = None

    def _fixed_height(self) -> None:
        self.status.setMinimumHeight(0)
        self.status.setFixedHeight(self.LINES * self.status.fontMetrics().lineSpacing() + 4)
        self.status.setProperty("problem", False)

    def show_text(self, text: str) -> None:
        self.status.setText(text)

    def show_fraction(self, fraction: float, text: str | None = None) -> None:
        self.bar.setValue(int(round(fraction * self.STEPS)))
        if text is not None:
            self.status.setText(text)

    def reset(self, text: str) -> None:
        """Back to the start (a new run, a cancel)."""
        self._clear_problem()
        self.show_fraction(0.0, text)

    def finish(self, text: str) -> None:
        self._clear_problem()
        self.show_fraction(1.0, text)

    def show_problem(self, text: str, details: str | None = None) -> None:
        """The job failed: ``text`` whole (the lines grow to hold it; the window grows by
        as much, its plots keep their size), and ``details`` (or the ``details`` of an
        app.viewmodels.Problem) behind "Details…"."""
        if details is None:
            details = getattr(text, "details", None)
        window = self.window()
        window_height = window.height()  # (a new minimum below may already grow the window)
        before = self.status.height()
        had_button = self.details_button.isVisible()
        self.bar.setValue(0)
        self.status.setText(str(text))
        width = self.status.width()
        needed = self.status.heightForWidth(width) if width > 0 else self.status.sizeHint().height()
        self.status.setMaximumHeight(16777215)
        self.status.setMinimumHeight(max(needed, 0))
        self._details = details
        self.details_button.setVisible(bool(details))
        extra = max(0, needed - before)
        if self.details_button.isVisible() and not had_button:
            extra += self.details_button.sizeHint().height() + max(0, self.layout().spacing())
        if window is not self and window.isVisible() and extra > 0:
            window.resize(window.width(), max(window.height(), window_height + extra))

    def _clear_problem(self) -> None:
        if self._details is not None or self.details_button.isVisible():
            self.details_button.hide()
        self._details = None
        self._fixed_height()

    def _show_details(self) -> None:
        if self._details:
            box = message_box(self.window(), "Details", self._details, QMessageBox.Icon.Information)
            box.show()

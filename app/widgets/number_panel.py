"""Number mode's panel: the number read (big), each digit as a chip with its confidence,
and ✓ / "Type the number…"; and the "Type the number" dialog.

A chip is a small button: clicking it opens a menu of the ten digits (typing a digit in
the open menu picks it), and a corrected chip says what was read.  The panel shows what
it is told and emits what the user picks."""

from __future__ import annotations

import logging

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QLineEdit, QMenu, QPushButton,
                               QToolButton, QVBoxLayout, QWidget)

from app.widgets.cards import answer_buttons, card, centred_label
from app.widgets.prediction import format_sure

log = logging.getLogger(__name__)

#: A digit read with less confidence than this is marked on its chip.
UNSURE = 0.5


class NumberPanel(QWidget):
    """States: loading, idle, result, error."""

    correctClicked = Signal()
    typeClicked = Signal()
    #: The user picked a digit on a chip: its position (0 = leftmost) and the digit.
    digitPicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(10)
        top, lay = card("Number")
        self.number_label = centred_label("bigNumber", wrap=False)
        self.number_label.setToolTip("The number the network reads in your drawing, digit by digit")
        lay.addWidget(self.number_label)
        self.confidence_label = centred_label("confidence")
        lay.addWidget(self.confidence_label)
        self.chip_row = QHBoxLayout()
        self.chip_row.setSpacing(6)
        self.chip_row.addStretch(1)
        self.chip_row.addStretch(1)  # (the chips go between the two: centred)
        lay.addLayout(self.chip_row)
        self.detail_label = centred_label("hint")
        lay.addWidget(self.detail_label)
        self.correct_button = QPushButton("✓ Correct")
        self.correct_button.setObjectName("correctButton")
        self.correct_button.setToolTip("The number is right (as corrected): save it and start a new drawing (Enter)")
        self.type_button = QPushButton("Type the number…")
        self.type_button.setObjectName("wrongButton")
        self.type_button.setToolTip("Type the number you wrote, and save it (W, or a digit key)")
        self.correct_button.clicked.connect(self.correctClicked)
        self.type_button.clicked.connect(self.typeClicked)
        lay.addLayout(answer_buttons(self.correct_button, self.type_button))
        outer.addWidget(top)
        outer.addStretch(1)
        self.chips: list[QToolButton] = []
        self._state = ""
        self.show_loading()

    @property
    def state(self) -> str:
        return self._state

    @property
    def text(self) -> str:
        """The number shown ("" when none)."""
        return self.number_label.text() if self._state == "result" else ""

    def _set_state(self, state: str, feedback: bool) -> None:
        self._state = state
        self.number_label.setProperty("state", "result" if state == "result" else "idle")
        self.number_label.style().unpolish(self.number_label)
        self.number_label.style().polish(self.number_label)
        self.set_feedback_enabled(feedback)

    def set_feedback_enabled(self, enabled: bool) -> None:
        self.correct_button.setEnabled(enabled)
        self.type_button.setEnabled(enabled)
        for chip in self.chips:
            chip.setEnabled(enabled)

    def _set_chips(self, chips: list[tuple[int, float, int | None]]) -> None:
        """(digit read, its confidence, the corrected digit or None), left to right."""
        while len(self.chips) > len(chips):
            chip = self.chips.pop()
            self.chip_row.removeWidget(chip)
            chip.deleteLater()
        while len(self.chips) < len(chips):
            self.chips.append(self._make_chip(len(self.chips)))
        for chip, (digit, confidence, corrected) in zip(self.chips, chips):
            shown = digit if corrected is None else corrected
            sure = format_sure(confidence)
            if corrected is None:
                chip.setText(f"{shown}\n{sure}")
                chip.setToolTip(f"Read as {digit}, {sure} sure. Click to pick another digit.")
            else:
                chip.setText(f"{shown}\nwas {digit}")
                chip.setToolTip(f"You corrected it to {corrected} (read as {digit}, {sure} sure). "
                                f"Click to pick another digit.")
            chip.setProperty("corrected", corrected is not None)
            chip.setProperty("unsure", corrected is None and confidence < UNSURE)
            chip.style().unpolish(chip)
            chip.style().polish(chip)

    def _make_chip(self, position: int) -> QToolButton:
        chip = QToolButton()
        chip.setObjectName("digitChip")
        chip.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        chip.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(chip)
        for d in range(10):
            a = menu.addAction(f"&{d}")
            a.triggered.connect(lambda _=False, d=d: self.digitPicked.emit(position, d))
        chip.setMenu(menu)
        self.chip_row.insertWidget(position + 1, chip)
        return chip

    # ---- states -----------------------------------------------------------------------------
    def show_loading(self, text: str = "Loading model…") -> None:
        self.number_label.setText("…")
        self.confidence_label.setText(text)
        self.detail_label.setText("You can start writing already.")
        self._set_chips([])
        self._set_state("loading", False)

    def show_idle(self) -> None:
        self.number_label.setText("")
        self.confidence_label.setText("Write a number")
        self.detail_label.setText("Several digits side by side, in one line, each about as high as the box "
                                  "allows.")
        self._set_chips([])
        self._set_state("idle", False)

    def show_error(self, title: str, text: str) -> None:
        self.number_label.setText("?")
        self.confidence_label.setText(title)
        self.detail_label.setText(text)
        self._set_chips([])
        self._set_state("error", False)

    def show_reading(self, digits: list[tuple[int, float]], confidence: float, corrections: dict[int, int],
                     feedback: bool = True) -> None:
        """``digits``: (digit read, its confidence), left to right; ``corrections``:
        position -> the digit the user picked."""
        chips = [(d, c, corrections.get(i)) for i, (d, c) in enumerate(digits)]
        self.number_label.setText("".join(str(d if k is None else k) for d, _c, k in chips))
        n = len(digits)
        self.confidence_label.setText(f"{n} digit{'s' if n != 1 else ''} · {format_sure(confidence)} sure")
        if corrections:
            self.detail_label.setText("Corrected: ✓ saves the number as shown.")
        elif any(c < UNSURE for _d, c in digits):
            self.detail_label.setText("Not sure of every digit: click one to correct it.")
        else:
            self.detail_label.setText("Click a digit to correct it.")
        self._set_chips(chips)
        self._set_state("result", feedback)


class TypeNumberDialog(QDialog):
    """"Type the number": a line for the digits; ``check(text)`` returns None when the
    number is taken, or what is wrong with it (the dialog stays open and says so)."""

    def __init__(self, read: str, check, start: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Type the number")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self._check = check
        lay = QVBoxLayout(self)
        question = QLabel(f"The network read <b>{read}</b>. Which number did you write?")
        question.setWordWrap(True)
        lay.addWidget(question)
        self.line = QLineEdit(start)
        self.line.setPlaceholderText(read)
        self.line.setValidator(QRegularExpressionValidator(QRegularExpression("[0-9]{0,99}"), self.line))
        lay.addWidget(self.line)
        self.problem_label = QLabel("")
        self.problem_label.setObjectName("problemBanner")
        self.problem_label.setWordWrap(True)
        self.problem_label.hide()
        lay.addWidget(self.problem_label)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self.submit)
        box.rejected.connect(self.reject)
        lay.addWidget(box)
        self.setMinimumWidth(360)

    def submit(self) -> None:
        problem = self._check(self.line.text())
        if problem:
            self.problem_label.setText(problem)
            self.problem_label.show()
            return
        self.accept()

"""The live prediction panel: the big digit, its confidence and the second-best guess, the
ten bars, the 28x28 input (with the "Why this digit?" heat map when asked), and the
feedback buttons.  It shows what it is told and emits what the user clicks.

A drawing the model does not take for a digit (a letter, a scribble) gets its own state,
``show_not_a_digit``: "This doesn't look like a digit", with the best guess small.  ✓
then means "it is the digit shown" (the button says so), ✗ Wrong… picks another."""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton,
                               QVBoxLayout, QWidget)

from app.widgets import theme
from app.widgets.cards import answer_buttons, card
from app.widgets.charts import PixelImage, ProbabilityChart

CORRECT_TEXT = "✓ Correct"
CORRECT_TIP = "The prediction is right: save this drawing with its label and start a new one (Enter)"
DIGIT_TIP = "The digit the network reads in your drawing"


class PredictionPanel(QWidget):
    """States: loading (model not ready), idle (nothing drawn), result, notdigit (a
    drawing that does not look like a digit), error."""

    correctClicked = Signal()
    wrongClicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(10)

        top, top_lay = card("Prediction")
        row = QHBoxLayout()
        row.setSpacing(16)
        self.digit_label = QLabel("")
        self.digit_label.setObjectName("bigDigit")
        self.digit_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.digit_label.setMinimumWidth(110)
        self.digit_label.setToolTip(DIGIT_TIP)
        row.addWidget(self.digit_label)
        text_col = QVBoxLayout()
        text_col.setSpacing(2)
        self.confidence_label = QLabel("")
        self.confidence_label.setObjectName("confidence")
        self.confidence_label.setWordWrap(True)  # wraps rather than clips in a narrow window
        self.runner_up_label = QLabel("")
        self.runner_up_label.setObjectName("runnerUp")
        self.runner_up_label.setTextFormat(Qt.TextFormat.RichText)
        self.runner_up_label.setToolTip("The digit the network rates second, and its probability")
        self.detail_label = QLabel("")
        self.detail_label.setObjectName("hint")
        self.detail_label.setWordWrap(True)
        text_col.addStretch(1)
        text_col.addWidget(self.confidence_label)
        text_col.addWidget(self.runner_up_label)
        text_col.addWidget(self.detail_label)
        text_col.addStretch(1)
        row.addLayout(text_col, 1)
        self.input_view = PixelImage(112)
        self.input_view.setToolTip("What the network sees: your drawing cropped, scaled into "
                                   "20×20 and centred in 28×28, as in MNIST")
        seen = QVBoxLayout()
        seen.setSpacing(2)
        seen.addWidget(self.input_view, 0, Qt.AlignmentFlag.AlignHCenter)
        self.seen_caption = QLabel("network input")
        self.seen_caption.setObjectName("hint")
        self.seen_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.seen_caption.setTextFormat(Qt.TextFormat.RichText)
        seen.addWidget(self.seen_caption)
        #: The "Why this digit?" toggle; the main window gives it its action.
        self.explain_button = QToolButton()
        self.explain_button.setObjectName("explainButton")
        self.explain_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.explain_button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.explain_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        seen.addWidget(self.explain_button)
        row.addLayout(seen)
        top_lay.addLayout(row)

        self.correct_button = QPushButton(CORRECT_TEXT)
        self.correct_button.setObjectName("correctButton")
        self.correct_button.setToolTip(CORRECT_TIP)
        self.wrong_button = QPushButton("✗ Wrong…")
        self.wrong_button.setObjectName("wrongButton")
        self.wrong_button.setToolTip("The prediction is wrong: tell which digit you drew (W)")
        self.correct_button.clicked.connect(self.correctClicked)
        self.wrong_button.clicked.connect(self.wrongClicked)
        top_lay.addLayout(answer_buttons(self.correct_button, self.wrong_button))
        outer.addWidget(top)

        chart_card, chart_lay = card("Probabilities")
        self.chart = ProbabilityChart()
        chart_lay.addWidget(self.chart)
        outer.addWidget(chart_card, 1)

        self._state = ""
        self._digit: int | None = None
        self.show_loading()

    # ---- state --------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def digit(self) -> int | None:
        """The digit shown, or None."""
        return self._digit

    def _set_state(self, state: str, feedback: bool) -> None:
        look = {"result": "result", "notdigit": "guess"}.get(state, "idle")
        if self.digit_label.property("state") != look:  # (restyling costs a millisecond: only on a change)
            self.digit_label.setProperty("state", look)
            self.digit_label.style().unpolish(self.digit_label)
            self.digit_label.style().polish(self.digit_label)
        if state != "notdigit" and self._state == "notdigit":
            self._set_correct_text(None)
        self._state = state
        self.correct_button.setEnabled(feedback)
        self.wrong_button.setEnabled(feedback)

    def _set_correct_text(self, guess: int | None) -> None:
        """✓ says what it saves: "✓ Correct", or "✓ It is a 7" when the reading is only a guess."""
        if guess is None:
            self.correct_button.setText(CORRECT_TEXT)
            self.correct_button.setToolTip(CORRECT_TIP)
        else:
            self.correct_button.setText(f"✓ It is a {guess}")
            self.correct_button.setToolTip(f"Save this drawing as a {guess}, the best guess shown, and start "
                                           f"a new one (Enter)")

    def _clear_result(self) -> None:
        self.runner_up_label.setText("")
        self.runner_up_label.hide()
        self.chart.clear_bars()
        self.input_view.clear_image()
        self._set_caption(None)

    def _set_caption(self, digit: int | None) -> None:
        if digit is None:
            self.seen_caption.setText("network input")
            self.seen_caption.setToolTip("")
            return
        self.seen_caption.setText(
            f"<span style='color:rgb{theme.EVIDENCE_FOR}'>■</span> for {digit} "
            f"<span style='color:rgb{theme.EVIDENCE_AGAINST}'>■</span> against")
        self.seen_caption.setToolTip(
            f"Gradient × input: the coloured pixels of the network input pushed its score "
            f"for {digit} up (warm) or down (blue); the stronger the colour, the more")

    def show_loading(self, text: str = "Loading model…") -> None:
        self._digit = None
        self.digit_label.setText("…")
        self.confidence_label.setText(text)
        self.detail_label.setText("You can start drawing already.")
        self._clear_result()
        self._set_state("loading", False)

    def show_idle(self) -> None:
        self._digit = None
        self.digit_label.setText("")
        self.confidence_label.setText("Draw a digit")
        self.detail_label.setText("One digit, 0–9, as large as the box allows.")
        self._clear_result()
        self._set_state("idle", False)

    def show_error(self, title: str, text: str) -> None:
        """``text``: a sentence or two (the full story goes in a message box)."""
        self._digit = None
        self.digit_label.setText("?")
        self.confidence_label.setText(title)
        self.detail_label.setText(text)
        self._clear_result()
        self._set_state("error", False)

    def show_prediction(self, digit: int, confidence: float, probabilities, image: np.ndarray | None,
                        runner_up: tuple[int, float] | None = None, heat: np.ndarray | None = None) -> None:
        """``heat``: the "Why this digit?" map (28x28 in [-1, 1]) to lay over the input."""
        self._digit = int(digit)
        self.digit_label.setText(str(digit))
        self.digit_label.setToolTip(DIGIT_TIP)
        self.confidence_label.setText(f"{format_sure(confidence)} sure")
        if runner_up is None:
            order = np.argsort(np.asarray(probabilities))[::-1]
            runner_up = (int(order[1]), float(probabilities[order[1]]))
        self.runner_up_label.setText(f"Second guess: <b>{runner_up[0]}</b> · "
                                     f"{html.escape(format_share(runner_up[1]))}")
        self.runner_up_label.show()
        if confidence < 0.5:
            self.detail_label.setText("Not sure: try drawing it larger or clearer.")
        elif runner_up[1] < 0.01:
            self.detail_label.setText("No other digit comes close.")
        else:
            self.detail_label.setText("")
        self.chart.set_probabilities(probabilities, digit)
        self.input_view.set_array(image, heat)
        self._set_caption(digit if self.input_view.heat is not None else None)
        self._set_state("result", True)

    def show_not_a_digit(self, guess: int, probabilities, image: np.ndarray | None,
                         heat: np.ndarray | None = None) -> None:
        """The drawing does not look like a digit: say so, with the best guess (and its
        probability) small; the bars and the network input stay."""
        self._digit = int(guess)
        probability = float(np.asarray(probabilities, dtype=float)[guess])
        self.digit_label.setText(str(guess))
        self.digit_label.setToolTip("The network's best guess, though the drawing does not look like a digit")
        self.confidence_label.setText("This doesn't look like a digit")
        self.runner_up_label.setText(f"Best guess: <b>{guess}</b> · {html.escape(format_share(probability))}")
        self.runner_up_label.show()
        self.detail_label.setText("Another digit? Use ✗ Wrong…")
        self.chart.set_probabilities(probabilities, guess)
        self.input_view.set_array(image, heat)
        self._set_caption(guess if self.input_view.heat is not None else None)
        self._set_state("notdigit", True)
        self._set_correct_text(guess)

    def set_feedback_enabled(self, enabled: bool) -> None:
        self.correct_button.setEnabled(enabled)
        self.wrong_button.setEnabled(enabled)


def format_sure(p: float) -> str:
    """A confidence for people: "87.3 %", and "> 99.9 %" rather than a "100.0 %" no
    calibrated model can mean."""
    percent = float(p) * 100
    return "> 99.9 %" if percent >= 99.95 else f"{percent:.1f} %"


def format_share(p: float) -> str:
    """A probability for people: "12.3 %", "0.4 %", "< 0.1 %"."""
    percent = float(p) * 100
    return "< 0.1 %" if percent < 0.05 else f"{percent:.1f} %"

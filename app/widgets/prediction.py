"""The live prediction panel: the big digit, its confidence, the ten bars, the 28x28 input,
and the feedback buttons.  It shows what it is told and emits what the user clicks."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.widgets.cards import card
from app.widgets.charts import PixelImage, ProbabilityChart


class PredictionPanel(QWidget):
    """States: loading (model not ready), idle (nothing drawn), working, result, error."""

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
        self.digit_label.setToolTip("The digit the network reads in your drawing")
        row.addWidget(self.digit_label)
        text_col = QVBoxLayout()
        text_col.setSpacing(2)
        self.confidence_label = QLabel("")
        self.confidence_label.setObjectName("confidence")
        self.detail_label = QLabel("")
        self.detail_label.setObjectName("hint")
        self.detail_label.setWordWrap(True)
        text_col.addStretch(1)
        text_col.addWidget(self.confidence_label)
        text_col.addWidget(self.detail_label)
        text_col.addStretch(1)
        row.addLayout(text_col, 1)
        self.input_view = PixelImage(112)
        self.input_view.setToolTip("What the network sees: your drawing cropped, scaled into "
                                   "20×20 and centred in 28×28, as in MNIST")
        seen = QVBoxLayout()
        seen.setSpacing(2)
        seen.addWidget(self.input_view, 0, Qt.AlignmentFlag.AlignHCenter)
        seen_caption = QLabel("network input")
        seen_caption.setObjectName("hint")
        seen_caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        seen.addWidget(seen_caption)
        row.addLayout(seen)
        top_lay.addLayout(row)

        buttons = QHBoxLayout()
        self.correct_button = QPushButton("✓ Correct")
        self.correct_button.setObjectName("correctButton")
        self.correct_button.setToolTip("The prediction is right: save this drawing with its "
                                       "label and start a new one (Enter)")
        self.wrong_button = QPushButton("✗ Wrong…")
        self.wrong_button.setObjectName("wrongButton")
        self.wrong_button.setToolTip("The prediction is wrong: tell which digit you drew (W)")
        for b in (self.correct_button, self.wrong_button):
            b.setMinimumHeight(34)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            buttons.addWidget(b, 1)
        self.correct_button.clicked.connect(self.correctClicked)
        self.wrong_button.clicked.connect(self.wrongClicked)
        top_lay.addLayout(buttons)
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
        self._state = state
        self.digit_label.setProperty("state", "result" if state == "result" else "idle")
        self.digit_label.style().unpolish(self.digit_label)
        self.digit_label.style().polish(self.digit_label)
        self.correct_button.setEnabled(feedback)
        self.wrong_button.setEnabled(feedback)

    def show_loading(self, text: str = "Loading model…") -> None:
        self._digit = None
        self.digit_label.setText("…")
        self.confidence_label.setText(text)
        self.detail_label.setText("You can start drawing already.")
        self.chart.clear_bars()
        self.input_view.clear_image()
        self._set_state("loading", False)

    def show_idle(self) -> None:
        self._digit = None
        self.digit_label.setText("")
        self.confidence_label.setText("Draw a digit")
        self.detail_label.setText("One digit, 0–9, as large as the box allows.")
        self.chart.clear_bars()
        self.input_view.clear_image()
        self._set_state("idle", False)

    def show_error(self, title: str, text: str) -> None:
        self._digit = None
        self.digit_label.setText("?")
        self.confidence_label.setText(title)
        self.detail_label.setText(text)
        self.chart.clear_bars()
        self.input_view.clear_image()
        self._set_state("error", False)

    def show_prediction(self, digit: int, confidence: float, probabilities, image: np.ndarray | None,
                        runner_up: tuple[int, float] | None = None) -> None:
        self._digit = int(digit)
        self.digit_label.setText(str(digit))
        self.confidence_label.setText(f"{confidence * 100:.1f} % sure")
        if runner_up is not None and runner_up[1] >= 0.01:
            self.detail_label.setText(f"Next best: {runner_up[0]} ({runner_up[1] * 100:.1f} %)")
        elif confidence < 0.5:
            self.detail_label.setText("Not sure: try drawing it larger or clearer.")
        else:
            self.detail_label.setText("No other digit comes close.")
        self.chart.set_probabilities(probabilities, digit)
        self.input_view.set_array(image)
        self._set_state("result", True)

    def set_feedback_enabled(self, enabled: bool) -> None:
        self.correct_button.setEnabled(enabled)
        self.wrong_button.setEnabled(enabled)

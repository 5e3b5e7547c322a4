"""The "✗ Wrong…" dialog: the drawing, the probabilities, and ten digits to pick the true one.

Keys 0-9 pick a digit, as does a click on its button or its bar; Esc cancels.  The dialog
is window-modal and opened with ``open()`` (no nested event loop): ``digitChosen`` tells
the choice.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QPixmap
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QGridLayout, QHBoxLayout, QLabel,
                               QPushButton, QVBoxLayout, QWidget)

from app.widgets.charts import ProbabilityChart


class CorrectionDialog(QDialog):
    digitChosen = Signal(int)

    def __init__(self, drawing: QImage, probabilities, predicted: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Which digit did you draw?")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.chosen: int | None = None
        lay = QVBoxLayout(self)
        lay.setSpacing(10)

        question = QLabel(f"The network read <b>{predicted}</b>. Which digit is it really? "
                          f"Press its key (0–9) or click it.")
        question.setWordWrap(True)
        lay.addWidget(question)

        row = QHBoxLayout()
        picture = QLabel()
        picture.setObjectName("pixelImage")
        side = 150
        dpr = self.devicePixelRatioF()
        scaled = drawing.scaled(int(side * dpr), int(side * dpr), Qt.AspectRatioMode.KeepAspectRatio,
                                Qt.TransformationMode.SmoothTransformation)
        pix = QPixmap.fromImage(scaled)
        pix.setDevicePixelRatio(dpr)
        picture.setPixmap(pix)
        picture.setFixedSize(side + 2, side + 2)
        picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        picture.setStyleSheet("background: #ffffff;")
        row.addWidget(picture)
        self.chart = ProbabilityChart(compact=True)
        self.chart.set_probabilities(probabilities, predicted)
        self.chart.setMinimumWidth(300)
        self.chart.setToolTip("Click a bar to pick that digit")
        self.chart.digitClicked.connect(self.choose)
        row.addWidget(self.chart, 1)
        lay.addLayout(row)

        grid = QGridLayout()
        grid.setSpacing(6)
        self.buttons: list[QPushButton] = []
        for d in range(10):
            b = QPushButton(str(d))
            b.setObjectName("digitButton")
            b.setToolTip(f"It is a {d} (key {d})")
            b.setAutoDefault(False)
            b.clicked.connect(lambda _=False, d=d: self.choose(d))
            if d == predicted:
                b.setToolTip(f"{d} is what the network read (key {d})")
            grid.addWidget(b, 0, d)
            self.buttons.append(b)
        lay.addLayout(grid)

        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        box.rejected.connect(self.reject)
        lay.addWidget(box)

    def choose(self, digit: int) -> None:
        if not 0 <= digit <= 9:
            return
        self.chosen = digit
        self.digitChosen.emit(digit)
        self.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        text = event.text()
        if len(text) == 1 and text.isdigit():
            self.choose(int(text))
            return
        super().keyPressEvent(event)

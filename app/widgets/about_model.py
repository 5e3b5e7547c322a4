"""Model → About this model: the model in use (architecture, accuracy, date, file, version)
and how far its confidence can be trusted: the reliability diagram and the calibration
error on the MNIST test set, and the digit-score threshold below which a drawing is
"not a digit", all from the weights file's metadata["calibration"].  A file without
calibration data says so.  It shows what it is told (``show_model``)."""

from __future__ import annotations

import html
import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.viewmodels import ModelInfo
from app.widgets import help
from app.widgets.cards import card
from app.widgets.reliability import ReliabilityDiagram

log = logging.getLogger(__name__)

SCORE_NAMES = {"msp": "the calibrated probability of the best guess", "energy": "the energy score"}


def calibration_html(calibration: dict | None) -> str:
    """What the calibration data says, in words (or that there is none)."""
    if calibration is None:
        return ("<b>Not calibrated.</b> This weights file has no calibration data: the confidence shown is "
                "the network's own, which is often too sure of itself, and every drawing counts as a "
                "digit (nothing is called “not a digit”). Models trained with a validation set are "
                "calibrated.")
    c = calibration
    rows = []
    temperature = c.get("temperature")
    if isinstance(temperature, (int, float)):
        rows.append(("Temperature", f"{temperature:.3f} <small>(the logits are divided by it)</small>"))
    ece = c.get("test_ece")
    if ece is None and isinstance(c.get("test_reliability"), dict):
        ece = c["test_reliability"].get("ece")
    rows.append(("Calibration error", f"{100 * float(ece):.2f} % <small>(expected calibration error, "
                                      f"15 bins, MNIST test set)</small>" if ece is not None else "not measured"))
    threshold = c.get("digit_threshold")
    score = SCORE_NAMES.get(c.get("score", "msp"), str(c.get("score")))
    if threshold is None:
        rows.append(("Not a digit", "no threshold: every drawing counts as a digit"))
    else:
        accept = c.get("test_digit_accept")
        accepted = f"; {100 * float(accept):.1f} % of the MNIST test digits pass" if accept is not None else ""
        rows.append(("Not a digit", f"when {html.escape(score)} is below {float(threshold):.3f}"
                                    f"<small>{accepted}</small>"))
    return ("<b>Calibrated.</b> The diagram shows, on the MNIST test set, how often the model was right at "
            "each confidence: bars on the dashed line mean that “90 % sure” is right 90 % of the time."
            + help.table(rows))


class AboutModelDialog(QDialog):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("About this model")
        self.setMinimumWidth(560)
        lay = QVBoxLayout(self)
        lay.setSpacing(10)
        self.text = QLabel("")
        self.text.setTextFormat(Qt.TextFormat.RichText)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.text)
        conf_card, conf_lay = card("How far its confidence can be trusted")
        self.calibration_label = QLabel("")
        self.calibration_label.setObjectName("calibration")
        self.calibration_label.setTextFormat(Qt.TextFormat.RichText)
        self.calibration_label.setWordWrap(True)
        self.calibration_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        conf_lay.addWidget(self.calibration_label)
        self.diagram = ReliabilityDiagram()
        self.diagram.setFixedHeight(280)
        conf_lay.addWidget(self.diagram)
        lay.addWidget(conf_card, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.close_button = QPushButton("Close")
        self.close_button.setDefault(True)
        self.close_button.clicked.connect(self.hide)
        buttons.addWidget(self.close_button)
        lay.addLayout(buttons)
        self.calibrated = False

    def show_model(self, info: ModelInfo | None, version_id: int | None) -> None:
        self.text.setText(help.model_html(info, version_id))
        calibration = info.calibration if info is not None else None
        self.calibrated = calibration is not None
        self.calibration_label.setText(calibration_html(calibration) if info is not None else "")
        self.diagram.setVisible(self._set_bins(calibration))
        self._fit()

    def _set_bins(self, calibration: dict | None) -> bool:
        bins = calibration.get("test_reliability") if calibration else None
        if isinstance(bins, dict) and {"edges", "counts", "accuracy"} <= set(bins):
            try:
                self.diagram.set_bins(bins["edges"], bins["counts"], bins["accuracy"])
                return True
            except (TypeError, ValueError) as exc:
                log.warning("the reliability diagram cannot be shown: %s", exc)
        return False

    def _fit(self) -> None:
        """Tall enough for the texts (wrapped at the dialog's width) and the diagram."""
        lay = self.layout()
        lay.activate()
        w = max(self.width(), self.minimumWidth())
        h = lay.totalHeightForWidth(w) if lay.hasHeightForWidth() else lay.totalSizeHint().height()
        self.resize(w, max(h, lay.totalMinimumSize().height()))

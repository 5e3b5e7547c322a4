"""The white rounded panels ("cards") the windows are made of."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout


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

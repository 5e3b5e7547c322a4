"""The white rounded panels ("cards") the windows are made of."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout


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

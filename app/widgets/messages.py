"""Message boxes that say everything: the whole text, selectable (to copy into a search or
a bug report), the technical details behind "Show Details…", and never blocking the
window (non-modal).  Every warning of the app goes through ``message_box``."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

log = logging.getLogger(__name__)

#: Wider than Qt's default, so that a long path or sentence wraps less.
MIN_TEXT_WIDTH = 460


def message_box(parent: QWidget | None, title: str, text: str, icon=QMessageBox.Icon.Warning,
                details: str | None = None, buttons=QMessageBox.StandardButton.Ok) -> QMessageBox:
    """A message box, not shown yet: ``text`` whole and selectable; ``details`` (or the
    ``details`` of a app.viewmodels.Problem given as ``text``) behind "Show Details…"."""
    if details is None:
        details = getattr(text, "details", None)
    box = QMessageBox(icon, title, str(text), buttons, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if details:
        box.setDetailedText(details)
    box.setStyleSheet(f"QLabel#qt_msgbox_label {{ min-width: {MIN_TEXT_WIDTH}px; }}")
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setWindowModality(Qt.WindowModality.NonModal)  # never blocks the drawing
    return box

"""Model → Versions…: every model version the database knows, and a way back to one.

The dialog shows rows it is given (``show_versions``: app.viewmodels.VersionRow, newest
first) and emits what the user asks for: ``useRequested(row)`` to switch to a version,
``compareRequested(a_id, b_id)`` to compare one with the version in use,
``refreshRequested`` to read the list again.  Loading the weights is the controller's.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QHBoxLayout, QHeaderView, QLabel,
                               QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app.widgets import theme

COLUMNS = ("Version", "Created", "Architecture", "MNIST test", "Your drawings", "SHA-256", "Weights file")
IN_USE_BG = "#e8effc"


def format_percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f} %"


class VersionsDialog(QDialog):
    useRequested = Signal(object)  # the VersionRow to switch to
    compareRequested = Signal(int, int)  # (a, b): the chosen version and the one in use
    refreshRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Model versions")
        self.setMinimumSize(940, 360)
        self._rows: list = []
        self._current: int | None = None
        lay = QVBoxLayout(self)
        lay.setSpacing(10)

        intro = QLabel("Every model this app has used: the shipped one, those trained here and "
                       "those fine-tuned on your drawings. “Your drawings” is the accuracy of each "
                       "version's own predictions that you labelled. Pick one and press "
                       "<b>Use this version</b> to go back to it.")
        intro.setObjectName("hint")
        intro.setWordWrap(True)
        lay.addWidget(intro)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(30)
        header = self.table.horizontalHeader()
        for c in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _item: self._use())
        lay.addWidget(self.table, 1)

        self.status = QLabel("")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)

        buttons = QHBoxLayout()
        self.refresh_button = QPushButton(theme.icon("refresh"), " Refresh")
        self.refresh_button.setToolTip("Read the versions again from the database")
        self.refresh_button.clicked.connect(self.refreshRequested)
        self.compare_button = QPushButton(theme.icon("compare"), " Compare with the one in use…")
        self.compare_button.setToolTip("This version and the one in use side by side, on your labelled drawings")
        self.compare_button.clicked.connect(self._compare)
        self.use_button = QPushButton("Use this version")
        self.use_button.setObjectName("primary")
        self.use_button.setToolTip("Load this version's weights file and predict with it")
        self.use_button.clicked.connect(self._use)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.hide)
        buttons.addWidget(self.refresh_button)
        buttons.addStretch(1)
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.close_button)
        lay.addLayout(buttons)
        self._update_buttons()

    # ---- told by the main window -------------------------------------------------------
    def show_versions(self, rows: list, current_id: int | None) -> None:
        selected = self.selected()
        keep = selected.id if selected is not None else current_id
        self._rows = list(rows)
        self._current = current_id
        t = self.table
        t.setRowCount(len(rows))
        bold = QFont(self.font())
        bold.setBold(True)
        for r, v in enumerate(rows):
            in_use = v.id == current_id
            # The arrow is lineage: a network trained from scratch comes from no other version.
            derived = v.parent_id is not None and v.kind != "trained"
            version = v.title + (f"  ← #{v.parent_id}" if derived else "")
            if in_use:
                version += "   ● in use"
            if v.accuracy is None:
                yours = f"– ({v.predictions} predictions, none labelled)" if v.predictions else "–"
            else:
                yours = f"{v.accuracy * 100:.1f} %  ({v.correct} of {v.labelled})"
            file_text = (v.path or "unknown").rsplit("/", 1)[-1]
            if getattr(v, "file_missing", False):
                file_text += "  (missing)"
            cells = (version, f"{v.created_at.astimezone():%Y-%m-%d %H:%M}", v.arch,
                     format_percent(v.mnist_accuracy, 2), yours, v.sha256[:12], file_text)
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c in (3, 4):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if in_use:
                    item.setFont(bold)
                    item.setBackground(QBrush(QColor(IN_USE_BG)))
                item.setToolTip(self._tooltip(v, in_use))
                t.setItem(r, c, item)
            if getattr(v, "file_missing", False):
                t.item(r, 6).setForeground(QBrush(QColor(theme.BAD)))
        n = len(rows)
        self.status.setText(f"{n} version{'s' if n != 1 else ''}." if n else
                            "No versions recorded yet (the database may be offline).")
        if keep is not None:
            self.select_version(keep)
        self._update_buttons()

    def show_error(self, text: str) -> None:
        self.status.setText(text)

    def _tooltip(self, v, in_use: bool) -> str:
        parent = f", fine-tuned from #{v.parent_id}" if v.kind == "fine-tuned" and v.parent_id else (
            f", made while #{v.parent_id} was in use" if v.parent_id else "")
        lines = [f"Version #{v.id}: {v.kind}{parent}" + (" (in use)" if in_use else ""),
                 f"{v.predictions} predictions, {v.labelled} labelled",
                 f"SHA-256 {v.sha256}", v.path or "weights file unknown"]
        if getattr(v, "file_missing", False):
            lines.append("The weights file is missing: this version cannot be used again.")
        return "\n".join(lines)

    # ---- selection --------------------------------------------------------------------------
    def rows(self) -> list:
        return list(self._rows)

    def selected(self):
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self._rows):
            return None
        return self._rows[rows[0].row()]

    def select_version(self, version_id: int) -> None:
        for r, v in enumerate(self._rows):
            if v.id == version_id:
                self.table.selectRow(r)
                return

    def _update_buttons(self) -> None:
        v = self.selected()
        other = v is not None and v.id != self._current
        self.use_button.setEnabled(other)
        self.compare_button.setEnabled(other and self._current is not None)

    def _use(self) -> None:
        v = self.selected()
        if v is not None and v.id != self._current:
            self.status.setText(f"Loading version {v.title}…")
            self.useRequested.emit(v)

    def _compare(self) -> None:
        v = self.selected()
        if v is not None and self._current is not None and v.id != self._current:
            self.compareRequested.emit(v.id, self._current)

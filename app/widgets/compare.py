"""Compare two model versions: their accuracy on the user's labelled drawings, overall and
per digit, side by side with the change.

The dialog asks with ``compareRequested(a_id, b_id)`` whenever the pair changes and shows
what it is given (``show_comparison``: PredictionRepository.compare_versions()'s dict).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QHBoxLayout, QHeaderView,
                               QLabel, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from app.widgets import theme
from app.widgets.cards import card, stat_tile
from app.widgets.charts import plain_plot

A_COLOUR = "#9aa7bd"  # the older / first version: quiet
B_COLOUR = theme.ACCENT


def format_accuracy(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def format_delta(delta: float | None) -> str:
    if delta is None:
        return "–"
    points = delta * 100
    if abs(points) < 0.05:
        return "±0.0"
    return f"{points:+.1f}".replace("-", "−")


def delta_colour(delta: float | None) -> str:
    if delta is None or abs(delta) < 0.0005:
        return theme.MUTED
    return theme.GOOD if delta > 0 else theme.BAD


class CompareDialog(QDialog):
    compareRequested = Signal(int, int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Compare model versions")
        self.setMinimumSize(820, 520)
        self.result: dict | None = None
        lay = QVBoxLayout(self)
        lay.setSpacing(10)

        pick = QHBoxLayout()
        self.a_combo = QComboBox()
        self.b_combo = QComboBox()
        for combo, tip in ((self.a_combo, "The version to compare from"),
                           (self.b_combo, "The version to compare with (the change is B − A)")):
            combo.setMinimumWidth(280)
            combo.setToolTip(tip)
            combo.activated.connect(self._request)
        self.swap_button = QPushButton("⇄")
        self.swap_button.setToolTip("Swap A and B")
        self.swap_button.setFixedWidth(44)
        self.swap_button.clicked.connect(self._swap)
        pick.addWidget(QLabel("A:"))
        pick.addWidget(self.a_combo, 1)
        pick.addWidget(self.swap_button)
        pick.addWidget(QLabel("B:"))
        pick.addWidget(self.b_combo, 1)
        lay.addLayout(pick)

        tiles = QHBoxLayout()
        tiles.setSpacing(10)
        a_card, self.a_value, self.a_caption = stat_tile("Version A")
        b_card, self.b_value, self.b_caption = stat_tile("Version B")
        d_card, self.delta_value, self.delta_caption = stat_tile("Change (B − A)")
        self.a_value.setStyleSheet(f"color: {A_COLOUR};")
        for c in (a_card, b_card, d_card):
            tiles.addWidget(c, 1)
        lay.addLayout(tiles)

        body = QHBoxLayout()
        body.setSpacing(10)
        table_card, table_lay = card("Per digit")
        self.table = QTableWidget(10, 4)
        self.table.setHorizontalHeaderLabels(("Digit", "A", "B", "Change"))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumWidth(300)
        self.table.setToolTip("Of your labelled drawings of each digit, the share each version read right "
                              "(with how many there were)")
        table_lay.addWidget(self.table)
        body.addWidget(table_card, 4)

        chart_card, chart_lay = card("Accuracy per digit")
        self.chart = plain_plot()
        self.chart.setYRange(-5, 110, padding=0)
        self.chart.setXRange(-0.6, 9.6, padding=0)
        self.chart.getAxis("left").setWidth(44)
        self.chart.getAxis("bottom").setTicks([[(i, str(i)) for i in range(10)]])
        self.chart.getAxis("left").setTicks([[(0, "0"), (50, "50"), (100, "100 %")]])
        self.chart.showGrid(y=True, alpha=0.15)
        self.chart.setLabel("bottom", "true digit")
        self.a_bars = pg.BarGraphItem(x=np.arange(10) - 0.19, height=np.zeros(10), width=0.36,
                                      brush=A_COLOUR, pen=pg.mkPen(None))
        self.b_bars = pg.BarGraphItem(x=np.arange(10) + 0.19, height=np.zeros(10), width=0.36,
                                      brush=B_COLOUR, pen=pg.mkPen(None))
        self.chart.addItem(self.a_bars)
        self.chart.addItem(self.b_bars)
        legend = QLabel(f"<span style='color:{A_COLOUR}'>■</span> A &nbsp;&nbsp; "
                        f"<span style='color:{B_COLOUR}'>■</span> B")
        legend.setObjectName("hint")
        legend.setAlignment(Qt.AlignmentFlag.AlignRight)
        chart_lay.addWidget(legend)
        chart_lay.addWidget(self.chart)
        body.addWidget(chart_card, 5)
        lay.addLayout(body, 1)

        bottom = QHBoxLayout()
        self.status = QLabel("Accuracy of each version's own predictions that you labelled.")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        close = QPushButton("Close")
        close.clicked.connect(self.hide)
        bottom.addWidget(self.status, 1)
        bottom.addWidget(close)
        lay.addLayout(bottom)

    # ---- the pair ------------------------------------------------------------------------------
    def set_versions(self, versions: list, a_id: int | None, b_id: int | None) -> None:
        """Fill the two boxes (app.viewmodels.VersionRow) and ask for the pair (a, b)."""
        for combo, chosen in ((self.a_combo, a_id), (self.b_combo, b_id)):
            combo.blockSignals(True)
            combo.clear()
            for v in versions:
                combo.addItem(v.describe(), v.id)
            index = combo.findData(chosen) if chosen is not None else -1
            combo.setCurrentIndex(max(0, index))
            combo.blockSignals(False)
        self._request()

    def pair(self) -> tuple[int | None, int | None]:
        return self.a_combo.currentData(), self.b_combo.currentData()

    def _swap(self) -> None:
        a, b = self.pair()
        for combo, chosen in ((self.a_combo, b), (self.b_combo, a)):
            combo.blockSignals(True)
            combo.setCurrentIndex(max(0, combo.findData(chosen)))
            combo.blockSignals(False)
        self._request()

    def _request(self, *_args) -> None:
        a, b = self.pair()
        if a is None or b is None:
            self.status.setText("There are no two versions to compare yet.")
            return
        if a == b:
            self.status.setText("Pick two different versions.")
        else:
            self.status.setText("Reading…")
        self.compareRequested.emit(int(a), int(b))

    # ---- told by the main window ----------------------------------------------------------
    def show_error(self, text: str) -> None:
        self.status.setText(text)

    def show_comparison(self, result: dict) -> None:
        if (result["a"]["id"], result["b"]["id"]) != self.pair():
            return  # an answer to an earlier pair
        self.result = result
        for side, value, caption in (("a", self.a_value, self.a_caption), ("b", self.b_value, self.b_caption)):
            v = result[side]
            value.setText(format_accuracy(v["accuracy"]))
            name = f"#{v['id']} {v.get('name') or v['kind']}"
            caption.setText(f"{name}: {v['correct']} of {v['labelled']} labelled right" if v["labelled"]
                            else f"{name}: none of its {v['predictions']} predictions is labelled")
        delta = result["accuracy_delta"]
        self.delta_value.setText(format_delta(delta) + (" points" if delta is not None else ""))
        self.delta_value.setStyleSheet(f"color: {delta_colour(delta)};")
        self.delta_caption.setText("better" if delta and delta > 0 else "worse" if delta and delta < 0
                                   else "no change" if delta is not None else "needs labelled drawings of both")
        heights = {"a": np.zeros(10), "b": np.zeros(10)}
        for row in result["digits"]:
            d = row["digit"]
            cells = [(str(d), None),
                     (self._cell(row["a_accuracy"], row["a_actual"]), None),
                     (self._cell(row["b_accuracy"], row["b_actual"]), None),
                     (format_delta(row["delta"]), delta_colour(row["delta"]))]
            for c, (text, colour) in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if colour:
                    item.setForeground(QBrush(QColor(colour)))
                self.table.setItem(d, c, item)
            for side in "ab":
                acc = row[f"{side}_accuracy"]
                heights[side][d] = 0.0 if acc is None else acc * 100
        self.a_bars.setOpts(height=heights["a"])
        self.b_bars.setOpts(height=heights["b"])
        a, b = result["a"], result["b"]
        self.status.setText(f"Accuracy of each version's own predictions that you labelled "
                            f"(A: {a['labelled']}, B: {b['labelled']}). Per digit: of the drawings of "
                            f"that digit, the share read right.")

    @staticmethod
    def _cell(accuracy: float | None, actual: int) -> str:
        return "–" if accuracy is None else f"{accuracy * 100:.0f} % ({actual})"

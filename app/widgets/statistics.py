"""The Statistics tab: accuracy, per-digit accuracy, the confusion matrix, accuracy over
time and the recent predictions (with their 28x28 images; a true label can be corrected
there), of all model versions or of one (the "Model version" box); "Compare versions…"
asks for two versions side by side.  It shows a ``StatsSnapshot`` (app/viewmodels.py) it
is given and emits what the user asks for."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QGridLayout, QHBoxLayout, QHeaderView,
                               QLabel, QPushButton, QSizePolicy, QStyledItemDelegate, QTableView,
                               QVBoxLayout, QWidget)

from app.viewmodels import HistoryItem, StatsSnapshot
from app.widgets import theme
from app.widgets.cards import card, stat_tile
from app.widgets.charts import grey_image, plain_plot

NO_LABEL = "—"
#: The history's thumbnails (the 28x28 network input, at its own size) and rows.
THUMB = 28
ROW_HEIGHT = 34


def short_time(when: dt.datetime, now: dt.datetime | None = None) -> str:
    """"14:05" today, "3 Dec 14:05" this year, "3 Dec 2025" before."""
    local = when.astimezone()
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone()
    if local.date() == now.date():
        return f"{local:%H:%M}"
    if local.year == now.year:
        return f"{local.day} {local:%b %H:%M}"
    return f"{local.day} {local:%b %Y}"


def day_label(day: dt.date, with_year: bool = False) -> str:
    """"3 Dec" (or "3 Dec 2025"): a day with its month, never a bare "03"."""
    return f"{day.day} {day:%b}" + (f" {day:%Y}" if with_year else "")


class DayAxis(pg.AxisItem):
    """A time axis of whole days: ticks at noon (where the days' points are), labelled
    with day and month; a step of 1, 2, 7, 14, 30… days so that labels do not crowd."""

    STEPS = (1, 2, 7, 14, 30, 61, 91, 182, 365)
    LABEL_PX = 70  # room one label needs

    def __init__(self):
        super().__init__("bottom")

    def tickValues(self, minVal, maxVal, size):
        if not (np.isfinite(minVal) and np.isfinite(maxVal)) or maxVal <= minVal:
            return []
        days = (maxVal - minVal) / 86400
        room = max(1, int(size // self.LABEL_PX))
        step = next((s for s in self.STEPS if days / s <= room), self.STEPS[-1])
        first = dt.date.fromtimestamp(max(minVal, 0))
        values = []
        day = first
        while True:
            t = dt.datetime(day.year, day.month, day.day, 12).timestamp()
            if t > maxVal:
                break
            if t >= minVal:
                values.append(t)
            day += dt.timedelta(days=step)
        return [(step * 86400.0, values)]

    def tickStrings(self, values, scale, spacing):
        days = [dt.date.fromtimestamp(v) for v in values]
        years = {d.year for d in days}
        with_year = len(years) > 1 or (years and years != {dt.date.today().year})
        return [day_label(d, bool(with_year)) for d in days]


def numbers_read_right(s: StatsSnapshot) -> tuple[str, str]:
    """The "Numbers read right" tile: its value and caption."""
    if s.readings_labelled == 0:
        return "–", ("No number saved yet: switch to Number mode (View menu) and write one." if s.readings == 0
                     else f"{s.readings} number{'s' if s.readings != 1 else ''} saved without a label")
    return (f"{s.readings_correct / s.readings_labelled * 100:.1f} %",
            f"{s.readings_correct} of {s.readings_labelled} labelled number{'s' if s.readings_labelled != 1 else ''}"
            f" read right")


# ---- the history table -----------------------------------------------------------------------
class HistoryModel(QAbstractTableModel):
    COLUMNS = ("Image", "Predicted", "Confidence", "True label", "Time", "Model")
    #: (uuid, label or None) when the user corrects a label in the table.
    labelEdited = Signal(str, object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[HistoryItem] = []
        self._pixmaps: dict[str, QPixmap] = {}

    def set_rows(self, rows: list[HistoryItem]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._pixmaps = {}
        self.endResetModel()

    def rows(self) -> list[HistoryItem]:
        return list(self._rows)

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None

    def flags(self, index):
        f = super().flags(index)
        if index.column() == 3:
            f |= Qt.ItemFlag.ItemIsEditable
        return f

    def _pixmap(self, item: HistoryItem) -> QPixmap | None:
        if item.image is None:
            return None
        if item.uuid not in self._pixmaps:
            img = grey_image(item.image).scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                                Qt.TransformationMode.FastTransformation)
            self._pixmaps[item.uuid] = QPixmap.fromImage(img)
        return self._pixmaps[item.uuid]

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DecorationRole and col == 0:
            return self._pixmap(item)
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 1:
                return str(item.predicted) if item.is_digit is not False else f"{item.predicted}?"
            if col == 2:
                return f"{item.confidence * 100:.1f} %"
            if col == 3:
                return NO_LABEL if item.true_label is None else str(item.true_label)
            if col == 4:
                return short_time(item.created_at)
            if col == 5:
                return NO_LABEL if item.model_version_id is None else f"#{item.model_version_id}"
        if role == Qt.ItemDataRole.EditRole and col == 3:
            return item.true_label
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (1, 2, 3, 5):
            return int(Qt.AlignmentFlag.AlignCenter)
        if role == Qt.ItemDataRole.ForegroundRole and col == 3 and item.true_label is not None:
            return QColor(theme.GOOD if item.true_label == item.predicted else theme.BAD)
        if role == Qt.ItemDataRole.ForegroundRole and col == 1 and item.is_digit is False:
            return QColor(theme.MUTED)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == 3:
                return "Double-click to correct the true label"
            if col == 1 and item.is_digit is False:
                return f"It did not look like a digit; the best guess was {item.predicted}"
            if col == 4:
                return item.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S")
            version = f"version #{item.model_version_id}" if item.model_version_id else "no recorded version"
            return f"{item.source}, model {item.model_version or '?'} ({version})\n{item.uuid}"
        return None

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole):
        if role != Qt.ItemDataRole.EditRole or index.column() != 3:
            return False
        item = self._rows[index.row()]
        label = None if value is None or value == "" or value == NO_LABEL else int(value)
        if label == item.true_label:
            return False
        item.true_label = label
        self.dataChanged.emit(index, index)
        self.labelEdited.emit(item.uuid, label)
        return True


class LabelDelegate(QStyledItemDelegate):
    """A combo box with "—" and 0-9 to edit the true label."""

    def createEditor(self, parent, option, index):
        combo = QComboBox(parent)
        combo.addItem(NO_LABEL, None)
        for d in range(10):
            combo.addItem(str(d), d)
        combo.activated.connect(lambda _i, c=combo: self._commit(c))
        return combo

    def _commit(self, combo):
        self.commitData.emit(combo)
        self.closeEditor.emit(combo)

    def setEditorData(self, editor, index):
        label = index.data(Qt.ItemDataRole.EditRole)
        editor.setCurrentIndex(0 if label is None else int(label) + 1)
        editor.showPopup()

    def setModelData(self, editor, model, index):
        model.setData(index, editor.currentData(), Qt.ItemDataRole.EditRole)


# ---- charts -------------------------------------------------------------------------------------
class ConfusionMatrix(pg.PlotWidget):
    """10x10 heat map of (true label, predicted digit) counts, counts written in the cells."""

    def __init__(self, parent=None):
        super().__init__(parent=parent)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setBackground(theme.PLOT_BG)
        item = self.getPlotItem()
        item.setAspectLocked(True)
        item.invertY(True)
        ticks = [[(i, str(i)) for i in range(10)]]
        item.getAxis("bottom").setTicks(ticks)
        item.getAxis("left").setTicks(ticks)
        item.setLabel("bottom", "predicted")
        item.setLabel("left", "true label")
        item.setXRange(-0.5, 9.5, padding=0)
        item.setYRange(-0.5, 9.5, padding=0)
        item.disableAutoRange()
        self.image = pg.ImageItem(axisOrder="row-major")
        stops = np.linspace(0, 1, len(theme.HEAT))
        self.image.setColorMap(pg.ColorMap(stops, [QColor(*c) for c in theme.HEAT]))
        self.addItem(self.image)
        self._texts: list[pg.TextItem] = []
        for t in range(10):
            for p in range(10):
                text = pg.TextItem("", anchor=(0.5, 0.5), color=theme.TEXT)
                text.setPos(p, t)
                self.addItem(text)
                self._texts.append(text)
        self.counts = np.zeros((10, 10), dtype=int)
        self.set_counts(self.counts)
        self.setMinimumSize(200, 150)
        self.setToolTip("How often each true digit (row) was read as each digit (column); "
                        "the diagonal is right")

    def set_counts(self, counts) -> None:
        counts = np.asarray(counts, dtype=int).reshape(10, 10)
        self.counts = counts
        # Row-normalised colour: each true digit's row shows where it went.
        rows = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, rows, out=np.zeros((10, 10)), where=rows > 0)
        self.image.setImage(share, levels=(0, 1))
        self.image.setRect(-0.5, -0.5, 10, 10)
        for t in range(10):
            for p in range(10):
                n = counts[t, p]
                text = self._texts[t * 10 + p]
                text.setText(str(n) if n else "")
                text.setColor("#ffffff" if share[t, p] > 0.55 else (theme.TEXT if t == p else theme.BAD))


class StatisticsTab(QWidget):
    refreshRequested = Signal()
    labelEdited = Signal(str, object)
    #: The user picked a model version to show (None: all versions).
    versionChosen = Signal(object)
    #: "Compare versions…" was clicked.
    compareRequested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 12, 12, 12)
        outer.setSpacing(10)

        bar = QHBoxLayout()
        bar.setSpacing(8)
        version_label = QLabel("Model version:")
        self.version_combo = QComboBox()
        self.version_combo.setObjectName("versionFilter")
        self.version_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.version_combo.setMinimumContentsLength(22)
        self.version_combo.setToolTip("Show the predictions of all model versions, or only of one")
        self.version_combo.addItem("All versions", None)
        version_label.setBuddy(self.version_combo)
        self.version_combo.activated.connect(self._version_activated)
        self.compare_button = QPushButton(theme.icon("compare"), " Compare versions…")
        self.compare_button.setToolTip("Two model versions side by side: their accuracy on your "
                                       "labelled drawings, overall and per digit")
        self.compare_button.setEnabled(False)
        self.compare_button.clicked.connect(self.compareRequested)
        self.state_label = QLabel("")
        self.state_label.setObjectName("hint")
        self.state_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        # It gives way when the window is narrow (the box and the buttons do not).
        self.state_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.refresh_button = QPushButton(theme.icon("refresh"), " Refresh")
        self.refresh_button.setToolTip("Read the statistics again from the database (F5)")
        self.refresh_button.clicked.connect(self.refreshRequested)
        bar.addWidget(version_label)
        bar.addWidget(self.version_combo)
        bar.addWidget(self.compare_button)
        bar.addWidget(self.state_label, 1)
        bar.addWidget(self.refresh_button)
        outer.addLayout(bar)

        # What went wrong reading the statistics, whole and selectable (hidden when all is well).
        self.problem_label = QLabel("")
        self.problem_label.setObjectName("problemBanner")
        self.problem_label.setWordWrap(True)
        self.problem_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem_label.hide()
        outer.addWidget(self.problem_label)

        tiles = QHBoxLayout()
        tiles.setSpacing(10)
        acc_card, self.accuracy_value, self.accuracy_caption = stat_tile("Accuracy")
        acc_card.setToolTip("Share of the labelled predictions whose prediction was right")
        total_card, self.total_value, self.total_caption = stat_tile("Predictions")
        confused_card, self.confused_value, self.confused_caption = stat_tile("Most confused")
        not_digit_card, self.not_digit_value, self.not_digit_caption = stat_tile("Not a digit")
        not_digit_card.setToolTip("How often a drawing did not look like a digit to the model (a letter, a "
                                  "scribble): of the drawings judged since the app judges them")
        numbers_card, self.numbers_value, self.numbers_caption = stat_tile("Numbers read right")
        numbers_card.setToolTip("Numbers written in Number mode (View → Number mode), of all model versions: "
                                "how many of the labelled ones were read right, every digit")
        for c in (acc_card, total_card, confused_card, not_digit_card, numbers_card):
            tiles.addWidget(c, 1)
        for caption in (self.accuracy_caption, self.total_caption, self.confused_caption, self.not_digit_caption,
                        self.numbers_caption):  # (five tiles in a narrow window: captions take two lines)
            caption.setMinimumHeight(2 * caption.fontMetrics().lineSpacing())
        outer.addLayout(tiles)

        # Charts on the left, the history on the right: both get the window's height.
        body = QHBoxLayout()
        body.setSpacing(10)
        charts = QGridLayout()
        charts.setSpacing(10)
        digit_card, digit_lay = card("Accuracy per digit")
        self.digit_plot = plain_plot()
        self.digit_plot.setYRange(-5, 110, padding=0)  # room for the "0" and "100 %" labels
        self.digit_plot.getAxis("left").setWidth(44)
        self.digit_plot.setXRange(-0.6, 9.6, padding=0)
        self.digit_plot.getAxis("bottom").setTicks([[(i, str(i)) for i in range(10)]])
        self.digit_plot.getAxis("left").setTicks([[(0, "0"), (50, "50"), (100, "100 %")]])
        self.digit_plot.setLabel("bottom", "true digit")
        self.digit_plot.showGrid(y=True, alpha=0.15)
        self.digit_bars = pg.BarGraphItem(x=np.arange(10), height=np.zeros(10), width=0.7,
                                          brush=theme.ACCENT, pen=pg.mkPen(None))
        self.digit_plot.addItem(self.digit_bars)
        self.digit_plot.setToolTip("Of the drawings of each digit, how many were read right (recall)")
        digit_lay.addWidget(self.digit_plot)
        charts.addWidget(digit_card, 0, 0)

        conf_card, conf_lay = card("Confusion matrix")
        self.confusion = ConfusionMatrix()
        conf_lay.addWidget(self.confusion)
        charts.addWidget(conf_card, 0, 1)

        time_card, time_lay = card("Accuracy over time")
        self.day_axis = DayAxis()
        self.time_plot = plain_plot(axisItems={"bottom": self.day_axis})
        self.time_plot.setYRange(-5, 110, padding=0)
        self.time_plot.getAxis("left").setWidth(44)
        self.time_plot.getAxis("left").setTicks([[(0, "0"), (50, "50"), (100, "100 %")]])
        self.time_plot.showGrid(y=True, alpha=0.15)
        self.time_curve = self.time_plot.plot([], [], pen=pg.mkPen(theme.ACCENT, width=2), symbol="o",
                                              symbolSize=7, symbolBrush=theme.ACCENT)
        self.time_empty = pg.TextItem("no labelled drawings yet", color=theme.MUTED, anchor=(0.5, 0.5))
        self.time_plot.addItem(self.time_empty)
        self.time_plot.setToolTip("Accuracy of the labelled predictions, per day")
        self._show_days([])
        time_lay.addWidget(self.time_plot)
        charts.addWidget(time_card, 1, 0, 1, 2)
        charts.setRowStretch(0, 3)
        charts.setRowStretch(1, 2)
        body.addLayout(charts, 11)

        hist_card, hist_lay = card("Recent predictions")
        self.model = HistoryModel(self)
        self.model.labelEdited.connect(self.labelEdited)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(3, LabelDelegate(self.table))
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.SelectedClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.table.setIconSize(QSize(THUMB, THUMB))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 56)
        self.table.setToolTip("Double-click a true label to correct it")
        hist_lay.addWidget(self.table)
        body.addWidget(hist_card, 9)
        outer.addLayout(body, 1)
        self.snapshot: StatsSnapshot | None = None

    # ---- told by the controller ------------------------------------------------------------
    def set_busy(self, busy: bool) -> None:
        self.refresh_button.setEnabled(not busy)
        if busy:
            self.state_label.setText("Reading the database…")

    def show_error(self, text: str) -> None:
        """The statistics could not be read: the whole message, above the numbers (which
        stay as they were)."""
        self.refresh_button.setEnabled(True)
        self.state_label.setText("Not updated")
        self.problem_label.setText(text)
        self.problem_label.show()

    def _show_days(self, xs: list[float], ys: list[float] | None = None) -> None:
        """The accuracy per day; with no day yet, a week around today (not an axis of
        seconds since 1970) and a note."""
        self.time_curve.setData(xs, ys or [])
        pad = 86400 * 1.5
        if xs:
            lo, hi = min(xs) - pad, max(xs) + pad
        else:
            today = dt.date.today()
            noon = dt.datetime(today.year, today.month, today.day, 12).timestamp()
            lo, hi = noon - 3 * 86400 - pad / 3, noon + 3 * 86400 + pad / 3
        self.time_plot.setXRange(lo, hi, padding=0)
        self.time_empty.setVisible(not xs)
        self.time_empty.setPos((lo + hi) / 2, 50)

    def _show_not_a_digit(self, s: StatsSnapshot) -> None:
        if s.judged == 0:
            self.not_digit_value.setText("–")
            self.not_digit_caption.setText("No drawing judged yet")
            return
        share = s.not_digit / s.judged
        self.not_digit_value.setText(f"{share * 100:.1f} %")
        self.not_digit_caption.setText(f"{s.not_digit} of {s.judged} drawing{'s' if s.judged != 1 else ''} did "
                                       f"not look like a digit")

    def _version_activated(self, index: int) -> None:
        self.versionChosen.emit(self.version_combo.itemData(index))

    def selected_version(self) -> int | None:
        return self.version_combo.currentData()

    def select_version(self, version_id: int | None) -> None:
        """Pick a version in the box as the user would (emits versionChosen)."""
        index = 0 if version_id is None else self.version_combo.findData(version_id)
        if index >= 0:
            self.version_combo.setCurrentIndex(index)
            self._version_activated(index)

    def _set_versions(self, versions: list, selected: int | None) -> None:
        combo = self.version_combo
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("All versions", None)
        for v in versions:
            combo.addItem(v.describe(), v.id)
            tip = f"{v.arch}, {v.predictions} predictions, {v.labelled} labelled\n{v.path or ''}"
            combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        combo.setCurrentIndex(0 if selected is None else max(0, combo.findData(selected)))
        combo.blockSignals(False)
        self.compare_button.setEnabled(len(versions) >= 2)

    def show_stats(self, s: StatsSnapshot) -> None:
        self.snapshot = s
        self.refresh_button.setEnabled(True)
        self.problem_label.hide()
        self._set_versions(s.versions, s.version_id)
        self.state_label.setText(f"Updated {dt.datetime.now().strftime('%H:%M:%S')}")
        if s.accuracy is None:
            self.accuracy_value.setText("–")
            self.accuracy_caption.setText("No labelled predictions yet: press ✓ Correct or "
                                          "✗ Wrong… after drawing.")
        else:
            self.accuracy_value.setText(f"{s.accuracy * 100:.1f} %")
            self.accuracy_caption.setText(f"{s.correct} of {s.labelled} labelled predictions right")
        self.total_value.setText(f"{s.total}")
        self.total_caption.setText(f"{s.labelled} labelled, {s.total - s.labelled} without a label")
        conf = np.asarray(s.confusion, dtype=int).reshape(10, 10)
        off = conf.copy()
        np.fill_diagonal(off, 0)
        if off.max() > 0:
            t, p = np.unravel_index(int(off.argmax()), off.shape)
            self.confused_value.setText(f"{t} → {p}")
            self.confused_caption.setText(f"a {t} read as {p}, {off[t, p]} time{'s' if off[t, p] != 1 else ''}")
        else:
            self.confused_value.setText("–")
            self.confused_caption.setText("No mistakes among the labelled predictions")

        # Per-digit accuracy: of the drawings whose true label is d, the share read as d.
        rows = conf.sum(axis=1)
        acc = np.divide(np.diag(conf), rows, out=np.zeros(10), where=rows > 0) * 100
        brushes = [pg.mkBrush(theme.ACCENT if rows[d] else theme.BAR) for d in range(10)]
        self.digit_bars.setOpts(height=acc, brushes=brushes)
        self.confusion.set_counts(conf)

        xs, ys = [], []
        for day in s.per_day:
            if day.get("accuracy") is None:
                continue
            d = day["day"]
            xs.append(dt.datetime(d.year, d.month, d.day, 12).timestamp())
            ys.append(float(day["accuracy"]) * 100)
        self._show_days(xs, ys)
        self._show_not_a_digit(s)
        value, caption = numbers_read_right(s)
        self.numbers_value.setText(value)
        self.numbers_caption.setText(caption)
        self.model.set_rows(s.recent)

    def row_count(self) -> int:
        return self.model.rowCount()

    def edit_label(self, row: int, label: int | None) -> None:
        """Correct the true label of a history row (as the combo box does)."""
        self.model.setData(self.model.index(row, 3), label)


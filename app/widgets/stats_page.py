"""The Statistics tab's page, and File → Export….

The statistics tab (app/widgets/statistics.py) costs ~130 ms to build, so the page builds
it when it is first shown, keeps it filled from the controller's statistics room (read
again shortly after each logged drawing or corrected label while it is on screen), and
passes the user's corrections and version choices on.  The exports ask for a file name
(suggested by app.exports) and report the outcome in the status bar.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QVBoxLayout, QWidget

from app import exports
from app.controllers import Controller
from app.viewmodels import VersionRow
from app.widgets import theme
from app.widgets.statistics import StatisticsTab

log = logging.getLogger(__name__)

#: After a change, read the statistics again this much later (changes come in bursts).
REFRESH_DELAY_MS = 250
NPZ_FILTER = "NumPy archive (*.npz)"
IDX_GZ_FILTER = "MNIST IDX files, gzipped (*.gz)"
IDX_FILTER = "MNIST IDX files (*.idx)"
DATASET_FILTERS = ";;".join((NPZ_FILTER, IDX_GZ_FILTER, IDX_FILTER))
_FILTER_SUFFIX = {NPZ_FILTER: exports.NPZ, IDX_GZ_FILTER: exports.IDX_GZ, IDX_FILTER: exports.IDX}


def dataset_export_path(path: str, chosen_filter: str) -> Path:
    """The name for the chosen format: ``x.npz`` for NumPy, ``x.gz`` / ``x.idx`` for IDX
    files (app.exports).  A name with a known ending keeps its format."""
    return exports.dataset_path(path, _FILTER_SUFFIX.get(chosen_filter, exports.NPZ))


class StatsPage(QWidget):
    #: A passing message for the status bar, and how long it stays (ms).
    message = Signal(str, int)
    #: Something went wrong that is worth a dialog: title, text.
    warning = Signal(str, str)
    #: "Compare versions…" on the tab: the versions it knows.
    compareRequested = Signal(object)

    def __init__(self, controller: Controller, qsettings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self.statistics = controller.statistics
        self.qsettings = qsettings
        self._tab: StatisticsTab | None = None
        QVBoxLayout(self).setContentsMargins(0, 0, 0, 0)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self.statistics.refresh_stats)
        s, f = self.statistics, controller.feedback
        s.statsReady.connect(lambda snapshot: self.tab.show_stats(snapshot))
        s.statsFailed.connect(lambda text: self.tab.show_error(text))
        s.exportDone.connect(self._csv_exported)
        s.exportFailed.connect(lambda text: self.warning.emit("Export failed", text))
        s.datasetExported.connect(self._dataset_exported)
        s.datasetExportFailed.connect(lambda text: self.warning.emit("Export failed", text))
        f.logged.connect(self._logged)
        f.labelSaved.connect(self._label_saved)
        controller.learning.improveFinished.connect(lambda _result: self._logged())

    @property
    def tab(self) -> StatisticsTab:
        """The statistics tab (built on first use)."""
        if self._tab is None:
            self._tab = StatisticsTab()
            self._tab.refreshRequested.connect(self.statistics.refresh_stats)
            self._tab.labelEdited.connect(self.controller.feedback.set_label)
            self._tab.versionChosen.connect(self._version_chosen)
            self._tab.compareRequested.connect(self._compare)
            self.layout().addWidget(self._tab)
        return self._tab

    def shown(self) -> None:
        """The page came on screen: read the statistics."""
        self.tab.set_busy(True)
        self.statistics.refresh_stats()

    def refresh_soon(self) -> None:
        self._refresh_timer.start()

    def _logged(self, *_args) -> None:
        if self.isVisible():
            self.refresh_soon()

    def _label_saved(self, uid: str, label) -> None:
        self.message.emit("Label saved.", theme.ECHO_MS)
        self.refresh_soon()

    def _version_chosen(self, version_id) -> None:
        self.tab.set_busy(True)
        self.statistics.set_stats_version(version_id)

    def _compare(self) -> None:
        snapshot = self.tab.snapshot
        versions: list[VersionRow] = snapshot.versions if snapshot else []
        self.compareRequested.emit(versions)

    # ---- File → Export… ----------------------------------------------------------------------------
    def ask_export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window(), "Export predictions",
                                              str(Path.home() / exports.CSV_NAME), "CSV files (*.csv)")
        if path:
            self.message.emit("Exporting…", theme.UNTIL_REPLACED)
            self.statistics.export_csv(path)

    def _csv_exported(self, path: str, rows: int) -> None:
        self.message.emit(f"Exported {rows} prediction{'s' if rows != 1 else ''} to {path}", theme.RESULT_MS)

    def ask_export_dataset(self) -> None:
        start = self.qsettings.value("files/dataset_dir", str(Path.home()), type=str)
        path, chosen = QFileDialog.getSaveFileName(self.window(), "Export your labelled drawings",
                                                   str(Path(start) / exports.DATASET_NAME), DATASET_FILTERS)
        if path:
            target = dataset_export_path(path, chosen)
            self.qsettings.setValue("files/dataset_dir", str(target.parent))
            self.export_dataset(target)

    def export_dataset(self, path: str | Path) -> None:
        """What File → Export dataset… does after its file dialog."""
        self.message.emit("Exporting your labelled drawings…", theme.UNTIL_REPLACED)
        self.statistics.export_dataset(path)

    def _dataset_exported(self, files: list, n: int) -> None:
        names = " and ".join(Path(f).name for f in files)
        folder = Path(files[0]).parent if files else ""
        self.message.emit(f"Exported {n} labelled drawing{'s' if n != 1 else ''} to {names} (in {folder})",
                          theme.RESULT_MS)
